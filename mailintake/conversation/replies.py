"""Replies inside a report's thread: the reporter's are stored and forwarded to staff; staff
replies are checked, their commands carried out, and their text relayed to the reporter
from the security address. Runs inside the processing transaction, so every record and
every outbox row of one reply commits together, or not at all.

Which mail is a reply at all is decided by routing.py from facts gathered here.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailintake.route.authentication import is_member
from mailintake.calendar.business import BusinessCalendar
from mailintake.conversation.commands import COMMAND_NAMES, StaffReply, parse_staff_reply
from mailintake.config.schema import StaffConfig
from mailintake.outbound.mailer import Mailer
from mailintake.reports.attachments import attachment_plan
from mailintake.deadlines.milestones import meet_milestone, refresh_milestones
from mailintake.storage.models import Attachment, InboundMessage, Message, OutboxMessage, Pause, Report
from mailintake.outbound.outbox import Outgoing
from mailintake.parse.message import ParsedMessage
from mailintake.conversation.reply_text import clean_staff_reply
from mailintake.reports.records import inbound_message_row
from mailintake.route.decision import Arrival, ReportParty, Route
from mailintake.sla.policy import Policy
from mailintake.core.vocabulary import tracking_tag_pattern
from mailintake.core.tokens import ReplyToken, parse_reply_address

log = logging.getLogger(__name__)

STATUS_TEMPLATES = {"resolved": "resolution", "rejected": "rejected", "duplicate": "duplicate", "out-of-scope": "out_of_scope"}
MAX_REFERENCED = 50
MAX_ASSIGNEE = 254
# The last line of every staff-facing template: text that carries it is quoted staff mail.
STAFF_ONLY_MARKER = "For staff only: mailintake never sends this text to the reporter."
STAFF_ONLY_TEXT = (STAFF_ONLY_MARKER, "----- Report text -----", "----- Reply text -----")
LATE_COMMAND = re.compile(rf"^[ \t]*#({'|'.join(COMMAND_NAMES)})\b", re.IGNORECASE | re.MULTILINE)
UNMAILABLE_REPORTER = "the reporter's address cannot be written into an outgoing mail (e.g. a non-ASCII local part); your text was not sent: answer them another way"


REPLAYABLE_REPLY = (
    "your mail's DKIM signature does not cover its Message-ID, so a copy of it could be sent again as a new reply; "
    "replies are taken only from mail whose signature covers Message-ID: ask your mail admin to sign it (OpenDKIM, Gmail and Microsoft 365 do)"
)


REPORTER_MAIL_NOT_BUILT = "the mail to the reporter could not be built (its template failed; [staff] alerts were told); your text was not sent: send it again once the template is fixed"


class UnmailableReporter(Exception):
    pass


class ReporterMailNotBuilt(Exception):
    pass


@dataclass(frozen=True)
class ConversationRules:
    tracking_prefix: str
    policy: Policy
    staff: StaffConfig
    mailer: Mailer


# --- facts for routing -----------------------------------------------------------------


def arrival_of(session: Session, rules: ConversationRules, parsed: ParsedMessage, envelope_to: Sequence[str], staff_member: bool, staff_authenticated: bool) -> Arrival:
    tokens = reply_tokens(rules.mailer, envelope_to)
    most_recent_first = ((parsed.in_reply_to,) if parsed.in_reply_to else ()) + tuple(reversed(parsed.references))
    referenced = referenced_reports(session, most_recent_first)
    tagged = tagged_reports(session, rules.tracking_prefix, parsed.subject)
    ids = {token.report_id for token in tokens} | set(referenced) | set(tagged)
    return Arrival(
        from_address=parsed.from_address,
        staff_member=staff_member,
        staff_authenticated=staff_authenticated,
        tokens=tokens,
        referenced=referenced,
        tagged=tagged,
        parties=report_parties(session, ids),
    )


def reply_tokens(mailer: Mailer, envelope_to: Sequence[str]) -> tuple[ReplyToken, ...]:
    parsed = (parse_reply_address(address, mailer.sender, mailer.reply_key) for address in envelope_to)
    return tuple(dict.fromkeys(token for token in parsed if token is not None))


def referenced_reports(session: Session, message_ids: Sequence[str]) -> tuple[int, ...]:
    """Reports whose thread holds one of these Message-IDs (a stored message, or one of our
    outbound mails), in the order the Message-IDs are given."""
    wanted = [message_id for message_id in dict.fromkeys(message_ids) if message_id][:MAX_REFERENCED]
    if not wanted:
        return ()
    found: dict[str, int] = {}
    for message_id, report_id in session.execute(select(Message.message_id, Message.report_id).where(Message.message_id.in_(wanted))):
        found.setdefault(message_id, report_id)
    for message_id, report_id in session.execute(select(OutboxMessage.message_id, OutboxMessage.report_id).where(OutboxMessage.message_id.in_(wanted), OutboxMessage.report_id.is_not(None))):
        found.setdefault(message_id, report_id)
    return tuple(dict.fromkeys(found[message_id] for message_id in wanted if message_id in found))


def tagged_reports(session: Session, prefix: str, subject: str) -> tuple[int, ...]:
    tags = re.findall(tracking_tag_pattern(prefix), subject, re.IGNORECASE)[:MAX_REFERENCED]
    if not tags:
        return ()
    rows = {tracking_id: report_id for tracking_id, report_id in session.execute(select(Report.tracking_id, Report.id).where(Report.tracking_id.in_([tag.upper() for tag in tags])))}
    return tuple(dict.fromkeys(rows[tag.upper()] for tag in tags if tag.upper() in rows))


def report_parties(session: Session, report_ids: set[int]) -> dict[int, ReportParty]:
    if not report_ids:
        return {}
    reports = session.scalars(select(Report).where(Report.id.in_(report_ids)))
    return {report.id: ReportParty(report.id, report.reporter.address if report.reporter else report.envelope_sender) for report in reports}


def dedup_key_of(route: Route, parsed: ParsedMessage) -> str:
    """One staff reply acts once per report whatever way it arrives (its Message-ID); a
    reporter reply is stored once (its content identity)."""
    if route.kind == "staff_reply" and parsed.message_id:
        return f"staff:{route.report_id}:{parsed.message_id}"
    return f"{route.kind}:{route.report_id}:{parsed.origin_key}"


def reply_already_recorded(session: Session, route: Route, parsed: ParsedMessage) -> bool:
    return session.scalars(select(Message.id).where(Message.dedup_key == dedup_key_of(route, parsed))).first() is not None


# --- the reporter's replies ------------------------------------------------------------


def record_reporter_reply(session: Session, rules: ConversationRules, report: Report, route: Route, parsed: ParsedMessage, inbound: InboundMessage, calendar: BusinessCalendar, now: datetime) -> Message:
    message = thread_message(report, route, parsed, inbound, "reporter_reply", author=parsed.from_address)
    if rules.mailer.loop_signal(parsed, inbound.envelope_from) is not None:
        message.kind = "automatic"
        log.info("report %s: machine mail from the reporter stored, not forwarded", report.tracking_id)
        return message
    # Only a reply through the signed address or a thread reference ends a wait: a subject
    # tag and a From line are no proof the reporter wrote it.
    resumed = route.verified and end_pause(report, now, "reporter reply")
    if resumed:
        refresh_milestones(session, report, rules.policy, calendar, now)
    rules.mailer.reporter_reply_forwarded(session, report, message, resumed, route.verified, calendar, now)
    log.info("report %s: reporter reply stored and forwarded to staff", report.tracking_id)
    return message


# --- staff replies ---------------------------------------------------------------------


def record_staff_reply(session: Session, rules: ConversationRules, report: Report, route: Route, parsed: ParsedMessage, inbound: InboundMessage, calendar: BusinessCalendar, now: datetime, replayable: bool = False) -> Message:
    """`replayable`: its authentication does not cover Message-ID, so anyone holding a copy
    could send it again under a new one and it would act, or be relayed, again: refused."""
    author = parsed.from_address
    message = thread_message(report, route, parsed, inbound, "staff_reply", author=author)
    if rules.mailer.loop_signal(parsed, inbound.envelope_from) is not None:
        message.kind = "automatic"
        log.info("report %s: machine mail on the staff side stored, not relayed", report.tracking_id)
        return message
    # Only the staff member's own first text part: a forwarded mail, further text parts and
    # attachments are neither relayed nor read for commands.
    reply = parse_staff_reply(parsed.own_text)
    text = relayable_text(rules, reply, author, parsed.from_name)
    files = own_files(message, parsed) if reply.has("attach") else []
    errors = list(reply.errors) or reply_problems(session, rules, report, reply, text, calendar, now) + attach_problems(rules, reply, files, text)
    if replayable:
        errors.append(REPLAYABLE_REPLY)
    if errors:
        message.kind = "refused_reply"
        rules.mailer.command_error(session, report, author, message, errors, calendar, now)
        log.info("report %s: staff reply refused (%d problem(s)); nothing sent to the reporter", report.tracking_id, len(errors))
        return message
    carry_out(session, rules, report, reply, author, now)
    if reply.has("internal"):
        message.kind = "internal_note"
        events = events_of(reply, report, mailed=False)
    else:
        try:
            mailed = answer_reporter(session, rules, report, message, reply, text, calendar, now, files)
        except UnmailableReporter:
            mailed = None
            rules.mailer.command_error(session, report, author, message, [UNMAILABLE_REPORTER], calendar, now, carried_out=True)
        except ReporterMailNotBuilt:
            mailed = None
            rules.mailer.command_error(session, report, author, message, [REPORTER_MAIL_NOT_BUILT], calendar, now, carried_out=True)
        events = events_of(reply, report, mailed=mailed is not None)
    refresh_milestones(session, report, rules.policy, calendar, now)
    for event in events:
        for name in rules.policy.milestones_met_by(event):
            meet_milestone(session, report, name, now, author, rules.policy, calendar)
    log.info("report %s: staff reply carried out (%d command(s))", report.tracking_id, len(reply.commands))
    return message


def relayable_text(rules: ConversationRules, reply: StaffReply, author: str, author_name: str) -> str:
    personal = (author,) + tuple(member for member in rules.staff.members if "@" in member) + rules.staff.notify + rules.staff.alerts
    cleaned = clean_staff_reply(reply.text, personal_addresses=personal, public_address=rules.mailer.sender, signature_markers=rules.staff.signature_markers)
    return without_name(cleaned.text, author_name, rules.mailer.sender_name).strip()


def without_name(text: str, name: str, replacement: str) -> str:
    """The author's full name becomes the team's name, and a closing line that is only
    part of it ("Bob") goes: researchers deal with the security team, not a person."""
    name = " ".join(name.split())
    if len(name) < 3:
        return text
    text = re.sub(r"\s+".join(map(re.escape, name.split())), lambda _: replacement, text, flags=re.IGNORECASE)
    parts = {part.lower().strip(",.") for part in name.split() if len(part.strip(",.")) >= 2}
    lines = text.rstrip().splitlines()
    while lines and lines[-1].strip().strip(",.").lower() in parts:
        lines.pop()
    return "\n".join(lines)


def reply_problems(session: Session, rules: ConversationRules, report: Report, reply: StaffReply, text: str, calendar: BusinessCalendar, now: datetime) -> list[str]:
    """What the command parser cannot know: the report, the policy, the date, the staff list."""
    problems: list[str] = []
    status = reply.command("status")
    if status is not None and status.duplicate_of is not None:
        if status.duplicate_of == report.tracking_id:
            problems.append(f"line {status.line}: a report cannot be a duplicate of itself")
        elif report_by_tracking_id(session, status.duplicate_of) is None:
            problems.append(f"line {status.line}: there is no report {status.duplicate_of}")
    eta = reply.command("eta")
    if eta is not None and eta.eta is not None and eta.eta < now.astimezone(calendar.zone).date():
        problems.append(f"line {eta.line}: #eta {eta.value} is in the past")
    assign = reply.command("assign")
    if assign is not None and assign.value is not None and assignee_address(rules.staff, assign.value) is None:
        problems.append(f"line {assign.line}: {assign.value!r} is not on the staff list ([staff] members)")
    problems += pause_problems(rules.policy, report, reply)
    if reply.has("assessment") and not text:
        problems.append("#assessment: write the assessment itself below the commands")
    if not reply.commands and not text:
        problems.append("the reply is empty once the quoted text and signature are removed; write your answer above the quote")
    if text and not reply.has("internal") and carries_staff_only_text(rules.mailer, text):
        problems.append("your text still contains quoted staff mail (a notification, alert or the staff-side reply address); write your answer above the quote and send it again")
    late = LATE_COMMAND.search(text)
    if late is not None:
        problems.append(f"#{late.group(1).lower()} is below the start of your text: commands count only on the first lines of the reply, so nothing was sent; move it to the top")
    return problems


def own_files(message: Message, parsed: ParsedMessage) -> list[Attachment]:
    """The files the staff member attached themselves: never a forwarded mail, nor a file
    that came inside one."""
    return [
        item for item in message.attachments
        if item.sha256 in parsed.own_attachments and not item.content_type.startswith(("message/", "multipart/")) and not item.filename.lower().endswith(".eml")
    ]


def attach_problems(rules: ConversationRules, reply: StaffReply, files: Sequence[Attachment], text: str) -> list[str]:
    if not reply.has("attach"):
        return []
    if reply.has("internal"):
        return ["#attach: an #internal note sends nothing to the reporter"]
    if not text and reply.command("status") is None:
        return ["#attach: write a few lines to go with the files; a reply of commands only sends the reporter nothing"]
    if not files:
        return ["#attach: this reply has no file of your own attached (forwarded mails and what they carry are never passed on)"]
    plan = attachment_plan(files, rules.staff.max_attachment_bytes)
    left_out = [item["filename"] for item in plan.listed if not item["attached"]]
    if left_out or plan.more:
        return [f"#attach: {', '.join(left_out[:5]) or f'{plan.more} files'} would not fit in one mail ([staff] max_attachment_bytes, at most {len(plan.listed)} files): send fewer or smaller files, or share them another way"]
    return []


def pause_problems(policy: Policy, report: Report, reply: StaffReply) -> list[str]:
    waiting = open_pause(report) is not None
    if reply.has("wait") and not any(milestone.pausable for milestone in policy.milestones):
        return ["#wait: the SLA policy lets no deadline pause (set pausable = true on a [sla.NAME] table)"]
    if reply.has("wait") and waiting:
        return ["#wait: the report is already waiting on the reporter"]
    if reply.has("resume") and not waiting:
        return ["#resume: the report is not waiting on the reporter"]
    return []


def carries_staff_only_text(mailer: Mailer, text: str) -> bool:
    local, _, domain = mailer.sender.partition("@")
    staff_side = re.compile(rf"{re.escape(local)}\+s[0-9a-z]+-[a-z2-7]{{16}}@{re.escape(domain)}", re.IGNORECASE)
    return staff_side.search(text) is not None or any(marker in text for marker in STAFF_ONLY_TEXT)


def carry_out(session: Session, rules: ConversationRules, report: Report, reply: StaffReply, author: str, now: datetime) -> None:
    for command in reply.commands:
        if command.name == "status" and command.value is not None:
            report.status = command.value
            if command.duplicate_of is not None:
                original = report_by_tracking_id(session, command.duplicate_of)
                report.duplicate_of_id = original.id if original else None
        elif command.name == "severity":
            report.severity = command.value
        elif command.name == "assign" and command.value is not None:
            report.assignee = assignee_address(rules.staff, command.value)
        elif command.name == "eta":
            report.eta = command.eta
        elif command.name == "credit":
            report.credit_as = command.value
        elif command.name == "bounty":
            report.bounty = command.value
        elif command.name == "wait":
            report.pauses.append(Pause(started_at=now, started_by=author))
        elif command.name == "resume":
            end_pause(report, now, author)
    session.flush()


def answer_reporter(
    session: Session, rules: ConversationRules, report: Report, message: Message, reply: StaffReply, text: str, calendar: BusinessCalendar, now: datetime,
    files: Sequence[Attachment] = (),
) -> Outgoing | None:
    """The one mail this reply sends the reporter: a status notice carrying the staff text,
    or the staff text itself, or nothing (a reply of commands only)."""
    status = reply.command("status")
    template = STATUS_TEMPLATES.get(status.value or "") if status is not None else None
    if template is None and not text:
        return None
    context = {"text": text, "assessment": reply.has("assessment"), "eta": report.eta.isoformat() if reply.has("assessment") and report.eta else None}
    try:
        with session.begin_nested():
            attached = attachment_plan(files, rules.staff.max_attachment_bytes).attached
            sent = rules.mailer.to_reporter(session, f"relay:{message.id}", template or "staff_reply", report, context, calendar, now, attached)
    except ValueError:
        raise UnmailableReporter from None
    if sent is None and (report.reporter is not None or report.envelope_sender):
        # The template failed to render: [staff] alerts were told, the author must be too.
        raise ReporterMailNotBuilt
    if sent is not None:
        report.messages.append(outbound_message(report, sent, message, text, "notice" if template else "relayed", now))
    return sent


def events_of(reply: StaffReply, report: Report, mailed: bool) -> list[str]:
    """What this reply did, as the events milestones are met by. Any mail to the reporter of
    a resolved report tells them it is resolved (e.g. after an #internal #status resolved)."""
    status = reply.command("status")
    events = ["reply"] if mailed else []
    if reply.has("assessment") and mailed:
        events.append("assessment")
    if status is not None and status.value == "resolved":
        events.append("resolved")
    if mailed and report.status == "resolved":
        events.append("resolution_notice")
    return events


def outbound_message(report: Report, sent: Outgoing, reply: Message, text: str, kind: str, now: datetime) -> Message:
    return Message(
        direction="out", kind=kind, author=reply.author, from_address=sent.envelope_from, to_addresses=list(sent.recipients),
        subject=report.subject, message_id=sent.message_id, in_reply_to=reply.message_id, received_at=now, body_text=text,
        raw_sha256=hashlib.sha256(sent.content).hexdigest(), parse_defects=[],
    )


# --- shared ----------------------------------------------------------------------------


def thread_message(report: Report, route: Route, parsed: ParsedMessage, inbound: InboundMessage, kind: str, author: str) -> Message:
    message = inbound_message_row(parsed, inbound)
    message.kind = kind
    message.author = author
    message.dedup_key = dedup_key_of(route, parsed)
    report.messages.append(message)
    return message


def open_pause(report: Report) -> Pause | None:
    return next((pause for pause in report.pauses if pause.ended_at is None), None)


def end_pause(report: Report, now: datetime, by: str) -> bool:
    pause = open_pause(report)
    if pause is None:
        return False
    pause.ended_at = max(now, pause.started_at)
    pause.ended_by = by[:255]
    return True


def report_by_tracking_id(session: Session, tracking_id: str) -> Report | None:
    return session.scalars(select(Report).where(Report.tracking_id == tracking_id.upper())).one_or_none()


def assignee_address(staff: StaffConfig, name: str) -> str | None:
    """`#assign alice` → the staff address it names: a full member address, the local part
    of a listed staff address, or name@domain for a member domain."""
    lowered = name.lower()
    if len(lowered) > MAX_ASSIGNEE:
        return None
    if "@" in lowered:
        return lowered if is_member(lowered, staff.members) else None
    listed = [address for address in staff.members + staff.notify + staff.alerts if "@" in address]
    match = next((address for address in listed if address.partition("@")[0] == lowered), None)
    if match is not None:
        return match
    domain = next((member for member in staff.members if "@" not in member), None)
    return f"{lowered}@{domain}" if domain and len(lowered) + len(domain) < MAX_ASSIGNEE else None

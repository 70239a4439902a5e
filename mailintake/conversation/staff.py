"""Staff replies: checked, their commands carried out, and their text relayed to the
reporter from the security address. A reply with any problem is refused as a whole:
nothing is changed and nothing is sent, and its author is told why.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.orm import Session

from mailintake.config.schema import StaffConfig
from mailintake.conversation.commands.base import FilePlan, StaffReply
from mailintake.conversation.commands.parser import parse_staff_reply
from mailintake.conversation.commands.registry import COMMAND_NAMES, carry_out, command_events, command_problems
from mailintake.conversation.reply_text import clean_staff_reply
from mailintake.conversation.thread import ConversationServices, SentMail, ThreadMail, end_pause, open_pause, report_by_tracking_id, thread_message
from mailintake.core.tokens import reply_address_pattern
from mailintake.deadlines.milestones import meet_milestone, refresh_milestones
from mailintake.parse.message import ParsedMessage
from mailintake.reports.attachments import attachment_plan
from mailintake.route.authentication import is_member
from mailintake.sla.policy import MET_BY_EVENTS, Policy
from mailintake.storage.models import Attachment, Message, Pause, Report

log = logging.getLogger(__name__)

STATUS_TEMPLATES = {"resolved": "resolution", "rejected": "rejected", "duplicate": "duplicate", "out-of-scope": "out_of_scope"}
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
class StaffContext:
    """One staff reply being carried out: what its commands see (commands/base.py
    CommandContext) and what answering it needs. `text` is what would be relayed, `files`
    the files the staff member attached themselves (only read with #attach)."""

    session: Session
    services: ConversationServices
    mail: ThreadMail
    message: Message
    reply: StaffReply
    text: str
    files: Sequence[Attachment]

    @property
    def report(self) -> Report:
        return self.mail.report

    @property
    def policy(self) -> Policy:
        return self.services.policy

    @property
    def author(self) -> str:
        return self.mail.parsed.from_address

    @property
    def today(self) -> date:
        return self.mail.now.astimezone(self.mail.calendar.zone).date()

    def report_id_of(self, tracking_id: str) -> int | None:
        original = report_by_tracking_id(self.session, tracking_id)
        return original.id if original else None

    def assignee_of(self, name: str) -> str | None:
        return assignee_address(self.services.staff, name)

    def waiting(self) -> bool:
        return open_pause(self.report) is not None

    def start_pause(self) -> None:
        self.report.pauses.append(Pause(started_at=self.mail.now, started_by=self.author))

    def end_pause(self) -> None:
        end_pause(self.report, self.mail.now, self.author)

    def file_plan(self) -> FilePlan:
        plan = attachment_plan(self.files, self.services.staff.max_attachment_bytes)
        left_out = tuple(item["filename"] for item in plan.listed if not item["attached"])
        return FilePlan(files=len(self.files), left_out=left_out, more=plan.more, listed=len(plan.listed))


def record_staff_reply(session: Session, services: ConversationServices, mail: ThreadMail) -> Message:
    """A reply that is `mail.replayable` is refused: its authentication does not cover
    Message-ID, so anyone holding a copy could send it again under a new one and it would
    act, or be relayed, again."""
    report, author = mail.report, mail.parsed.from_address
    message = thread_message(mail, "staff_reply")
    if mail.machine_mail is not None:
        message.kind = "automatic"
        log.info("report %s: machine mail on the staff side stored, not relayed", report.tracking_id)
        return message
    # Only the staff member's own first text part: a forwarded mail, further text parts and
    # attachments are neither relayed nor read for commands.
    reply = parse_staff_reply(mail.parsed.own_text)
    text = relayable_text(services, reply, author, mail.parsed.from_name)
    files = own_files(message, mail.parsed) if reply.has("attach") else []
    context = StaffContext(session, services, mail, message, reply, text, files)
    errors = list(reply.errors) or command_problems(context) + text_problems(services, reply, text)
    if mail.replayable:
        errors.append(REPLAYABLE_REPLY)
    if errors:
        message.kind = "refused_reply"
        services.notices.command_error(session, report, author, message, errors, mail.calendar, mail.now)
        log.info("report %s: staff reply refused (%d problem(s)); nothing sent to the reporter", report.tracking_id, len(errors))
        return message
    carry_out(context)
    session.flush()
    if reply.has("internal"):
        message.kind = "internal_note"
        events = events_of(reply, report, mailed=False)
    else:
        events = events_of(reply, report, mailed=answered(context) is not None)
    refresh_milestones(session, report, services.policy, mail.calendar, mail.now)
    for event in events:
        for name in services.policy.milestones_met_by(event):
            meet_milestone(session, report, name, mail.now, author, services.policy, mail.calendar)
    log.info("report %s: staff reply carried out (%d command(s))", report.tracking_id, len(reply.commands))
    return message


def answered(context: StaffContext) -> SentMail | None:
    """The mail the reply sent the reporter, if any; when it cannot be sent, its author is
    told (its commands were carried out all the same)."""
    try:
        return answer_reporter(context)
    except UnmailableReporter:
        problem = UNMAILABLE_REPORTER
    except ReporterMailNotBuilt:
        problem = REPORTER_MAIL_NOT_BUILT
    mail = context.mail
    context.services.notices.command_error(context.session, mail.report, context.author, context.message, [problem], mail.calendar, mail.now, carried_out=True)
    return None


def relayable_text(services: ConversationServices, reply: StaffReply, author: str, author_name: str) -> str:
    staff = services.staff
    personal = (author,) + tuple(member for member in staff.members if "@" in member) + staff.notify + staff.alerts
    cleaned = clean_staff_reply(reply.text, personal_addresses=personal, public_address=services.public_address, signature_markers=staff.signature_markers)
    return without_name(cleaned.text, author_name, services.team_name).strip()


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


def text_problems(services: ConversationServices, reply: StaffReply, text: str) -> list[str]:
    """What is wrong with the reply's text, whatever its commands."""
    problems: list[str] = []
    if not reply.commands and not text:
        problems.append("the reply is empty once the quoted text and signature are removed; write your answer above the quote")
    if text and not reply.has("internal") and carries_staff_only_text(services.public_address, text):
        problems.append("your text still contains quoted staff mail (a notification, alert or the staff-side reply address); write your answer above the quote and send it again")
    late = LATE_COMMAND.search(text)
    if late is not None:
        problems.append(f"#{late.group(1).lower()} is below the start of your text: commands count only on the first lines of the reply, so nothing was sent; move it to the top")
    return problems


def carries_staff_only_text(public_address: str, text: str) -> bool:
    return reply_address_pattern(public_address, "staff").search(text) is not None or any(marker in text for marker in STAFF_ONLY_TEXT)


def own_files(message: Message, parsed: ParsedMessage) -> list[Attachment]:
    """The files the staff member attached themselves: never a forwarded mail, nor a file
    that came inside one."""
    return [item for item in message.attachments if item.sha256 in parsed.own_attachments and not item.content_type.startswith(("message/", "multipart/")) and not item.filename.lower().endswith(".eml")]


def answer_reporter(context: StaffContext) -> SentMail | None:
    """The one mail this reply sends the reporter: a status notice carrying the staff text,
    or the staff text itself, or nothing (a reply of commands only)."""
    session, mail, report, reply, text = context.session, context.mail, context.report, context.reply, context.text
    status = reply.command("status")
    template = STATUS_TEMPLATES.get(status.value or "") if status is not None else None
    if template is None and not text:
        return None
    values = {"text": text, "assessment": reply.has("assessment"), "eta": report.eta.isoformat() if reply.has("assessment") and report.eta else None}
    try:
        with session.begin_nested():
            attached = attachment_plan(context.files, context.services.staff.max_attachment_bytes).attached
            sent = context.services.notices.to_reporter(session, f"relay:{context.message.id}", template or "staff_reply", report, values, mail.calendar, mail.now, attached)
    except ValueError:
        raise UnmailableReporter from None
    if sent is None and (report.reporter is not None or report.envelope_sender):
        # The template failed to render: [staff] alerts were told, the author must be too.
        raise ReporterMailNotBuilt
    if sent is not None:
        report.messages.append(outbound_message(report, sent, context.message, text, "notice" if template else "relayed", mail.now))
    return sent


def events_of(reply: StaffReply, report: Report, mailed: bool) -> list[str]:
    """What this reply did, as the events milestones are met by, in the policy's order of
    events. Any mail to the reporter of a resolved report tells them it is resolved (e.g.
    after an #internal #status resolved)."""
    events = command_events(reply, mailed)
    if mailed:
        events.add("reply")
    if mailed and report.status == "resolved":
        events.add("resolution_notice")
    return sorted(events, key=MET_BY_EVENTS.index)


def outbound_message(report: Report, sent: SentMail, reply: Message, text: str, kind: str, now: datetime) -> Message:
    return Message(
        direction="out",
        kind=kind,
        author=reply.author,
        from_address=sent.envelope_from,
        to_addresses=list(sent.recipients),
        subject=report.subject,
        message_id=sent.message_id,
        in_reply_to=reply.message_id,
        received_at=now,
        body_text=text,
        raw_sha256=hashlib.sha256(sent.content).hexdigest(),
        parse_defects=[],
    )


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

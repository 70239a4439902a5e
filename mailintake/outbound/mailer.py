"""What mail each event causes: the template, its context, the headers, the outbox key.

Called inside the transaction of the event (a new report, an SLA pass, a delivery
failure), so the outbox row commits or rolls back with it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from mailintake.calendar.business import BusinessCalendar, format_skipped_days
from mailintake.outbound.compose import compose, message_bytes, shortened_line
from mailintake.config.schema import Config
from mailintake.calendar.durations import duration_text
from mailintake.route.machine_mail import LOOP_HEADER, no_auto_reply_reason, our_message_id
from mailintake.core.vocabulary import CLOSED_STATUSES, title_of
from mailintake.deadlines.milestones import record_promise
from mailintake.storage.models import InboundMessage, Message, MilestoneRecord, Report
from mailintake.outbound.outbox import Outgoing, auto_replies_since, enqueue, key_exists
from mailintake.conversation.reply_text import base_subject
from mailintake.parse.message import ParsedMessage, left_out_by_limits
from mailintake.outbound.templates import RenderedMail, TemplateError, Templates, Variant
from mailintake.core.tokens import Side, reply_address
from mailintake.reports.attachments import attachment_plan

log = logging.getLogger(__name__)

STAFF_COMMANDS = (
    ("#status triaged|accepted|fixing|resolved|rejected|duplicate SEC-…|out-of-scope", "set the report's status"),
    ("#severity low|medium|high|critical", "set the severity (per-severity deadlines follow it)"),
    ("#assign NAME", "assign the report"),
    ("#assessment", "this reply is the assessment; add #eta YYYY-MM-DD"),
    ("#internal", "keep this reply as an internal note; nothing goes to the reporter"),
    ("#credit \"Name\"", "how the reporter is credited"),
    ("#bounty 500 EUR", "record the bounty decision (not sent to the reporter)"),
    ("#wait / #resume", "pause or resume the SLA clocks while waiting on the reporter"),
    ("#attach", "send the files attached to this reply to the reporter (forwarded mails never are)"),
)


AUTO_REPLY_LIMIT = "automatic reply limit for this sender reached"
UNANSWERABLE_SENDER = "sender address cannot be answered automatically"
# Kinds of thread message a staff member wrote; everything else inbound may be the reporter's.
STAFF_AUTHORED = frozenset({"staff_reply", "internal_note", "refused_reply"})


class Mailer:
    def __init__(self, config: Config, templates: Templates, reply_key: bytes) -> None:
        self.config = config
        self.templates = templates
        self.reply_key = reply_key
        self.sender = config.intake.reply_address
        self.domain = self.sender.rpartition("@")[2]
        self.sender_name = f"{config.templates.organisation} Security"

    def loop_signal(self, parsed: ParsedMessage, envelope_from: str) -> str | None:
        """Why this message is machine mail we must not answer (bounce, auto-reply, list, our own)."""
        return no_auto_reply_reason(parsed, envelope_from, self.config.intake.addresses + (self.sender,))

    def report_received(self, session: Session, report: Report, inbound: InboundMessage, calendar: BusinessCalendar, now: datetime) -> None:
        """A new report from a person: staff are told, and the reporter is acknowledged unless
        the sender had too many automatic replies this hour. Neither can undo the report."""
        self.notify_staff(session, report, calendar, now)
        sender = inbound.envelope_from.lower()
        if auto_replies_since(session, sender, now - timedelta(hours=1)) >= self.config.outbox.auto_replies_per_hour:
            report.automated = AUTO_REPLY_LIMIT
            log.info("report %s: no acknowledgement (%s)", report.tracking_id, AUTO_REPLY_LIMIT)
            self.auto_reply_limit_reached(session, report, sender, calendar, now)
            return
        acknowledgement = self.reporter_context(report, calendar) | {"reply_address": self.reply_address(report, "reporter")}
        # The acknowledgement itself meets the `auto` milestones: it promises only the others.
        acknowledgement["deadlines"] = [item for item in acknowledgement["deadlines"] if not self.is_auto(item["name"])]
        key = f"ack:{report.id}"
        try:
            with session.begin_nested():
                self.enqueue_mail(
                    session, key, "acknowledgement", (sender,), acknowledgement, now,
                    report=report, in_reply_to=report.messages[0].message_id, auto_submitted="auto-replied", auto_reply_to=sender,
                    language=report.language, reply_side="reporter",
                )
        except ValueError:
            # An envelope sender we cannot address (non-ASCII local part, mangled bytes).
            report.automated = UNANSWERABLE_SENDER
            log.info("report %s: no acknowledgement (%s)", report.tracking_id, UNANSWERABLE_SENDER)
            return
        if key_exists(session, key):
            # Not when its template failed: staff were alerted, and nothing was promised.
            record_promise(report, tuple(item["name"] for item in acknowledgement["deadlines"]))

    def notify_staff(self, session: Session, report: Report, calendar: BusinessCalendar, now: datetime) -> None:
        """The full notification; if it cannot be built (an attachment compose refuses), one
        without attachments; staff are told either way."""
        message = report.messages[0]
        context = self.report_context(report, calendar) | {"body": message.body_text, "reply_address": self.reply_address(report, "staff"), "commands": [{"usage": usage, "help": text} for usage, text in STAFF_COMMANDS]}
        for limit in (self.config.staff.max_attachment_bytes, 0):
            plan = attachment_plan(message.attachments, limit)
            context["report"] = context["report"] | {"attachments": plan.listed, "more_attachments": plan.more}
            try:
                with session.begin_nested():
                    self.enqueue_mail(session, f"notify:{report.id}", "staff_notification", self.config.staff.notify, context, now, report=report, attachments=plan.attached)
                return
            except ValueError as error:
                log.error("report %s: staff notification could not be built (%s)%s", report.tracking_id, type(error).__name__, "; sending it without attachments" if plan.attached else "")

    def sla_alert(self, session: Session, kind: str, record: MilestoneRecord, calendar: BusinessCalendar, now: datetime) -> bool:
        """kind: sla_warning, sla_breach, sla_escalation or progress_reminder; once per deadline."""
        report = record.report
        assert record.due_at is not None
        key = f"{kind}:{record.id}:{record.due_at.isoformat()}"
        if key_exists(session, key):
            # Every pass sees every breached milestone again; build nothing for what was sent.
            return False
        recipients = self.config.staff.alerts if kind == "sla_escalation" else self.config.staff.notify
        context = self.report_context(report, calendar) | {"milestone": self.milestone_context(record, calendar, now)}
        return self.enqueue_mail(session, key, kind, recipients, context, now, report=report, in_reply_to=self.notification_id(report)) is not None

    def daily_digest(self, session: Session, day: date, calendar: BusinessCalendar, now: datetime) -> bool:
        key = f"digest:{day.isoformat()}"
        if key_exists(session, key):
            # Every pass after digest_time asks again; load nothing once today's is out.
            return False
        reports = list(session.scalars(select(Report).where(Report.status.not_in(CLOSED_STATUSES)).options(selectinload(Report.milestones)).order_by(Report.id)))
        awaiting = [(report, record) for report in reports for record in report.milestones if record.awaiting and record.due_at is not None]
        week_end = day + timedelta(days=7 - day.weekday())

        def item(report: Report, record: MilestoneRecord) -> dict[str, Any]:
            return {"tracking_id": report.tracking_id, "subject": report.subject, "milestone": title_of(record.name), "due": local_text(record.due_at, calendar)}

        local_due = [(report, record, record.due_at.astimezone(calendar.zone).date()) for report, record in awaiting]
        context = {
            "date": day.isoformat(),
            "open_reports": [self.report_summary(report, calendar) for report in reports],
            "overdue": [item(report, record) for report, record, _ in local_due if record.due_at < now],
            "due_today": [item(report, record) for report, record, due_day in local_due if due_day == day and record.due_at >= now],
            "due_this_week": [item(report, record) for report, record, due_day in local_due if day < due_day < week_end],
        }
        return self.enqueue_mail(session, key, "daily_digest", self.config.staff.notify, context, now) is not None

    def delivery_failure(self, session: Session, outbox_id: int, kind: str, recipients: Sequence[str], reply: str, attempts: int, report: Report | None, now: datetime) -> bool:
        recipients, reply = self.without_hidden_reporter(report, recipients, reply)
        failure = {"kind": kind.replace("_", " "), "recipients": recipients, "reply": reply, "attempts": attempts, "tracking_id": report.tracking_id if report else None}
        return self.enqueue_mail(session, f"delivery_failure:{outbox_id}", "delivery_failure", self.config.staff.alerts, {"failure": failure}, now, report=report) is not None

    def auto_reply_limit_reached(self, session: Session, report: Report, sender: str, calendar: BusinessCalendar, now: datetime) -> None:
        """Once a day per sender: a sender over the hourly limit is often another help desk
        answering our acknowledgements, a loop only people can end."""
        day = now.astimezone(calendar.zone).date().isoformat()
        key = f"auto_reply_limit:{hashlib.sha256(sender.encode('utf-8', 'surrogateescape')).hexdigest()[:32]}:{day}"
        context = self.report_context(report, calendar) | {"limit": self.config.outbox.auto_replies_per_hour}
        self.enqueue_mail(session, key, "auto_reply_limit", self.config.staff.alerts, context, now, report=report, in_reply_to=self.notification_id(report))

    def unprocessable_mail(self, session: Session, inbound_id: int, reason: str, now: datetime) -> bool:
        """Once per stored delivery that could not become a report at all."""
        context = {"inbound": {"id": inbound_id, "reason": reason}}
        return self.enqueue_mail(session, f"unprocessable:{inbound_id}", "unprocessable_mail", self.config.staff.alerts, context, now) is not None

    def to_reporter(
        self, session: Session, key: str, template: str, report: Report, context: dict[str, Any], calendar: BusinessCalendar, now: datetime,
        attachments: Sequence[tuple[str, str, bytes]] = (),
    ) -> Outgoing | None:
        """A human answer to the reporter (a relayed staff reply, a status notice): from the
        security address, threaded on what the reporter has seen, never on staff mail."""
        address = report.reporter.address if report.reporter else report.envelope_sender
        if not address:
            return None
        context = self.reporter_context(report, calendar) | {"reply_address": self.reply_address(report, "reporter"), "subject": shortened_line(base_subject(report.subject))} | context
        thread = self.reporter_thread(session, report)
        return self.enqueue_mail(
            session, key, template, (address,), context, now, report=report, in_reply_to=thread[-1] if thread else None,
            auto_submitted="no", language=report.language, reply_side="reporter", references=thread, attachments=attachments,
        )

    def reporter_reply_forwarded(self, session: Session, report: Report, message: Message, resumed: bool, verified: bool, calendar: BusinessCalendar, now: datetime) -> None:
        context = self.report_context(report, calendar) | {
            "subject": base_subject(message.subject), "body": message.body_text, "reply_address": self.reply_address(report, "staff"), "resumed": resumed, "verified": verified,
        }
        for limit in (self.config.staff.max_attachment_bytes, 0):
            plan = attachment_plan(message.attachments, limit)
            context |= {"attachments": plan.listed, "more_attachments": plan.more}
            try:
                with session.begin_nested():
                    self.enqueue_mail(
                        session, f"forward:{message.id}", "reporter_reply", self.config.staff.notify, context, now, report=report,
                        in_reply_to=self.notification_id(report), attachments=plan.attached, references=(self.notification_id(report),) + self.thread_of(report),
                    )
                return
            except ValueError as error:
                log.error("report %s: reporter reply could not be forwarded (%s)%s", report.tracking_id, type(error).__name__, "; sending it without attachments" if plan.attached else "")

    def command_error(self, session: Session, report: Report, author: str, message: Message, errors: Sequence[str], calendar: BusinessCalendar, now: datetime, carried_out: bool = False) -> None:
        context = self.report_context(report, calendar) | {"errors": list(errors), "carried_out": carried_out}
        self.enqueue_mail(session, f"command_error:{message.id}", "command_error", (author,), context, now, report=report, in_reply_to=message.message_id)

    def flagged_report(self, session: Session, report: Report, calendar: BusinessCalendar, now: datetime) -> None:
        related = report.related_report.tracking_id if report.related_report else None
        context = self.report_context(report, calendar) | {"flag": report.flag or "", "related": related}
        self.enqueue_mail(session, f"flag:{report.id}", "flagged_report", self.config.staff.alerts, context, now, report=report, in_reply_to=self.notification_id(report))

    def enqueue_mail(
        self, session: Session, key: str, template: str, recipients: Iterable[str], context: dict[str, Any], now: datetime, *,
        report: Report | None = None, in_reply_to: str | None = None, auto_submitted: str = "auto-generated",
        auto_reply_to: str | None = None, attachments: Sequence[tuple[str, str, bytes]] = (), language: str | None = None,
        reply_side: Side = "staff", references: Sequence[str] | None = None,
    ) -> Outgoing | None:
        """The mail as enqueued, or None if there was nobody to send it to, it already was,
        or its template failed (logged, and staff alerted once per template). Raises
        ValueError when compose refuses it (an address or attachment it cannot write)."""
        to = recipient_addresses(recipients)
        if not to:
            log.warning("no recipients configured for %s mail; nothing sent", template)
            return None
        if key_exists(session, key):
            # Already enqueued (an earlier pass, before a restart): don't render it again.
            return None
        rendered = self.rendered_or_alerted(session, template, self.common_context(now) | context, language, report, now)
        if rendered is None:
            return None
        return self.enqueue_rendered(
            session, key, template, to, rendered, now, report=report, in_reply_to=in_reply_to, auto_submitted=auto_submitted,
            auto_reply_to=auto_reply_to, attachments=attachments, reply_side=reply_side, references=references,
        )

    def enqueue_rendered(
        self, session: Session, key: str, kind: str, to: tuple[str, ...], rendered: RenderedMail, now: datetime, *,
        report: Report | None = None, in_reply_to: str | None = None, auto_submitted: str = "auto-generated",
        auto_reply_to: str | None = None, attachments: Sequence[tuple[str, str, bytes]] = (),
        reply_side: Side = "staff", references: Sequence[str] | None = None,
    ) -> Outgoing | None:
        message_id = self.message_id_for(key)
        message = compose(
            sender=self.sender, sender_name=self.sender_name, to=to, subject=rendered.subject, text=rendered.text, html=rendered.html,
            message_id=message_id, date=now, tracking_id=report.tracking_id if report else None, in_reply_to=in_reply_to,
            references=tuple(references) if references is not None else self.thread_of(report),
            reply_to=self.reply_address(report, reply_side) if report else self.sender,
            auto_submitted=auto_submitted, attachments=attachments,
            extra_headers={LOOP_HEADER: self.sender},
        )
        outgoing = Outgoing(key, kind, self.sender, to, message_id, message_bytes(message), report.id if report else None, auto_reply_to)
        return outgoing if enqueue(session, outgoing, now) else None

    def rendered_or_alerted(self, session: Session, template: str, context: dict[str, Any], language: str | None, report: Report | None, now: datetime) -> RenderedMail | None:
        """The rendered mail, or None when the template fails on this data: an error line
        (the file and line, no report content) and one alert per template variant, durable
        as an outbox key, so the next failure of the same file is only logged."""
        try:
            return self.templates.render(template, context, language)
        except TemplateError as error:
            about = f" for {report.tracking_id}" if report else ""
            log.error("%s mail%s not sent: %s", template, about, error)
            self.template_failure_alert(session, template, language, str(error), report, now)
            return None

    def template_failure_alert(self, session: Session, template: str, language: str | None, error: str, report: Report | None, now: datetime) -> None:
        variant = self.failing_variant(template, language)
        key = f"template_failure:{variant.relative}:{variant.fingerprint}"
        to = recipient_addresses(self.config.staff.alerts)
        if not to or key_exists(session, key):
            return
        self.enqueue_rendered(session, key, "template_failure", to, template_failure_mail(template, variant, error, report), now)

    def failing_variant(self, template: str, language: str | None) -> Variant:
        try:
            return self.templates.variant(template, language)
        except TemplateError:
            # The file itself is gone (removed while running): one alert for the name.
            return Variant(path=Path(f"{template}.txt.j2"), relative=f"{template}.txt.j2", fingerprint="missing")

    def reply_address(self, report: Report, side: Side) -> str:
        """The signed address replies about this report go to: reporters and staff each get
        their own, so a reply's side and report come from the address, never from content."""
        return reply_address(self.sender, report.id, side, self.reply_key)

    def is_auto(self, milestone: str) -> bool:
        return milestone in self.config.sla.names and self.config.sla.milestone(milestone).auto

    def message_id_for(self, key: str) -> str:
        # Keyed: a stranger who knows a report's id cannot compute the Message-IDs of its
        # mail and pose as its reporter by quoting them in References.
        return our_message_id(hmac.new(self.reply_key, key.encode(), hashlib.sha256).hexdigest()[:32], self.domain)

    def notification_id(self, report: Report) -> str:
        return self.message_id_for(f"notify:{report.id}")

    def thread_of(self, report: Report | None) -> tuple[str, ...]:
        """Staff-facing threading: every message of the report. An anonymous reporter's own
        Message-IDs name their mail host, so staff get a keyed stand-in at our domain for
        each: the same one in every mail, so staff clients still thread."""
        if report is None:
            return ()
        hidden = self.hides_reporter(report)
        return tuple(
            self.stand_in_message_id(message.message_id) if hidden and may_be_the_reporters(message) else message.message_id
            for message in report.messages
            if message.message_id
        )

    def stand_in_message_id(self, message_id: str) -> str:
        return self.message_id_for(f"stand-in:{message_id}")

    def hides_reporter(self, report: Report) -> bool:
        return report.anonymous and self.config.staff.anonymous_alias

    def without_hidden_reporter(self, report: Report | None, recipients: Sequence[str], reply: str) -> tuple[list[str], str]:
        """Recipients and relay reply of a failed mail as staff may see them: an anonymous
        reporter's address (the relay may quote it too) replaced by the report's alias."""
        if report is None or not self.hides_reporter(report):
            return list(recipients), reply
        alias = self.reporter_shown_to_staff(report)
        hidden = {address.lower() for address in (report.reporter.address if report.reporter else "", report.envelope_sender) if address}
        shown = [alias if address.lower() in hidden else address for address in recipients]
        for address in hidden:
            reply = re.sub(re.escape(address), alias, reply, flags=re.IGNORECASE)
        return list(dict.fromkeys(shown)), reply

    def reporter_thread(self, session: Session, report: Report) -> tuple[str, ...]:
        """Reporter-facing threading: only what the reporter sent or was sent, so no staff
        member's own Message-ID (it names their host) ever reaches the reporter."""
        ids = [message.message_id for message in report.messages[:1] if message.message_id]
        if key_exists(session, f"ack:{report.id}"):
            ids.append(self.message_id_for(f"ack:{report.id}"))
        ids += [message.message_id for message in report.messages[1:] if message.message_id and message.kind in REPORTER_VISIBLE]
        return tuple(ids)

    def common_context(self, now: datetime) -> dict[str, Any]:
        return {"organisation": self.config.templates.organisation, "policy_url": self.config.templates.policy_url, "now": now.isoformat(timespec="minutes")}

    def report_context(self, report: Report, calendar: BusinessCalendar) -> dict[str, Any]:
        return {"report": self.report_summary(report, calendar), "deadlines": deadlines_of(report, calendar)}

    def reporter_context(self, report: Report, calendar: BusinessCalendar) -> dict[str, Any]:
        """The report as mail to the reporter repeats it: its subject and file names
        shortened (an acknowledgement goes to any envelope sender; staff get them in full)."""
        context = self.report_context(report, calendar)
        summary = context["report"]
        summary["subject"] = shortened_line(summary["subject"])
        summary["attachments"] = [item | {"filename": shortened_line(item["filename"])} for item in summary["attachments"]]
        return context

    def reporter_shown_to_staff(self, report: Report) -> str:
        """An anonymous reporter's address is never shown to staff (when so configured): only
        a per-report alias."""
        if report.anonymous and self.config.staff.anonymous_alias:
            return f"anonymous-{report.tracking_id.lower()}"
        return report.reporter.address if report.reporter else report.envelope_sender

    def report_summary(self, report: Report, calendar: BusinessCalendar) -> dict[str, Any]:
        first = report.messages[0] if report.messages else None
        listed = attachment_plan(first.attachments if first else [], limit=0)
        upcoming = sorted((record for record in report.milestones if record.awaiting and record.due_at), key=lambda record: record.due_at)
        return {
            "tracking_id": report.tracking_id,
            "subject": report.subject,
            "received_at": local_text(report.received_at, calendar),
            "status": report.status,
            "severity": report.severity,
            "suggested_severity": report.suggested_severity,
            "reporter": self.reporter_shown_to_staff(report),
            "flag": report.flag,
            "related": report.related_report.tracking_id if report.related_report else None,
            "assignee": report.assignee,
            "credit_as": report.credit_as,
            "urls": list(report.urls),
            "attachments": listed.listed,
            "more_attachments": listed.more,
            "left_out": left_out_by_limits(first.parse_defects) if first else [],
            "next_deadline": {"title": title_of(upcoming[0].name), "due": local_text(upcoming[0].due_at, calendar)} if upcoming else None,
        }

    def milestone_context(self, record: MilestoneRecord, calendar: BusinessCalendar, now: datetime) -> dict[str, Any]:
        assert record.due_at is not None
        if now > record.due_at:
            left, state = f"overdue by {duration_text(now - record.due_at)}", "breached"
        else:
            left, state = f"{duration_text(calendar.business_time_between(now, record.due_at))} business time left", "warning"
        return {"name": record.name, "title": title_of(record.name), "due": local_text(record.due_at, calendar), "state": state, "left": left}


def deadlines_of(report: Report, calendar: BusinessCalendar) -> list[dict[str, Any]]:
    """The report's open deadlines as promised to the reporter, each explaining the days skipped."""
    deadlines = []
    for record in sorted((record for record in report.milestones if record.awaiting and record.due_at and record.started_at), key=lambda record: record.due_at):
        skipped = format_skipped_days(calendar.skipped_days(record.started_at, record.due_at))
        deadlines.append({"name": record.name, "title": title_of(record.name), "due": local_text(record.due_at, calendar), "explanation": skipped})
    return deadlines


REPORTER_VISIBLE = frozenset({"reporter_reply", "relayed", "notice"})


def local_text(moment: datetime, calendar: BusinessCalendar) -> str:
    return moment.astimezone(calendar.zone).strftime("%a %d %b %Y %H:%M %Z")



def may_be_the_reporters(message: Message) -> bool:
    """Inbound mail not written by staff: the report, the reporter's replies, machine mail."""
    return message.direction != "out" and message.kind not in STAFF_AUTHORED


def recipient_addresses(recipients: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(ascii_address(address) for address in recipients))


def template_failure_mail(template: str, variant: Variant, error: str, report: Report | None) -> RenderedMail:
    """Written here, not from a template: this alert must go out when templates fail."""
    about = f" for {report.tracking_id}" if report else ""
    text = (
        f"A mail template failed while mailintake rendered it, so this mail was not sent:\n\n"
        f"  Mail:      {template.replace('_', ' ')}{about}\n"
        f"  Template:  {variant.path}\n"
        f"  Error:     {error}\n\n"
        "Every later mail that needs this template fails the same way until it is fixed; each\n"
        "failure is logged at ERROR, and this alert is not repeated for this version of the file.\n"
        "Fix the template ([templates] dir), then restart `mailintake serve`: it renders every\n"
        "template with a sample report at start and refuses to run with a broken one.\n"
        "Reports are stored and their deadlines keep running; a reporter whose acknowledgement\n"
        "was not sent has not heard from us (`mailintake sla status` shows what is due).\n\n"
        "For staff only: mailintake never sends this text to the reporter.\n"
    )
    return RenderedMail(subject=f"Mail template failed: {variant.relative}", text=text, html=None)


def ascii_address(address: str) -> str:
    """The envelope form of an address: lower case, international domain in punycode."""
    local, _, domain = address.lower().rpartition("@")
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        return address.lower()

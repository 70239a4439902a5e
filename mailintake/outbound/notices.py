"""Which mail each event causes: the template, its context, the recipients and headers, and
the outbox key that makes it happen once.

Called inside the transaction of the event (a new report, an SLA pass, a delivery
failure), so the outbox row commits or rolls back with it. No query of its own but the
outbox's (outbound/outbox.py): callers pass in what a mail is about (its report, with what
the report's relationships load).
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from mailintake.calendar.business import BusinessCalendar
from mailintake.config.schema import Config
from mailintake.conversation.commands.registry import help_list
from mailintake.conversation.reply_text import base_subject
from mailintake.core.vocabulary import title_of
from mailintake.outbound.addressing import Addressing, recipient_addresses
from mailintake.outbound.compose import shortened_line
from mailintake.outbound.outbox import Outgoing, key_exists, over_auto_reply_limit
from mailintake.outbound.rendering import MailWriter
from mailintake.outbound.templates import Templates
from mailintake.reports.attachments import attachment_plan
from mailintake.reports.read_model import Digest, DigestDeadline, mail_digest_item, mail_milestone, mail_report_context, mail_summary
from mailintake.sla.policy import Policy
from mailintake.storage.models import InboundMessage, Message, MilestoneRecord, Report

log = logging.getLogger(__name__)


# A person's report the hourly limit held back: not machine mail; staff are notified and
# its deadlines run, and one combined acknowledgement follows (held_acknowledgement).
HELD_BY_LIMIT = "no acknowledgement: hourly limit for this sender"
UNANSWERABLE_SENDER = "sender address cannot be answered automatically"
# Reports one combined acknowledgement lists at most: more than a person sends in an hour,
# and a forged sender of a flood never gets a big mail (the rest wait for the next one).
HELD_PER_MAIL = 50


def digest_key(day: date) -> str:
    return f"digest:{day.isoformat()}"


def digest_line(item: dict[str, Any]) -> dict[str, Any]:
    return item | {"subject": shortened_line(item["subject"])}


def held_acknowledgement_key(reports: Iterable[Report]) -> str:
    """Once per set of reports: built again after a crash before its commit, the same row."""
    covered = ",".join(str(report_id) for report_id in sorted(report.id for report in reports))
    return f"held_ack:{hashlib.sha256(covered.encode()).hexdigest()[:32]}"


def sla_alert_key(kind: str, record: MilestoneRecord) -> str:
    """Once per kind and deadline: a deadline that moves may be alerted again."""
    assert record.due_at is not None
    return f"{kind}:{record.id}:{record.due_at.isoformat()}"


def sla_alert_burst_key(kind: str, records: Iterable[MilestoneRecord]) -> str:
    """Once per kind and set of deadlines, each named as its single alert's key names it:
    a batch built again after a crash before its commit is the same row."""
    covered = "\n".join(sorted(sla_alert_key(kind, record) for record in records))
    return f"sla_burst:{kind}:{hashlib.sha256(covered.encode()).hexdigest()[:32]}"


def most_urgent_first(record: MilestoneRecord) -> tuple[datetime, str]:
    assert record.due_at is not None
    return record.due_at, record.report.tracking_id


def burst_line(record: MilestoneRecord, calendar: BusinessCalendar, now: datetime, policy: Policy) -> dict[str, Any]:
    """One deadline of a burst, as the daily digest lists it (its report's tracking id and
    subject, never its reporter), with how it stands at `now`."""
    assert record.due_at is not None
    deadline = DigestDeadline(record.report.tracking_id, record.report.subject, record.name, record.due_at)
    return digest_line(mail_digest_item(deadline, calendar)) | {"left": mail_milestone(record, calendar, now, policy)["left"]}


class Notices:
    def __init__(self, config: Config, templates: Templates, reply_key: bytes) -> None:
        self.config = config
        self.reply_key = reply_key
        self.sender = config.intake.reply_address
        self.sender_name = f"{config.templates.organisation} Security"
        self.addressing = Addressing(self.sender, reply_key, config.staff.anonymous_alias)
        self.writer = MailWriter(templates, self.addressing, self.sender_name, config.templates.organisation, config.templates.policy_url, config.staff.alerts)

    # --- a new report -------------------------------------------------------------------

    def report_received(self, session: Session, report: Report, inbound: InboundMessage, calendar: BusinessCalendar, now: datetime) -> tuple[str, ...] | None:
        """A new report from a person: staff are told, and the reporter is acknowledged unless
        the sender had too many automatic replies this hour; then the report is held back
        for the combined acknowledgement (jobs/held_acknowledgements.py). Neither can undo
        the report. Returns the milestones whose deadlines the acknowledgement promised, or
        None when no acknowledgement was enqueued (nothing was promised)."""
        self.notify_staff(session, report, calendar, now)
        sender = inbound.envelope_from.lower()
        if over_auto_reply_limit(session, sender, self.config.outbox.auto_replies_per_hour, now):
            report.automated = HELD_BY_LIMIT
            log.info("report %s: %s", report.tracking_id, HELD_BY_LIMIT)
            self.auto_reply_limit_reached(session, report, sender, calendar, now)
            return None
        acknowledgement = self.reporter_context(report, calendar) | {"reply_address": self.addressing.reply_address(report, "reporter")}
        # The acknowledgement itself meets the `auto` milestones: it promises only the others.
        acknowledgement["deadlines"] = [item for item in acknowledgement["deadlines"] if not self.is_auto(item["name"])]
        key = f"ack:{report.id}"
        try:
            with session.begin_nested():
                self.writer.enqueue_mail(
                    session,
                    key,
                    "acknowledgement",
                    (sender,),
                    acknowledgement,
                    now,
                    report=report,
                    in_reply_to=report.messages[0].message_id,
                    auto_submitted="auto-replied",
                    auto_reply_to=sender,
                    language=report.language,
                    reply_side="reporter",
                )
        except ValueError:
            # An envelope sender we cannot address (non-ASCII local part, mangled bytes).
            report.automated = UNANSWERABLE_SENDER
            log.info("report %s: no acknowledgement (%s)", report.tracking_id, UNANSWERABLE_SENDER)
            return None
        if not key_exists(session, key):
            # Its template failed: staff were alerted, and nothing was promised.
            return None
        return tuple(item["name"] for item in acknowledgement["deadlines"])

    def notify_staff(self, session: Session, report: Report, calendar: BusinessCalendar, now: datetime) -> None:
        """The full notification; if it cannot be built (an attachment compose refuses), one
        without attachments; staff are told either way."""
        message = report.messages[0]
        context = self.report_context(report, calendar) | {
            "body": message.body_text,
            "reply_address": self.addressing.reply_address(report, "staff"),
            "commands": [{"usage": usage, "help": text} for usage, text in help_list()],
        }
        for limit in (self.config.staff.max_attachment_bytes, 0):
            plan = attachment_plan(message.attachments, limit)
            context["report"] = context["report"] | {"attachments": plan.listed, "more_attachments": plan.more}
            try:
                with session.begin_nested():
                    self.writer.enqueue_mail(session, f"notify:{report.id}", "staff_notification", self.config.staff.notify, context, now, report=report, attachments=plan.attached)
                return
            except ValueError as error:
                log.error("report %s: staff notification could not be built (%s)%s", report.tracking_id, type(error).__name__, "; sending it without attachments" if plan.attached else "")

    def flagged_report(self, session: Session, report: Report, calendar: BusinessCalendar, now: datetime) -> None:
        related = report.related_report.tracking_id if report.related_report else None
        context = self.report_context(report, calendar) | {"flag": report.flag or "", "related": related}
        self.writer.enqueue_mail(session, f"flag:{report.id}", "flagged_report", self.config.staff.alerts, context, now, report=report, in_reply_to=self.addressing.notification_id(report))

    def held_acknowledgement(self, session: Session, reports: Sequence[Report], sender: str, calendar: BusinessCalendar, now: datetime) -> dict[int, tuple[str, ...]] | None:
        """One acknowledgement for reports the hourly limit held back from `sender` (oldest
        first, at most HELD_PER_MAIL): each with its tracking id, subject, reply address and
        the deadlines its own acknowledgement would have listed. Filed like the first one's
        acknowledgement (its tag, its reply address, its thread), and counted in the limit.
        Returns, per report id, the milestones whose deadlines it promised; None when it is
        not in the outbox (its template failed: staff were alerted, the next pass tries
        again; or the sender cannot be addressed: the reports say so)."""
        items = [self.held_item(report, calendar) for report in reports]
        first = reports[0]
        key = held_acknowledgement_key(reports)
        context = {"reports": items, "limit": self.config.outbox.auto_replies_per_hour}
        try:
            with session.begin_nested():
                self.writer.enqueue_mail(
                    session,
                    key,
                    "held_acknowledgement",
                    (sender,),
                    context,
                    now,
                    report=first,
                    in_reply_to=first.messages[0].message_id,
                    auto_submitted="auto-replied",
                    auto_reply_to=sender,
                    language=first.language,
                    reply_side="reporter",
                )
        except ValueError:
            for report in reports:
                report.automated = UNANSWERABLE_SENDER
            log.info("reports %s: no acknowledgement (%s)", ", ".join(report.tracking_id for report in reports), UNANSWERABLE_SENDER)
            return None
        if not key_exists(session, key):
            return None
        return {report.id: tuple(item["name"] for item in listed["deadlines"]) for report, listed in zip(reports, items, strict=True)}

    def held_item(self, report: Report, calendar: BusinessCalendar) -> dict[str, Any]:
        """A report as the combined acknowledgement lists it: as its own acknowledgement
        would (subject shortened, the `auto` milestones left out: this mail meets them)."""
        context = self.reporter_context(report, calendar)
        summary = context["report"]
        return {
            "tracking_id": summary["tracking_id"],
            "subject": summary["subject"],
            "received_at": summary["received_at"],
            "reply_address": self.addressing.reply_address(report, "reporter"),
            "deadlines": [item for item in context["deadlines"] if not self.is_auto(item["name"])],
        }

    def auto_reply_limit_reached(self, session: Session, report: Report, sender: str, calendar: BusinessCalendar, now: datetime) -> None:
        """Once a day per sender: a sender over the hourly limit is often another help desk
        answering our acknowledgements, a loop only people can end."""
        day = now.astimezone(calendar.zone).date().isoformat()
        key = f"auto_reply_limit:{hashlib.sha256(sender.encode('utf-8', 'surrogateescape')).hexdigest()[:32]}:{day}"
        context = self.report_context(report, calendar) | {"limit": self.config.outbox.auto_replies_per_hour}
        self.writer.enqueue_mail(session, key, "auto_reply_limit", self.config.staff.alerts, context, now, report=report, in_reply_to=self.addressing.notification_id(report))

    def unprocessable_mail(self, session: Session, inbound_id: int, reason: str, now: datetime) -> bool:
        """Once per stored delivery that could not become a report at all."""
        context = {"inbound": {"id": inbound_id, "reason": reason}}
        return self.writer.enqueue_mail(session, f"unprocessable:{inbound_id}", "unprocessable_mail", self.config.staff.alerts, context, now) is not None

    # --- deadlines and the day ------------------------------------------------------------

    def sla_alert(self, session: Session, kind: str, record: MilestoneRecord, calendar: BusinessCalendar, now: datetime) -> bool:
        """kind: sla_warning, sla_breach, sla_escalation or progress_reminder; once per
        deadline (one already in the outbox is not rendered again). True if enqueued now."""
        report = record.report
        recipients = self.sla_alert_recipients(kind)
        context = self.report_context(report, calendar) | {"milestone": mail_milestone(record, calendar, now, self.config.sla)}
        return self.writer.enqueue_mail(session, sla_alert_key(kind, record), kind, recipients, context, now, report=report, in_reply_to=self.addressing.notification_id(report)) is not None

    def sla_alert_done(self, session: Session, kind: str, record: MilestoneRecord) -> bool:
        """In the outbox, or with nobody configured to receive it: either way, not to be tried again."""
        return not recipient_addresses(self.sla_alert_recipients(kind)) or key_exists(session, sla_alert_key(kind, record))

    def sla_alert_burst(self, session: Session, kind: str, records: Sequence[MilestoneRecord], listed: int, calendar: BusinessCalendar, now: datetime) -> bool:
        """One mail in place of the single `kind` alerts of `records`, to the same recipients:
        how many per milestone, and the first `listed`, most overdue (or soonest due) first.
        True if enqueued now."""
        ordered = sorted(records, key=most_urgent_first)
        context = {
            "kind": kind,
            "count": len(ordered),
            "by_milestone": [{"title": title_of(name), "count": count} for name, count in Counter(record.name for record in ordered).most_common()],
            "alerts": [burst_line(record, calendar, now, self.config.sla) for record in ordered[:listed]],
        }
        return self.writer.enqueue_mail(session, sla_alert_burst_key(kind, records), "sla_alert_burst", self.sla_alert_recipients(kind), context, now) is not None

    def sla_alert_burst_done(self, session: Session, kind: str, records: Sequence[MilestoneRecord]) -> bool:
        return not recipient_addresses(self.sla_alert_recipients(kind)) or key_exists(session, sla_alert_burst_key(kind, records))

    def sla_alert_recipients(self, kind: str) -> tuple[str, ...]:
        return self.config.staff.alerts if kind == "sla_escalation" else self.config.staff.notify

    def daily_digest(self, session: Session, day: date, digest: Digest, calendar: BusinessCalendar, now: datetime) -> bool:
        """The day's summary for staff: the counts over every open report, and the first
        few of each list (the template says how many more there are). Subjects are cut to
        one short line, so the mail stays small however long the queue."""
        counts = {"open_reports": sum(digest.open_by_status.values())} | digest.deadline_counts
        context = {
            "date": day.isoformat(),
            "counts": counts,
            "open_by_status": [{"status": status, "count": count} for status, count in digest.open_by_status.items()],
            "open_reports": [digest_line(mail_summary(report, calendar, self.config.staff.anonymous_alias)) for report in digest.open_reports],
            "overdue": [digest_line(mail_digest_item(item, calendar)) for item in digest.overdue],
            "due_today": [digest_line(mail_digest_item(item, calendar)) for item in digest.due_today],
            "due_this_week": [digest_line(mail_digest_item(item, calendar)) for item in digest.due_this_week],
        }
        return self.writer.enqueue_mail(session, digest_key(day), "daily_digest", self.config.staff.notify, context, now) is not None

    # --- delivery -------------------------------------------------------------------------

    def delivery_failure(self, session: Session, outbox_id: int, kind: str, recipients: Sequence[str], reply: str, attempts: int, report: Report | None, now: datetime) -> bool:
        recipients, reply = self.addressing.without_hidden_reporter(report, recipients, reply)
        failure = {"kind": kind.replace("_", " "), "recipients": recipients, "reply": reply, "attempts": attempts, "tracking_id": report.tracking_id if report else None}
        return self.writer.enqueue_mail(session, f"delivery_failure:{outbox_id}", "delivery_failure", self.config.staff.alerts, {"failure": failure}, now, report=report) is not None

    # --- the conversation in a report's thread ----------------------------------------------

    def to_reporter(
        self,
        session: Session,
        key: str,
        template: str,
        report: Report,
        context: dict[str, Any],
        calendar: BusinessCalendar,
        now: datetime,
        attachments: Sequence[tuple[str, str, bytes]] = (),
    ) -> Outgoing | None:
        """A human answer to the reporter (a relayed staff reply, a status notice): from the
        security address, threaded on what the reporter has seen, never on staff mail."""
        address = report.reporter.address if report.reporter else report.envelope_sender
        if not address:
            return None
        context = self.reporter_context(report, calendar) | {"reply_address": self.addressing.reply_address(report, "reporter"), "subject": shortened_line(base_subject(report.subject))} | context
        thread = self.addressing.reporter_thread(session, report)
        return self.writer.enqueue_mail(
            session,
            key,
            template,
            (address,),
            context,
            now,
            report=report,
            in_reply_to=thread[-1] if thread else None,
            auto_submitted="no",
            language=report.language,
            reply_side="reporter",
            references=thread,
            attachments=attachments,
        )

    def reporter_reply_forwarded(self, session: Session, report: Report, message: Message, resumed: bool, verified: bool, calendar: BusinessCalendar, now: datetime) -> None:
        notification_id = self.addressing.notification_id(report)
        context = self.report_context(report, calendar) | {
            "subject": base_subject(message.subject),
            "body": message.body_text,
            "reply_address": self.addressing.reply_address(report, "staff"),
            "resumed": resumed,
            "verified": verified,
        }
        for limit in (self.config.staff.max_attachment_bytes, 0):
            plan = attachment_plan(message.attachments, limit)
            context |= {"attachments": plan.listed, "more_attachments": plan.more}
            try:
                with session.begin_nested():
                    self.writer.enqueue_mail(
                        session,
                        f"forward:{message.id}",
                        "reporter_reply",
                        self.config.staff.notify,
                        context,
                        now,
                        report=report,
                        in_reply_to=notification_id,
                        attachments=plan.attached,
                        references=(notification_id,) + self.addressing.thread_of(report),
                    )
                return
            except ValueError as error:
                log.error("report %s: reporter reply could not be forwarded (%s)%s", report.tracking_id, type(error).__name__, "; sending it without attachments" if plan.attached else "")

    def command_error(self, session: Session, report: Report, author: str, message: Message, errors: Sequence[str], calendar: BusinessCalendar, now: datetime, carried_out: bool = False) -> None:
        context = self.report_context(report, calendar) | {"errors": list(errors), "carried_out": carried_out}
        self.writer.enqueue_mail(session, f"command_error:{message.id}", "command_error", (author,), context, now, report=report, in_reply_to=message.message_id)

    # --- what the templates read ----------------------------------------------------------

    def report_context(self, report: Report, calendar: BusinessCalendar) -> dict[str, Any]:
        return mail_report_context(report, calendar, self.config.staff.anonymous_alias)

    def reporter_context(self, report: Report, calendar: BusinessCalendar) -> dict[str, Any]:
        """The report as mail to the reporter repeats it: its subject and file names
        shortened (an acknowledgement goes to any envelope sender; staff get them in full)."""
        context = self.report_context(report, calendar)
        summary = context["report"]
        summary["subject"] = shortened_line(summary["subject"])
        summary["attachments"] = [item | {"filename": shortened_line(item["filename"])} for item in summary["attachments"]]
        return context

    def is_auto(self, milestone: str) -> bool:
        return milestone in self.config.sla.names and self.config.sla.milestone(milestone).auto

"""How a report reads: its facts gathered once, and the two presentations of them side by
side: the CLI's (moments in ISO UTC, the reporter as stored) and the mail templates' (moments
as calendar-local text, an anonymous reporter as an alias when so configured).

Both presentations pick from the same gathered fields, so a field they share is read one way.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.orm import Session, defer, selectinload

from mailintake.calendar.business import BusinessCalendar, format_skipped_days
from mailintake.calendar.durations import Duration
from mailintake.core.vocabulary import CLOSED_STATUSES, STATUSES, title_of
from mailintake.parse.headers import decoded_header, header_fields, normalized_line_endings
from mailintake.parse.limits import left_out_by_limits
from mailintake.reports.attachments import attachment_plan
from mailintake.sla.policy import Policy
from mailintake.sla.time_left import time_left_text
from mailintake.storage.models import Attachment, InboundMessage, Message, MilestoneRecord, OutboxMessage, Report

# How a presentation writes a moment.
Moment = Callable[[datetime], str]

CLI_SUMMARY_FIELDS = ("tracking_id", "status", "received_at", "reporter", "anonymous", "suggested_severity", "subject", "flag", "automated")
CLI_DETAIL_FIELDS = CLI_SUMMARY_FIELDS + (
    "reporter_name",
    "envelope_sender",
    "credit_as",
    "urls",
    "endpoints",
    "severity",
    "assignee",
    "eta",
    "bounty",
    "related",
    "duplicate_of",
    "duplicate_deliveries",
    "milestones",
    "pauses",
    "messages",
)
MAIL_SUMMARY_FIELDS = (
    "tracking_id",
    "subject",
    "received_at",
    "status",
    "severity",
    "suggested_severity",
    "reporter",
    "flag",
    "related",
    "assignee",
    "credit_as",
    "urls",
    "attachments",
    "more_attachments",
    "left_out",
    "next_deadline",
)


class ReportNotFound(LookupError):
    pass


# --- the facts, gathered once -----------------------------------------------------------


def report_fields(report: Report, moment: Moment) -> dict[str, Any]:
    """What every presentation may say about a report, each field read one way; they differ
    only in how a moment is written and in who the reporter is shown as."""
    return {
        "tracking_id": report.tracking_id,
        "subject": report.subject,
        "received_at": moment(report.received_at),
        "status": report.status,
        "severity": report.severity,
        "suggested_severity": report.suggested_severity,
        "anonymous": report.anonymous,
        "flag": report.flag,
        "automated": report.automated,
        "related": report.related_report.tracking_id if report.related_report else None,
        "assignee": report.assignee,
        "credit_as": report.credit_as,
        "urls": list(report.urls),
    }


def picked(fields: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    return {name: fields[name] for name in names}


def upcoming_deadlines(report: Report) -> list[MilestoneRecord]:
    """The report's deadlines still to meet, soonest first."""
    return sorted((record for record in report.milestones if record.awaiting and record.due_at), key=lambda record: record.due_at)


def hides_reporter(report: Report, anonymous_alias: bool) -> bool:
    return report.anonymous and anonymous_alias


def reporter_shown_to_staff(report: Report, anonymous_alias: bool) -> str:
    """An anonymous reporter's address is never shown to staff (when so configured): only
    a per-report alias."""
    if hides_reporter(report, anonymous_alias):
        return f"anonymous-{report.tracking_id.lower()}"
    return report.reporter.address if report.reporter else report.envelope_sender


# --- the CLI's presentation -----------------------------------------------------------


def report_summaries(session: Session, statuses: Collection[str] = (), after: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Reports oldest first, with these statuses (none given: all), after the report with
    tracking id `after` in that order, at most `limit`: SQL orders, filters and limits, and
    a page costs four statements whatever the number of reports."""
    query = select(Report).options(selectinload(Report.reporter), selectinload(Report.related_report)).order_by(Report.received_at, Report.id)
    if statuses:
        query = query.where(Report.status.in_(statuses))
    if after is not None:
        query = query.where(received_after(session, after))
    if limit is not None:
        query = query.limit(limit)
    return [report_summary(report) for report in session.scalars(query)]


def received_after(session: Session, tracking_id: str) -> ColumnElement[bool]:
    """Reports after this one in the listing's order (received, then id)."""
    position = session.execute(select(Report.received_at, Report.id).where(Report.tracking_id == tracking_id.upper())).one_or_none()
    if position is None:
        raise ReportNotFound(tracking_id)
    return or_(Report.received_at > position.received_at, and_(Report.received_at == position.received_at, Report.id > position.id))


def report_summary(report: Report) -> dict[str, Any]:
    return picked(report_fields(report, iso_utc) | {"reporter": stored_reporter(report)}, CLI_SUMMARY_FIELDS)


def report_detail(session: Session, tracking_id: str) -> dict[str, Any]:
    report = session.scalars(
        select(Report).where(Report.tracking_id == tracking_id.upper()).options(selectinload(Report.reporter), selectinload(Report.messages).selectinload(Message.attachments), selectinload(Report.milestones), selectinload(Report.pauses))
    ).one_or_none()
    if report is None:
        raise ReportNotFound(tracking_id)
    duplicates = session.scalars(select(InboundMessage.id).where(InboundMessage.report_id == report.id, InboundMessage.status == "duplicate").order_by(InboundMessage.id)).all()
    fields = report_fields(report, iso_utc) | {
        "reporter": stored_reporter(report),
        "reporter_name": report.reporter.display_name if report.reporter else "",
        "envelope_sender": report.envelope_sender,
        "endpoints": report.endpoints,
        "eta": report.eta.isoformat() if report.eta else None,
        "bounty": report.bounty,
        "duplicate_of": report.duplicate_of.tracking_id if report.duplicate_of else None,
        "duplicate_deliveries": list(duplicates),
        "milestones": [milestone_view(record) for record in report.milestones],
        "pauses": [{"started_at": iso_utc(pause.started_at), "started_by": pause.started_by, "ended_at": iso_utc(pause.ended_at) if pause.ended_at else None, "ended_by": pause.ended_by} for pause in report.pauses],
        "messages": [message_view(message) for message in thread_order(report.messages)],
    }
    return picked(fields, CLI_DETAIL_FIELDS)


def stored_reporter(report: Report) -> str:
    return report.reporter.address if report.reporter else ""


def thread_order(messages: list[Message]) -> list[Message]:
    return sorted(messages, key=lambda message: (message.received_at, message.id))


def milestone_view(record: MilestoneRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "due_at": iso_utc(record.due_at) if record.due_at else None,
        "promised_due_at": iso_utc(record.promised_due_at) if record.promised_due_at else None,
        "met_at": iso_utc(record.met_at) if record.met_at else None,
        "met_by": record.met_by,
        "awaiting": record.awaiting,
    }


def message_view(message: Message) -> dict[str, Any]:
    return {
        "direction": message.direction,
        "kind": message.kind,
        "author": message.author,
        "from": message.from_address,
        "from_name": message.from_name,
        "to": message.to_addresses,
        "subject": message.subject,
        "message_id": message.message_id,
        "in_reply_to": message.in_reply_to,
        "date": iso_utc(message.date_header) if message.date_header else None,
        "received_at": iso_utc(message.received_at),
        "sha256": message.raw_sha256,
        "body_from_html": message.body_from_html,
        "parse_defects": message.parse_defects,
        "body": message.body_text,
        "attachments": [{"filename": item.filename, "content_type": item.content_type, "size": item.size, "sha256": item.sha256} for item in message.attachments],
    }


def iso_utc(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# --- the mail templates' presentation ---------------------------------------------------


def mail_report_context(report: Report, calendar: BusinessCalendar, anonymous_alias: bool) -> dict[str, Any]:
    """The report as every template about it reads it: its summary and its open deadlines."""
    return {"report": mail_summary(report, calendar, anonymous_alias), "deadlines": mail_deadlines(report, calendar)}


def mail_summary(report: Report, calendar: BusinessCalendar, anonymous_alias: bool) -> dict[str, Any]:
    first = report.messages[0] if report.messages else None
    listed = attachment_plan(first.attachments if first else [], limit=0)
    upcoming = upcoming_deadlines(report)
    fields = report_fields(report, lambda moment: local_text(moment, calendar)) | {
        "reporter": reporter_shown_to_staff(report, anonymous_alias),
        "attachments": listed.listed,
        "more_attachments": listed.more,
        "left_out": left_out_by_limits(first.parse_defects) if first else [],
        "next_deadline": {"title": title_of(upcoming[0].name), "due": local_text(upcoming[0].due_at, calendar)} if upcoming else None,
    }
    return picked(fields, MAIL_SUMMARY_FIELDS)


def mail_deadlines(report: Report, calendar: BusinessCalendar) -> list[dict[str, Any]]:
    """The report's open deadlines as promised to the reporter, each explaining the days skipped."""
    deadlines = []
    for record in sorted((record for record in report.milestones if record.awaiting and record.due_at and record.started_at), key=lambda record: record.due_at):
        skipped = format_skipped_days(calendar.skipped_days(record.started_at, record.due_at))
        deadlines.append({"name": record.name, "title": title_of(record.name), "due": local_text(record.due_at, calendar), "explanation": skipped})
    return deadlines


def mail_milestone(record: MilestoneRecord, calendar: BusinessCalendar, now: datetime, policy: Policy | None) -> dict[str, Any]:
    """A deadline as an SLA alert states it: when it is due and how it stands at `now`, the
    time left in the deadline's unit as `sla status` writes it (sla/time_left.py)."""
    assert record.due_at is not None
    allowed = allowed_time_of(record, policy)
    left = time_left_text(calendar, now, record.due_at, allowed.unit if allowed else None)
    state = "breached" if now > record.due_at else "warning"
    return {"name": record.name, "title": title_of(record.name), "due": local_text(record.due_at, calendar), "state": state, "left": left}


def allowed_time_of(record: MilestoneRecord, policy: Policy | None) -> Duration | None:
    """The time the record's current deadline allows under `policy`; None without the policy or
    for a milestone it no longer has. A recurring duty met since its round began runs on `every`."""
    if policy is None or record.name not in policy.names:
        return None
    again = record.met_at is not None and record.started_at is not None and record.met_at >= record.started_at
    return policy.milestone(record.name).allowed_for(record.report.severity, again)


def mail_digest_item(deadline: DigestDeadline, calendar: BusinessCalendar) -> dict[str, Any]:
    """One deadline as the daily digest lists it."""
    return {"tracking_id": deadline.tracking_id, "subject": deadline.subject, "milestone": title_of(deadline.name), "due": local_text(deadline.due_at, calendar)}


def local_text(moment: datetime, calendar: BusinessCalendar) -> str:
    return moment.astimezone(calendar.zone).strftime("%a %d %b %Y %H:%M %Z")


# --- the daily digest: counted in SQL, the first few of each list loaded ----------------

# What mail_summary and mail_report_context read of a report, loaded for many reports in a
# few statements; message bodies and attachment contents stay in the database.
MAIL_SUMMARY_LOADS = (
    selectinload(Report.reporter),
    selectinload(Report.related_report),
    selectinload(Report.milestones),
    selectinload(Report.messages).options(defer(Message.body_text), selectinload(Message.attachments).options(defer(Attachment.content))),
)
# Of a subject, what a digest line can show (the rest is not read).
DIGEST_SUBJECT_CHARACTERS = 200


@dataclass(frozen=True)
class DigestDeadline:
    tracking_id: str
    subject: str
    name: str
    due_at: datetime


@dataclass(frozen=True)
class Digest:
    """What the daily digest says: counts over every open report, aggregated in SQL, and
    the first `limit` of each list; a fixed number of statements however long the queue."""

    open_by_status: dict[str, int]
    deadline_counts: dict[str, int]
    open_reports: list[Report]
    overdue: list[DigestDeadline]
    due_today: list[DigestDeadline]
    due_this_week: list[DigestDeadline]


def digest_of(session: Session, calendar: BusinessCalendar, day: date, now: datetime, limit: int) -> Digest:
    """The digest of `day` at `now`: open reports oldest first, overdue deadlines most
    overdue first, the others soonest first. Due today: from `now` to the local midnight;
    this week: from then to the end of Sunday."""
    tomorrow = local_midnight(day + timedelta(days=1), calendar)
    week_end = local_midnight(day + timedelta(days=7 - day.weekday()), calendar)
    return Digest(
        open_by_status=open_reports_by_status(session),
        deadline_counts=deadline_counts(session, now, tomorrow, week_end),
        open_reports=oldest_open_reports(session, limit),
        overdue=digest_deadlines(session, limit, MilestoneRecord.due_at < now),
        due_today=digest_deadlines(session, limit, MilestoneRecord.due_at >= now, MilestoneRecord.due_at < tomorrow),
        due_this_week=digest_deadlines(session, limit, MilestoneRecord.due_at >= tomorrow, MilestoneRecord.due_at < week_end),
    )


def local_midnight(day: date, calendar: BusinessCalendar) -> datetime:
    return datetime.combine(day, time(0), tzinfo=calendar.zone)


def open_reports_by_status(session: Session) -> dict[str, int]:
    """Open reports per status, in the order of STATUSES (statuses with none left out)."""
    counted = dict(session.execute(select(Report.status, func.count()).where(Report.status.not_in(CLOSED_STATUSES)).group_by(Report.status)).all())
    return {status: counted.pop(status) for status in STATUSES if status in counted} | counted


def open_deadline() -> ColumnElement[bool]:
    """A deadline still to meet, of an open report (with Report joined)."""
    return and_(MilestoneRecord.awaiting.is_(True), MilestoneRecord.due_at.is_not(None), Report.status.not_in(CLOSED_STATUSES))


def deadline_counts(session: Session, now: datetime, tomorrow: datetime, week_end: datetime) -> dict[str, int]:
    """Open deadlines overdue, due today and due later this week (one range scan of
    awaiting deadlines up to the week's end), and those in their warning period."""
    record = MilestoneRecord
    due = session.execute(
        select(
            func.count(case((record.due_at < now, 1))),
            func.count(case((and_(record.due_at >= now, record.due_at < tomorrow), 1))),
            func.count(case((record.due_at >= tomorrow, 1))),
        )
        .select_from(record)
        .join(Report, Report.id == record.report_id)
        .where(open_deadline(), record.due_at < week_end)
    ).one()
    warning = session.scalar(select(func.count()).select_from(record).join(Report, Report.id == record.report_id).where(open_deadline(), record.warn_at <= now, record.due_at >= now))
    return {"overdue": due[0], "warning": warning or 0, "due_today": due[1], "due_this_week": due[2]}


def oldest_open_reports(session: Session, limit: int) -> list[Report]:
    query = select(Report).where(Report.status.not_in(CLOSED_STATUSES)).order_by(Report.received_at, Report.id).limit(limit)
    return list(session.scalars(query.options(*MAIL_SUMMARY_LOADS)))


def digest_deadlines(session: Session, limit: int, *within: ColumnElement[bool]) -> list[DigestDeadline]:
    """The first `limit` open deadlines `within` these bounds, soonest due first."""
    record = MilestoneRecord
    rows = session.execute(
        select(Report.tracking_id, func.substr(Report.subject, 1, DIGEST_SUBJECT_CHARACTERS), record.name, record.due_at)
        .select_from(record)
        .join(Report, Report.id == record.report_id)
        .where(open_deadline(), *within)
        # No tie-break on id: PostgreSQL's index on (awaiting, due_at) then gives the order
        # itself, where sorting thousands of deadlines due at the same 17:00 would not.
        .order_by(record.due_at)
        .limit(limit)
    )
    return [DigestDeadline(tracking_id, subject, name, due_at) for tracking_id, subject, name, due_at in rows]


# --- inspection: a delivery as stored, a report's raw mail and its attachments ----------

SURROGATES = re.compile("[\ud800-\udfff]")
FOLD = re.compile(rb"\r\n[ \t]*")


class InboundNotFound(LookupError):
    pass


class MessageNotFound(LookupError):
    """A message number outside the report's thread."""


class RawNotStored(LookupError):
    """A message of the thread whose bytes are kept nowhere (a mail we sent, its outbox row gone)."""


def inbound_detail(session: Session, inbound_id: int) -> dict[str, Any]:
    """A delivery as stored: envelope, processing state, the stored bytes' size and sha256
    (computed now, beside the one recorded at intake) and the outer header section."""
    row = session.get(InboundMessage, inbound_id)
    if row is None:
        raise InboundNotFound(inbound_id)
    raw = bytes(row.raw)
    return {
        "id": row.id,
        "received_at": iso_utc(row.received_at),
        "protocol": row.protocol,
        "peer": row.peer,
        "helo": row.helo,
        "envelope_from": row.envelope_from,
        "envelope_to": list(row.envelope_to),
        "status": row.status,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "next_attempt_at": iso_utc(row.next_attempt_at) if row.next_attempt_at else None,
        "processed_at": iso_utc(row.processed_at) if row.processed_at else None,
        "report": session.scalar(select(Report.tracking_id).where(Report.id == row.report_id)) if row.report_id else None,
        "size": len(raw),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "sha256_at_intake": row.sha256,
        "headers": header_list(raw),
    }


def inbound_raw(session: Session, inbound_id: int) -> bytes:
    raw = session.scalar(select(InboundMessage.raw).where(InboundMessage.id == inbound_id))
    if raw is None:
        raise InboundNotFound(inbound_id)
    return bytes(raw)


def header_list(raw: bytes) -> list[dict[str, str]]:
    """The outer header fields in order, split as the parser splits them (at CRLF only,
    folded lines joined), each value decoded for people (RFC 2047, raw 8-bit as UTF-8).
    A line without a colon has the name ""."""
    return [header_item(field) for field in header_fields(header_section(raw)) if field]


def header_section(raw: bytes) -> bytes:
    """The header section with its line endings as normalized_line_endings leaves them,
    without copying the body."""
    end = b"\r\n\r\n" if b"\r\n" in raw else b"\n\n"
    return normalized_line_endings(raw.partition(end)[0])


def header_item(field: bytes) -> dict[str, str]:
    """A field's name and value, each fold (CRLF and the white space after it) one space."""
    name, colon, value = FOLD.sub(b" ", field).partition(b":")
    if not colon:
        return {"name": "", "value": readable(name)}
    return {"name": readable(name).strip(), "value": SURROGATES.sub("\ufffd", decoded_header(readable(value).strip()))}


def readable(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def report_id_of(session: Session, tracking_id: str) -> int:
    report_id = session.scalar(select(Report.id).where(Report.tracking_id == tracking_id.upper()))
    if report_id is None:
        raise ReportNotFound(tracking_id)
    return report_id


def report_message_raw(session: Session, tracking_id: str, number: int) -> bytes:
    """The bytes of the report's message `number` (1: the report itself) in thread order:
    of a received one the stored delivery, exactly as accepted; of one we sent the outbox
    content its sha256 names."""
    report_id = report_id_of(session, tracking_id)
    messages = session.execute(select(Message.inbound_id, Message.message_id, Message.raw_sha256).where(Message.report_id == report_id).order_by(Message.received_at, Message.id)).all()
    if not 1 <= number <= len(messages):
        raise MessageNotFound(f"message {number}: the thread has {len(messages)} message{'s' if len(messages) != 1 else ''}")
    message = messages[number - 1]
    if message.inbound_id is not None:
        return inbound_raw(session, message.inbound_id)
    sent = session.scalars(select(OutboxMessage.content).where(OutboxMessage.report_id == report_id, OutboxMessage.message_id == message.message_id))
    content = next((bytes(content) for content in sent if hashlib.sha256(content).hexdigest() == message.raw_sha256), None)
    if content is None:
        raise RawNotStored(f"message {number} was sent by us and its bytes are no longer stored")
    return content


def report_attachments(session: Session, tracking_id: str) -> list[dict[str, Any]]:
    """The report's attachments in thread order (each with its message's number), without
    their content: `attachment_content` reads one at a time."""
    report_id = report_id_of(session, tracking_id)
    numbers = {message_id: number for number, message_id in enumerate(session.scalars(select(Message.id).where(Message.report_id == report_id).order_by(Message.received_at, Message.id)), start=1)}
    columns = (Attachment.id, Attachment.message_id, Attachment.filename, Attachment.content_type, Attachment.size, Attachment.sha256)
    rows = session.execute(select(*columns).join(Message, Message.id == Attachment.message_id).where(Message.report_id == report_id)).all()
    return [
        {"message": numbers[row.message_id], "attachment_id": row.id, "filename": row.filename, "content_type": row.content_type, "size": row.size, "sha256": row.sha256}
        for row in sorted(rows, key=lambda row: (numbers[row.message_id], row.id))
    ]


def attachment_content(session: Session, attachment_id: int) -> bytes:
    return bytes(session.scalars(select(Attachment.content).where(Attachment.id == attachment_id)).one())

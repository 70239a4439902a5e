"""Reports in the database: creation from a parsed message, tracking ids, read views."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from mailintake.storage.db import insert_ignoring_conflicts
from mailintake.core.vocabulary import tracking_id
from mailintake.storage.models import Attachment, InboundMessage, Message, MilestoneRecord, Report, Reporter, TrackingCounter
from mailintake.parse.message import ParsedMessage


class ReportNotFound(LookupError):
    pass


def next_tracking_id(session: Session, prefix: str, year: int) -> str:
    """SEC-YYYY-NNNN; the counter row is locked by the UPDATE until the transaction ends."""
    insert_ignoring_conflicts(session, TrackingCounter.__table__, {"year": year, "last_number": 0})
    number = session.execute(
        update(TrackingCounter).where(TrackingCounter.year == year).values(last_number=TrackingCounter.last_number + 1).returning(TrackingCounter.last_number)
    ).scalar_one()
    return tracking_id(prefix, year, number)


def report_with_origin(session: Session, origin_key: str) -> Report | None:
    return session.scalars(select(Report).where(Report.origin_key == origin_key)).one_or_none()


def reporter_for(session: Session, address: str, display_name: str, now: datetime) -> Reporter | None:
    if not address:
        return None
    insert_ignoring_conflicts(session, Reporter.__table__, {"address": address, "display_name": display_name, "created_at": now})
    return session.scalars(select(Reporter).where(Reporter.address == address)).one()


def create_report(session: Session, parsed: ParsedMessage, inbound: InboundMessage, prefix: str, now: datetime) -> Report:
    statements = parsed.statements
    reporter_address = parsed.from_address or inbound.envelope_from
    reporter = reporter_for(session, reporter_address, parsed.from_name, now)
    report = Report(
        tracking_id=next_tracking_id(session, prefix, inbound.received_at.year),
        origin_key=parsed.origin_key,
        status="new",
        subject=parsed.subject,
        reporter=reporter,
        envelope_sender=inbound.envelope_from,
        suggested_severity=statements.severity,
        credit_as=statements.credit,
        anonymous=statements.anonymous,
        urls=list(statements.urls),
        endpoints=list(statements.endpoints),
        language=parsed.language,
        received_at=inbound.received_at,
        created_at=now,
    )
    session.add(report)
    report.messages.append(inbound_message_row(parsed, inbound))
    session.flush()
    return report


def inbound_message_row(parsed: ParsedMessage, inbound: InboundMessage) -> Message:
    return Message(
        inbound_id=inbound.id,
        direction="in",
        from_address=parsed.from_address,
        from_name=parsed.from_name,
        to_addresses=list(parsed.to_addresses),
        subject=parsed.subject,
        message_id=parsed.message_id,
        in_reply_to=parsed.in_reply_to,
        date_header=parsed.date,
        received_at=inbound.received_at,
        body_text=parsed.body_text,
        body_from_html=parsed.body_from_html,
        raw_sha256=inbound.sha256,
        parse_defects=list(parsed.defects),
        attachments=[
            Attachment(filename=item.filename, content_type=item.content_type, size=item.size, sha256=item.sha256, content=item.content)
            for item in parsed.attachments
        ],
    )


def report_summaries(session: Session) -> list[dict[str, Any]]:
    reports = session.scalars(select(Report).options(selectinload(Report.reporter)).order_by(Report.received_at, Report.id))
    return [report_summary(report) for report in reports]


def report_summary(report: Report) -> dict[str, Any]:
    return {
        "tracking_id": report.tracking_id,
        "status": report.status,
        "received_at": iso_utc(report.received_at),
        "reporter": report.reporter.address if report.reporter else "",
        "anonymous": report.anonymous,
        "suggested_severity": report.suggested_severity,
        "subject": report.subject,
        "flag": report.flag,
        "automated": report.automated,
    }


def report_detail(session: Session, tracking_id: str) -> dict[str, Any]:
    report = session.scalars(
        select(Report)
        .where(Report.tracking_id == tracking_id.upper())
        .options(selectinload(Report.reporter), selectinload(Report.messages).selectinload(Message.attachments), selectinload(Report.milestones), selectinload(Report.pauses))
    ).one_or_none()
    if report is None:
        raise ReportNotFound(tracking_id)
    duplicates = session.scalars(
        select(InboundMessage.id).where(InboundMessage.report_id == report.id, InboundMessage.status == "duplicate").order_by(InboundMessage.id)
    ).all()
    return report_summary(report) | {
        "reporter_name": report.reporter.display_name if report.reporter else "",
        "envelope_sender": report.envelope_sender,
        "credit_as": report.credit_as,
        "urls": report.urls,
        "endpoints": report.endpoints,
        "severity": report.severity,
        "assignee": report.assignee,
        "eta": report.eta.isoformat() if report.eta else None,
        "bounty": report.bounty,
        "flag": report.flag,
        "related": report.related_report.tracking_id if report.related_report else None,
        "duplicate_of": report.duplicate_of.tracking_id if report.duplicate_of else None,
        "automated": report.automated,
        "duplicate_deliveries": list(duplicates),
        "milestones": [milestone_view(record) for record in report.milestones],
        "pauses": [{"started_at": iso_utc(pause.started_at), "started_by": pause.started_by, "ended_at": iso_utc(pause.ended_at) if pause.ended_at else None, "ended_by": pause.ended_by} for pause in report.pauses],
        "messages": [message_view(message) for message in thread_order(report.messages)],
    }


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
        "attachments": [
            {"filename": item.filename, "content_type": item.content_type, "size": item.size, "sha256": item.sha256}
            for item in message.attachments
        ],
    }


def iso_utc(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")

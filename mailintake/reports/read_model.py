"""How a report reads: the one view of a report, its thread and deadlines that the CLI shows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from mailintake.storage.models import InboundMessage, Message, MilestoneRecord, Report


class ReportNotFound(LookupError):
    pass


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

"""Reports in the database: a new report from a parsed message, with its tracking id."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mailintake.core.vocabulary import tracking_id
from mailintake.parse.message import ParsedMessage
from mailintake.storage.db import insert_ignoring_conflicts
from mailintake.storage.models import Attachment, InboundMessage, Message, Report, Reporter, TrackingCounter


def next_tracking_id(session: Session, prefix: str, year: int) -> str:
    """SEC-YYYY-NNNN; the counter row is locked by the UPDATE until the transaction ends."""
    insert_ignoring_conflicts(session, TrackingCounter.__table__, {"year": year, "last_number": 0})
    number = session.execute(update(TrackingCounter).where(TrackingCounter.year == year).values(last_number=TrackingCounter.last_number + 1).returning(TrackingCounter.last_number)).scalar_one()
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
        attachments=[Attachment(filename=item.filename, content_type=item.content_type, size=item.size, sha256=item.sha256, content=item.content) for item in parsed.attachments],
    )

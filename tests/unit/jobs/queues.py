"""Queues of open reports built straight in the database (as bench/open_reports.py does),
and what the periodic jobs made of them: counted statements and transactions, the outbox."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage

from sqlalchemy import Engine, event, insert, select
from sqlalchemy.orm import Session, sessionmaker

from mailintake.storage.db import transaction
from mailintake.storage.models import Attachment, Message, MilestoneRecord, OutboxMessage, Report, Reporter


@dataclass(frozen=True)
class Deadline:
    """One report of a hand-built queue with one milestone."""

    due_at: datetime | None
    status: str = "new"
    awaiting: bool = True
    warn_at: datetime | None = None
    name: str = "acknowledge"
    subject: str = ""
    # When the SLA pass must look at it (None: its alerts are out).
    next_alert_at: datetime | None = None


def queued(sessions: sessionmaker[Session], deadlines: Sequence[Deadline], received: datetime, prefix: str = "SEC-2026-") -> list[str]:
    """The reports of `deadlines`, received a minute apart from `received` on, each with a
    reporter, a first message with an attachment, and its milestone; their tracking ids."""
    tracking_ids = [f"{prefix}{number:05d}" for number in range(1, len(deadlines) + 1)]
    with transaction(sessions) as session:
        addresses = [f"researcher-{tracking_id.lower()}@reporter.example.org" for tracking_id in tracking_ids]
        session.execute(insert(Reporter), [{"address": address, "created_at": received} for address in addresses])
        reporter_ids = dict(session.execute(select(Reporter.address, Reporter.id).where(Reporter.address.in_(addresses))).all())
        session.execute(
            insert(Report),
            [
                {
                    "tracking_id": tracking_id,
                    "origin_key": f"test:{tracking_id}",
                    "status": deadline.status,
                    "subject": deadline.subject or f"Report {tracking_id}",
                    "reporter_id": reporter_ids[address],
                    "envelope_sender": "",
                    "anonymous": False,
                    "urls": [],
                    "endpoints": [],
                    "received_at": received + timedelta(minutes=number),
                    "created_at": received + timedelta(minutes=number),
                }
                for number, (tracking_id, deadline, address) in enumerate(zip(tracking_ids, deadlines, addresses, strict=True))
            ],
        )
        report_ids = dict(session.execute(select(Report.tracking_id, Report.id).where(Report.tracking_id.in_(tracking_ids))).all())
        session.execute(
            insert(Message),
            [
                {
                    "report_id": report_ids[tracking_id],
                    "direction": "in",
                    "from_address": address,
                    "subject": "A report",
                    "message_id": f"<{tracking_id}@reporter.example.org>",
                    "received_at": received,
                    "body_text": "Steps to reproduce.\n",
                    "raw_sha256": "ab" * 32,
                }
                for tracking_id, address in zip(tracking_ids, addresses, strict=True)
            ],
        )
        message_ids = dict(session.execute(select(Message.report_id, Message.id).where(Message.report_id.in_(report_ids.values()))).all())
        session.execute(insert(Attachment), [{"message_id": message_ids[report_id], "filename": "poc.html", "content_type": "text/html", "size": 5, "sha256": "cd" * 32, "content": b"<b>1"} for report_id in report_ids.values()])
        session.execute(
            insert(MilestoneRecord),
            [
                {
                    "report_id": report_ids[tracking_id],
                    "name": deadline.name,
                    "started_at": received,
                    "computed_due_at": deadline.due_at,
                    "due_at": deadline.due_at,
                    "warn_at": deadline.warn_at,
                    "awaiting": deadline.awaiting,
                    "next_alert_at": deadline.next_alert_at,
                }
                for tracking_id, deadline in zip(tracking_ids, deadlines, strict=True)
            ],
        )
    return tracking_ids


@dataclass
class Transactions:
    """What a run sent to the database: every statement, and for each committed
    transaction how many rows it put in the outbox."""

    statements: list[str] = field(default_factory=list)
    outbox_rows_per_commit: list[int] = field(default_factory=list)
    pending_outbox_rows: int = 0


@contextmanager
def counted(engine: Engine) -> Iterator[Transactions]:
    seen = Transactions()

    def statement(conn, cursor, text, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        seen.statements.append(text)
        if text.lstrip().upper().startswith("INSERT INTO OUTBOX "):
            seen.pending_outbox_rows += 1

    def commit(conn) -> None:  # type: ignore[no-untyped-def]
        seen.outbox_rows_per_commit.append(seen.pending_outbox_rows)
        seen.pending_outbox_rows = 0

    def rollback(conn) -> None:  # type: ignore[no-untyped-def]
        seen.pending_outbox_rows = 0

    listeners = (("before_cursor_execute", statement), ("commit", commit), ("rollback", rollback))
    for name, listener in listeners:
        event.listen(engine, name, listener)
    try:
        yield seen
    finally:
        for name, listener in listeners:
            event.remove(engine, name, listener)


def outbox_rows(sessions: sessionmaker[Session], kind: str | None = None) -> list[OutboxMessage]:
    with transaction(sessions) as session:
        query = select(OutboxMessage).order_by(OutboxMessage.id)
        if kind is not None:
            query = query.where(OutboxMessage.kind == kind)
        return list(session.scalars(query))


def mail_of(row: OutboxMessage) -> EmailMessage:
    return message_from_bytes(row.content, policy=policy.default)  # type: ignore[return-value]


def text_of(row: OutboxMessage) -> str:
    body = mail_of(row).get_body(("plain",))
    assert body is not None
    return body.get_content().replace("\r\n", "\n")

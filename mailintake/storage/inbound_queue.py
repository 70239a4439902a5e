"""Stored deliveries as a queue: which are due, and each one's state changes.

A delivery is `received` when its 250 was given, then `processed`, `duplicate` or
`failed` (retried later). Every change is a compare-and-set on (status, attempts) as
they were read: whoever loses that race (a second daemon, a concurrent `inbound
retry`) changes nothing, so a delivery becomes at most one report.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from mailintake.storage.db import transaction
from mailintake.storage.models import InboundMessage

# A failed delivery is retried after retry_interval, 2x, 4x … but never waits longer than this.
MAX_PARSE_RETRY_DELAY = timedelta(hours=6)
MAX_REASON = 500


@dataclass(frozen=True)
class Snapshot:
    """A delivery as read before work on it starts."""

    status: str
    attempts: int
    raw: bytes
    envelope_from: str
    envelope_to: tuple[str, ...]
    last_error: str | None = None


def due_inbound_ids(sessions: sessionmaker[Session], now: datetime, limit: int = 100) -> list[tuple[int, str]]:
    """(id, envelope sender) of new deliveries first, then of failed ones whose retry is
    due: retries never starve new mail."""
    with transaction(sessions) as session:
        columns = (InboundMessage.id, InboundMessage.envelope_from)
        new = select(*columns).where(InboundMessage.status == "received").order_by(InboundMessage.id).limit(limit)
        retries = select(*columns).where(InboundMessage.status == "failed", InboundMessage.next_attempt_at <= now).order_by(InboundMessage.next_attempt_at, InboundMessage.id).limit(limit)
        return [(row.id, row.envelope_from) for row in session.execute(new)] + [(row.id, row.envelope_from) for row in session.execute(retries)]


def failed_inbound_ids(sessions: sessionmaker[Session]) -> list[int]:
    with transaction(sessions) as session:
        return list(session.scalars(select(InboundMessage.id).where(InboundMessage.status == "failed").order_by(InboundMessage.id)))


def read_snapshot(sessions: sessionmaker[Session], inbound_id: int) -> Snapshot | None:
    with transaction(sessions) as session:
        row = session.get(InboundMessage, inbound_id)
        if row is None:
            return None
        return Snapshot(row.status, row.attempts, row.raw, row.envelope_from, tuple(row.envelope_to), row.last_error)


def claimed(session: Session, inbound_id: int, snapshot: Snapshot, **changes: object) -> bool:
    """Changes the row only if it is still as `snapshot` read it."""
    result = session.execute(update(InboundMessage).where(InboundMessage.id == inbound_id, InboundMessage.status == snapshot.status, InboundMessage.attempts == snapshot.attempts).values(**changes))
    return result.rowcount == 1


def attempt_started(sessions: sessionmaker[Session], inbound_id: int, snapshot: Snapshot) -> Snapshot | None:
    """The attempt counted and committed before any work: None if another process took it."""
    with transaction(sessions) as session:
        if not claimed(session, inbound_id, snapshot, attempts=snapshot.attempts + 1):
            session.rollback()
            return None
    return replace(snapshot, attempts=snapshot.attempts + 1)


def claimed_as_done(session: Session, inbound_id: int, snapshot: Snapshot, status: str, now: datetime, reason: str | None = None) -> bool:
    return claimed(session, inbound_id, snapshot, status=status, processed_at=now, last_error=reason[:MAX_REASON] if reason else None, next_attempt_at=None)


def marked_for_retry(sessions: sessionmaker[Session], inbound_id: int, snapshot: Snapshot, reason: str, retry_at: datetime) -> bool:
    with transaction(sessions) as session:
        if not claimed(session, inbound_id, snapshot, status="failed", last_error=reason[:MAX_REASON], next_attempt_at=retry_at):
            session.rollback()
            return False
    return True


def marked_unprocessable(session: Session, inbound_id: int, snapshot: Snapshot, reason: str) -> bool:
    """Failed for good: stored, listed by `inbound failed`, never taken up again by itself."""
    return claimed(session, inbound_id, snapshot, status="failed", last_error=reason[:MAX_REASON], next_attempt_at=None)


def retry_delay(retry_interval: float, attempts: int) -> timedelta:
    doublings = min(attempts - 1, 32)
    return min(timedelta(seconds=min(retry_interval * 2**doublings, MAX_PARSE_RETRY_DELAY.total_seconds())), MAX_PARSE_RETRY_DELAY)

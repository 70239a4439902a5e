"""Stored deliveries as a queue: which are due, who works on each, and its state changes.

A delivery is `received` when its 250 was given, then `processed`, `duplicate` or
`failed` (retried later). A worker claims the deliveries it will work on (FOR UPDATE SKIP
LOCKED on PostgreSQL; SQLite's BEGIN IMMEDIATE serialises the claim) with a lease, so
several workers and several daemons never parse the same delivery. Every state change is
still a compare-and-set on (status, attempts) as they were read: should a lease run out
under a worker that is still busy, whoever loses the race changes nothing, so a delivery
becomes at most one report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from mailintake.storage.db import transaction
from mailintake.storage.models import InboundMessage

# A failed delivery is retried after retry_interval, 2x, 4x … but never waits longer than this.
MAX_PARSE_RETRY_DELAY = timedelta(hours=6)
MAX_REASON = 500
UNCLAIMED: dict[str, object] = {"claimed_until": None, "claimed_by": None}


@dataclass(frozen=True)
class Snapshot:
    """A delivery as read before work on it starts."""

    status: str
    attempts: int
    raw: bytes
    envelope_from: str
    envelope_to: tuple[str, ...]
    last_error: str | None = None


def claimed_deliveries(sessions: sessionmaker[Session], now: datetime, lease: timedelta, claimer: str, limit: int) -> list[tuple[int, str]]:
    """(id, envelope sender) of up to `limit` due deliveries, now claimed by `claimer` until
    `now + lease`: no other worker or daemon takes them meanwhile, and those of a worker
    that died are taken again once its lease has passed (or at once, when its supervisor
    releases them). New mail comes first, then failed deliveries whose retry is due."""
    with transaction(sessions) as session:
        picked = deliveries_to_claim(session, now, limit)
        if not picked:
            return []
        ids = [inbound_id for inbound_id, _ in picked]
        # Another worker may have claimed some since they were read: those are skipped, not waited for.
        locked = set(session.scalars(select(InboundMessage.id).where(InboundMessage.id.in_(ids), claimable(now)).with_for_update(skip_locked=True)))
        taken = [item for item in picked if item[0] in locked]
        if taken:
            session.execute(update(InboundMessage).where(InboundMessage.id.in_([inbound_id for inbound_id, _ in taken])).values(claimed_until=now + lease, claimed_by=claimer[:64]))
        return taken


def deliveries_to_claim(session: Session, now: datetime, limit: int) -> list[tuple[int, str]]:
    """One sender's mail is taken one delivery at a time, in arrival order, by whichever
    worker holds its earliest: a staff member's `#status fixing` and then `#status
    resolved`, or two copies of one message, are recorded in the order they came, however
    many workers there are. Other senders' mail goes on alongside."""
    window = max(limit * 4, 100)
    columns = (InboundMessage.id, InboundMessage.envelope_from)
    new = select(*columns).where(InboundMessage.status == "received", unclaimed(now)).order_by(InboundMessage.id).limit(window)
    retries = select(*columns).where(InboundMessage.status == "failed", InboundMessage.next_attempt_at <= now, unclaimed(now)).order_by(InboundMessage.next_attempt_at, InboundMessage.id).limit(window)
    in_flight = select(InboundMessage.envelope_from).where(InboundMessage.claimed_until >= now, InboundMessage.status.in_(("received", "failed")))
    held = set(session.scalars(in_flight))
    picked: list[tuple[int, str]] = []
    for row in [*session.execute(new), *session.execute(retries)]:
        if row.envelope_from in held:
            continue
        held.add(row.envelope_from)
        picked.append((row.id, row.envelope_from))
        if len(picked) == limit:
            break
    return picked


def unclaimed(now: datetime) -> ColumnElement[bool]:
    return or_(InboundMessage.claimed_until.is_(None), InboundMessage.claimed_until < now)


def claimable(now: datetime) -> ColumnElement[bool]:
    due = or_(InboundMessage.status == "received", and_(InboundMessage.status == "failed", InboundMessage.next_attempt_at <= now))
    return and_(due, unclaimed(now))


def released_claims(sessions: sessionmaker[Session], claimer: str, ids: Sequence[int] | None = None) -> int:
    """Gives back what `claimer` holds and has not finished (all of it, or `ids`): a worker
    that stops, or one its supervisor found dead, leaves nothing waiting for a lease."""
    with transaction(sessions) as session:
        condition = InboundMessage.claimed_by == claimer[:64]
        if ids is not None:
            condition = and_(condition, InboundMessage.id.in_(list(ids)))
        result = session.execute(update(InboundMessage).where(condition, InboundMessage.status.in_(("received", "failed"))).values(claimed_until=None, claimed_by=None))
        return result.rowcount


def failed_inbound_ids(sessions: sessionmaker[Session]) -> list[int]:
    with transaction(sessions) as session:
        return list(session.scalars(select(InboundMessage.id).where(InboundMessage.status == "failed").order_by(InboundMessage.id)))


def read_snapshots(sessions: sessionmaker[Session], inbound_ids: Sequence[int]) -> dict[int, Snapshot | None]:
    """Each delivery as it is now, in the order asked (None if there is no such delivery)."""
    with transaction(sessions) as session:
        rows = {row.id: row for row in session.scalars(select(InboundMessage).where(InboundMessage.id.in_(list(inbound_ids))))}
        return {inbound_id: snapshot_of(rows[inbound_id]) if inbound_id in rows else None for inbound_id in inbound_ids}


def snapshot_of(row: InboundMessage) -> Snapshot:
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
    return claimed(session, inbound_id, snapshot, status=status, processed_at=now, last_error=reason[:MAX_REASON] if reason else None, next_attempt_at=None, **UNCLAIMED)


def marked_for_retry(sessions: sessionmaker[Session], inbound_id: int, snapshot: Snapshot, reason: str, retry_at: datetime) -> bool:
    with transaction(sessions) as session:
        if not claimed(session, inbound_id, snapshot, status="failed", last_error=reason[:MAX_REASON], next_attempt_at=retry_at, **UNCLAIMED):
            session.rollback()
            return False
    return True


def marked_unprocessable(session: Session, inbound_id: int, snapshot: Snapshot, reason: str) -> bool:
    """Failed for good: stored, listed by `inbound failed`, never taken up again by itself."""
    return claimed(session, inbound_id, snapshot, status="failed", last_error=reason[:MAX_REASON], next_attempt_at=None, **UNCLAIMED)


def retry_delay(retry_interval: float, attempts: int) -> timedelta:
    doublings = min(attempts - 1, 32)
    return min(timedelta(seconds=min(retry_interval * 2**doublings, MAX_PARSE_RETRY_DELAY.total_seconds())), MAX_PARSE_RETRY_DELAY)

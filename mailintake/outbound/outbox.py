"""The outbox: every outbound mail is a row, written with the state change that caused it.

Claiming takes rows with FOR UPDATE SKIP LOCKED (PostgreSQL; SQLite serialises the claim
with BEGIN IMMEDIATE) and marks them `sending` with a lease, so two daemons never send the
same row. A daemon killed while sending leaves a lease that expires; the row is then
sent again with the same bytes and Message-ID (at-least-once only in that window).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, defer

from mailintake.storage.db import insert_ignoring_conflicts
from mailintake.storage.models import OutboxMessage

MIN_LEASE = timedelta(seconds=10)
MAX_RELAY_RETRY_DELAY = timedelta(hours=1)
# `[outbox] auto_replies_per_hour` counts the automatic replies to one address in this window.
AUTO_REPLY_WINDOW = timedelta(hours=1)
# Rows read from the database at a time by a listing.
LISTING_BATCH = 1000


class OutboxRetryRefused(LookupError):
    """`outbox retry ID` on a row that does not exist or was sent."""


@dataclass(frozen=True)
class Outgoing:
    key: str
    kind: str
    envelope_from: str
    recipients: tuple[str, ...]
    message_id: str
    content: bytes
    report_id: int | None = None
    auto_reply_to: str | None = None


@dataclass(frozen=True)
class Claimed:
    id: int
    kind: str
    attempts: int
    envelope_from: str
    recipients: tuple[str, ...]
    content: bytes
    report_id: int | None
    created_at: datetime


def enqueue(session: Session, outgoing: Outgoing, now: datetime) -> bool:
    """Add a row unless one with the same key exists; True if this call added it."""
    return insert_ignoring_conflicts(
        session,
        OutboxMessage.__table__,
        {
            "key": outgoing.key,
            "kind": outgoing.kind,
            "report_id": outgoing.report_id,
            "envelope_from": outgoing.envelope_from,
            "recipients": list(outgoing.recipients),
            "auto_reply_to": outgoing.auto_reply_to,
            "message_id": outgoing.message_id,
            "content": outgoing.content,
            "status": "pending",
            "attempts": 0,
            "created_at": now,
        },
    )


def key_exists(session: Session, key: str) -> bool:
    return session.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.key == key)) > 0


def auto_replies_since(session: Session, address: str, since: datetime) -> int:
    return session.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.auto_reply_to == address, OutboxMessage.created_at >= since))


def over_auto_reply_limit(session: Session, address: str, per_hour: int, now: datetime) -> bool:
    """Whether `address` got `per_hour` automatic replies in the hour before `now`."""
    return auto_replies_since(session, address, now - AUTO_REPLY_WINDOW) >= per_hour


def lease_for(relay_timeout: float) -> timedelta:
    """How long a claim protects a row: longer than one delivery can take (connect, EHLO,
    MAIL, RCPT, DATA each within the relay timeout), after which another daemon may send it."""
    return max(MIN_LEASE, timedelta(seconds=6 * relay_timeout))


def claim_due(session: Session, now: datetime, lease: timedelta, limit: int = 20) -> list[Claimed]:
    due = (
        select(OutboxMessage)
        .where(
            or_(
                (OutboxMessage.status == "pending") & (or_(OutboxMessage.next_attempt_at.is_(None), OutboxMessage.next_attempt_at <= now)),
                (OutboxMessage.status == "sending") & (OutboxMessage.claimed_until < now),
            )
        )
        .order_by(OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = []
    for row in session.scalars(due):
        row.status = "sending"
        row.claimed_until = now + lease
        row.attempts += 1
        claimed.append(Claimed(row.id, row.kind, row.attempts, row.envelope_from, tuple(row.recipients), row.content, row.report_id, row.created_at))
    return claimed


def mark_sent(session: Session, claimed: Claimed, reply: str, now: datetime) -> bool:
    return settled(session, claimed, status="sent", sent_at=now, last_reply=reply[:500], claimed_until=None)


def mark_for_retry(session: Session, claimed: Claimed, reply: str, now: datetime, retry_interval: float, count_attempt: bool = True) -> bool:
    """Due again after a backoff of half the row's age (so tries thin out geometrically),
    at least retry_interval and at most an hour. An attempt that never reached the relay
    does not count towards max_attempts: an outage must not fail mail that was never tried."""
    delay = min(max(timedelta(seconds=retry_interval), (now - claimed.created_at) / 2), MAX_RELAY_RETRY_DELAY)
    attempts = claimed.attempts if count_attempt else claimed.attempts - 1
    return settled(session, claimed, status="pending", next_attempt_at=now + delay, last_reply=reply[:500], claimed_until=None, attempts=attempts)


def mark_failed(session: Session, claimed: Claimed, reply: str) -> bool:
    return settled(session, claimed, status="failed", last_reply=reply[:500], claimed_until=None)


def settled(session: Session, claimed: Claimed, **changes: object) -> bool:
    """Apply the outcome only if the row is still ours (same claim); False if it is not."""
    result = session.execute(update(OutboxMessage).where(OutboxMessage.id == claimed.id, OutboxMessage.status == "sending", OutboxMessage.attempts == claimed.attempts).values(**changes))
    return result.rowcount == 1


def retry_now(session: Session, row_id: int) -> OutboxMessage:
    """A failed or waiting row becomes due now; a failed one gets its attempts back."""
    row = session.get(OutboxMessage, row_id)
    if row is None:
        raise OutboxRetryRefused(f"no outbox row {row_id}")
    if row.status not in ("failed", "pending"):
        raise OutboxRetryRefused(f"outbox row {row_id} is {row.status}, not failed or pending")
    if row.status == "failed":
        row.attempts = 0
    row.status, row.next_attempt_at = "pending", None
    return row


def release_waiting(session: Session) -> int:
    """`outbox flush`: every pending row becomes due now."""
    return session.execute(update(OutboxMessage).where(OutboxMessage.status == "pending").values(next_attempt_at=None)).rowcount


def outbox_rows(session: Session, statuses: Collection[str] = (), kinds: Collection[str] = (), after: int | None = None, limit: int | None = None) -> Iterator[OutboxMessage]:
    """Rows in id order without their message (a listing of 100,000 mails must not read
    their bytes): with these statuses and kinds (none given: all), ids after `after`, at
    most `limit`; read LISTING_BATCH at a time."""
    query = select(OutboxMessage).options(defer(OutboxMessage.content)).order_by(OutboxMessage.id)
    if statuses:
        query = query.where(OutboxMessage.status.in_(statuses))
    if kinds:
        query = query.where(OutboxMessage.kind.in_(kinds))
    if after is not None:
        query = query.where(OutboxMessage.id > after)
    if limit is not None:
        query = query.limit(limit)
    return iter(session.scalars(query.execution_options(yield_per=LISTING_BATCH)))


def status_counts(session: Session) -> dict[str, int]:
    return {status: count for status, count in session.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status))}

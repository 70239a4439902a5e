"""The outbox as the database holds it, on a real SQLite file and the real PostgreSQL:
one row per key, claims with a lease, and each way a claim is settled."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from mailintake.outbound.outbox import (
    MAX_RELAY_RETRY_DELAY,
    Claimed,
    Outgoing,
    auto_replies_since,
    claim_due,
    enqueue,
    key_exists,
    mark_failed,
    mark_for_retry,
    mark_sent,
    outbox_rows,
    status_counts,
)
from mailintake.storage.db import transaction
from mailintake.storage.models import OutboxMessage

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


def outgoing(key: str, content: bytes = b"Subject: x\r\n\r\nbody\r\n", auto_reply_to: str | None = None) -> Outgoing:
    return Outgoing(key, "acknowledgement", "security@example.com", ("researcher@example.org",), f"{key}@example.com", content, None, auto_reply_to)


def enqueued(sessions: sessionmaker[Session], *keys: str, at: datetime = T0) -> None:
    with transaction(sessions) as session:
        for key in keys:
            assert enqueue(session, outgoing(key), at)


def claimed(sessions: sessionmaker[Session], now: datetime, limit: int = 20) -> list[Claimed]:
    with transaction(sessions) as session:
        return claim_due(session, now, LEASE, limit=limit)


def row(sessions: sessionmaker[Session], key: str) -> OutboxMessage:
    with transaction(sessions) as session:
        return session.scalars(select(OutboxMessage).where(OutboxMessage.key == key)).one()


def settle(sessions: sessionmaker[Session], settling: Callable[[Session], bool]) -> bool:
    with transaction(sessions) as session:
        return settling(session)


def test_enqueue_adds_one_row_per_key_and_keeps_the_first(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        assert enqueue(session, outgoing("ack:1", b"first"), T0)
        assert not enqueue(session, outgoing("ack:1", b"second"), T0 + timedelta(minutes=1))
        assert key_exists(session, "ack:1") and not key_exists(session, "ack:2")
    with transaction(sessions) as session:
        assert not enqueue(session, outgoing("ack:1", b"third"), T0 + timedelta(minutes=2))
    stored = row(sessions, "ack:1")
    assert (stored.content, stored.status, stored.attempts, stored.created_at) == (b"first", "pending", 0, T0)


def test_claim_takes_due_rows_in_order_and_marks_them_sending(sessions: sessionmaker[Session]) -> None:
    enqueued(sessions, "a", "b", "c")
    first = claimed(sessions, T0, limit=2)
    assert [item.kind for item in first] == ["acknowledgement", "acknowledgement"]
    assert [item.attempts for item in first] == [1, 1]
    assert [row(sessions, key).status for key in ("a", "b", "c")] == ["sending", "sending", "pending"]
    assert row(sessions, "a").claimed_until == T0 + LEASE
    [third] = claimed(sessions, T0)
    assert third.id > first[1].id > first[0].id
    assert claimed(sessions, T0) == []


def test_a_claimed_row_is_claimed_again_only_when_its_lease_has_expired(sessions: sessionmaker[Session]) -> None:
    enqueued(sessions, "a")
    [first] = claimed(sessions, T0)
    assert claimed(sessions, T0 + LEASE) == []
    [second] = claimed(sessions, T0 + LEASE + timedelta(seconds=1))
    assert (second.id, second.attempts) == (first.id, 2)
    # The daemon whose lease expired may not settle the row any more: it is not its claim.
    assert not settle(sessions, lambda session: mark_sent(session, first, "250 late", T0 + LEASE))
    assert settle(sessions, lambda session: mark_sent(session, second, "250 ok", T0 + LEASE + timedelta(seconds=2)))


def test_mark_sent_settles_the_claim_once(sessions: sessionmaker[Session]) -> None:
    enqueued(sessions, "a")
    [claim] = claimed(sessions, T0)
    sent_at = T0 + timedelta(seconds=5)
    assert settle(sessions, lambda session: mark_sent(session, claim, "250 2.0.0 Queued " + "x" * 600, sent_at))
    stored = row(sessions, "a")
    assert (stored.status, stored.sent_at, stored.claimed_until, stored.attempts) == ("sent", sent_at, None, 1)
    assert stored.last_reply is not None and len(stored.last_reply) == 500
    assert not settle(sessions, lambda session: mark_sent(session, claim, "250 again", sent_at))
    assert claimed(sessions, T0 + timedelta(days=1)) == []


@pytest.mark.parametrize(
    ("age", "retry_interval", "delay"),
    [
        (timedelta(seconds=10), 60, timedelta(seconds=60)),
        (timedelta(minutes=10), 60, timedelta(minutes=5)),
        (timedelta(hours=5), 60, MAX_RELAY_RETRY_DELAY),
    ],
)
def test_mark_for_retry_backs_off_half_the_rows_age_between_the_interval_and_an_hour(sessions: sessionmaker[Session], age: timedelta, retry_interval: float, delay: timedelta) -> None:
    enqueued(sessions, "a")
    now = T0 + age
    [claim] = claimed(sessions, now)
    assert settle(sessions, lambda session: mark_for_retry(session, claim, "451 4.3.0 try later", now, retry_interval))
    stored = row(sessions, "a")
    assert (stored.status, stored.next_attempt_at, stored.claimed_until, stored.attempts, stored.last_reply) == ("pending", now + delay, None, 1, "451 4.3.0 try later")
    assert claimed(sessions, now + delay - timedelta(seconds=1)) == []
    [again] = claimed(sessions, now + delay)
    assert again.attempts == 2


def test_a_retry_that_never_reached_the_relay_does_not_count_as_an_attempt(sessions: sessionmaker[Session]) -> None:
    enqueued(sessions, "a")
    [claim] = claimed(sessions, T0)
    assert settle(sessions, lambda session: mark_for_retry(session, claim, "relay unreachable (OSError)", T0, 1, count_attempt=False))
    assert row(sessions, "a").attempts == 0


def test_mark_failed_ends_the_row(sessions: sessionmaker[Session]) -> None:
    enqueued(sessions, "a")
    [claim] = claimed(sessions, T0)
    assert settle(sessions, lambda session: mark_failed(session, claim, "550 5.1.1 Mailbox unavailable"))
    stored = row(sessions, "a")
    assert (stored.status, stored.claimed_until, stored.last_reply, stored.sent_at) == ("failed", None, "550 5.1.1 Mailbox unavailable", None)
    assert not settle(sessions, lambda session: mark_failed(session, claim, "550 again"))
    assert claimed(sessions, T0 + timedelta(days=1)) == []


def test_auto_replies_since_counts_one_addresses_rows_from_a_moment_on(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        for number, age in enumerate((timedelta(hours=2), timedelta(minutes=59), timedelta(0))):
            enqueue(session, outgoing(f"ack:{number}", auto_reply_to="r@example.org"), T0 - age)
        enqueue(session, outgoing("ack:other", auto_reply_to="other@example.org"), T0)
        enqueue(session, outgoing("notify:1"), T0)
    with transaction(sessions) as session:
        assert auto_replies_since(session, "r@example.org", T0 - timedelta(hours=1)) == 2
        assert auto_replies_since(session, "r@example.org", T0 - timedelta(hours=3)) == 3
        assert auto_replies_since(session, "nobody@example.org", T0 - timedelta(hours=3)) == 0


def test_two_claims_at_once_never_take_the_same_row(engine: Engine, sessions: sessionmaker[Session]) -> None:
    """Two daemons on one PostgreSQL: rows one has locked are skipped by the other. (SQLite
    serialises claims with BEGIN IMMEDIATE, so there they cannot overlap at all.)"""
    if engine.dialect.name != "postgresql":
        pytest.skip("concurrent claims need PostgreSQL; SQLite runs one writer at a time")
    enqueued(sessions, "a", "b", "c", "d")
    with transaction(sessions) as first, transaction(sessions) as second:
        taken_first = claim_due(first, T0, LEASE, limit=2)
        taken_second = claim_due(second, T0, LEASE, limit=10)
    assert len(taken_first) == 2 and len(taken_second) == 2
    assert not {item.id for item in taken_first} & {item.id for item in taken_second}


def test_a_listing_never_reads_the_messages_and_counts_are_taken_in_sql(sessions: sessionmaker[Session]) -> None:
    enqueued(sessions, "ack:1", "ack:2", "ack:3")
    [first, *_] = claimed(sessions, T0, limit=1)
    settle(sessions, lambda session: mark_sent(session, first, "250 ok", T0))
    with transaction(sessions) as session:
        rows = list(outbox_rows(session))
        assert [listed.key for listed in rows] == ["ack:1", "ack:2", "ack:3"]
        assert all("content" in inspect(listed).unloaded for listed in rows)
        assert status_counts(session) == {"sent": 1, "pending": 2}

"""Claims on stored deliveries: one worker each, leases that end, one sender in order."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from mailintake.intake.store import Delivery, store_deliveries
from mailintake.storage.db import transaction
from mailintake.storage.inbound_queue import claimed_deliveries, released_claims
from mailintake.storage.models import InboundMessage

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)


def stored(sessions: sessionmaker[Session], *senders: str) -> list[int]:
    mails = [Delivery(NOW, "smtp", "127.0.0.1", "client", sender, ("security@example.com",), f"Subject: {index}\r\n\r\nbody\r\n".encode()) for index, sender in enumerate(senders)]
    return [item.inbound_id for item in store_deliveries(sessions, mails)]


def ids(claimed: list[tuple[int, str]]) -> list[int]:
    return [inbound_id for inbound_id, _ in claimed]


def finished(sessions: sessionmaker[Session], inbound_id: int) -> None:
    with transaction(sessions) as session:
        session.execute(update(InboundMessage).where(InboundMessage.id == inbound_id).values(status="processed", claimed_until=None, claimed_by=None))


def test_a_claimed_delivery_is_no_other_workers_until_its_lease_ends(sessions: sessionmaker[Session]) -> None:
    first, second, third = stored(sessions, "a@example.org", "b@example.org", "c@example.org")
    assert ids(claimed_deliveries(sessions, NOW, LEASE, "host:1", limit=2)) == [first, second]
    assert ids(claimed_deliveries(sessions, NOW, LEASE, "host:2", limit=2)) == [third]
    assert claimed_deliveries(sessions, NOW + LEASE - timedelta(seconds=1), LEASE, "host:2", limit=5) == []
    # Both died without giving them back: once the leases have passed, another takes them.
    assert ids(claimed_deliveries(sessions, NOW + LEASE + timedelta(seconds=1), LEASE, "host:3", limit=5)) == [first, second, third]


def test_one_senders_mail_is_claimed_one_at_a_time_in_arrival_order_whoever_claims(sessions: sessionmaker[Session]) -> None:
    bob_first, other, bob_second = stored(sessions, "bob@example.com", "eve@example.org", "bob@example.com")
    assert ids(claimed_deliveries(sessions, NOW, LEASE, "host:1", limit=1)) == [bob_first]
    assert ids(claimed_deliveries(sessions, NOW, LEASE, "host:2", limit=5)) == [other], "bob's second waits for his first"
    finished(sessions, bob_first)
    assert ids(claimed_deliveries(sessions, NOW, LEASE, "host:2", limit=5)) == [bob_second]


def test_an_unclaimed_earlier_delivery_of_the_sender_comes_before_a_later_one(sessions: sessionmaker[Session]) -> None:
    first, second = stored(sessions, "bob@example.com", "bob@example.com")
    assert ids(claimed_deliveries(sessions, NOW, LEASE, "host:1", limit=5)) == [first]
    assert claimed_deliveries(sessions, NOW, LEASE, "host:1", limit=5) == []
    assert released_claims(sessions, "host:1") == 1
    assert ids(claimed_deliveries(sessions, NOW, LEASE, "host:2", limit=5)) == [first], "released, bob's first is taken again before his second"
    finished(sessions, first)
    assert ids(claimed_deliveries(sessions, NOW, LEASE, "host:2", limit=5)) == [second]


def test_released_claims_gives_back_only_that_workers_unfinished_deliveries(sessions: sessionmaker[Session]) -> None:
    done, held, others = stored(sessions, "a@example.org", "b@example.org", "c@example.org")
    claimed_deliveries(sessions, NOW, LEASE, "host:1", limit=2)
    claimed_deliveries(sessions, NOW, LEASE, "host:2", limit=2)
    finished(sessions, done)
    assert released_claims(sessions, "host:1") == 1
    assert ids(claimed_deliveries(sessions, NOW, LEASE, "host:3", limit=5)) == [held]
    assert released_claims(sessions, "host:2", [others]) == 1


def test_a_failed_delivery_is_claimed_again_only_once_its_retry_is_due(sessions: sessionmaker[Session]) -> None:
    [failed] = stored(sessions, "a@example.org")
    with transaction(sessions) as session:
        session.execute(update(InboundMessage).values(status="failed", attempts=1, next_attempt_at=NOW + timedelta(minutes=1)))
    assert claimed_deliveries(sessions, NOW, LEASE, "host:1", limit=5) == []
    assert ids(claimed_deliveries(sessions, NOW + timedelta(minutes=1), LEASE, "host:1", limit=5)) == [failed]


def test_workers_claiming_at_once_share_the_queue_without_overlap(sessions: sessionmaker[Session]) -> None:
    everything = set(stored(sessions, *(f"researcher{index}@example.org" for index in range(200))))

    def claim_until_empty(claimer: str) -> list[int]:
        mine: list[int] = []
        while batch := claimed_deliveries(sessions, NOW, LEASE, claimer, limit=4):
            mine += ids(batch)
        return mine

    with ThreadPoolExecutor(4) as pool:
        shares = list(pool.map(claim_until_empty, [f"host:{worker}" for worker in range(4)]))
    claimed = [inbound_id for share in shares for inbound_id in share]
    assert len(claimed) == len(set(claimed)) and set(claimed) == everything

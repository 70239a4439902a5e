"""The one door into storage for accepted mail: a delivery's raw bytes, committed before
anything else happens to them. The listener commits here before its 250; anything else that
brings mail in (an importer of an mbox file, say) comes through here too, so every message
is stored the same way and processed by the same workers.

Deliveries that arrive while a commit is running are committed together in the next
transaction (group commit): each waits for the commit that holds it, so the 250 still
follows its own durable commit, and one fsync serves many concurrent senders.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from mailintake.storage.db import transaction
from mailintake.storage.models import InboundMessage

MAX_GROUP = 64
MAX_GROUP_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Delivery:
    received_at: datetime
    protocol: str
    peer: str
    helo: str
    envelope_from: str
    envelope_to: tuple[str, ...]
    raw: bytes


@dataclass(frozen=True)
class StoredDelivery:
    inbound_id: int
    sha256: str


def store_deliveries(sessions: sessionmaker[Session], deliveries: list[Delivery]) -> list[StoredDelivery]:
    with transaction(sessions) as session:
        rows = [inbound_row(delivery) for delivery in deliveries]
        session.add_all(rows)
        session.flush()
        return [StoredDelivery(row.id, row.sha256) for row in rows]


def store_delivery(sessions: sessionmaker[Session], delivery: Delivery) -> int:
    return store_deliveries(sessions, [delivery])[0].inbound_id


def inbound_row(delivery: Delivery) -> InboundMessage:
    return InboundMessage(
        received_at=delivery.received_at,
        protocol=delivery.protocol,
        peer=delivery.peer[:255],
        helo=delivery.helo[:255],
        envelope_from=delivery.envelope_from[:512],
        envelope_to=list(delivery.envelope_to),
        raw=delivery.raw,
        size=len(delivery.raw),
        sha256=hashlib.sha256(delivery.raw).hexdigest(),
        status="received",
        attempts=0,
    )


class GroupCommitStore:
    """Awaitable store for the listener; commits in a worker thread, never on the event loop."""

    def __init__(self, sessions: sessionmaker[Session], max_group: int = MAX_GROUP, max_group_bytes: int = MAX_GROUP_BYTES) -> None:
        self.sessions = sessions
        self.max_group = max_group
        self.max_group_bytes = max_group_bytes
        self._waiting: list[tuple[Delivery, asyncio.Future[StoredDelivery]]] = []
        self._committer: asyncio.Task[None] | None = None

    async def __call__(self, delivery: Delivery) -> StoredDelivery:
        stored: asyncio.Future[StoredDelivery] = asyncio.get_running_loop().create_future()
        self._waiting.append((delivery, stored))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_while_waiting())
        return await stored

    async def wait_idle(self, timeout: float) -> bool:
        """True once no commit is running; False if one still hangs after `timeout`."""
        if self._committer is None or self._committer.done():
            return True
        try:
            await asyncio.wait_for(asyncio.shield(self._committer), timeout)
        except TimeoutError:
            return False
        except Exception:
            return True
        return True

    async def _commit_while_waiting(self) -> None:
        while self._waiting:
            group = self._next_group()
            try:
                results = await asyncio.to_thread(store_deliveries, self.sessions, [delivery for delivery, _ in group])
            except Exception:
                if len(group) == 1:
                    await self._commit_alone(group[0])
                else:
                    # One delivery the database refuses must not cost the others a 451.
                    for waiter in group:
                        await self._commit_alone(waiter)
                continue
            for (_, stored), result in zip(group, results, strict=True):
                settle(stored, result)

    def _next_group(self) -> list[tuple[Delivery, asyncio.Future[StoredDelivery]]]:
        size = 0
        for count, (delivery, _) in enumerate(self._waiting):
            size += len(delivery.raw)
            if count == self.max_group or (count and size > self.max_group_bytes):
                break
        else:
            count = len(self._waiting)
        group, self._waiting = self._waiting[: max(count, 1)], self._waiting[max(count, 1) :]
        return group

    async def _commit_alone(self, waiter: tuple[Delivery, asyncio.Future[StoredDelivery]]) -> None:
        delivery, stored = waiter
        try:
            [result] = await asyncio.to_thread(store_deliveries, self.sessions, [delivery])
        except Exception as error:
            settle(stored, error)
        else:
            settle(stored, result)


def settle(stored: asyncio.Future[StoredDelivery], outcome: StoredDelivery | Exception) -> None:
    """Resolve a waiting delivery unless its sender is gone (timed out, disconnected)."""
    if stored.done():
        return
    if isinstance(outcome, Exception):
        stored.set_exception(outcome)
    else:
        stored.set_result(outcome)

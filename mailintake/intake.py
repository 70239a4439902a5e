"""Commit deliveries' raw bytes: the only work done before the SMTP 250.

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

from mailintake.db import transaction
from mailintake.models import InboundMessage

MAX_GROUP = 64


@dataclass(frozen=True)
class Delivery:
    received_at: datetime
    protocol: str
    peer: str
    helo: str
    envelope_from: str
    envelope_to: tuple[str, ...]
    raw: bytes


def store_deliveries(sessions: sessionmaker[Session], deliveries: list[Delivery]) -> list[int]:
    with transaction(sessions) as session:
        rows = [inbound_row(delivery) for delivery in deliveries]
        session.add_all(rows)
        session.flush()
        return [row.id for row in rows]


def store_delivery(sessions: sessionmaker[Session], delivery: Delivery) -> int:
    return store_deliveries(sessions, [delivery])[0]


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

    def __init__(self, sessions: sessionmaker[Session], max_group: int = MAX_GROUP) -> None:
        self.sessions = sessions
        self.max_group = max_group
        self._waiting: list[tuple[Delivery, asyncio.Future[int]]] = []
        self._committer: asyncio.Task[None] | None = None

    async def __call__(self, delivery: Delivery) -> int:
        stored: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.append((delivery, stored))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_while_waiting())
        return await asyncio.shield(stored)

    async def _commit_while_waiting(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting[: self.max_group], self._waiting[self.max_group :]
            try:
                ids = await asyncio.to_thread(store_deliveries, self.sessions, [delivery for delivery, _ in group])
            except Exception as error:
                for _, stored in group:
                    stored.set_exception(error)
                continue
            for (_, stored), inbound_id in zip(group, ids, strict=True):
                stored.set_result(inbound_id)

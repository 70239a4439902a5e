"""Commit one delivery's raw bytes: the only work done before the SMTP 250."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from mailintake.db import transaction
from mailintake.models import InboundMessage


@dataclass(frozen=True)
class Delivery:
    received_at: datetime
    protocol: str
    peer: str
    helo: str
    envelope_from: str
    envelope_to: tuple[str, ...]
    raw: bytes


def store_delivery(sessions: sessionmaker[Session], delivery: Delivery) -> int:
    with transaction(sessions) as session:
        row = InboundMessage(
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
        session.add(row)
        session.flush()
        return row.id

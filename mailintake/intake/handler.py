"""aiosmtpd handler hooks: accept only our addresses, reply 250 only after the commit."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from mailintake.core.addresses import envelope_address, storable_line
from mailintake.core.clock import Clock
from mailintake.core.tokens import parse_reply_address
from mailintake.intake.replies import (
    EHLO_AUTH,
    EHLO_ENHANCED_STATUS_CODES,
    INTERNAL_ERROR,
    RECIPIENT_OK,
    RECIPIENT_REJECTED,
    SENDER_OK,
    SHUTTING_DOWN,
    STARTTLS_FIRST,
    STORAGE_UNAVAILABLE,
    TOO_MANY_RECIPIENTS,
    stored_reply,
)
from mailintake.intake.store import Delivery, StoredDelivery

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 100

Store = Callable[[Delivery], Awaitable[StoredDelivery]]


class AcceptedRecipients:
    """RCPT policy: our configured addresses, and reply addresses whose signature checks out."""

    def __init__(self, addresses: tuple[str, ...], reply_base: str, reply_key: bytes) -> None:
        self.addresses = frozenset(addresses)
        self.reply_base = reply_base
        self.reply_key = reply_key

    def __contains__(self, address: str) -> bool:
        return address in self.addresses or parse_reply_address(address, self.reply_base, self.reply_key) is not None


class IntakeHandler:
    def __init__(self, addresses: AcceptedRecipients, store: Store, on_stored: Callable[[], None], clock: Clock, protocol: str, store_timeout: float, require_starttls: bool = False) -> None:
        self.addresses = addresses
        self.store_timeout = store_timeout
        self.store = store
        self.on_stored = on_stored
        self.clock = clock
        self.protocol = protocol
        self.require_starttls = require_starttls
        self.closing = False
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        # aiosmtpd offers AUTH after STARTTLS, with mechanisms that always fail; an MTA set up
        # to authenticate where it can would then fail its deliveries.
        offered = [response for response in responses[:-1] if not response.startswith(EHLO_AUTH)]
        return offered + [EHLO_ENHANCED_STATUS_CODES, responses[-1]]

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]) -> str:
        # Checked here rather than by aiosmtpd's require_starttls, which refuses LMTP's LHLO.
        if self.require_starttls and session.ssl is None:
            return STARTTLS_FIRST
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return SENDER_OK

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]) -> str:
        if envelope_address(address) not in self.addresses:
            return RECIPIENT_REJECTED
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return TOO_MANY_RECIPIENTS
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return RECIPIENT_OK

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.closing:
            return self.reply_per_recipient(SHUTTING_DOWN, envelope)
        self._in_flight += 1
        self._idle.clear()
        try:
            stored = await asyncio.wait_for(self.store(self.delivery_of(session, envelope)), self.store_timeout)
        except Exception as error:
            # A commit that completes after the timeout only makes the sender's retry a duplicate.
            log.error("could not store a delivery (%s); replied 451", type(error).__name__)
            return self.reply_per_recipient(STORAGE_UNAVAILABLE, envelope)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()
        log.info("stored inbound %d (%d bytes)", stored.inbound_id, len(envelope.original_content or b""))
        self.on_stored()
        return self.reply_per_recipient(stored_reply(stored.sha256), envelope)

    async def handle_exception(self, error: Exception) -> str:
        log.error("SMTP session error: %s", type(error).__name__)
        return INTERNAL_ERROR

    async def wait_idle(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def delivery_of(self, session: Session, envelope: Envelope) -> Delivery:
        return Delivery(
            received_at=self.clock(),
            protocol=self.protocol,
            peer=storable_line(peer_text(session.peer)),
            helo=storable_line(str(session.host_name or "")),
            envelope_from=envelope_address(envelope.mail_from or ""),
            envelope_to=tuple(envelope_address(address) for address in envelope.rcpt_tos),
            raw=bytes(envelope.original_content or b""),
        )

    def reply_per_recipient(self, reply: str, envelope: Envelope) -> str:
        """LMTP answers DATA once per accepted recipient (RFC 2033 4.2); SMTP once."""
        if self.protocol != "lmtp":
            return reply
        return "\r\n".join([reply] * max(1, len(envelope.rcpt_tos)))


def peer_text(peer: Any) -> str:
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return str(peer or "")

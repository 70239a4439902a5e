"""SMTP/LMTP front door (aiosmtpd): accept only our addresses, reply 250 only after commit."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from mailintake.addresses import envelope_address, storable_line
from mailintake.clock import Clock
from mailintake.intake import Delivery, StoredDelivery
from mailintake.tokens import parse_reply_address

log = logging.getLogger(__name__)

RECIPIENT_REJECTED = "550 5.1.1 Recipient address rejected: no such mailbox here"
STORAGE_UNAVAILABLE = "451 4.3.0 Storage temporarily unavailable, try again later"
SHUTTING_DOWN = "451 4.3.2 Service shutting down, try again later"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
SENDER_OK = "250 2.1.0 Sender OK"
MAX_RECIPIENTS = 100
# RFC 5321 allows 1,000 octets a line; reports sent straight to us with one long line
# (unwrapped HTML, a one-line proof of concept) are accepted rather than bounced.
LINE_LENGTH_LIMIT = 65_536
RECIPIENT_OK = "250 2.1.5 Recipient OK"

# aiosmtpd's own replies carry no enhanced status code (RFC 3463); these get one.
ENHANCED_BUILTIN_REPLIES = {
    "552 Error: Too much mail data": "552 5.3.4 Message too big for this system",
    "552 Error: message size exceeds fixed maximum message size": "552 5.3.4 Message size exceeds fixed maximum message size",
    "500 Line too long (see RFC5321 4.5.3.1.6)": "500 5.5.2 Line too long (RFC 5321 4.5.3.1.6)",
}
DATA_PHASE_REPLIES = frozenset({"552 5.3.4 Message too big for this system", "500 5.5.2 Line too long (RFC 5321 4.5.3.1.6)"})
# Other aiosmtpd errors get the enhanced code RFC 5248 lists for their basic code.
ENHANCED_CODE_FOR_ERROR = {
    "421": "4.3.2", "450": "4.2.0", "451": "4.3.0", "452": "4.3.1", "454": "4.7.0",
    "500": "5.5.2", "501": "5.5.4", "502": "5.5.1", "503": "5.5.1", "504": "5.5.4",
    "530": "5.7.0", "550": "5.0.0", "552": "5.3.4", "553": "5.1.3", "554": "5.0.0", "555": "5.5.4",
}
ERROR_WITHOUT_ENHANCED_CODE = re.compile(r"^([45]\d\d) (?!\d\.\d{1,3}\.\d{1,3}\b)")

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
    def __init__(self, addresses: AcceptedRecipients, store: Store, on_stored: Callable[[], None], clock: Clock, protocol: str, store_timeout: float) -> None:
        self.addresses = addresses
        self.store_timeout = store_timeout
        self.store = store
        self.on_stored = on_stored
        self.clock = clock
        self.protocol = protocol
        self.closing = False
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        return responses[:-1] + ["250-ENHANCEDSTATUSCODES", responses[-1]]

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]) -> str:
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
        return self.reply_per_recipient(f"250 2.0.0 Stored, sha256 {stored.sha256[:16]}", envelope)

    async def handle_exception(self, error: Exception) -> str:
        log.error("SMTP session error: %s", type(error).__name__)
        return "451 4.3.0 Internal error, try again later"

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


class EnhancedRepliesMixin:
    lmtp = False

    async def push(self, status: str | bytes) -> None:
        if isinstance(status, str):
            status = with_enhanced_code(status)
            envelope = getattr(self, "envelope", None)
            if self.lmtp and status in DATA_PHASE_REPLIES and envelope is not None and envelope.rcpt_tos:
                status = "\r\n".join([status] * len(envelope.rcpt_tos))
        await super().push(status)  # type: ignore[misc]


def with_enhanced_code(status: str) -> str:
    if status in ENHANCED_BUILTIN_REPLIES:
        return ENHANCED_BUILTIN_REPLIES[status]
    match = ERROR_WITHOUT_ENHANCED_CODE.match(status)
    if match is None:
        return status
    code = match.group(1)
    return f"{code} {ENHANCED_CODE_FOR_ERROR.get(code, code[0] + '.0.0')} {status[4:]}"


class IntakeSMTP(EnhancedRepliesMixin, SMTP):
    line_length_limit = LINE_LENGTH_LIMIT


class IntakeLMTP(EnhancedRepliesMixin, LMTP):
    line_length_limit = LINE_LENGTH_LIMIT
    lmtp = True


def protocol_factory(handler: IntakeHandler, protocol: str, hostname: str, max_message_size: int) -> Callable[[], SMTP]:
    server_class = IntakeLMTP if protocol == "lmtp" else IntakeSMTP

    def build() -> SMTP:
        return server_class(handler, data_size_limit=max_message_size, enable_SMTPUTF8=True, hostname=hostname, ident="mailintake")

    return build

"""SMTP/LMTP front door (aiosmtpd): accept only our addresses, reply 250 only after commit."""

from __future__ import annotations

import asyncio
import enum
import logging
import re
import ssl
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session, syntax

from mailintake.core.addresses import envelope_address, storable_line
from mailintake.core.clock import Clock
from mailintake.config.schema import ConfigError, ListenerConfig
from mailintake.intake.store import Delivery, StoredDelivery
from mailintake.core.tokens import parse_reply_address

log = logging.getLogger(__name__)

RECIPIENT_REJECTED = "550 5.1.1 Recipient address rejected: no such mailbox here"
STORAGE_UNAVAILABLE = "451 4.3.0 Storage temporarily unavailable, try again later"
SHUTTING_DOWN = "451 4.3.2 Service shutting down, try again later"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
SENDER_OK = "250 2.1.0 Sender OK"
STARTTLS_FIRST = "530 5.7.0 Must issue a STARTTLS command first"
MESSAGE_TOO_BIG = "552 5.3.4 Message too big for this system"
LINE_TOO_LONG = "500 5.5.2 Line too long (RFC 5321 4.5.3.1.6)"
TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections, try again later"
TOO_MANY_FROM_ADDRESS = "421 4.7.0 Too many connections from your address, try again later"
IDLE_TIMED_OUT = "421 4.4.2 Idle for too long, closing connection"
DATA_TIMED_OUT = "421 4.4.2 No message data for too long, closing connection"
MAX_RECIPIENTS = 100
# RFC 5321 allows 1,000 octets a line; reports sent straight to us with one long line
# (unwrapped HTML, a one-line proof of concept) are accepted rather than bounced.
LINE_LENGTH_LIMIT = 65_536
# An oversize message is read to its end before the 552 (RFC 5321 4.2.5), but only up to
# this many times the size limit: past that the sender is cut off, so a DATA that never
# ends cannot hold a connection for ever.
DRAIN_FACTOR = 2
# A peer that does not read our last reply gets this long before the connection is dropped.
HANG_UP_GRACE = 5.0
RECIPIENT_OK = "250 2.1.5 Recipient OK"

# aiosmtpd's own replies carry no enhanced status code (RFC 3463); these get one.
ENHANCED_BUILTIN_REPLIES = {
    "552 Error: message size exceeds fixed maximum message size": "552 5.3.4 Message size exceeds fixed maximum message size",
}
DATA_PHASE_REPLIES = frozenset({MESSAGE_TOO_BIG, LINE_TOO_LONG})
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
        offered = [response for response in responses[:-1] if not response.startswith("250-AUTH")]
        return offered + ["250-ENHANCEDSTATUSCODES", responses[-1]]

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


class ConnectionLimits:
    """Open connections of one listener, in all and per peer address."""

    def __init__(self, total: int, per_address: int) -> None:
        self.total = total
        self.per_address = per_address
        self._open: Counter[str] = Counter()

    def admit(self, address: str) -> str | None:
        """Count a new connection from `address`, or return the reply refusing it."""
        if self._open.total() >= self.total:
            return TOO_MANY_CONNECTIONS
        if self._open[address] >= self.per_address:
            return TOO_MANY_FROM_ADDRESS
        self._open[address] += 1
        return None

    def release(self, address: str) -> None:
        self._open[address] -= 1
        if self._open[address] <= 0:
            del self._open[address]


@dataclass(frozen=True)
class SessionRules:
    """What every session of one listener shares."""

    hostname: str
    max_message_size: int
    idle_timeout: float
    data_timeout: float
    connections: ConnectionLimits
    tls_context: ssl.SSLContext | None = None


class Phase(enum.Enum):
    COMMANDS = "commands"
    DATA = "data"
    STORING = "storing"


class Refusal(NamedTuple):
    reply: str
    hang_up: bool


class IntakeSMTP(SMTP):
    """aiosmtpd's SMTP with connection limits, timeouts that tell the peer (421 4.4.2), a DATA
    deadline renewed while data arrives, and the message read into one buffer.

    aiosmtpd's timer (`timeout`) starts at connect and again at each command and never
    during DATA, so it cuts any transfer longer than `timeout`; its DATA keeps one object
    per line, which costs up to 44 times the size of a message of short lines. This class
    relies on aiosmtpd 1.4's timer (`_reset_timeout`, `_timeout_cb`) and reader (`_reader`).
    """

    lmtp = False
    line_length_limit = LINE_LENGTH_LIMIT

    def __init__(self, handler: IntakeHandler, rules: SessionRules) -> None:
        super().__init__(
            handler,
            data_size_limit=rules.max_message_size,
            enable_SMTPUTF8=True,
            hostname=rules.hostname,
            ident="mailintake",
            tls_context=rules.tls_context,
            timeout=rules.idle_timeout,
        )
        self.rules = rules
        self._phase = Phase.COMMANDS
        self._last_received = 0.0
        self._admitted_address: str | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._admitted_address is None and not self._refused:
            address = peer_text(transport.get_extra_info("peername"))
            refusal = self.rules.connections.admit(address)
            if refusal is not None:
                self._refused = True
                log.warning("refused a connection: %s", refusal[10:])
                transport.write(refusal.encode() + b"\r\n")  # type: ignore[attr-defined]
                transport.close()
                return
            self._admitted_address = address
        self._last_received = self.loop.time()
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return
        if self._admitted_address is not None:
            self.rules.connections.release(self._admitted_address)
            self._admitted_address = None
        super().connection_lost(error)

    def eof_received(self) -> bool | None:
        if self._refused:
            return None
        return super().eof_received()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._last_received = self.loop.time()
        super().data_received(data)

    def _timeout_cb(self) -> None:
        if self._phase is Phase.STORING:
            # handle_DATA bounds the commit by store_timeout.
            self._reset_timeout()
            return
        if self._phase is Phase.DATA:
            quiet = self.loop.time() - self._last_received
            if quiet < self.rules.data_timeout:
                self._reset_timeout(self.rules.data_timeout - quiet)
                return
            self.hang_up(DATA_TIMED_OUT)
            return
        self.hang_up(IDLE_TIMED_OUT)

    def hang_up(self, reply: str) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        log.info("closed a session: %s", reply[10:])
        transport.write(reply.encode() + b"\r\n")  # type: ignore[attr-defined]
        self.close_soon()

    def close_soon(self) -> None:
        """Close after the replies already written, or drop the connection if the peer does not read them."""
        transport = self.transport
        if transport is None:
            return
        transport.close()
        self.loop.call_later(HANG_UP_GRACE, transport.abort)  # type: ignore[attr-defined]

    async def push(self, status: str | bytes) -> None:
        if isinstance(status, str):
            status = with_enhanced_code(status)
            envelope = getattr(self, "envelope", None)
            if self.lmtp and status in DATA_PHASE_REPLIES and envelope is not None and envelope.rcpt_tos:
                status = "\r\n".join([status] * len(envelope.rcpt_tos))
        await super().push(status)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        assert self.envelope is not None and self.session is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        self._phase = Phase.DATA
        self._reset_timeout(self.rules.data_timeout)
        try:
            received = await received_message(self._reader, self.rules.max_message_size)
            if isinstance(received, Refusal):
                await self.push(received.reply)
                if received.hang_up:
                    self.close_soon()
                return
            self.envelope.content = self.envelope.original_content = received
            self._phase = Phase.STORING
            status = await self.event_handler.handle_DATA(self, self.session, self.envelope)
        finally:
            self._set_post_data_state()
            self._phase = Phase.COMMANDS
            if self.transport is not None:
                # Not for a connection already lost: the timer would keep this session alive.
                self._reset_timeout()
        await self.push(status)


class IntakeLMTP(IntakeSMTP, LMTP):
    lmtp = True


async def received_message(reader: asyncio.StreamReader, size_limit: int) -> bytes | Refusal:
    """The message up to CRLF.CRLF, dot-unstuffed (RFC 5321 4.5.2), or the refusal to send once
    it has been read to its end. Lines end only at CRLF: a bare LF or CR is data, so
    `\\n.\\r\\n`, `\\r\\n.\\n` and `\\n.\\n` end nothing."""
    content = bytearray()
    refusal: str | None = None
    received = 0
    at_line_start = True
    try:
        while True:
            try:
                chunk = await reader.readuntil(b"\r\n")
            except asyncio.LimitOverrunError as error:
                chunk = await reader.read(error.consumed)
                refusal = refusal or LINE_TOO_LONG
            if at_line_start and chunk == b".\r\n":
                break
            received += len(chunk)
            if received > size_limit:
                refusal = refusal or MESSAGE_TOO_BIG
                if received > DRAIN_FACTOR * size_limit:
                    return Refusal(MESSAGE_TOO_BIG, hang_up=True)
            if refusal is None:
                content += chunk[1:] if at_line_start and chunk.startswith(b".") else chunk
            elif content:
                content.clear()
            at_line_start = chunk.endswith(b"\r\n")
    except BaseException:
        # The peer left (the read is cancelled): the traceback keeps this frame, and the
        # buffer with it, until the cycle collector happens to run.
        content.clear()
        raise
    if refusal is not None:
        return Refusal(refusal, hang_up=False)
    return bytes(content)


def with_enhanced_code(status: str) -> str:
    if status in ENHANCED_BUILTIN_REPLIES:
        return ENHANCED_BUILTIN_REPLIES[status]
    match = ERROR_WITHOUT_ENHANCED_CODE.match(status)
    if match is None:
        return status
    code = match.group(1)
    return f"{code} {ENHANCED_CODE_FOR_ERROR.get(code, code[0] + '.0.0')} {status[4:]}"


class PassphraseRequired(Exception):
    pass


def refuse_passphrase() -> bytes:
    raise PassphraseRequired


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """The STARTTLS context; a file that cannot serve is a ConfigError naming its key."""
    for name, path in (("tls_cert", cert), ("tls_key", key)):
        try:
            path.read_bytes()
        except OSError as error:
            raise ConfigError(f"[listener] {name}: cannot read {path} ({error.strerror})") from None
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_verify_locations(cafile=str(cert))
    except ssl.SSLError:
        raise ConfigError(f"[listener] tls_cert: {cert} holds no PEM certificate") from None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key, password=refuse_passphrase)
    except PassphraseRequired:
        raise ConfigError(f"[listener] tls_key: {key} is encrypted; use an unencrypted key readable only by the daemon's user") from None
    except ssl.SSLError as error:
        raise ConfigError(f"[listener] tls_key: {key} is not a PEM private key matching tls_cert ({error.reason or error.strerror})") from None
    return context


def protocol_factory(handler: IntakeHandler, protocol: str, rules: SessionRules) -> Callable[[], SMTP]:
    server_class = IntakeLMTP if protocol == "lmtp" else IntakeSMTP

    def build() -> SMTP:
        return server_class(handler, rules)

    return build


def session_rules(listener: ListenerConfig, max_message_size: int) -> SessionRules:
    tls_context = server_tls_context(listener.tls_cert, listener.tls_key) if listener.tls_cert and listener.tls_key else None
    return SessionRules(
        hostname=listener.hostname,
        max_message_size=max_message_size,
        idle_timeout=listener.idle_timeout,
        data_timeout=listener.data_timeout,
        connections=ConnectionLimits(listener.max_connections, listener.max_connections_per_ip),
        tls_context=tls_context,
    )

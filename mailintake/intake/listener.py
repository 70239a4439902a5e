"""SMTP/LMTP front door (aiosmtpd): the protocol with our limits, timeouts and DATA reader.

The hooks that accept addresses and store mail are in handler.py; every reply text is in
replies.py.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, syntax

from mailintake.intake.data_reader import Refusal, received_message
from mailintake.intake.handler import IntakeHandler, peer_text
from mailintake.intake.replies import (
    DATA_SYNTAX,
    DATA_TIMED_OUT,
    IDLE_TIMED_OUT,
    LINE_TOO_LONG,
    MESSAGE_TOO_BIG,
    NEED_RECIPIENT,
    START_DATA,
    with_enhanced_code,
)
from mailintake.intake.rules import SessionRules

log = logging.getLogger(__name__)

# RFC 5321 allows 1,000 octets a line; reports sent straight to us with one long line
# (unwrapped HTML, a one-line proof of concept) are accepted rather than bounced.
LINE_LENGTH_LIMIT = 65_536
# A peer that does not read our last reply gets this long before the connection is dropped.
HANG_UP_GRACE = 5.0
# DATA replies sent here rather than by the handler; LMTP repeats them once per recipient
# (RFC 2033 4.2).
DATA_PHASE_REPLIES = frozenset({MESSAGE_TOO_BIG, LINE_TOO_LONG})


class Phase(enum.Enum):
    COMMANDS = "commands"
    DATA = "data"
    STORING = "storing"


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
            await self.push(NEED_RECIPIENT)
            return
        if arg:
            await self.push(DATA_SYNTAX)
            return
        await self.push(START_DATA)
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


def protocol_factory(handler: IntakeHandler, protocol: str, rules: SessionRules) -> Callable[[], SMTP]:
    server_class = IntakeLMTP if protocol == "lmtp" else IntakeSMTP

    def build() -> SMTP:
        return server_class(handler, rules)

    return build

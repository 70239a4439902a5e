"""The DATA reader: the message up to CRLF.CRLF in one buffer, bounded in size."""

from __future__ import annotations

import asyncio
from typing import NamedTuple

from mailintake.intake.replies import LINE_TOO_LONG, MESSAGE_TOO_BIG

# An oversize message is read to its end before the 552 (RFC 5321 4.2.5), but only up to
# this many times the size limit: past that the sender is cut off, so a DATA that never
# ends cannot hold a connection for ever.
DRAIN_FACTOR = 2


class Refusal(NamedTuple):
    reply: str
    hang_up: bool


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

"""The DATA reader on its own: where a message ends, dot-unstuffing, and the size and line limits."""

from __future__ import annotations

import asyncio

import pytest

from mailintake.intake.data_reader import DRAIN_FACTOR, Refusal, received_message
from mailintake.intake.replies import LINE_TOO_LONG, MESSAGE_TOO_BIG


def read(data: bytes, size_limit: int = 1000, line_limit: int = 2**16) -> bytes | Refusal:
    async def run() -> bytes | Refusal:
        reader = asyncio.StreamReader(limit=line_limit)
        reader.feed_data(data)
        reader.feed_eof()
        return await received_message(reader, size_limit)

    return asyncio.run(run())


def test_a_message_ends_at_crlf_dot_crlf_and_is_dot_unstuffed() -> None:
    assert read(b"Subject: x\r\n\r\n..leading dot\r\nbody\r\n.\r\nQUIT\r\n") == b"Subject: x\r\n\r\n.leading dot\r\nbody\r\n"


@pytest.mark.parametrize(
    ("ending", "kept"),
    [
        (b"\n.\r\n", b"\n.\r\n"),
        (b"\n.\n", b"\n.\n"),
        (b"\r.\r\n", b"\r.\r\n"),
        # A line that starts with the dot loses it (dot-unstuffing) but ends nothing.
        (b"\r\n.\n", b"\r\n\n"),
    ],
)
def test_a_bare_line_break_around_the_dot_ends_nothing(ending: bytes, kept: bytes) -> None:
    assert read(b"body" + ending + b"more\r\n.\r\n") == b"body" + kept + b"more\r\n"


def test_a_message_over_the_size_limit_is_read_to_its_end_then_refused() -> None:
    assert read(b"x" * 600 + b"\r\n" + b"y" * 600 + b"\r\n.\r\n") == Refusal(MESSAGE_TOO_BIG, hang_up=False)


def test_a_message_far_over_the_size_limit_is_cut_off() -> None:
    line = b"z" * 98 + b"\r\n"
    assert read(line * (DRAIN_FACTOR * 10 + 1) + b".\r\n") == Refusal(MESSAGE_TOO_BIG, hang_up=True)


def test_a_line_over_the_line_limit_is_refused_once_the_message_ends() -> None:
    assert read(b"a" * 300 + b"\r\nok\r\n.\r\n", line_limit=100) == Refusal(LINE_TOO_LONG, hang_up=False)

"""The clients `bench/run.py` sends with: Postfix's smtp-source when installed, and an
asyncio client (aiosmtplib) that times each transaction, sends at a fixed rate, or sends
one large message. Every client sends one message per connection, as smtp-source does,
and a bounded number of them."""

from __future__ import annotations

import asyncio
import base64
import math
import random
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import aiosmtplib
from contenders import RECIPIENT, SENDER

CLIENT_TIMEOUT = 300.0
LINE = b"Steps to reproduce: open https://app.example.com/profile and submit the form twice.\r\n"


def smtp_source_path() -> str | None:
    return shutil.which("smtp-source") or next((path for path in ("/usr/sbin/smtp-source",) if Path(path).exists()), None)


def smtp_source_seconds(path: str, port: int, sessions: int, count: int, size: int) -> float:
    """Wall time for smtp-source to send `count` messages of `size` payload bytes over
    `sessions` parallel sessions, one message per connection."""
    command = [path, "-s", str(sessions), "-m", str(count), "-l", str(size), "-f", SENDER, "-t", RECIPIENT, "-M", "bench.example.org", f"127.0.0.1:{port}"]
    began = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=CLIENT_TIMEOUT)
    seconds = time.perf_counter() - began
    if result.returncode != 0:
        raise RuntimeError(f"smtp-source exited with {result.returncode}: {result.stderr.strip()[-300:]}")
    return seconds


def mail(tag: str, index: int, size: int) -> tuple[str, bytes]:
    """(Message-ID, a plain-text report of about `size` bytes); every one differs."""
    message_id = f"<{tag}-{index}@example.org>"
    headers = (
        f"From: Researcher <{SENDER}>\r\nTo: {RECIPIENT}\r\nSubject: Benchmark report {tag} {index}\r\n"
        f"Message-ID: {message_id}\r\nDate: {format_datetime(datetime.now(UTC))}\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
    ).encode()
    lines = max(1, (size - len(headers)) // len(LINE))
    return message_id, headers + LINE * lines + b"Suggested severity: medium\r\n"


def mails(tag: str, count: int, size: int) -> list[tuple[str, bytes]]:
    return [mail(tag, index, size) for index in range(count)]


def large_mail(tag: str, size: int) -> tuple[str, bytes]:
    """A report with a short text and one binary attachment (a screen recording, say),
    base64-encoded, about `size` bytes in all."""
    message_id = f"<{tag}@example.org>"
    boundary = "bench-boundary-0"
    head = (
        f"From: Researcher <{SENDER}>\r\nTo: {RECIPIENT}\r\nSubject: Benchmark report {tag} with a recording\r\n"
        f"Message-ID: {message_id}\r\nDate: {format_datetime(datetime.now(UTC))}\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'
        f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    ).encode() + LINE * 20
    part = f'--{boundary}\r\nContent-Type: video/mp4; name="poc.mp4"\r\nContent-Disposition: attachment; filename="poc.mp4"\r\nContent-Transfer-Encoding: base64\r\n\r\n'.encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    encoded_size = size - len(head) - len(part) - len(tail)
    payload = random.Random(size).randbytes(encoded_size // 78 * 57)
    encoded = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    return message_id, head + part + encoded + tail


@dataclass
class ClientRun:
    seconds: float = 0.0
    accepted: int = 0
    refused: int = 0
    transaction_seconds: list[float] = field(default_factory=list)
    accepted_at: dict[str, float] = field(default_factory=dict)


async def one_message(port: int, message_id: str, content: bytes, run: ClientRun) -> None:
    """One connection, one transaction; its time runs from MAIL to the reply after the data."""
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, local_hostname="bench.example.org", start_tls=False, timeout=CLIENT_TIMEOUT)
    await smtp.connect()
    try:
        await smtp.ehlo()
        began = time.perf_counter()
        await smtp.mail(SENDER)
        await smtp.rcpt(RECIPIENT)
        await smtp.data(content)
        run.transaction_seconds.append(time.perf_counter() - began)
        run.accepted_at[message_id] = time.monotonic()
        run.accepted += 1
    except aiosmtplib.SMTPResponseException:
        run.refused += 1
    finally:
        try:
            await smtp.quit()
        except aiosmtplib.SMTPException:
            smtp.close()


async def sent(port: int, sessions: int, batch: list[tuple[str, bytes]], rate: float | None) -> ClientRun:
    """Sends the batch over `sessions` concurrent connections at a time, as fast as they go
    or, with `rate`, message i not before i/rate seconds after the start."""
    run = ClientRun()
    queue: asyncio.Queue[tuple[int, str, bytes]] = asyncio.Queue()
    for index, (message_id, content) in enumerate(batch):
        queue.put_nowait((index, message_id, content))
    began = time.perf_counter()

    async def session() -> None:
        while not queue.empty():
            index, message_id, content = queue.get_nowait()
            if rate is not None:
                await asyncio.sleep(max(0.0, began + index / rate - time.perf_counter()))
            await one_message(port, message_id, content, run)

    await asyncio.gather(*(session() for _ in range(sessions)))
    run.seconds = time.perf_counter() - began
    return run


def asyncio_run(port: int, sessions: int, batch: list[tuple[str, bytes]], rate: float | None = None) -> ClientRun:
    return asyncio.run(sent(port, sessions, batch, rate))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]

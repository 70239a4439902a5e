"""The relay the benchmark points mailintake at: a bare aiosmtpd server that accepts
everything and appends one JSON line per message to a log (the moment it arrived on the
system-wide monotonic clock, Message-ID, In-Reply-To, recipients, size), so the benchmark
can time acknowledgements and count mail sent twice. Not a test.

    .venv/bin/python bench/relay_sink.py --port PORT --log FILE
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import IO, Any

from aiosmtpd.smtp import SMTP, Envelope, Session

HEADERS = BytesHeaderParser(policy=compat32)


def header_record(content: bytes) -> dict[str, str]:
    headers = HEADERS.parsebytes(content)
    return {name: str(headers.get(name, "")).strip() for name in ("Message-ID", "In-Reply-To")}


class RecordingSink:
    def __init__(self, log: IO[str]) -> None:
        self.log = log

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        record: dict[str, Any] = {"t": time.monotonic(), "to": list(envelope.rcpt_tos), "size": len(content), **header_record(content)}
        self.log.write(json.dumps(record) + "\n")
        self.log.flush()
        return "250 2.0.0 OK"


async def serve(port: int, log: IO[str]) -> None:
    sink = RecordingSink(log)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(sink, data_size_limit=None, hostname="relay-sink"), host="127.0.0.1", port=port)
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", required=True)
    arguments = parser.parse_args()
    with open(arguments.log, "a", encoding="utf-8") as log:
        asyncio.run(serve(arguments.port, log))


if __name__ == "__main__":
    main()

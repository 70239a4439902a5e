"""Kill the daemon while mail flows: every 250 must be in the database and become a report."""

from __future__ import annotations

import asyncio
import hashlib
import signal

import aiosmtplib
import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.daemon import WORKER_PROCESSES
from tests.integration.helpers import inbound_rows, report_mail, wait_until_processed

pytestmark = pytest.mark.slow

MESSAGES = 500
CONNECTIONS = 20


async def send_concurrently(port: int, mails: list[bytes], on_accepted, connections: int = CONNECTIONS) -> set[int]:
    """Send every mail once over `connections` parallel clients; return the indexes answered 250."""
    accepted: set[int] = set()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(len(mails)):
        queue.put_nowait(index)

    async def client() -> None:
        while not queue.empty():
            index = queue.get_nowait()
            try:
                _, reply = await aiosmtplib.send(mails[index], sender="researcher@example.org", recipients=["security@example.com"], hostname="127.0.0.1", port=port, start_tls=False, timeout=20)
            except (aiosmtplib.SMTPException, OSError):
                continue
            if reply.startswith("2.0.0"):
                accepted.add(index)
                on_accepted(len(accepted))

    await asyncio.gather(*(client() for _ in range(connections)))
    return accepted


def numbered_mails(count: int) -> list[bytes]:
    return [report_mail(subject=f"Report {index}", message_id=f"<load-{index}@example.org>", body=f"Finding number {index}\n") for index in range(count)]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_finishes_in_flight_deliveries_and_exits_cleanly(daemon_factory, sessions: sessionmaker[Session], signum: int) -> None:
    daemon = daemon_factory(**WORKER_PROCESSES)
    mails = numbered_mails(200)
    stopped: list[int] = []

    def stop_midway(accepted_so_far: int) -> None:
        if accepted_so_far >= 50 and not stopped:
            daemon.signal(signum)
            stopped.append(accepted_so_far)

    accepted = asyncio.run(send_concurrently(daemon.port, mails, stop_midway, connections=10))
    assert daemon.wait(40) == 0
    assert "stopped" in daemon.log()
    stored = {row.sha256 for row in inbound_rows(sessions)}
    assert {hashlib.sha256(mails[index]).hexdigest() for index in accepted} <= stored
    daemon.restart()
    wait_until_processed(sessions, len(stored))
    assert {row.status for row in inbound_rows(sessions)} == {"processed"}

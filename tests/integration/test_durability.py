"""Kill the daemon while mail flows: every 250 must be in the database and become a report."""

from __future__ import annotations

import asyncio
import hashlib
import signal
import time

import aiosmtplib
import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.integration.helpers import inbound_rows, report_mail, reports, wait_until_processed

pytestmark = pytest.mark.slow

MESSAGES = 500
CONNECTIONS = 25


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


def test_sigkill_during_500_concurrent_deliveries_loses_nothing_that_got_250(daemon_factory, sessions: sessionmaker[Session]) -> None:
    daemon = daemon_factory()
    mails = numbered_mails(MESSAGES)
    killed_at: list[int] = []

    def kill_midway(accepted_so_far: int) -> None:
        if accepted_so_far >= MESSAGES // 3 and not killed_at:
            daemon.signal(signal.SIGKILL)
            killed_at.append(accepted_so_far)

    accepted = asyncio.run(send_concurrently(daemon.port, mails, kill_midway))
    daemon.wait(10)
    assert killed_at, "the daemon was never killed"
    assert MESSAGES // 3 <= len(accepted) < MESSAGES, "the kill did not interrupt the flow"

    stored_before_restart = {row.sha256 for row in inbound_rows(sessions)}
    missing = [index for index in accepted if hashlib.sha256(mails[index]).hexdigest() not in stored_before_restart]
    assert missing == [], f"{len(missing)} messages answered 250 are not stored"
    pending_before_restart = sum(row.status == "received" for row in inbound_rows(sessions))

    daemon.restart()
    wait_until_processed(sessions, len(stored_before_restart), timeout=120)
    rows = inbound_rows(sessions)
    assert {row.status for row in rows} == {"processed"}
    subjects = {report.subject for report in reports(sessions)}
    assert {f"Report {index}" for index in accepted} <= subjects
    assert len(reports(sessions)) == len(rows)
    tracking_ids = [report.tracking_id for report in reports(sessions)]
    assert len(set(tracking_ids)) == len(tracking_ids)
    print(f"killed after {killed_at[0]} acks; {len(accepted)} acked, {len(rows)} stored, {pending_before_restart} finished after restart")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_finishes_in_flight_deliveries_and_exits_cleanly(daemon_factory, sessions: sessionmaker[Session], signum: int) -> None:
    daemon = daemon_factory()
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


def test_a_hung_database_answers_451_in_time_and_cannot_keep_the_daemon_from_stopping(daemon_factory, engine, sessions: sessionmaker[Session]) -> None:
    daemon = daemon_factory(intake={"store_timeout": 2}, listener={"shutdown_grace": 2})
    with engine.connect() as blocker:
        if engine.dialect.name == "sqlite":
            blocker.exec_driver_sql("SELECT 1")  # the engine's BEGIN IMMEDIATE holds the write lock
        else:
            blocker.exec_driver_sql("LOCK TABLE inbound_messages IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        errors, reply = asyncio.run(send_one(daemon.port, report_mail()))
        assert reply.startswith("4.3.0") and time.monotonic() - started < 10
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(15) == 75
        assert "storage did not answer within 2 s" in daemon.log()
        blocker.rollback()


async def send_one(port: int, mail: bytes) -> tuple:
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=20)
    await smtp.connect()
    try:
        await smtp.sendmail("researcher@example.org", ["security@example.com"], mail)
    except aiosmtplib.SMTPDataError as error:
        return {}, f"{error.message}"
    finally:
        smtp.close()
    return {}, "2.0.0"

"""Several worker processes, and several daemons on one PostgreSQL, share the stored queue:
every delivery is worked on once, a worker killed mid-batch loses nothing and doubles
nothing, and the listener answers at once while a backlog is worked off behind it."""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from collections import Counter
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from mailintake.intake.store import Delivery, store_deliveries
from mailintake.service.workers import CLAIMED_PER_LANE
from mailintake.storage.db import transaction
from mailintake.storage.models import InboundMessage, Report
from tests.daemon import free_port
from tests.integration.helpers import inbound_rows, report_mail, wait_until_processed
from tests.integration.relay import Relay

ARRIVED = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def stored_backlog(sessions: sessionmaker[Session], count: int) -> None:
    """`count` reports from as many researchers, stored as the listener would store them."""
    template = report_mail(subject="Finding NUMBER", sender="researcherNUMBER@example.org", message_id="<backlog-NUMBER@example.org>")
    for first in range(0, count, 500):
        numbers = [str(index).encode() for index in range(first, min(first + 500, count))]
        store_deliveries(sessions, [Delivery(ARRIVED, "smtp", "127.0.0.1", "client", f"researcher{number.decode()}@example.org", ("security@example.com",), template.replace(b"NUMBER", number)) for number in numbers])


def acknowledged_once_each(relay: Relay, count: int, resent: int = 0) -> None:
    """Every researcher got one acknowledgement, none two (a delivery worked on twice would
    compose two). `resent`: copies allowed of an outbox row that was being sent when its
    worker was killed; the copy has the same Message-ID (outbound/outbox.py)."""
    relay.wait_for(count, timeout=120)
    time.sleep(1)
    message_ids: dict[str, set[str]] = {}
    for item in relay.received:
        for address in item.rcpt_tos:
            message_ids.setdefault(address, set()).add(str(item.message["Message-ID"]))
    assert len(message_ids) == count and {len(ids) for ids in message_ids.values()} == {1}
    assert len(relay.received) - count <= resent, Counter(address for item in relay.received for address in item.rcpt_tos).most_common(3)


def assert_each_delivery_became_one_report(sessions: sessionmaker[Session], count: int, parsed_twice_allowed: int = 0) -> None:
    rows = inbound_rows(sessions)
    assert len(rows) == count and {row.status for row in rows} == {"processed"}
    with transaction(sessions) as session:
        assert session.scalar(select(func.count()).select_from(Report)) == count
        assert session.scalar(select(func.count()).select_from(InboundMessage).where(InboundMessage.claimed_by.is_not(None))) == 0
    # One attempt each: no delivery was parsed by two workers (a worker killed mid-delivery
    # leaves at most the deliveries it had claimed to be tried again).
    assert sum(row.attempts - 1 for row in rows) <= parsed_twice_allowed, Counter(row.attempts for row in rows)


def test_worker_processes_share_a_backlog_and_a_killed_one_loses_and_doubles_nothing(daemon_factory, sessions: sessionmaker[Session]) -> None:
    relay = Relay(free_port()).start()
    try:
        stored_backlog(sessions, 150)
        daemon = daemon_factory(relay={"port": relay.port}, workers={"processes": 2}, intake={"parse_workers": 2})
        deadline = time.monotonic() + 60
        while len(daemon.worker_pids()) < 2 or processed_count(sessions) < 30:
            assert time.monotonic() < deadline, "the workers did not start on the backlog"
            time.sleep(0.05)
        victim = daemon.worker_pids()[1]
        os.kill(victim, signal.SIGKILL)
        wait_until_processed(sessions, 150, timeout=180)
        # The killed worker's lanes had each prepared at most one batch it had not yet recorded.
        assert_each_delivery_became_one_report(sessions, 150, parsed_twice_allowed=CLAIMED_PER_LANE * 2)
        acknowledged_once_each(relay, 150, resent=1)
        assert f"worker {victim} exited with -9" in daemon.log()
        assert victim not in daemon.worker_pids() and len(daemon.worker_pids()) == 2, "the dead worker is replaced"
    finally:
        relay.stop()


def test_two_daemons_on_one_postgresql_work_each_delivery_once(daemon_factory, sessions: sessionmaker[Session], database_url: str) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("several daemons share one PostgreSQL; SQLite is one machine's single writer")
    relay = Relay(free_port()).start()
    try:
        stored_backlog(sessions, 200)
        first = daemon_factory(relay={"port": relay.port}, workers={"processes": 1})
        second = daemon_factory(relay={"port": relay.port}, workers={"processes": 1})
        wait_until_processed(sessions, 200, timeout=180)
        assert_each_delivery_became_one_report(sessions, 200)
        acknowledged_once_each(relay, 200)
        worked = [len(re.findall(r"mailintake\.pipeline: inbound \d+ ", daemon.log())) for daemon in (first, second)]
        assert sum(worked) == 200 and min(worked) > 0, f"deliveries worked on by each daemon: {worked}"
    finally:
        relay.stop()


def test_the_listener_answers_at_once_while_a_10000_message_backlog_is_worked_off(daemon_factory, sessions: sessionmaker[Session]) -> None:
    stored_backlog(sessions, 10_000)
    daemon = daemon_factory(workers={"processes": 1})
    deadline = time.monotonic() + 60
    while processed_count(sessions) < 20:
        assert time.monotonic() < deadline, "the worker did not start on the backlog"
        time.sleep(0.05)
    before = processed_count(sessions)
    answers = [greeting_and_ehlo_time(daemon.port) for _ in range(20) if time.sleep(0.1) is None]
    assert processed_count(sessions) > before, "the backlog was being worked off meanwhile"
    assert max(answers) < 0.1, f"slowest answer {max(answers) * 1000:.0f} ms; all: {sorted(round(answer * 1000) for answer in answers)}"


def greeting_and_ehlo_time(port: int) -> float:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        reader = connection.makefile("rb")
        assert reader.readline().startswith(b"220")
        connection.sendall(b"EHLO probe.example.org\r\n")
        while (line := reader.readline())[:4] != b"250 ":
            assert line.startswith(b"250-")
        elapsed = time.monotonic() - started
        connection.sendall(b"QUIT\r\n")
    return elapsed


def processed_count(sessions: sessionmaker[Session]) -> int:
    with transaction(sessions) as session:
        return session.scalar(select(func.count()).select_from(InboundMessage).where(InboundMessage.status != "received")) or 0


@pytest.mark.parametrize("processes", [0, 1], ids=["in-process", "worker-process"])
def test_a_pass_stuck_on_a_lock_does_not_keep_serve_from_stopping(daemon_factory, engine: Engine, processes: int) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("holds a table lock that only the pass waits for (SQLite has one lock for all)")
    daemon = daemon_factory(workers={"processes": processes}, listener={"shutdown_grace": 3})
    with engine.connect() as blocker:
        blocker.exec_driver_sql("LOCK TABLE milestones IN ACCESS EXCLUSIVE MODE")
        deadline = time.monotonic() + 30
        while not pass_waiting_on_a_lock(engine):
            assert time.monotonic() < deadline, "no SLA pass came to wait on the lock"
            time.sleep(0.1)
        started = time.monotonic()
        daemon.signal(signal.SIGTERM)
        code = daemon.wait(15)
        assert time.monotonic() - started < 3 + 1 and code in (0, 75)
        assert "stopped" in daemon.log() or "did not finish within 3 s" in daemon.log()
        blocker.rollback()


def pass_waiting_on_a_lock(engine: Engine) -> bool:
    with engine.connect() as connection:
        query = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND position('milestones' in query) > 0 AND pid <> pg_backend_pid()"
        return bool(connection.exec_driver_sql(query).scalar())

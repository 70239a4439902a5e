"""Hostile checklist cases 24–28: kills, a full disk, a database that is gone or hung, a
relay that is down. Nothing answered 250 is lost and nothing is sent twice. Real daemon
processes, real databases (SQLite and PostgreSQL), a real relay sink."""

from __future__ import annotations

import asyncio
import hashlib
import json
import resource
import signal
import time
from datetime import datetime, timedelta
from pathlib import Path

import aiosmtplib
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from mailintake.storage.db import create_database_engine, session_factory, upgrade_database
from tests.daemon import WORKER_PROCESSES, DaemonProcess, write_config
from tests.hostile.helpers import LEADS, TEAM, send_and_reply
from tests.integration.helpers import STAFF, inbound_rows, outbox, report_mail, reports, run_cli, send, wait_for_outbox, wait_until_processed
from tests.integration.relay import Relay
from tests.integration.test_durability import MESSAGES, numbered_mails, send_concurrently

pytestmark = pytest.mark.slow

DISK_HEADROOM = 64 * 1024
# As many parallel deliveries as one front MTA may open ([listener] max_connections_per_ip).
FRONT_MTA_CONNECTIONS = 20


def test_case_24_sigkill_during_500_concurrent_deliveries_loses_nothing_that_got_250(daemon_factory, sessions: sessionmaker[Session]) -> None:
    daemon = daemon_factory(**WORKER_PROCESSES)
    mails = numbered_mails(MESSAGES)
    killed_at: list[int] = []

    def kill_midway(accepted_so_far: int) -> None:
        if accepted_so_far >= MESSAGES // 3 and not killed_at:
            daemon.signal(signal.SIGKILL)
            killed_at.append(accepted_so_far)

    accepted = asyncio.run(send_concurrently(daemon.port, mails, kill_midway, connections=FRONT_MTA_CONNECTIONS))
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


def test_case_25_db_down_during_data_answers_451_4_3_0_and_the_retry_is_stored(daemon_factory, engine: Engine, sessions: sessionmaker[Session]) -> None:
    daemon = daemon_factory(**WORKER_PROCESSES)
    raw = report_mail()
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE inbound_messages RENAME TO inbound_messages_away"))
    code, reply = send_and_reply(daemon.port, raw)
    assert (code, reply) == (451, b"4.3.0 Storage temporarily unavailable, try again later")
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE inbound_messages_away RENAME TO inbound_messages"))
    assert inbound_rows(sessions) == []
    code, _ = send_and_reply(daemon.port, raw)
    assert code == 250
    assert [row.raw for row in inbound_rows(sessions)] == [raw]
    assert b"researcher@example.org" not in daemon.log().encode()


def test_case_25_hung_database_answers_451_in_time_and_cannot_keep_the_daemon_from_stopping(daemon_factory, engine, sessions: sessionmaker[Session]) -> None:
    daemon = daemon_factory(intake={"store_timeout": 2}, listener={"shutdown_grace": 2}, **WORKER_PROCESSES)
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


def largest_file(directory: Path) -> int:
    return max(path.stat().st_size for path in directory.iterdir() if path.is_file())


def test_case_25_disk_full_during_data_answers_451_and_nothing_is_lost(tmp_path: Path) -> None:
    """A full disk as SQLite meets it: the daemon may not write beyond its files' current
    size (RLIMIT_FSIZE, set on the running process), so the commit of a large mail fails."""
    url = f"sqlite:///{tmp_path / 'mailintake.db'}"
    engine = create_database_engine(url)
    upgrade_database(engine)
    sessions = session_factory(engine)
    daemon = DaemonProcess(write_config(tmp_path / "config.toml", url), tmp_path / "daemon.log")
    daemon.start()
    try:
        assert daemon.process is not None
        assert send_and_reply(daemon.port, report_mail(message_id="<before-full@example.org>"))[0] == 250
        wait_until_processed(sessions, 1)
        large = report_mail(message_id="<while-full@example.org>", body="".join(f"Request {number}: GET /api/items/{number}?q=%27\n" for number in range(4000)))
        _, hard = resource.prlimit(daemon.process.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(daemon.process.pid, resource.RLIMIT_FSIZE, (largest_file(tmp_path) + DISK_HEADROOM, hard))
        assert len(large) > 2 * DISK_HEADROOM
        code, reply = send_and_reply(daemon.port, large)
        resource.prlimit(daemon.process.pid, resource.RLIMIT_FSIZE, (hard, hard))
        assert (code, reply) == (451, b"4.3.0 Storage temporarily unavailable, try again later")
        assert [row.raw for row in inbound_rows(sessions)] == [report_mail(message_id="<before-full@example.org>")]
        assert send_and_reply(daemon.port, large)[0] == 250
        wait_until_processed(sessions, 2)
        assert [row.raw for row in inbound_rows(sessions)][1] == large
        assert daemon.process.poll() is None
    finally:
        daemon.terminate()
        engine.dispose()


def test_case_26_crash_between_store_and_ack_sends_each_mail_once(daemon_factory, sessions: sessionmaker[Session]) -> None:
    # Relay timeout 1 s: a row the killed daemon had claimed is free again after the 10 s lease.
    daemon = daemon_factory(relay={"timeout": 1}, **STAFF, **WORKER_PROCESSES)
    for number in range(3):
        send(daemon.port, report_mail(message_id=f"<kill-{number}@example.org>", body=f"kill {number}"))
    wait_for_outbox(sessions, lambda rows: len(rows) == 6)
    daemon.signal(signal.SIGKILL)
    daemon.wait(10)
    relay = Relay(daemon.relay_port).start()
    try:
        daemon.restart()
        wait_for_outbox(sessions, lambda rows: all(row.status == "sent" for row in rows), timeout=60)
        time.sleep(2)
        message_ids = [item.message["Message-ID"] for item in relay.received]
        assert len(message_ids) == 6 and len(set(message_ids)) == 6
        assert sorted(message_ids) == sorted(f"<{row.message_id}>" for row in outbox(sessions))
    finally:
        relay.stop()


def test_case_27_same_message_id_twice_is_one_report_and_a_recorded_duplicate(daemon_factory, sessions: sessionmaker[Session]) -> None:
    daemon = daemon_factory(**WORKER_PROCESSES)
    raw = report_mail(message_id="<same@example.org>")
    assert send_and_reply(daemon.port, raw)[0] == 250
    assert send_and_reply(daemon.port, b"Received: from relay2.example.net by mx.example.com; Mon, 23 Nov 2026 10:00:05 +0100\r\n" + raw)[0] == 250
    wait_until_processed(sessions, 2)
    [report] = reports(sessions)
    rows = inbound_rows(sessions)
    assert [row.status for row in rows] == ["processed", "duplicate"]
    assert {row.report_id for row in rows} == {report.id}


def test_case_28_relay_down_and_a_restart_with_due_deadlines_still_alert_once(daemon_factory, sessions: sessionmaker[Session]) -> None:
    # Relay timeout 1 s: a row the killed daemon had claimed is free again after the 10 s lease.
    daemon = daemon_factory(relay={"timeout": 1}, **STAFF, **WORKER_PROCESSES)
    send(daemon.port, report_mail(message_id="<case28@example.org>"))
    wait_for_outbox(sessions, lambda rows: len(rows) == 2 and all(row.status == "pending" and row.last_reply for row in rows))
    assess = next(item for item in json.loads(run_cli(daemon.config_path, "sla", "status", "--json").stdout) if item["milestone"] == "assess")
    overdue = (datetime.fromisoformat(assess["due_at"]) + timedelta(minutes=5)).isoformat()
    assert run_cli(daemon.config_path, "sla", "check", "--now", overdue).returncode == 0
    alerts = [row for row in outbox(sessions) if row.kind.startswith("sla_")]
    assert {row.kind for row in alerts} >= {"sla_breach", "sla_escalation"} and all(row.status == "pending" for row in alerts)
    daemon.signal(signal.SIGKILL)
    daemon.wait(10)
    daemon.restart()
    relay = Relay(daemon.relay_port).start()
    try:
        rows = wait_for_outbox(sessions, lambda rows: all(row.status == "sent" for row in rows), timeout=60)
        assert run_cli(daemon.config_path, "sla", "check", "--now", overdue).stdout.endswith(": 0 mail(s) enqueued\n")
        time.sleep(1)
        message_ids = sorted(str(item.message["Message-ID"]) for item in relay.received)
        assert message_ids == sorted(f"<{row.message_id}>" for row in outbox(sessions)) and len(set(message_ids)) == len(rows)
        escalations = [item for item in relay.to(LEADS) if "Initial assessment" in item.message.get_body(("plain",)).get_content()]
        breaches = [item for item in relay.to(TEAM) if item.message["Message-ID"] in {f"<{row.message_id}>" for row in alerts if row.kind == "sla_breach"}]
        assert escalations and breaches
    finally:
        relay.stop()

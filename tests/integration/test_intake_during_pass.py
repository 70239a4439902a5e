"""Intake never waits on periodic work: with 100,000 open reports and an SLA pass enqueueing
thousands of alerts, mail sent meanwhile gets its 250 within a second (ARCHITECTURE.md: the
listener's only work before a 250 is the durable commit; jobs/sla_pass.py writes in short
batches so that commit gets in between them)."""

from __future__ import annotations

import smtplib
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, create_engine, func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from mailintake.storage.db import transaction
from mailintake.storage.models import InboundMessage, MilestoneRecord, OutboxMessage, Report
from tests.daemon import WORKER_PROCESSES, free_port
from tests.integration.helpers import STAFF, report_mail
from tests.integration.relay import Relay

pytestmark = pytest.mark.slow

OPEN_REPORTS = 100_000
# Due when the pass runs, among the open reports: in their warning window (one alert each),
# and breached without an alert yet (a breach and an escalation each).
WARNINGS_DUE = 1_000
BREACHES_DUE = 1_000
MILESTONES_DUE = WARNINGS_DUE + BREACHES_DUE
# Single alerts, or one combined mail per kind and batch when many are due (jobs/sla_pass.py).
ALERT_KINDS = ("sla_warning", "sla_breach", "sla_escalation", "sla_alert_burst")
PROBES = 6
PROBE_INTERVAL = 0.3
REPLY_BOUND = 1.0


def report_rows(count: int, now: datetime) -> list[dict[str, object]]:
    received = now - timedelta(days=40)
    return [
        {
            "tracking_id": f"SEC-{received.year}-{number:06d}",
            "origin_key": f"fill:{number}",
            "status": "new",
            "subject": f"Finding {number}",
            "envelope_sender": "",
            "anonymous": False,
            "urls": [],
            "endpoints": [],
            "received_at": received,
            "created_at": received,
        }
        for number in range(1, count + 1)
    ]


def milestone_timing(index: int, now: datetime) -> tuple[datetime, datetime | None]:
    """The deadline and next alert of the `index`th report's milestone: warnings due, then
    breaches due, then half of the rest breached long ago and alerted, half due in weeks."""
    if index < WARNINGS_DUE:
        due = now + timedelta(hours=2)
        return due, due - timedelta(hours=4)
    if index < WARNINGS_DUE + BREACHES_DUE:
        due = now - timedelta(hours=1)
        return due, due
    if index % 2 == 0:
        return now - timedelta(days=30), None
    due = now + timedelta(days=1 + index % 30)
    return due, due - timedelta(hours=4)


def milestone_rows(report_ids: list[int], now: datetime) -> list[dict[str, object]]:
    rows = []
    for index, report_id in enumerate(report_ids):
        due, next_alert = milestone_timing(index, now)
        rows.append(
            {
                "report_id": report_id,
                "name": "acknowledge",
                "started_at": due - timedelta(days=1),
                "computed_due_at": due,
                "due_at": due,
                "warn_at": due - timedelta(hours=4),
                "awaiting": True,
                "next_alert_at": next_alert,
            }
        )
    return rows


def fill_open_reports(sessions: sessionmaker[Session], now: datetime) -> None:
    """Core bulk inserts into the tables: the ORM's bulk insert starts a new statement
    wherever a row's None columns differ from the row before's (every other milestone here)."""
    with transaction(sessions) as session:
        session.execute(insert(Report.__table__), report_rows(OPEN_REPORTS, now))
        report_ids = list(session.scalars(select(Report.id).order_by(Report.id)))
        session.execute(insert(MilestoneRecord.__table__), milestone_rows(report_ids, now))


def milestones_due(reader: Engine, now: datetime) -> int:
    """How many of the milestones due at `now` the pass has yet to alert: it moves each
    alerted one's next alert on, whether it sent single alerts or a combined one."""
    with reader.connect() as connection:
        return connection.scalar(select(func.count()).select_from(MilestoneRecord).where(MilestoneRecord.next_alert_at <= now)) or 0


def alerts_enqueued(reader: Engine) -> int:
    with reader.connect() as connection:
        return connection.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind.in_(ALERT_KINDS))) or 0


def stored_count(reader: Engine) -> int:
    with reader.connect() as connection:
        return connection.scalar(select(func.count()).select_from(InboundMessage)) or 0


def wait_for_first_batch(reader: Engine, now: datetime, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while milestones_due(reader, now) == MILESTONES_DUE:
        assert time.monotonic() < deadline, f"no SLA batch committed within {timeout} s"
        time.sleep(0.05)


def reply_seconds(port: int, number: int) -> float:
    """Seconds from the DATA command to the 250 after the message's last line."""
    sender = f"prober{number}@example.org"
    raw = report_mail(subject=f"Probe {number}", sender=sender, message_id=f"<probe-{number}@example.org>")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("probe.example.org")
        client.mail(sender)
        client.rcpt("security@example.com")
        started = time.monotonic()
        code, _ = client.data(raw)
        elapsed = time.monotonic() - started
    assert code == 250
    return elapsed


def test_mail_sent_during_an_sla_pass_over_100000_open_reports_gets_its_250_within_a_second(daemon_factory, sessions: sessionmaker[Session], database_url: str) -> None:
    # The daemon runs on the wall clock, so the deadlines are laid out around it.
    now = datetime.now(UTC)
    fill_open_reports(sessions, now)
    # Plain engine: on SQLite its reads take no write lock (create_database_engine begins
    # every transaction IMMEDIATE), so watching the pass does not slow it or intake.
    reader = create_engine(database_url)
    relay = Relay(free_port()).start()
    try:
        assert milestones_due(reader, now) == MILESTONES_DUE
        daemon = daemon_factory(relay={"port": relay.port}, scheduler={"sla_interval": 1}, **WORKER_PROCESSES, **STAFF)
        wait_for_first_batch(reader, now, timeout=60)
        probes: list[tuple[float, int]] = []
        for number in range(PROBES):
            time.sleep(PROBE_INTERVAL)
            probes.append((reply_seconds(daemon.port, number), milestones_due(reader, now)))
        alerts = alerts_enqueued(reader)
        stored = stored_count(reader)
    finally:
        relay.stop()
        reader.dispose()
    report = f"replies in ms (milestones still due when answered): {[(round(seconds * 1000), due) for seconds, due in probes]}"
    assert any(due for _, due in probes), f"no probe was answered while the pass was still running; {report}"
    assert alerts >= 1, f"the pass enqueued none of {ALERT_KINDS}"
    assert stored == PROBES
    assert max(seconds for seconds, _ in probes) < REPLY_BOUND, report

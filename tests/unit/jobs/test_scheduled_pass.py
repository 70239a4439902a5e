"""The scheduled pass holds no long write transaction: the due milestones are read in one
short transaction, their alerts enqueued in batches that each commit on their own, the
digest in its own. Every alert goes out once; a batch that fails costs only the milestone
that failed; a deadline moved meanwhile, or locked by a reply, is left alone; a pass
asked to stop (the scheduler shutting down) stops between batches."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from mailintake.config.loading import load_config
from mailintake.config.schema import Config
from mailintake.core.clock import utc_now
from mailintake.deadlines.closures import effective_calendar
from mailintake.jobs.sla_pass import ALERTED_IN_BURST, BATCH_SIZE, batch_alerts, due_milestone_ids, sla_pass_in_batches
from mailintake.outbound.notices import Notices
from mailintake.outbound.templates import Templates
from mailintake.service.scheduler import scheduled_pass, start_scheduler
from mailintake.storage.db import transaction
from mailintake.storage.models import MilestoneRecord, OutboxMessage, Report
from tests.daemon import REPO
from tests.unit.jobs.queues import Deadline, counted, outbox_rows, queued

# Monday 23 November 2026, 13:00 in Amsterdam: after the digest time, so a pass sends it.
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
RECEIVED = NOW - timedelta(days=10)
ALERTS = ("sla_breach", "sla_escalation")


@pytest.fixture
def config() -> Config:
    return load_config(REPO / "config.example.toml", environ={})


@pytest.fixture
def notices(config: Config) -> Notices:
    return Notices(config, Templates(None), config.secrets.reply_key())


def breached(count: int, subject: str = "") -> list[Deadline]:
    """Deadlines missed a day ago whose breach is not alerted yet: two alerts each."""
    due = NOW - timedelta(days=1)
    return [Deadline(due, warn_at=due - timedelta(hours=6), next_alert_at=due, subject=subject) for _ in range(count)]


def milestone_ids(sessions: sessionmaker[Session], tracking_ids: list[str]) -> list[int]:
    with transaction(sessions) as session:
        by_report = dict(session.execute(select(Report.tracking_id, MilestoneRecord.id).join(MilestoneRecord, MilestoneRecord.report_id == Report.id)).all())
    return [by_report[tracking_id] for tracking_id in tracking_ids]


def alerted(sessions: sessionmaker[Session]) -> Counter[tuple[str, int]]:
    """How many outbox rows each (kind, milestone id) has."""
    return Counter((row.kind, int(row.key.split(":")[1])) for row in outbox_rows(sessions) if row.kind in ALERTS)


def still_due(sessions: sessionmaker[Session]) -> set[int]:
    """The milestones a later pass will look at (a breach alerted in a combined mail waits for a moment that never comes)."""
    with transaction(sessions) as session:
        return set(session.scalars(select(MilestoneRecord.id).where(MilestoneRecord.next_alert_at < ALERTED_IN_BURST)))


def calendar_of(sessions: sessionmaker[Session], config: Config):  # type: ignore[no-untyped-def]
    with transaction(sessions) as session:
        return effective_calendar(session, config.calendar)


def test_a_backlog_of_alerts_is_enqueued_in_short_transactions_one_mail_per_kind_and_batch(engine: Engine, sessions: sessionmaker[Session], config: Config, notices: Notices) -> None:
    count = BATCH_SIZE + 20
    queued(sessions, breached(count), RECEIVED)
    with counted(engine) as seen:
        assert scheduled_pass(sessions, config, notices, NOW) == 2 * 2 + 1  # two batches, and the digest
    # Each batch committed its own combined breach and escalation; the backlog took two.
    assert [rows for rows in seen.outbox_rows_per_commit if rows] == [2, 2, 1]
    assert sorted(row.kind for row in outbox_rows(sessions)) == ["daily_digest"] + ["sla_alert_burst"] * 4
    assert still_due(sessions) == set()
    assert scheduled_pass(sessions, config, notices, NOW + timedelta(minutes=1)) == 0
    assert len(outbox_rows(sessions)) == 2 * 2 + 1


def test_a_failing_batch_costs_only_the_milestone_that_failed(tmp_path: Path, engine: Engine, sessions: sessionmaker[Session], config: Config, notices: Notices, caplog: pytest.LogCaptureFixture) -> None:
    deadlines = breached(8)
    deadlines[1] = breached(1, subject="Broken template")[0]
    ids = milestone_ids(sessions, queued(sessions, deadlines, RECEIVED))
    refused, broken = ids[4], ids[1]
    refuse_outbox_key(engine, f"sla_breach:{refused}:%")
    override = tmp_path / "templates"
    override.mkdir()
    shipped = (REPO / "templates" / "sla_escalation.txt.j2").read_text()
    (override / "sla_escalation.txt.j2").write_text(shipped.replace("\nEscalation: ", '\n{% if report.subject == "Broken template" %}{{ no_such_name }}{% endif %}Escalation: ', 1))
    failing = Notices(config, Templates(override), config.secrets.reply_key())
    calendar = calendar_of(sessions, config)

    with caplog.at_level(logging.ERROR):
        sla_pass_in_batches(sessions, config.sla, calendar, failing, NOW, batch_size=3)
    expected = {(kind, milestone): 1 for kind in ALERTS for milestone in ids if milestone != refused and (kind, milestone) != ("sla_escalation", broken)}
    assert alerted(sessions) == Counter(expected)
    assert [row.kind for row in outbox_rows(sessions, "template_failure")] == ["template_failure"]
    assert still_due(sessions) == {refused, broken}
    assert f"SLA alerts for milestone {refused} could not be enqueued (IntegrityError); tried again next pass" in caplog.messages
    assert not any("Broken template" in message for message in caplog.messages)

    allow_outbox_keys(engine)
    assert sorted(sla_pass_in_batches(sessions, config.sla, calendar, notices, NOW + timedelta(minutes=1), batch_size=3)) == ["sla_breach", "sla_escalation", "sla_escalation"]
    assert alerted(sessions) == Counter({(kind, milestone): 1 for kind in ALERTS for milestone in ids})
    assert still_due(sessions) == set()


def refuse_outbox_key(engine: Engine, pattern: str) -> None:
    """The database refuses outbox rows whose key is like `pattern`: a batch fails
    inside the database, past every check in Python."""
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.execute(text(f"CREATE TRIGGER refuse_key BEFORE INSERT ON outbox WHEN NEW.key LIKE '{pattern}' BEGIN SELECT RAISE(ABORT, 'refused'); END"))
            return
        connection.execute(text(f"CREATE FUNCTION refuse_key() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.key LIKE '{pattern}' THEN RAISE EXCEPTION 'refused' USING ERRCODE = 'check_violation'; END IF; RETURN NEW; END $$"))
        connection.execute(text("CREATE TRIGGER refuse_key BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION refuse_key()"))


def allow_outbox_keys(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("DROP TRIGGER refuse_key" if engine.dialect.name == "sqlite" else "DROP TRIGGER refuse_key ON outbox"))


def test_a_deadline_moved_after_the_pass_read_it_is_left_alone(sessions: sessionmaker[Session], config: Config, notices: Notices) -> None:
    ids = milestone_ids(sessions, queued(sessions, breached(3), RECEIVED))
    with transaction(sessions) as session:
        due = due_milestone_ids(session, NOW)
    assert due == ids
    # Meanwhile a reply met the first deadline's report halfway: its deadline moved on.
    with transaction(sessions) as session:
        session.execute(update(MilestoneRecord).where(MilestoneRecord.id == ids[0]).values(due_at=NOW + timedelta(days=2), next_alert_at=NOW + timedelta(days=1)))
    assert batch_alerts(sessions, due, config.sla, calendar_of(sessions, config), notices, NOW) == ["sla_breach", "sla_escalation"] * 2
    assert set(alerted(sessions)) == {(kind, milestone) for kind in ALERTS for milestone in ids[1:]}


def test_a_milestone_locked_by_a_reply_is_skipped_not_waited_for(engine: Engine, sessions: sessionmaker[Session], config: Config, notices: Notices) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite has one writer")
    ids = milestone_ids(sessions, queued(sessions, breached(3), RECEIVED))
    calendar = calendar_of(sessions, config)
    with engine.connect() as reply:
        reply.execute(select(MilestoneRecord.id).where(MilestoneRecord.id == ids[1]).with_for_update())
        started = time.monotonic()
        assert len(sla_pass_in_batches(sessions, config.sla, calendar, notices, NOW)) == 4
        assert time.monotonic() - started < 5
        reply.rollback()
    assert still_due(sessions) == {ids[1]}
    assert sla_pass_in_batches(sessions, config.sla, calendar, notices, NOW) == list(ALERTS)
    assert alerted(sessions) == Counter({(kind, milestone): 1 for kind in ALERTS for milestone in ids})


def test_a_pass_asked_to_stop_stops_between_batches_and_the_next_carries_on(sessions: sessionmaker[Session], config: Config, notices: Notices) -> None:
    count = BATCH_SIZE + 5
    queued(sessions, breached(count), RECEIVED)
    asked: list[bool] = []

    def stop_after_one_batch() -> bool:
        asked.append(True)
        return len(asked) > 1

    # The first batch's breaches and escalations, each kind as one mail (a burst).
    assert scheduled_pass(sessions, config, notices, NOW, stop_after_one_batch) == 2
    assert outbox_rows(sessions, "daily_digest") == []
    # The next pass finds five left: too few for a burst, each alerted on its own.
    assert scheduled_pass(sessions, config, notices, NOW) == 2 * 5 + 1
    assert len(alerted(sessions)) == 2 * 5
    assert still_due(sessions) == set()


def test_shutting_the_scheduler_down_stops_its_pass_after_the_current_batch(sessions: sessionmaker[Session], config: Config, notices: Notices) -> None:
    count = 4 * BATCH_SIZE
    queued(sessions, breached(count), RECEIVED)

    def outbox_count() -> int:
        with transaction(sessions) as session:
            return session.scalar(select(func.count()).select_from(OutboxMessage)) or 0

    async def shut_down_during_the_pass() -> None:
        # The real clock: APScheduler runs a job due at a moment already past only within
        # its misfire grace time. The deadlines are long past at either moment.
        scheduler = start_scheduler(sessions, config, notices, utc_now, lambda: None)
        deadline = time.monotonic() + 60
        while outbox_count() == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        scheduler.shutdown(wait=False)

    # asyncio.run returns once the pass's thread has ended, as `serve` does at shutdown.
    asyncio.run(shut_down_during_the_pass())
    assert 0 < outbox_count() < 2 * count

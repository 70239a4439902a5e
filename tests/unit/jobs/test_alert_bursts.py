"""A burst of due SLA alerts (a backlog, a long closure ending, a restart after downtime)
is one mail per kind and batch, not one per milestone: counted in full, the most urgent
listed. Every milestone it covers is done in the same transaction, so no later pass
alerts it again, and a batch that fails or a pass that crashes before its commit leaves
neither the mail nor the advances (real SQLite and PostgreSQL)."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session, selectinload, sessionmaker

from mailintake.config.schema import Config
from mailintake.deadlines.closures import effective_calendar
from mailintake.deadlines.milestones import refresh_milestones
from mailintake.jobs.sla_pass import ALERTED_IN_BURST, BATCH_SIZE, BURST_ITEMS, BURST_THRESHOLD, sla_pass, sla_pass_in_batches
from mailintake.outbound.notices import Notices, sla_alert_burst_key
from mailintake.storage.db import transaction
from mailintake.storage.models import MilestoneRecord, OutboxMessage, Report
from tests.unit.jobs.queues import Deadline, counted, mail_of, outbox_rows, queued, text_of
from tests.unit.jobs.test_scheduled_pass import NOW, RECEIVED, breached, calendar_of, config, notices, still_due  # noqa: F401 (fixtures)

BURST_KEY = re.compile(r"sla_burst:(sla_breach|sla_escalation|sla_warning|progress_reminder):[0-9a-f]{32}")
LISTED = re.compile(r"^  - \[(SEC-[0-9-]+)\]", re.MULTILINE)


def breached_one_minute_apart(count: int) -> list[Deadline]:
    """Deadlines missed from a day ago back, the last the most overdue."""
    dues = [NOW - timedelta(days=1, minutes=number) for number in range(count)]
    return [Deadline(due, warn_at=due - timedelta(hours=6), next_alert_at=due) for due in dues]


def burst_rows(sessions: sessionmaker[Session], kind: str) -> list[OutboxMessage]:
    return [row for row in outbox_rows(sessions, "sla_alert_burst") if row.key.startswith(f"sla_burst:{kind}:")]


def next_alerts(sessions: sessionmaker[Session]) -> set[object]:
    with transaction(sessions) as session:
        return set(session.scalars(select(MilestoneRecord.next_alert_at)))


def milestones_by_due(sessions: sessionmaker[Session]) -> list[MilestoneRecord]:
    """The milestones in the order the pass batches them (their next alert is their deadline)."""
    with transaction(sessions) as session:
        return list(session.scalars(select(MilestoneRecord).order_by(MilestoneRecord.due_at, MilestoneRecord.id)))


def test_500_due_breaches_are_one_mail_per_kind_and_batch_listing_the_most_overdue(engine: Engine, sessions: sessionmaker[Session], config: Config, notices: Notices) -> None:
    count = 5 * BATCH_SIZE
    tracking_ids = queued(sessions, breached_one_minute_apart(count), RECEIVED)
    batches = [milestones_by_due(sessions)[start : start + BATCH_SIZE] for start in range(0, count, BATCH_SIZE)]
    calendar = calendar_of(sessions, config)

    with counted(engine) as seen:
        assert sla_pass_in_batches(sessions, config.sla, calendar, notices, NOW) == ["sla_breach", "sla_escalation"] * 5
    assert [rows for rows in seen.outbox_rows_per_commit if rows] == [2] * 5
    rows = outbox_rows(sessions)
    assert len(rows) == 10 and {row.kind for row in rows} == {"sla_alert_burst"}
    breaches, escalations = burst_rows(sessions, "sla_breach"), burst_rows(sessions, "sla_escalation")
    assert [row.recipients for row in breaches] == [list(config.staff.notify)] * 5
    assert [row.recipients for row in escalations] == [list(config.staff.alerts)] * 5
    # Each mail's key names exactly the deadlines of its batch.
    assert [row.key for row in breaches] == [sla_alert_burst_key("sla_breach", batch) for batch in batches]
    assert [row.key for row in escalations] == [sla_alert_burst_key("sla_escalation", batch) for batch in batches]

    first = text_of(breaches[0])
    assert mail_of(breaches[0])["Subject"] == "Security reports: 100 deadlines missed"
    assert "  - Acknowledgement: 100\n" in first
    # The most overdue first: the batch of the oldest deadlines, listed oldest first, cut at BURST_ITEMS.
    assert LISTED.findall(first) == tracking_ids[::-1][:BURST_ITEMS]
    assert f"  ... and {BATCH_SIZE - BURST_ITEMS} more\n" in first
    assert all("@reporter.example.org" not in text_of(row) for row in rows)

    assert still_due(sessions) == set()
    assert next_alerts(sessions) == {ALERTED_IN_BURST}
    assert sla_pass_in_batches(sessions, config.sla, calendar, notices, NOW + timedelta(minutes=1)) == []
    assert len(outbox_rows(sessions)) == 10


@pytest.mark.parametrize(("count", "mails"), [(BURST_THRESHOLD, 2 * BURST_THRESHOLD), (BURST_THRESHOLD + 1, 2)])
def test_up_to_the_threshold_each_alert_is_a_mail_of_its_own_beyond_it_one_per_kind(sessions: sessionmaker[Session], config: Config, notices: Notices, count: int, mails: int) -> None:
    queued(sessions, breached(count), RECEIVED)
    assert len(sla_pass_in_batches(sessions, config.sla, calendar_of(sessions, config), notices, NOW)) == mails
    kinds = sorted(row.kind for row in outbox_rows(sessions))
    assert kinds == (["sla_breach"] * count + ["sla_escalation"] * count if count <= BURST_THRESHOLD else ["sla_alert_burst"] * 2)
    assert still_due(sessions) == set()


def test_warnings_in_a_burst_wait_for_their_deadline_as_single_ones_do(sessions: sessionmaker[Session], config: Config, notices: Notices) -> None:
    due = NOW + timedelta(hours=2)
    queued(sessions, [Deadline(due, warn_at=NOW - timedelta(hours=1), next_alert_at=NOW - timedelta(hours=1)) for _ in range(BURST_THRESHOLD + 5)], RECEIVED)
    calendar = calendar_of(sessions, config)
    assert sla_pass_in_batches(sessions, config.sla, calendar, notices, NOW) == ["sla_warning"]
    [warning] = burst_rows(sessions, "sla_warning")
    assert warning.recipients == list(config.staff.notify)
    assert "15 deadlines are approaching." in text_of(warning) and "Soonest due first" in text_of(warning)
    assert next_alerts(sessions) == {due}
    assert sla_pass_in_batches(sessions, config.sla, calendar, notices, NOW + timedelta(hours=1)) == []
    assert sla_pass_in_batches(sessions, config.sla, calendar, notices, due + timedelta(minutes=1)) == ["sla_breach", "sla_escalation"]
    assert len(outbox_rows(sessions)) == 3


def refreshed(sessions: sessionmaker[Session], config: Config, moment: datetime, tracking_ids: Sequence[str]) -> None:
    """These reports' deadlines recomputed, as a reply, a command or `sla recompute` does."""
    with transaction(sessions) as session:
        calendar = effective_calendar(session, config.calendar)
        for report in session.scalars(select(Report).where(Report.tracking_id.in_(tracking_ids)).options(selectinload(Report.milestones), selectinload(Report.pauses))):
            refresh_milestones(session, report, config.sla, calendar, moment)


def test_a_reply_after_a_burst_does_not_alert_its_deadlines_again(sessions: sessionmaker[Session], config: Config, notices: Notices) -> None:
    tracking_ids = queued(sessions, breached(BURST_THRESHOLD + 5), RECEIVED)
    refreshed(sessions, config, RECEIVED, tracking_ids)  # the deadlines the policy sets
    later = NOW + timedelta(days=60)
    calendar = calendar_of(sessions, config)
    assert sla_pass_in_batches(sessions, config.sla, calendar, notices, later) == ["sla_breach", "sla_escalation"]
    with transaction(sessions) as session:
        deadlines = set(session.execute(select(MilestoneRecord.id, MilestoneRecord.due_at)).all())
    # A staff reply to one report: its deadlines are recomputed, and stay where they were.
    refreshed(sessions, config, later + timedelta(minutes=1), tracking_ids[:1])
    with transaction(sessions) as session:
        assert set(session.execute(select(MilestoneRecord.id, MilestoneRecord.due_at)).all()) == deadlines
    assert sla_pass_in_batches(sessions, config.sla, calendar, notices, later + timedelta(minutes=2)) == []
    assert len(outbox_rows(sessions)) == 2


def test_a_burst_leaves_out_deadlines_already_alerted_one_by_one(sessions: sessionmaker[Session], config: Config, notices: Notices) -> None:
    queued(sessions, breached(5), RECEIVED)
    calendar = calendar_of(sessions, config)
    assert len(sla_pass_in_batches(sessions, config.sla, calendar, notices, NOW)) == 2 * 5
    queued(sessions, breached(BURST_THRESHOLD + 10), RECEIVED, prefix="SEC-2027-")
    # The five alerted ones looked at once more (a refresh set their next alert anew).
    with transaction(sessions) as session:
        session.execute(update(MilestoneRecord).where(MilestoneRecord.next_alert_at.is_(None)).values(next_alert_at=MilestoneRecord.due_at))
    assert sla_pass_in_batches(sessions, config.sla, calendar, notices, NOW) == ["sla_breach", "sla_escalation"]
    for kind in ("sla_breach", "sla_escalation"):
        [burst] = burst_rows(sessions, kind)
        assert "SEC-2026-" not in text_of(burst) and len(LISTED.findall(text_of(burst))) == BURST_THRESHOLD + 10
    assert len(outbox_rows(sessions)) == 2 * 5 + 2
    assert still_due(sessions) == set()


def refuse_alert_advances(engine: Engine) -> None:
    """The database refuses to move any milestone's next alert: a batch fails inside the
    database after its combined mails were written."""
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.execute(text("CREATE TRIGGER refuse_advance BEFORE UPDATE OF next_alert_at ON milestones BEGIN SELECT RAISE(ABORT, 'refused'); END"))
            return
        connection.execute(text("CREATE FUNCTION refuse_advance() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused' USING ERRCODE = 'check_violation'; END $$"))
        connection.execute(text("CREATE TRIGGER refuse_advance BEFORE UPDATE OF next_alert_at ON milestones FOR EACH ROW EXECUTE FUNCTION refuse_advance()"))


def allow_alert_advances(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("DROP TRIGGER refuse_advance" if engine.dialect.name == "sqlite" else "DROP TRIGGER refuse_advance ON milestones"))


def test_a_batch_failing_after_its_burst_was_written_keeps_neither_and_the_next_pass_sends_it_once(engine: Engine, sessions: sessionmaker[Session], config: Config, notices: Notices, caplog: pytest.LogCaptureFixture) -> None:
    count = BURST_THRESHOLD + 20
    queued(sessions, breached(count), RECEIVED)
    calendar = calendar_of(sessions, config)
    refuse_alert_advances(engine)
    with counted(engine) as seen, caplog.at_level(logging.ERROR):
        assert sla_pass_in_batches(sessions, config.sla, calendar, notices, NOW) == []
    assert any(statement.lstrip().upper().startswith("INSERT INTO OUTBOX ") for statement in seen.statements)
    assert not any(seen.outbox_rows_per_commit)
    assert outbox_rows(sessions) == [] and len(still_due(sessions)) == count
    assert f"SLA batch of {count} milestones failed (IntegrityError); trying them one at a time" in caplog.messages

    allow_alert_advances(engine)
    assert sla_pass_in_batches(sessions, config.sla, calendar, notices, NOW + timedelta(minutes=1)) == ["sla_breach", "sla_escalation"]
    assert len(burst_rows(sessions, "sla_breach")) == len(burst_rows(sessions, "sla_escalation")) == 1
    assert len(outbox_rows(sessions)) == 2 and still_due(sessions) == set()


def test_a_pass_that_crashes_before_its_commit_sends_its_burst_once_when_run_again(sessions: sessionmaker[Session], config: Config, notices: Notices) -> None:
    queued(sessions, breached(BURST_THRESHOLD + 20), RECEIVED)
    calendar = calendar_of(sessions, config)
    with pytest.raises(RuntimeError), transaction(sessions) as session:
        assert sla_pass(session, config.sla, calendar, notices, NOW) == ["sla_breach", "sla_escalation"]
        raise RuntimeError("killed before the commit")
    assert outbox_rows(sessions) == [] and len(still_due(sessions)) == BURST_THRESHOLD + 20

    with transaction(sessions) as session:
        assert sla_pass(session, config.sla, calendar, notices, NOW) == ["sla_breach", "sla_escalation"]
    keys = sorted(row.key for row in outbox_rows(sessions))
    assert len(keys) == 2 and all(BURST_KEY.fullmatch(key) for key in keys)
    # The same deadlines due again (a row restored by hand): the same burst, already out.
    with transaction(sessions) as session:
        session.execute(update(MilestoneRecord).values(next_alert_at=MilestoneRecord.due_at))
    with transaction(sessions) as session:
        assert sla_pass(session, config.sla, calendar, notices, NOW + timedelta(minutes=1)) == []
    assert sorted(row.key for row in outbox_rows(sessions)) == keys and still_due(sessions) == set()

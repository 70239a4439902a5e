"""deadlines/milestones.py against a real database (an SQLite file and, when configured,
PostgreSQL): deadlines stored on arrival, met, promised, paused, recomputed and listed.

One migrated database per backend for the whole module; each test runs in a transaction
that is rolled back (the functions under test flush, never commit), and reads its results
back from the database rather than from the objects it handed in.

Calendar: Europe/Amsterdam (UTC+1 in November), NL holidays (none in November 2026),
Mon–Fri 09:00–17:00. Mon 16 Nov, Thu 19 Nov, Mon 23 Nov, Mon 30 Nov 2026.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from mailintake.calendar.business import BusinessCalendar, Closure
from mailintake.deadlines.milestones import (
    UnknownMilestone,
    meet_milestone,
    milestone_views,
    milestones_due_before,
    record_promise,
    refresh_milestones,
    refresh_open_reports,
)
from mailintake.sla.policy import policy_from_mapping
from mailintake.storage.db import create_database_engine, upgrade_database
from mailintake.storage.models import MilestoneRecord, Pause, Report
from tests.conftest import postgresql_schema_url

UTC = UTC
POLICY = policy_from_mapping(
    {
        "acknowledge": {"within": "24 hours", "warn_at": 0.75},
        "assess": {"within": "3 business days", "warn_at": 0.5, "pausable": True},
        "update": {"after": "acknowledge", "every": "10 business days", "until": "resolve"},
        "resolve": {},
    }
)
NL = BusinessCalendar("Europe/Amsterdam", country="NL")
# Tue 17 and Wed 18 Nov closed: "3 business days" from Mon 16 Nov ends Mon 23 Nov, not Thu 19.
CLOSED_17_18 = BusinessCalendar("Europe/Amsterdam", country="NL", closures=(Closure(date(2026, 11, 17), date(2026, 11, 18), "office move"),))
# Wed 25 and Thu 26 Nov closed: "3 business days" from Mon 23 Nov ends Mon 30 Nov, not Thu 26.
CLOSED_25_26 = BusinessCalendar("Europe/Amsterdam", country="NL", closures=(Closure(date(2026, 11, 25), date(2026, 11, 26), "training"),))
MONDAY_16 = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
MONDAY_23 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def utc(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def migrated(url: str) -> Iterator[Engine]:
    engine = create_database_engine(url)
    upgrade_database(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def migrated_engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    if request.param == "sqlite":
        database: Path = tmp_path_factory.mktemp("deadlines") / "mailintake.db"
        yield from migrated(f"sqlite:///{database}")
        return
    with postgresql_schema_url("d") as url:
        yield from migrated(url)


@pytest.fixture
def session(migrated_engine: Engine) -> Iterator[Session]:
    with Session(migrated_engine) as session:
        yield session
        session.rollback()


def report_received(session: Session, received_at: datetime, number: int = 1, status: str = "new", calendar: BusinessCalendar = NL) -> Report:
    report = Report(tracking_id=f"SEC-2026-{number:04d}", origin_key=f"origin:{number}", status=status, received_at=received_at, created_at=received_at)
    session.add(report)
    session.flush()
    refresh_milestones(session, report, POLICY, calendar, received_at)
    return report


def stored(session: Session, report: Report) -> dict[str, MilestoneRecord]:
    """The report's milestone rows as the database holds them."""
    session.expire_all()
    rows = session.scalars(select(MilestoneRecord).where(MilestoneRecord.report_id == report.id).order_by(MilestoneRecord.id))
    return {row.name: row for row in rows}


def test_a_report_gets_one_row_per_milestone_with_its_deadline_and_warning(session: Session) -> None:
    report = report_received(session, MONDAY_16)
    rows = stored(session, report)
    assert list(rows) == ["acknowledge", "assess", "update", "resolve"]
    # acknowledge: 24 elapsed hours; warned after 18 of them.
    assert (rows["acknowledge"].due_at, rows["acknowledge"].warn_at) == (utc(11, 17, 9), utc(11, 17, 3))
    # assess: Tue 17, Wed 18, Thu 19 → Thu 17:00 local; half of its 31 business hours
    # (Mon 7, Tue 8) runs out Wed 09:30 local.
    assert (rows["assess"].due_at, rows["assess"].warn_at) == (utc(11, 19, 16), utc(11, 18, 8, 30))
    assert rows["assess"].computed_due_at == rows["assess"].due_at and rows["assess"].promised_due_at is None
    assert all(rows[name].started_at == MONDAY_16 for name in ("acknowledge", "assess", "resolve"))
    # update waits for the acknowledgement; resolve has no deadline of its own.
    assert (rows["update"].started_at, rows["update"].due_at) == (None, None)
    assert [name for name, row in rows.items() if row.awaiting] == ["acknowledge", "assess"]


def test_refreshing_again_updates_the_rows_it_made(session: Session) -> None:
    report = report_received(session, MONDAY_16)
    refresh_milestones(session, report, POLICY, CLOSED_17_18, MONDAY_16)
    refresh_milestones(session, report, POLICY, CLOSED_17_18, MONDAY_16)
    rows = stored(session, report)
    assert len(rows) == 4
    assert rows["assess"].due_at == utc(11, 23, 16)


def test_meeting_a_milestone_starts_the_ones_chained_on_it(session: Session) -> None:
    report = report_received(session, MONDAY_16)
    meet_milestone(session, report, "acknowledge", utc(11, 16, 15), "alice@example.com", POLICY, NL)
    rows = stored(session, report)
    assert (rows["acknowledge"].met_at, rows["acknowledge"].met_by, rows["acknowledge"].awaiting) == (utc(11, 16, 15), "alice@example.com", False)
    assert rows["acknowledge"].due_at == utc(11, 17, 9)
    # update: 10 business days after Mon 16 Nov (Tue 17 … Mon 30) → Mon 30 Nov 17:00 local.
    assert (rows["update"].started_at, rows["update"].due_at, rows["update"].awaiting) == (utc(11, 16, 15), utc(11, 30, 16), True)


def test_a_one_off_milestone_keeps_the_moment_it_was_first_met(session: Session) -> None:
    report = report_received(session, MONDAY_16)
    meet_milestone(session, report, "acknowledge", utc(11, 16, 15), "alice@example.com", POLICY, NL)
    meet_milestone(session, report, "acknowledge", utc(11, 17, 8), "bob@example.com", POLICY, NL)
    row = stored(session, report)["acknowledge"]
    assert (row.met_at, row.met_by) == (utc(11, 16, 15), "alice@example.com")


def test_meeting_a_recurring_duty_starts_its_next_round_and_drops_the_promise(session: Session) -> None:
    report = report_received(session, MONDAY_16)
    meet_milestone(session, report, "acknowledge", utc(11, 16, 15), "alice@example.com", POLICY, NL)
    record_promise(report, ("update",))
    session.flush()
    assert stored(session, report)["update"].promised_due_at == utc(11, 30, 16)
    meet_milestone(session, report, "update", utc(11, 25, 10), "bob@example.com", POLICY, NL)
    row = stored(session, report)["update"]
    # Next round: 10 business days after Wed 25 Nov (Thu 26 … Wed 9 Dec) → Wed 9 Dec 17:00 local.
    assert (row.met_at, row.met_by, row.promised_due_at) == (utc(11, 25, 10), "bob@example.com", None)
    assert (row.due_at, row.awaiting) == (utc(12, 9, 16), True)


def test_meeting_a_milestone_the_policy_lacks_is_refused(session: Session) -> None:
    report = report_received(session, MONDAY_16)
    with pytest.raises(UnknownMilestone):
        meet_milestone(session, report, "celebrate", utc(11, 16, 15), "alice@example.com", POLICY, NL)
    assert stored(session, report)["acknowledge"].met_at is None


def test_a_promise_is_recorded_only_for_unmet_deadlines_that_exist(session: Session) -> None:
    report = report_received(session, MONDAY_16)
    meet_milestone(session, report, "acknowledge", utc(11, 16, 15), "alice@example.com", POLICY, NL)
    record_promise(report, ("acknowledge", "assess", "resolve"))
    session.flush()
    rows = stored(session, report)
    assert {name: row.promised_due_at for name, row in rows.items()} == {"acknowledge": None, "assess": utc(11, 19, 16), "update": None, "resolve": None}


def test_a_promised_deadline_never_moves_later_but_may_move_earlier(session: Session) -> None:
    report = report_received(session, MONDAY_16)
    record_promise(report, ("assess",))
    refresh_milestones(session, report, POLICY, CLOSED_17_18, MONDAY_16)
    row = stored(session, report)["assess"]
    assert (row.due_at, row.computed_due_at, row.promised_due_at) == (utc(11, 19, 16), utc(11, 23, 16), utc(11, 19, 16))
    # The warning is computed against the promise, not the recomputed deadline: half of the
    # 15 business hours left before it (Mon 10-17, Thu 09-17 local) runs out Thu 09:30 local.
    assert row.warn_at == utc(11, 19, 8, 30)

    later = report_received(session, MONDAY_16, 2, calendar=CLOSED_17_18)
    record_promise(later, ("assess",))
    refresh_milestones(session, later, POLICY, NL, MONDAY_16)
    row = stored(session, later)["assess"]
    assert (row.due_at, row.computed_due_at, row.promised_due_at) == (utc(11, 19, 16), utc(11, 19, 16), utc(11, 23, 16))


def test_waiting_on_the_reporter_moves_even_a_promised_deadline_later(session: Session) -> None:
    report = report_received(session, MONDAY_16)
    record_promise(report, ("acknowledge", "assess"))
    report.pauses.append(Pause(started_at=utc(11, 17, 9), started_by="alice@example.com", ended_at=utc(11, 18, 9), ended_by="alice@example.com"))
    refresh_milestones(session, report, POLICY, NL, utc(11, 18, 9))
    rows = stored(session, report)
    # 8 business hours paused (Tue 10:00–17:00, Wed 09:00–10:00 local): Thu 17:00 → Fri 20 Nov 17:00 local.
    assert (rows["assess"].due_at, rows["assess"].promised_due_at) == (utc(11, 20, 16), utc(11, 19, 16))
    # acknowledge is not pausable: its promise holds.
    assert rows["acknowledge"].due_at == utc(11, 17, 9)


def test_a_calendar_change_recomputes_only_open_reports_due_after_it(session: Session) -> None:
    earlier = report_received(session, MONDAY_16, 1)
    current = report_received(session, MONDAY_23, 2)
    closed = report_received(session, MONDAY_23, 3, status="resolved")
    assert refresh_open_reports(session, POLICY, CLOSED_25_26, MONDAY_23, date(2026, 11, 25)) == 1
    # assess from Mon 23: Tue 24, (Wed 25, Thu 26 closed), Fri 27, Mon 30 → Mon 30 Nov 17:00 local.
    assert stored(session, current)["assess"].due_at == utc(11, 30, 16)
    assert stored(session, closed)["assess"].due_at == utc(11, 26, 16)
    assert stored(session, earlier)["assess"].due_at == utc(11, 19, 16)
    assert refresh_open_reports(session, POLICY, NL, MONDAY_23) == 1
    assert stored(session, current)["assess"].due_at == utc(11, 26, 16)


def test_deadlines_due_before_a_moment_are_the_unmet_ones_of_open_reports_soonest_first(session: Session) -> None:
    first = report_received(session, MONDAY_16, 1)
    report_received(session, MONDAY_23, 2)
    report_received(session, MONDAY_16, 3, status="rejected")
    meet_milestone(session, first, "acknowledge", utc(11, 16, 15), "alice@example.com", POLICY, NL)
    session.expire_all()
    due = [(row.report.tracking_id, row.name, row.due_at) for row in milestones_due_before(session, utc(11, 24, 12))]
    assert due == [("SEC-2026-0001", "assess", utc(11, 19, 16)), ("SEC-2026-0002", "acknowledge", utc(11, 24, 9))]


def test_milestone_views_list_open_reports_milestones_with_their_state_soonest_first(session: Session) -> None:
    report_received(session, MONDAY_16, 1)
    report_received(session, MONDAY_16, 2, status="duplicate")
    session.expire_all()
    views = milestone_views(session, POLICY, NL, utc(11, 18, 12))
    assert [(view.tracking_id, view.status.name, view.status.state, view.due_at) for view in views] == [
        ("SEC-2026-0001", "acknowledge", "breached", utc(11, 17, 9)),
        ("SEC-2026-0001", "assess", "warning", utc(11, 19, 16)),
        ("SEC-2026-0001", "update", "waiting", None),
        ("SEC-2026-0001", "resolve", "ok", None),
    ]


def test_milestone_views_judge_a_deadline_by_its_promise(session: Session) -> None:
    report = report_received(session, MONDAY_16)
    record_promise(report, ("assess",))
    session.flush()
    session.expire_all()
    views = milestone_views(session, POLICY, CLOSED_17_18, utc(11, 20, 12))
    [assess] = [view for view in views if view.status.name == "assess"]
    # Recomputed for the closure the deadline is Mon 23 Nov, but Thu 19 Nov was promised.
    assert (assess.computed_due_at, assess.promised_due_at, assess.due_at) == (utc(11, 23, 16), utc(11, 19, 16), utc(11, 19, 16))
    assert (assess.status.state, assess.status.due_at) == ("breached", utc(11, 19, 16))

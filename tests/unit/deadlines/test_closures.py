"""deadlines/closures.py against a real database (an SQLite file and, when configured,
PostgreSQL): every admin change of the calendar has its undo, which leaves the calendar and
the open reports' deadlines exactly as they were; a day never carries two admin entries, so
no listing shows contradictory entries for one day; a refused change writes nothing.

Calendar and reports: tests/unit/deadlines/calendar_admin.py.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from mailintake.config.schema import Config
from mailintake.deadlines.closures import (
    CLOSURE,
    AdminChange,
    CalendarAdminError,
    add_closure,
    calendar_entries,
    config_closure_on,
    official_holiday_on,
    recompute_after_change,
    remove_day,
    restore_day,
)
from mailintake.storage.db import transaction
from mailintake.storage.models import CalendarChange
from tests.unit.deadlines.calendar_admin import NOW, admin_rows, calendar_seen, config_written, deadlines, loaded, reports_with_deadlines

CHRISTMAS = date(2026, 12, 25)
# Tue 22 (business), Wed 23 (business), Thu 24 (config closure), Fri 25 and Sat 26 (public
# holidays), Sun 27: every kind of day an admin change can meet.
DAYS = tuple(date(2026, 12, 22) + timedelta(days=offset) for offset in range(6))
Op = tuple[str, date, date, str]


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> Config:
    return loaded(config_written(tmp_path / "config.toml", database_url))


def applied(sessions: sessionmaker[Session], config: Config, op: Op, by: str = "alice") -> tuple[AdminChange, int]:
    """The change an admin command makes, with the recomputation, in one transaction."""
    action, first_day, last_day, name = op
    with transaction(sessions) as session:
        if action == "add":
            added = add_closure(session, first_day, last_day, name, by, NOW)
            done = AdminChange("closed", added.first_day, added.last_day, added.name)
        elif action == "remove":
            done = remove_day(session, config.calendar, first_day, by, NOW)
        else:
            done = restore_day(session, first_day, by, NOW)
        return done, recompute_after_change(session, config.calendar, config.sla, NOW, done.first_day)


def undo_of(done: AdminChange) -> Op:
    return {
        "closed": ("remove", done.first_day, done.first_day, ""),
        "reopened": ("add", done.first_day, done.last_day, done.name),
        "worked": ("restore", done.first_day, done.first_day, ""),
        "restored": ("remove", done.first_day, done.first_day, ""),
    }[done.action]


def refused(sessions: sessionmaker[Session], config: Config, op: Op) -> str:
    """The one-line message of a change that is refused; asserts nothing was written."""
    before = admin_rows(sessions)
    with pytest.raises(CalendarAdminError) as refusal:
        applied(sessions, config, op)
    assert admin_rows(sessions) == before
    message = str(refusal.value)
    assert "\n" not in message
    return message


def assert_no_contradictions(session: Session, config: Config) -> None:
    """At most one admin entry a day; a worked holiday is an official holiday nothing else
    closes; the listing has, for each day, either a worked holiday alone or no worked holiday."""
    active = session.scalars(select(CalendarChange).where(CalendarChange.removed_at.is_(None))).all()
    per_day = Counter(day for change in active for day in DAYS if change.first_day <= day <= change.last_day)
    assert all(count == 1 for count in per_day.values()), per_day
    for change in active:
        if change.kind != CLOSURE:
            assert official_holiday_on(config.calendar, change.first_day) is not None and config_closure_on(config.calendar, change.first_day) is None
    sources: defaultdict[date, list[str]] = defaultdict(list)
    for entry in calendar_entries(session, config.calendar, 2026):
        for day in DAYS:
            if entry.first_day <= day <= entry.last_day:
                sources[day].append(entry.source)
    for day, found in sources.items():
        assert len(found) == len(set(found)), (day, found)
        assert "worked holiday (admin)" not in found or found == ["worked holiday (admin)"], (day, found)


# --- round trips: the undo leaves calendar and deadlines exactly as before -----------------


def test_working_christmas_and_restoring_it_leaves_the_calendar_and_every_deadline_as_before(sessions: sessionmaker[Session], config: Config) -> None:
    reports_with_deadlines(sessions, config)
    calendar, due = calendar_seen(sessions, config), deadlines(sessions)

    done, moved = applied(sessions, config, ("remove", CHRISTMAS, CHRISTMAS, ""))
    assert (done.action, done.name) == ("worked", "Christmas Day (NL)")
    assert moved > 0 and deadlines(sessions) != due and calendar_seen(sessions, config) != calendar
    assert dict(calendar_seen(sessions, config)[0])[CHRISTMAS] == "business day"

    restored, moved_back = applied(sessions, config, ("restore", CHRISTMAS, CHRISTMAS, ""), by="bob")
    assert (restored.action, restored.name, moved_back) == ("restored", "Christmas Day (NL)", moved)
    assert calendar_seen(sessions, config) == calendar
    assert deadlines(sessions) == due
    [(kind, *_, created_by, removed_by, removed_at)] = admin_rows(sessions)
    assert (kind, created_by, removed_by, removed_at) == ("worked_holiday", "alice", "bob", NOW)


def test_adding_a_closure_and_removing_it_leaves_the_calendar_and_every_deadline_as_before(sessions: sessionmaker[Session], config: Config) -> None:
    reports_with_deadlines(sessions, config)
    calendar, due = calendar_seen(sessions, config), deadlines(sessions)

    done, moved = applied(sessions, config, ("add", date(2026, 12, 22), date(2026, 12, 23), "office move"))
    assert moved > 0 and deadlines(sessions) != due
    reopened, moved_back = applied(sessions, config, ("remove", date(2026, 12, 23), date(2026, 12, 23), ""))
    assert (reopened.action, reopened.first_day, reopened.last_day, reopened.name) == ("reopened", done.first_day, done.last_day, "office move")
    assert moved_back == moved
    assert calendar_seen(sessions, config) == calendar
    assert deadlines(sessions) == due


# --- refusals: one line, a hint, nothing written --------------------------------------------


def test_a_day_with_nothing_to_undo_or_an_admin_entry_already_is_refused_with_a_hint(sessions: sessionmaker[Session], config: Config) -> None:
    assert "nothing to restore" in refused(sessions, config, ("restore", CHRISTMAS, CHRISTMAS, ""))
    assert "nothing to remove" in refused(sessions, config, ("remove", date(2026, 12, 22), date(2026, 12, 22), ""))
    assert "closed by config.toml (Christmas Eve)" in refused(sessions, config, ("remove", date(2026, 12, 24), date(2026, 12, 24), ""))

    applied(sessions, config, ("remove", CHRISTMAS, CHRISTMAS, ""))
    assert "`holidays restore 2026-12-25`" in refused(sessions, config, ("remove", CHRISTMAS, CHRISTMAS, ""))
    assert "`holidays restore 2026-12-25`" in refused(sessions, config, ("add", CHRISTMAS, CHRISTMAS, "Christmas after all"))
    assert "`holidays restore 2026-12-25`" in refused(sessions, config, ("add", date(2026, 12, 21), date(2027, 1, 4), "long break"))

    applied(sessions, config, ("add", date(2026, 12, 22), date(2026, 12, 23), "office move"))
    assert "`holidays remove 2026-12-22`" in refused(sessions, config, ("add", date(2026, 12, 23), date(2026, 12, 23), "training"))
    assert "`holidays remove 2026-12-23` ends" in refused(sessions, config, ("restore", date(2026, 12, 23), date(2026, 12, 23), ""))
    assert "ends before it starts" in refused(sessions, config, ("add", date(2026, 12, 23), date(2026, 12, 22), "x"))
    for name in ("  ", "a\r\nb", "\x1b[31mred", "\u202eevil", "x" * 256):
        assert "closure" in refused(sessions, config, ("add", date(2026, 11, 2), date(2026, 11, 2), name)), name


def test_two_admins_adding_closures_over_one_day_at_once_leave_one_entry(sessions: sessionmaker[Session], config: Config) -> None:
    """The second change waits for the first and then sees it: without the lock on
    PostgreSQL both would pass the check and the day would carry two closures."""
    outcome: list[CalendarAdminError | None] = []

    def second_admin() -> None:
        try:
            applied(sessions, config, ("add", date(2026, 12, 23), date(2026, 12, 23), "training"), by="bob")
            outcome.append(None)
        except CalendarAdminError as error:
            outcome.append(error)

    with transaction(sessions) as session:
        add_closure(session, date(2026, 12, 22), date(2026, 12, 23), "office move", "alice", NOW)
        thread = threading.Thread(target=second_admin)
        thread.start()
        thread.join(0.5)
        assert thread.is_alive(), "the second change did not wait for the first"
    thread.join(30)
    assert isinstance(outcome[0], CalendarAdminError) and "is already an admin closure" in str(outcome[0])
    assert [row[3] for row in admin_rows(sessions)] == ["office move"]


# --- any sequence: never a contradiction, every change undone and redone --------------------

OPS = st.one_of(
    st.tuples(st.sampled_from(DAYS), st.sampled_from(DAYS), st.integers(1, 3)).map(lambda drawn: ("add", min(drawn[:2]), max(drawn[:2]), f"closure {drawn[2]}")),
    st.tuples(st.sampled_from(("remove", "restore")), st.sampled_from(DAYS)).map(lambda drawn: (drawn[0], drawn[1], drawn[1], "")),
)


def test_no_sequence_of_changes_leaves_contradictory_entries_and_each_change_undoes_and_redoes(sessions: sessionmaker[Session], config: Config) -> None:
    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(ops=st.lists(OPS, min_size=1, max_size=6))
    def run(ops: list[Op]) -> None:
        with transaction(sessions) as session:
            session.execute(delete(CalendarChange))
        for op in ops:
            before = calendar_seen(sessions, config)
            try:
                done, _ = applied(sessions, config, op)
            except CalendarAdminError:
                assert calendar_seen(sessions, config) == before
                continue
            after = calendar_seen(sessions, config)
            with transaction(sessions) as session:
                assert_no_contradictions(session, config)
            applied(sessions, config, undo_of(done))
            assert calendar_seen(sessions, config) == before, (op, done)
            assert applied(sessions, config, op)[0] == done
            assert calendar_seen(sessions, config) == after, (op, done)

    run()

"""Warnings stored and listed for promised deadlines after the calendar changes, against a
real database (an SQLite file and, when configured, PostgreSQL): `holidays add` keeps a
promised deadline where it was, and its warning still comes before it, on an open day.

The property: for random calendars (zones, workdays, hours, holidays, config closures and
worked holidays), random start moments, every milestone of both shipped presets (loaded
through the config loader) and a closure added after the promise, every stored and listed
warning precedes its deadline and is not on a closed day while the office is open at some
moment between the milestone's start and its deadline.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailintake.calendar.business import BusinessCalendar
from mailintake.config.schema import CalendarConfig
from mailintake.core.vocabulary import SEVERITIES
from mailintake.deadlines.closures import CalendarAdminError, add_closure, effective_calendar, recompute_after_change, remove_day
from mailintake.deadlines.milestones import meet_milestone, milestone_views, record_promise, refresh_milestones
from mailintake.sla.policy import Policy
from mailintake.storage.models import MilestoneRecord, Report
from tests.unit.sla.random_calendars import PRESETS, calendar_configs, starts

# What staff meet, in order, so that every milestone of a preset gets a running deadline in
# some example: the first ones met start the chained ones.
MEETING_ORDER = {"policy-a.toml": ("acknowledge", "assess", "update", "resolve"), "policy-b.toml": ("confirm", "assess", "update", "resolve")}
NL_AMSTERDAM = CalendarConfig(timezone="Europe/Amsterdam", country="NL")


def local(text: str) -> datetime:
    return datetime.fromisoformat(text)


def new_report(session: Session, received_at: datetime, policy: Policy, calendar: BusinessCalendar, severity: str | None = None) -> Report:
    report = Report(tracking_id="SEC-2026-0001", origin_key="origin:1", status="new", received_at=received_at, created_at=received_at, severity=severity)
    session.add(report)
    session.flush()
    refresh_milestones(session, report, policy, calendar, received_at)
    return report


def stored(session: Session, report: Report) -> dict[str, MilestoneRecord]:
    session.expire_all()
    return {row.name: row for row in session.scalars(select(MilestoneRecord).where(MilestoneRecord.report_id == report.id))}


def rolled_back(sessions: sessionmaker[Session]) -> Iterator[Session]:
    with sessions() as session:
        yield session
        session.rollback()


def test_holidays_added_over_a_promised_deadline_keep_its_warning_before_it(sessions: sessionmaker[Session]) -> None:
    """Received Tue 1 Dec 2026 10:00: `3 business days` promised for Fri 4 Dec 17:00. Closing
    Wed 2 to Fri 4 keeps the promise; the warning does not move onto it (it did: both
    2026-12-04T17:00+01:00) but to 75% of the 7 business hours left before it: Tue 15:15."""
    policy = PRESETS["policy-a.toml"]
    for session in rolled_back(sessions):
        report = new_report(session, local("2026-12-01T10:00+01:00"), policy, NL_AMSTERDAM.business_calendar())
        record_promise(report, policy.names)
        add_closure(session, date(2026, 12, 2), date(2026, 12, 4), "office move", "alice", local("2026-12-01T11:00+01:00"))
        recompute_after_change(session, NL_AMSTERDAM, policy, local("2026-12-01T11:00+01:00"), date(2026, 12, 2))
        assess = stored(session, report)["assess"]
        assert (assess.due_at, assess.promised_due_at) == (local("2026-12-04T17:00+01:00"), local("2026-12-04T17:00+01:00"))
        assert assess.computed_due_at == local("2026-12-09T17:00+01:00")
        assert assess.warn_at == local("2026-12-01T15:15+01:00") == assess.next_alert_at
        (view,) = (view for view in milestone_views(session, policy, effective_calendar(session, NL_AMSTERDAM), local("2026-12-01T15:30+01:00")) if view.status.name == "assess")
        assert (view.due_at, view.status.warn_at, view.status.state) == (local("2026-12-04T17:00+01:00"), local("2026-12-01T15:15+01:00"), "warning")


def test_milestones_without_a_warning_store_none_not_their_deadline(sessions: sessionmaker[Session]) -> None:
    policy = PRESETS["policy-a.toml"]
    for session in rolled_back(sessions):
        report = new_report(session, local("2026-12-01T10:00+01:00"), policy, NL_AMSTERDAM.business_calendar())
        meet_milestone(session, report, "resolve", local("2026-12-01T12:00+01:00"), "alice", policy, NL_AMSTERDAM.business_calendar())
        notify = stored(session, report)["notify_resolved"]
        assert (notify.due_at, notify.warn_at, notify.next_alert_at) == (local("2026-12-02T17:00+01:00"), None, local("2026-12-02T17:00+01:00"))


def assert_warned_before(calendar: BusinessCalendar, fraction: float | None, started_at: datetime, due_at: datetime, warn_at: datetime | None, where: str) -> None:
    if fraction is None:
        assert warn_at is None, where
        return
    assert warn_at is not None, where
    assert started_at <= warn_at < due_at, f"{where}: warning {warn_at.isoformat()} not before deadline {due_at.isoformat()}"
    if calendar.business_time_between(started_at, due_at):
        assert calendar.is_business_day(warn_at.astimezone(calendar.zone).date()), f"{where}: warning {warn_at.isoformat()} on a closed day"


@dataclass(frozen=True)
class History:
    """A report's life up to a calendar change: its preset, calendar, arrival and severity,
    the minutes between the milestones staff met (MEETING_ORDER), the promise, the worked
    holidays and the closure added after the promise."""

    preset: str
    config: CalendarConfig
    start: datetime
    severity: str | None
    gaps: tuple[int, ...]
    promised_at: datetime
    worked: tuple[date, ...]
    closure: tuple[date, date]


@st.composite
def histories(draw: st.DrawFn) -> History:
    """The closure's days and the worked holidays are drawn apart: an admin entry cannot cover a worked holiday."""
    preset = draw(st.sampled_from(sorted(PRESETS)))
    config = draw(calendar_configs())
    start = draw(starts())
    met_count = draw(st.integers(0, len(MEETING_ORDER[preset])))
    gaps = tuple(draw(st.lists(st.integers(1, 12 * 24 * 60), min_size=met_count, max_size=met_count)))
    promised_at = start + timedelta(minutes=sum(gaps) + draw(st.integers(0, 3 * 24 * 60)))
    official = config.business_calendar()
    first = promised_at.astimezone(official.zone).date() + timedelta(days=draw(st.integers(-3, 20)))
    last = first + timedelta(days=draw(st.integers(0, 40)))
    candidates = sorted(day for year in (start.year, start.year + 1) for day in official.holidays_in(year) if not first <= day <= last)
    worked = tuple(draw(st.lists(st.sampled_from(candidates), max_size=3, unique=True))) if candidates else ()
    severity = draw(st.sampled_from((None, *SEVERITIES)))
    return History(preset, config, start, severity, gaps, promised_at, worked, (first, last))


def test_for_any_calendar_change_after_a_promise_every_warning_precedes_its_deadline(sessions: sessionmaker[Session]) -> None:
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(history=histories())
    def run(history: History) -> None:
        policy, config = PRESETS[history.preset], history.config
        for session in rolled_back(sessions):
            for day in history.worked:
                try:
                    remove_day(session, config, day, "alice", history.start - timedelta(days=1))
                except CalendarAdminError:
                    continue  # the holiday is also a config closure: changed in config.toml, not here
            calendar = effective_calendar(session, config)
            report = new_report(session, history.start, policy, calendar, history.severity)
            moment = history.start
            for name, gap in zip(MEETING_ORDER[history.preset], history.gaps, strict=False):
                moment += timedelta(minutes=gap)
                meet_milestone(session, report, name, moment, "alice", policy, calendar)
            refresh_milestones(session, report, policy, calendar, history.promised_at)
            record_promise(report, policy.names)
            session.flush()
            first, last = history.closure
            add_closure(session, first, last, "random closure", "alice", history.promised_at)
            recompute_after_change(session, config, policy, history.promised_at, first)
            after = effective_calendar(session, config)
            for name, row in stored(session, report).items():
                if row.awaiting and row.due_at is not None and row.started_at is not None:
                    assert_warned_before(after, policy.milestone(name).warn_at, row.started_at, row.due_at, row.warn_at, f"{history.preset} {name} stored")
            for view in milestone_views(session, policy, after, history.promised_at):
                status = view.status
                if status.state not in ("met", "waiting", "paused") and view.due_at is not None and status.started_at is not None:
                    assert_warned_before(after, policy.milestone(status.name).warn_at, status.started_at, view.due_at, status.warn_at, f"{history.preset} {status.name} listed")

    run()


def test_every_milestone_of_both_presets_can_get_a_warned_deadline() -> None:
    """The property above reaches every milestone with a deadline: each preset's meeting
    order starts every chained one."""
    for preset, policy in PRESETS.items():
        startable = {"received", *MEETING_ORDER[preset]}
        assert {milestone.name for milestone in policy.milestones if milestone.within or milestone.every} <= {milestone.name for milestone in policy.milestones if milestone.after in startable}

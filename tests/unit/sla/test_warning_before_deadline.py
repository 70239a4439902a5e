"""A warning comes before the deadline it warns of (sla/schedule.py: `warning_moment`): also
when that deadline is a promise a calendar change left earlier than the recomputed one, and
never on a closed day while the office is open at some moment between the start and the
deadline.

Calendar: Europe/Amsterdam, NL holidays, Mon-Fri 09:00-17:00. Mon 16 Nov 2026 (UTC+1),
Fri 20 Nov, Sat 21 Nov, Mon 23 Nov 2026.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailintake.calendar.business import BusinessCalendar, Closure
from mailintake.calendar.durations import Duration, parse_duration
from mailintake.config.schema import CalendarConfig
from mailintake.sla.policy import policy_from_mapping
from mailintake.sla.schedule import compute_schedule, warning_moment
from tests.unit.sla.random_calendars import PRESETS, calendar_configs, closures, starts

NL = BusinessCalendar("Europe/Amsterdam", country="NL")
CLOSED_17_18 = BusinessCalendar("Europe/Amsterdam", country="NL", closures=(Closure(date(2026, 11, 17), date(2026, 11, 18), "office move"),))
CLOSED_17_19 = BusinessCalendar("Europe/Amsterdam", country="NL", closures=(Closure(date(2026, 11, 17), date(2026, 11, 19), "office move"),))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="minutes")


WARNINGS = [
    (NL, "2026-11-16T10:00+01:00", "2026-11-17T10:00+01:00", "8 business hours", 0.75, "2026-11-16T16:00+01:00", "6 of 8 business hours"),
    (NL, "2026-11-16T10:00+01:00", "2026-11-17T10:00+01:00", "24 hours", 0.75, "2026-11-17T04:00+01:00", "18 real hours: an open day outside its hours stays"),
    (
        CLOSED_17_18,
        "2026-11-16T10:00+01:00",
        "2026-11-19T17:00+01:00",
        "3 business days",
        0.5,
        "2026-11-19T09:30+01:00",
        "the promise Thu 17:00 after Tue-Wed closed: half of its 15 business hours (Mon 7, Thu 8), not the recomputed deadline's",
    ),
    (CLOSED_17_19, "2026-11-16T17:30+01:00", "2026-11-19T17:00+01:00", "3 business days", 0.75, "2026-11-16T17:30+01:00", "the closure leaves no business time before the promise: warned at the start"),
    (NL, "2026-11-20T12:00+01:00", "2026-11-21T12:00+01:00", "24 hours", 0.75, "2026-11-20T17:00+01:00", "Sat 06:00 is closed and nothing opens before the deadline: back to Fri's closing"),
    (NL, "2026-11-21T12:00+01:00", "2026-11-23T12:00+01:00", "48 hours", 0.5, "2026-11-23T09:00+01:00", "Sun 12:00 is closed: on to Mon's opening, before the deadline"),
    (NL, "2026-11-20T20:00+01:00", "2026-11-23T08:00+01:00", "60 hours", 0.75, "2026-11-22T17:00+01:00", "closed from start to deadline: nowhere better, it stays on Sunday"),
    (NL, "2026-11-16T10:00+01:00", "2026-11-16T10:00+01:00", "24 hours", 0.75, "2026-11-16T10:00+01:00", "a deadline at its start has no time to warn in"),
]


@pytest.mark.parametrize(("calendar", "start", "due", "allowed", "fraction", "expected", "why"), WARNINGS, ids=[case[6] for case in WARNINGS])
def test_the_warning_comes_before_the_deadline_that_holds(calendar: BusinessCalendar, start: str, due: str, allowed: str, fraction: float, expected: str, why: str) -> None:
    assert iso(warning_moment(calendar, at(start), at(due), parse_duration(allowed), fraction)) == expected, why


def test_no_warning_without_a_fraction_or_a_deadline() -> None:
    start, due = at("2026-11-16T10:00+01:00"), at("2026-11-17T10:00+01:00")
    assert warning_moment(NL, start, due, parse_duration("24 hours"), None) is None
    assert warning_moment(NL, start, None, parse_duration("24 hours"), 0.5) is None


def test_an_elapsed_warning_on_a_weekend_is_moved_to_an_open_day_in_the_schedule() -> None:
    policy = policy_from_mapping({"acknowledge": {"within": "24 hours", "warn_at": 0.75}})
    status = compute_schedule(policy, NL, at("2026-11-20T12:00+01:00"), at("2026-11-20T12:00+01:00"))[0]
    assert (iso(status.due_at), iso(status.warn_at), status.allowed) == ("2026-11-21T12:00+01:00", "2026-11-20T17:00+01:00", Duration(24, "hours"))


def preset_deadlines() -> list[tuple[Duration, float]]:
    """Every (allowed time, warning fraction) the shipped presets can set a deadline with."""
    found = set()
    for policy in PRESETS.values():
        for milestone in policy.milestones:
            allowed = {milestone.within, milestone.every, *dict(milestone.severity_within).values()} - {None}
            found |= {(duration, milestone.warn_at) for duration in allowed if milestone.warn_at is not None}
    return sorted(found, key=str)


def assert_warned_before(calendar: BusinessCalendar, start: datetime, due: datetime, warning: datetime | None) -> None:
    assert warning is not None
    instant, deadline = warning.astimezone(UTC), due.astimezone(UTC)
    assert start.astimezone(UTC) <= instant < deadline, "the warning comes before its deadline"
    if calendar.business_time_between(start, due):
        assert calendar.is_business_day(warning.astimezone(calendar.zone).date()), "not on a closed day while the office opens before the deadline"


@settings(max_examples=200, deadline=None)
@given(
    config=calendar_configs(),
    start=starts(),
    deadline=st.sampled_from(preset_deadlines()) | st.tuples(st.builds(Duration, st.integers(1, 200), st.sampled_from(["hours", "business_hours", "business_days"])), st.floats(0.01, 0.99)),
    added=st.lists(closures(days=760, longest=60), max_size=2),
)
def test_for_any_calendar_change_after_a_promise_the_warning_precedes_the_deadline(config: CalendarConfig, start: datetime, deadline: tuple[Duration, float], added: list[Closure]) -> None:
    """The deadline promised on one calendar; closures added afterwards: the warning is
    computed on the new calendar against the deadline that holds (the earlier of the promise
    and the recomputed one)."""
    allowed, fraction = deadline
    before = config.business_calendar()
    after = config.business_calendar(tuple(added))
    promised = before.add(start, allowed)
    holds = min(promised, after.add(start, allowed))
    assert_warned_before(after, start, holds, warning_moment(after, start, holds, allowed, fraction))
    assert_warned_before(before, start, promised, warning_moment(before, start, promised, allowed, fraction))


def test_timedelta_rounding_cannot_put_a_warning_on_its_deadline() -> None:
    start = at("2026-11-16T10:00+01:00")
    due = start + timedelta(microseconds=1)
    assert warning_moment(NL, start, due, parse_duration("24 hours"), 0.9) == start

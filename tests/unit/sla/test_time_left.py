"""The time left to a deadline, in the deadline's unit (sla/time_left.py): what `sla status`
and the SLA alert mails both print.

Calendar: Europe/Amsterdam, NL holidays, Mon-Fri 09:00-17:00. Mon 16 Nov 2026 (UTC+1),
Fri 20 Nov, Mon 23 Nov; Fri 25 Dec 2026 Christmas Day, Sat 26 Dec Second Day of
Christmas; DST ends Sun 25 Oct 2026.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from mailintake.calendar.business import BusinessCalendar, Closure
from mailintake.calendar.durations import Unit
from mailintake.sla.time_left import business_days_left, hours_minutes_text, real_time_text, time_left_text

NL = BusinessCalendar("Europe/Amsterdam", country="NL")
# Tue 17 to Thu 19 Nov closed: a deadline promised for Thu 19 17:00 has no business time left from Tue.
CLOSED_17_19 = BusinessCalendar("Europe/Amsterdam", country="NL", closures=(Closure(date(2026, 11, 17), date(2026, 11, 19), "office move"),))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


LEFT: list[tuple[str, str, Unit | None, str, str]] = [
    # Elapsed deadlines: real time, in hours, whatever the calendar says.
    ("2026-11-16T10:50+01:00", "2026-11-17T10:00+01:00", "hours", "23 h 10 min left", "24 hours: 23 real hours to go, not 7h54m of business time"),
    ("2026-11-20T12:00+01:00", "2026-11-21T12:00+01:00", "hours", "24 h left", "over the weekend: still real time"),
    ("2026-11-16T10:00+01:00", "2026-11-19T10:00+01:00", "hours", "72 h left", "hours past 24 stay hours, the unit of '72 hours'"),
    ("2026-10-24T12:00+02:00", "2026-10-25T11:00+01:00", "hours", "24 h left", "across the end of DST: 24 real hours although the wall clock moves 23"),
    ("2026-11-16T10:00:30+01:00", "2026-11-16T10:01+01:00", "hours", "less than 1 min left", "under a minute"),
    # Business hours: business time, hours and minutes.
    ("2026-11-16T09:06+01:00", "2026-11-16T17:00+01:00", "business_hours", "7 h 54 min business time left", "the same day"),
    ("2026-11-20T16:00+01:00", "2026-11-23T11:00+01:00", "business_hours", "3 h business time left", "Fri 16-17 and Mon 09-11: the weekend does not count"),
    ("2026-11-20T18:00+01:00", "2026-11-23T09:45+01:00", "business_hours", "45 min business time left", "minutes only"),
    ("2026-12-24T16:00+01:00", "2026-12-28T10:00+01:00", "business_hours", "2 h business time left", "Christmas Day and the weekend do not count"),
    # Business days: whole business days, then the business time of the days only partly ahead.
    ("2026-11-16T10:02+01:00", "2026-11-19T17:00+01:00", "business_days", "3 business days 6 h 58 min left", "3 business days from Mon 10:00: Tue-Thu whole, Mon 10:02-17:00; not '1d 1h58m' of 24-hour days"),
    ("2026-11-17T12:00+01:00", "2026-11-19T17:00+01:00", "business_days", "2 business days 5 h left", "Wed and Thu whole, Tue 12-17"),
    ("2026-11-18T07:00+01:00", "2026-11-19T17:00+01:00", "business_days", "2 business days left", "before opening, today counts whole"),
    ("2026-11-18T17:30+01:00", "2026-11-19T17:00+01:00", "business_days", "1 business day left", "after closing, nothing of today is left"),
    ("2026-11-19T15:30+01:00", "2026-11-19T17:00+01:00", "business_days", "1 h 30 min business time left", "no whole day left: business time, like business hours"),
    ("2026-11-21T12:00+01:00", "2026-11-24T17:00+01:00", "business_days", "2 business days left", "from Saturday: Mon and Tue"),
    ("2026-11-20T12:00+01:00", "2026-11-23T17:00+01:00", "business_days", "1 business day 5 h left", "Fri 12-17, weekend, Mon whole"),
    ("2026-12-23T17:30+01:00", "2026-12-29T17:00+01:00", "business_days", "3 business days left", "Thu 24, Mon 28, Tue 29: Christmas Day and the weekend skipped"),
    ("2026-11-16T11:00+01:00", "2026-11-18T12:30+01:00", "business_days", "1 business day 9 h 30 min left", "a deadline moved off closing time by a wait: Mon 6 h and Wed 3 h 30 partial, Tue whole"),
    # Past the deadline: real time, whatever the unit.
    ("2026-11-17T13:05+01:00", "2026-11-17T10:00+01:00", "hours", "overdue by 3 h 5 min", "overdue"),
    ("2026-11-20T12:00+01:00", "2026-11-19T10:00+01:00", "business_days", "overdue by 1 day 2 h", "a day of 24 hours, named in full"),
    ("2026-11-21T17:00+01:00", "2026-11-19T17:00+01:00", "business_hours", "overdue by 2 days", "whole days"),
    ("2026-11-19T17:00:20+01:00", "2026-11-19T17:00+01:00", "business_days", "overdue by less than 1 min", "just past"),
    ("2026-11-16T10:00+01:00", "2026-11-19T10:00+01:00", None, "72 h left", "a unit the policy no longer knows: real time, which is always true"),
]


@pytest.mark.parametrize(("now", "due", "unit", "expected", "why"), LEFT, ids=[case[4] for case in LEFT])
def test_time_left_is_written_in_the_deadlines_unit(now: str, due: str, unit: Unit | None, expected: str, why: str) -> None:
    assert time_left_text(NL, at(now), at(due), unit) == expected, why


@pytest.mark.parametrize("unit", ["business_hours", "business_days"])
def test_a_business_deadline_in_a_closure_has_no_business_time_left(unit: Unit) -> None:
    """A promise kept at Thu 17:00 after Tue-Thu were closed: days to go, but no time to act."""
    assert time_left_text(CLOSED_17_19, at("2026-11-17T10:00+01:00"), at("2026-11-19T17:00+01:00"), unit) == "no business time left"


def test_a_deadline_at_this_moment_is_not_yet_overdue() -> None:
    moment = at("2026-11-19T17:00+01:00")
    assert time_left_text(NL, moment, moment, "business_days") == "no business time left"
    assert time_left_text(NL, moment, moment, "hours") == "less than 1 min left"


def test_business_days_left_counts_whole_days_and_the_partial_ones_apart() -> None:
    assert business_days_left(NL, at("2026-11-16T10:00+01:00"), at("2026-11-19T17:00+01:00")) == (3, timedelta(hours=7))
    assert business_days_left(NL, at("2026-11-16T08:00+01:00"), at("2026-11-16T17:00+01:00")) == (1, timedelta(0))
    assert business_days_left(NL, at("2026-11-16T08:00+01:00"), at("2026-11-16T16:00+01:00")) == (0, timedelta(hours=7))
    assert business_days_left(CLOSED_17_19, at("2026-11-16T10:00+01:00"), at("2026-11-20T17:00+01:00")) == (1, timedelta(hours=7))


@pytest.mark.parametrize(
    ("amount", "hours_minutes", "real_time"),
    [
        (timedelta(seconds=59), "less than 1 min", "less than 1 min"),
        (timedelta(minutes=54, seconds=59), "54 min", "54 min"),
        (timedelta(hours=7), "7 h", "7 h"),
        (timedelta(hours=7, minutes=54), "7 h 54 min", "7 h 54 min"),
        (timedelta(hours=26, minutes=5), "26 h 5 min", "1 day 2 h 5 min"),
        (timedelta(days=3, seconds=30), "72 h", "3 days"),
    ],
)
def test_spans_are_written_in_hours_and_minutes_or_days_of_24_hours(amount: timedelta, hours_minutes: str, real_time: str) -> None:
    assert (hours_minutes_text(amount), real_time_text(amount)) == (hours_minutes, real_time)

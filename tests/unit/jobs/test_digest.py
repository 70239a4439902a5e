"""When the daily digest is due: on a business day of the calendar, once its local time has come."""

from __future__ import annotations

from datetime import date, datetime, time

import pytest

from mailintake.calendar.business import BusinessCalendar
from mailintake.jobs.digest import digest_day

NL = BusinessCalendar("Europe/Amsterdam", country="NL")
AT_0830 = time(8, 30)


@pytest.mark.parametrize(
    ("now", "day"),
    [
        ("2026-11-24T08:31+01:00", date(2026, 11, 24)),
        ("2026-11-24T07:31+00:00", date(2026, 11, 24)),  # the same moment in UTC
        ("2026-11-24T08:30+01:00", date(2026, 11, 24)),
        ("2026-11-24T23:59+01:00", date(2026, 11, 24)),
        ("2026-11-24T08:29+01:00", None),
        ("2026-11-23T23:30+00:00", None),  # already Tuesday in Amsterdam, 00:30
        ("2026-11-28T09:00+01:00", None),  # a Saturday
        ("2026-12-25T09:00+01:00", None),  # Christmas Day, a public holiday in NL
    ],
)
def test_the_digest_is_due_from_its_local_time_on_business_days(now: str, day: date | None) -> None:
    assert digest_day(NL, AT_0830, datetime.fromisoformat(now)) == day


def test_without_a_digest_time_there_is_no_digest() -> None:
    assert digest_day(NL, None, datetime.fromisoformat("2026-11-24T12:00+01:00")) is None

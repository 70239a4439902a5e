"""Business calendar: hand-checked deadlines, errors, explanations and properties.

Every expected value below is a literal worked out by hand from a wall calendar; the
`why` column says how. 2026 dates used: DST starts Sun 29 Mar (EU) and Sun 8 Mar (US),
ends Sun 25 Oct (EU) and Sun 1 Nov (US). Hours are 09:00-17:00 Mon-Fri unless stated.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailintake.calendar.business import (
    BusinessCalendar,
    CalendarError,
    Closure,
    DayKind,
    RecurringClosure,
    format_skipped_days,
    parse_hours,
    parse_workdays,
)
from mailintake.calendar.durations import Duration, DurationError, parse_duration

UTC = UTC
NINE_TO_FIVE = ((time(9), time(17)),)
SHUTDOWN = Closure(date(2026, 12, 21), date(2027, 1, 8), "year-end shutdown")

CALENDARS = {
    "NL": BusinessCalendar("Europe/Amsterdam", country="NL"),
    "NL-shutdown": BusinessCalendar("Europe/Amsterdam", country="NL", closures=(SHUTDOWN,)),
    "NL-split": BusinessCalendar("Europe/Amsterdam", country="NL", hours=((time(9), time(12)), (time(13), time(17)))),
    "NL-rrule": BusinessCalendar(
        "Europe/Amsterdam",
        country="NL",
        closures=(
            RecurringClosure("FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=24", "Christmas Eve"),
            RecurringClosure("FREQ=MONTHLY;BYDAY=-1FR", "maintenance day"),
        ),
    ),
    "NL-kingsday-worked": BusinessCalendar("Europe/Amsterdam", country="NL", worked_holidays=frozenset({date(2026, 4, 27)})),
    "US": BusinessCalendar("America/New_York", country="US"),
    "US-CA": BusinessCalendar("America/Los_Angeles", country="US", subdivision="CA"),
    "DE": BusinessCalendar("Europe/Berlin", country="DE"),
    "DE-BY": BusinessCalendar("Europe/Berlin", country="DE", subdivision="BY"),
}

# (calendar, received ISO, duration, expected deadline ISO, why)
DEADLINE_CASES = [
    ("NL", "2026-11-16T10:00+01:00", "3 business days", "2026-11-19T17:00+01:00", "the documented example: received Mon; Tue 17, Wed 18, Thu 19 count; end of business Thu"),
    ("NL", "2026-11-21T12:00+01:00", "3 business days", "2026-11-25T17:00+01:00", "the documented example: received Sat; Mon 23, Tue 24, Wed 25 count"),
    ("NL", "2026-11-20T18:30+01:00", "3 business days", "2026-11-25T17:00+01:00", "Friday evening: Friday is the receipt date, never counted; Mon 23, Tue 24, Wed 25"),
    ("NL", "2026-11-20T18:30+01:00", "8 business hours", "2026-11-23T17:00+01:00", "Friday evening: no business time left Fri; Mon 09-17 is exactly 8 h, deadline at closing"),
    ("NL", "2026-11-20T16:00+01:00", "8 business hours", "2026-11-23T16:00+01:00", "Fri 16-17 gives 1 h, Mon 09-16 gives 7 h"),
    ("NL", "2026-11-20T18:30+01:00", "24 hours", "2026-11-21T18:30+01:00", "elapsed hours ignore weekends and business hours"),
    ("NL", "2026-12-24T10:00+01:00", "3 business days", "2026-12-30T17:00+01:00", "24 Dec is no NL holiday (receipt day anyway); 25 Christmas, 26 Sat, 27 Sun; Mon 28, Tue 29, Wed 30"),
    ("NL", "2026-12-25T11:00+01:00", "3 business days", "2026-12-30T17:00+01:00", "received on Christmas Day (Fri); 26-27 weekend; Mon 28, Tue 29, Wed 30"),
    ("NL", "2026-12-26T11:00+01:00", "3 business days", "2026-12-30T17:00+01:00", "received on Second Day of Christmas (Sat); 27 Sun; Mon 28, Tue 29, Wed 30"),
    ("NL", "2026-12-24T16:00+01:00", "8 business hours", "2026-12-28T16:00+01:00", "Thu 24 16-17 gives 1 h; 25 holiday, 26-27 weekend; Mon 28 09-16 gives 7 h"),
    ("NL", "2026-12-31T12:00+01:00", "3 business days", "2027-01-06T17:00+01:00", "year end: Fri 1 Jan New Year's Day, 2-3 weekend; Mon 4, Tue 5, Wed 6"),
    ("NL", "2026-12-31T15:00+01:00", "24 hours", "2027-01-01T15:00+01:00", "year end in elapsed hours: holiday irrelevant"),
    ("NL", "2026-12-31T15:00+01:00", "4 business hours", "2027-01-04T11:00+01:00", "Thu 31 15-17 gives 2 h; Fri 1 Jan holiday, weekend; Mon 4 09-11 gives 2 h"),
    ("NL", "2026-03-28T12:00+01:00", "24 hours", "2026-03-29T13:00+02:00", "DST starts Sun 29 Mar 02:00->03:00: 86,400 s later the wall clock reads 13:00"),
    ("NL", "2026-10-24T12:00+02:00", "24 hours", "2026-10-25T11:00+01:00", "DST ends Sun 25 Oct 03:00->02:00: 86,400 s later the wall clock reads 11:00"),
    ("NL", "2026-03-28T12:00+01:00", "48 hours", "2026-03-30T13:00+02:00", "48 elapsed hours across the spring change: wall clock one hour later than received"),
    ("NL", "2026-03-27T13:00+01:00", "8 business hours", "2026-03-30T13:00+02:00", "Fri 13-17 CET 4 h, Mon 09-13 CEST 4 h: business hours are local wall time"),
    ("NL", "2026-03-27T10:00+01:00", "1 business day", "2026-03-30T17:00+02:00", "across the spring change: Mon 30 is the first business day, closing in CEST"),
    ("NL", "2026-10-23T15:00+02:00", "3 business days", "2026-10-28T17:00+01:00", "across the autumn change: Mon 26, Tue 27, Wed 28, closing in CET"),
    ("NL", "2026-11-22T23:30+00:00", "1 business day", "2026-11-24T17:00+01:00", "23:30 UTC Sun is 00:30 Mon in Amsterdam: local date Mon is the receipt date; Tue 24 counts"),
    ("US", "2026-03-07T12:00-05:00", "24 hours", "2026-03-08T13:00-04:00", "US DST starts Sun 8 Mar 02:00->03:00: wall clock reads 13:00 EDT"),
    ("US", "2026-10-31T12:00-04:00", "24 hours", "2026-11-01T11:00-05:00", "US DST ends Sun 1 Nov 02:00->01:00: wall clock reads 11:00 EST"),
    ("US", "2026-03-06T15:00-05:00", "8 business hours", "2026-03-09T15:00-04:00", "Fri 15-17 EST 2 h, Mon 09-15 EDT 6 h"),
    ("US", "2026-10-30T16:00-04:00", "2 business hours", "2026-11-02T10:00-05:00", "Fri 16-17 EDT 1 h, Mon 09-10 EST 1 h"),
    ("US", "2026-10-30T15:00-04:00", "3 business days", "2026-11-04T17:00-05:00", "Mon 2 Nov, Tue 3 Nov (Election Day is no federal holiday), Wed 4 Nov"),
    ("US", "2026-11-02T03:30+00:00", "1 business day", "2026-11-02T17:00-05:00", "03:30 UTC Mon is 22:30 Sun in New York: the receipt date is Sun, so Mon counts"),
    ("US", "2026-11-25T10:00-05:00", "3 business days", "2026-12-01T17:00-05:00", "Thanksgiving Thu 26 (federal); Fri 27 is a federal working day (1), Mon 30 (2), Tue 1 Dec (3)"),
    ("US-CA", "2026-11-25T10:00-08:00", "3 business days", "2026-12-02T17:00-08:00", "California adds Day After Thanksgiving Fri 27: Mon 30, Tue 1, Wed 2 Dec"),
    ("US", "2026-11-10T16:00-05:00", "2 business hours", "2026-11-12T10:00-05:00", "Tue 16-17 1 h; Wed 11 Nov Veterans Day; Thu 09-10 1 h"),
    ("US-CA", "2026-03-30T12:00-07:00", "1 business day", "2026-04-01T17:00-07:00", "Cesar Chavez Day Tue 31 Mar is a California public holiday: Wed 1 Apr counts"),
    ("US", "2026-03-30T12:00-04:00", "1 business day", "2026-03-31T17:00-04:00", "no Cesar Chavez Day federally: Tue 31 Mar counts"),
    ("DE-BY", "2026-01-05T10:00+01:00", "1 business day", "2026-01-07T17:00+01:00", "Epiphany Tue 6 Jan is a holiday in Bavaria: Wed 7 counts"),
    ("DE", "2026-01-05T10:00+01:00", "1 business day", "2026-01-06T17:00+01:00", "Epiphany is no nationwide German holiday: Tue 6 counts"),
    ("DE-BY", "2026-06-03T12:00+02:00", "2 business days", "2026-06-08T17:00+02:00", "Corpus Christi Thu 4 Jun in Bavaria: Fri 5 (1), Mon 8 (2)"),
    ("DE", "2026-06-03T12:00+02:00", "2 business days", "2026-06-05T17:00+02:00", "no Corpus Christi nationwide: Thu 4 (1), Fri 5 (2)"),
    ("NL-shutdown", "2026-12-18T14:00+01:00", "3 business days", "2027-01-13T17:00+01:00", "shutdown 21 Dec - 8 Jan spans three weeks: Mon 11 (1), Tue 12 (2), Wed 13 (3)"),
    ("NL-shutdown", "2026-12-23T10:00+01:00", "8 business hours", "2027-01-11T17:00+01:00", "received inside the shutdown: first business hours are Mon 11 Jan 09-17"),
    ("NL-shutdown", "2026-12-18T14:00+01:00", "24 hours", "2026-12-19T14:00+01:00", "closures do not stop elapsed hours"),
    ("NL-kingsday-worked", "2026-04-24T10:00+02:00", "1 business day", "2026-04-27T17:00+02:00", "King's Day Mon 27 Apr removed by the admin: it is the first business day after Fri"),
    ("NL", "2026-04-24T10:00+02:00", "1 business day", "2026-04-28T17:00+02:00", "King's Day Mon 27 Apr is a holiday: Tue 28 counts"),
    ("NL", "2026-11-16T09:00+01:00", "8 business hours", "2026-11-16T17:00+01:00", "received exactly at opening: the whole day counts, deadline at closing the same day"),
    ("NL", "2026-11-16T17:00+01:00", "1 business hour", "2026-11-17T10:00+01:00", "received exactly at closing: 17:00 is outside [09:00, 17:00), counting starts Tue 09:00"),
    ("NL", "2026-11-16T17:00+01:00", "1 business day", "2026-11-17T17:00+01:00", "received at closing Mon: Mon is the receipt date, Tue counts"),
    ("NL", "2026-11-16T08:59+01:00", "1 business hour", "2026-11-16T10:00+01:00", "received before opening: counting starts at 09:00"),
    ("NL-split", "2026-11-16T11:00+01:00", "2 business hours", "2026-11-16T14:00+01:00", "split hours 09-12, 13-17: 11-12 1 h, lunch skipped, 13-14 1 h"),
    ("NL-split", "2026-11-16T12:30+01:00", "1 business hour", "2026-11-16T14:00+01:00", "received during lunch: counting starts at 13:00"),
    ("NL-split", "2026-11-16T16:00+01:00", "7 business hours", "2026-11-17T16:00+01:00", "Mon 16-17 1 h; Tue 09-12 3 h and 13-16 3 h"),
    ("NL-split", "2026-11-16T10:00+01:00", "1 business day", "2026-11-17T17:00+01:00", "a business day ends at the end of the last span, 17:00"),
    ("NL-rrule", "2026-12-23T10:00+01:00", "1 business day", "2026-12-28T17:00+01:00", "yearly closure 24 Dec (Thu), 25 Christmas, 26-27 weekend: Mon 28 counts"),
    ("NL-rrule", "2027-12-23T10:00+01:00", "1 business day", "2027-12-27T17:00+01:00", "the rule recurs in 2027: Fri 24 closed, 25-26 weekend and Christmas; Mon 27 counts"),
    ("NL-rrule", "2026-11-26T10:00+01:00", "1 business day", "2026-11-30T17:00+01:00", "monthly rule: Fri 27 Nov is the last Friday of November, closed; Mon 30 counts"),
]


@pytest.mark.parametrize(("calendar", "received", "duration", "expected", "why"), DEADLINE_CASES)
def test_deadline(calendar: str, received: str, duration: str, expected: str, why: str) -> None:
    deadline = CALENDARS[calendar].add(datetime.fromisoformat(received), parse_duration(duration))
    assert deadline.isoformat(timespec="minutes") == expected, why


def test_deadline_table_is_large_enough() -> None:
    assert len(DEADLINE_CASES) >= 35


def test_deadline_is_in_the_calendar_zone() -> None:
    deadline = CALENDARS["NL"].add(datetime(2026, 11, 16, 9, tzinfo=UTC), parse_duration("1 hour"))
    assert deadline.tzinfo == ZoneInfo("Europe/Amsterdam")
    assert deadline.isoformat() == "2026-11-16T11:00:00+01:00"


DAY_KIND_CASES = [
    ("NL", date(2026, 12, 24), "business day", "24 Dec is no NL public holiday"),
    ("NL", date(2026, 12, 25), "Christmas Day (NL)", "holiday named with its source"),
    ("NL", date(2026, 12, 26), "weekend", "Second Day of Christmas falls on Sat: weekend comes first"),
    ("NL-kingsday-worked", date(2026, 4, 27), "business day", "holiday removed by the admin"),
    ("NL-shutdown", date(2026, 12, 21), "closure: year-end shutdown", "first day of the closure"),
    ("NL-shutdown", date(2027, 1, 1), "New Year's Day (NL)", "a holiday inside a closure is reported as the holiday"),
    ("NL-rrule", date(2030, 12, 24), "closure: Christmas Eve", "recurring closure, far year"),
    ("DE-BY", date(2026, 1, 6), "Epiphany (DE-BY)", "subdivision holiday names the subdivision"),
    ("DE", date(2026, 1, 6), "business day", "no Epiphany without the subdivision"),
    ("US-CA", date(2026, 3, 31), "Cesar Chavez Day (US-CA)", "California public holiday"),
]


@pytest.mark.parametrize(("calendar", "day", "expected", "why"), DAY_KIND_CASES)
def test_day_kind(calendar: str, day: date, expected: str, why: str) -> None:
    assert str(CALENDARS[calendar].day_kind(day)) == expected, why


def test_day_kind_fields() -> None:
    assert CALENDARS["NL"].day_kind(date(2026, 12, 25)) == DayKind("holiday", "Christmas Day (NL)")
    assert CALENDARS["NL"].is_business_day(date(2026, 12, 25)) is False
    assert CALENDARS["NL"].is_business_day(date(2026, 12, 24)) is True


def test_holiday_names_do_not_follow_the_process_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANGUAGE", "nl")
    calendar = BusinessCalendar("Europe/Amsterdam", country="NL")
    assert str(calendar.day_kind(date(2026, 12, 25))) == "Christmas Day (NL)"


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        ("2026-11-16T09:00+01:00", True),
        ("2026-11-16T16:59:59+01:00", True),
        ("2026-11-16T17:00+01:00", False),
        ("2026-11-16T08:59:59+01:00", False),
        ("2026-11-16T08:30+00:00", True),
        ("2026-11-21T12:00+01:00", False),
        ("2026-12-25T12:00+01:00", False),
    ],
)
def test_is_business_moment(moment: str, expected: bool) -> None:
    assert CALENDARS["NL"].is_business_moment(datetime.fromisoformat(moment)) is expected


def test_lunch_break_is_not_business_time() -> None:
    assert CALENDARS["NL-split"].is_business_moment(datetime.fromisoformat("2026-11-16T12:30+01:00")) is False


@pytest.mark.parametrize(
    ("moment", "expected", "why"),
    [
        ("2026-11-20T17:00+01:00", "2026-11-23T09:00+01:00", "Fri closing -> Mon opening"),
        ("2026-11-16T10:15+01:00", "2026-11-16T10:15+01:00", "already business time"),
        ("2026-03-29T10:00+02:00", "2026-03-30T09:00+02:00", "DST Sunday -> Mon opening in CEST"),
        ("2026-12-24T18:00+01:00", "2026-12-28T09:00+01:00", "Christmas and weekend skipped"),
    ],
)
def test_next_business_moment(moment: str, expected: str, why: str) -> None:
    found = CALENDARS["NL"].next_business_moment(datetime.fromisoformat(moment))
    assert found.isoformat(timespec="minutes") == expected, why


@pytest.mark.parametrize(
    ("calendar", "start", "end", "hours", "why"),
    [
        ("NL", "2026-11-20T16:00+01:00", "2026-11-23T10:00+01:00", 2, "Fri 16-17 and Mon 09-10"),
        ("NL", "2026-03-27T09:00+01:00", "2026-03-30T17:00+02:00", 16, "two full days across spring DST"),
        ("US", "2026-10-30T09:00-04:00", "2026-11-02T17:00-05:00", 16, "two full days across autumn DST"),
        ("NL-split", "2026-11-16T00:00+01:00", "2026-11-17T00:00+01:00", 7, "split day has 7 h"),
        ("NL", "2026-11-23T10:00+01:00", "2026-11-20T16:00+01:00", 0, "end before start gives zero"),
    ],
)
def test_business_time_between(calendar: str, start: str, end: str, hours: int, why: str) -> None:
    between = CALENDARS[calendar].business_time_between(datetime.fromisoformat(start), datetime.fromisoformat(end))
    assert between == timedelta(hours=hours), why


def test_explain_collapses_runs_of_skipped_days() -> None:
    calendar = BusinessCalendar("Europe/Amsterdam", country="NL", closures=(Closure(date(2026, 12, 28), date(2026, 12, 30), "year-end shutdown"),))
    explanation = calendar.explain(datetime.fromisoformat("2026-12-24T10:00+01:00"), parse_duration("3 business days"))
    assert explanation.deadline.isoformat(timespec="minutes") == "2027-01-05T17:00+01:00"
    assert format_skipped_days(explanation.skipped) == [
        "2026-12-25 Christmas Day (NL)",
        "2026-12-26..27 weekend",
        "2026-12-28..30 closure: year-end shutdown",
        "2027-01-01 New Year's Day (NL)",
        "2027-01-02..03 weekend",
    ]
    assert explanation.skipped_text.startswith("2026-12-25 Christmas Day (NL), 2026-12-26..27 weekend, ")


def test_skipped_days_include_a_non_business_receipt_day() -> None:
    skipped = CALENDARS["NL"].skipped_days(datetime.fromisoformat("2026-12-25T11:00+01:00"), datetime.fromisoformat("2026-12-30T17:00+01:00"))
    assert skipped == [
        (date(2026, 12, 25), "Christmas Day (NL)"),
        (date(2026, 12, 26), "weekend"),
        (date(2026, 12, 27), "weekend"),
    ]


def test_format_skipped_days_ranges_across_months_and_years() -> None:
    skipped = [
        (date(2026, 11, 30), "closure: move"),
        (date(2026, 12, 1), "closure: move"),
        (date(2026, 12, 3), "closure: move"),
        (date(2026, 12, 31), "closure: stocktake"),
        (date(2027, 1, 1), "closure: stocktake"),
    ]
    assert format_skipped_days(skipped) == [
        "2026-11-30..12-01 closure: move",
        "2026-12-03 closure: move",
        "2026-12-31..2027-01-01 closure: stocktake",
    ]
    assert format_skipped_days([]) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24 hours", Duration(24, "hours")),
        ("1 hour", Duration(1, "hours")),
        ("8 business hours", Duration(8, "business_hours")),
        ("3 business days", Duration(3, "business_days")),
        ("1 business day", Duration(1, "business_days")),
        ("  3  Business   Days ", Duration(3, "business_days")),
    ],
)
def test_parse_duration(text: str, expected: Duration) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("duration", "canonical"),
    [(Duration(1, "hours"), "1 hour"), (Duration(24, "hours"), "24 hours"), (Duration(1, "business_days"), "1 business day"), (Duration(8, "business_hours"), "8 business hours"), (Duration(3, "business_days"), "3 business days")],
)
def test_duration_canonical_text(duration: Duration, canonical: str) -> None:
    assert str(duration) == canonical
    assert parse_duration(canonical) == duration


@pytest.mark.parametrize("text", ["3 fortnights", "", "-1 hours", "1.5 business days", "0 hours", "hours", "24h", "3 business", "99999 hours"])
def test_bad_duration_quotes_input_and_lists_forms(text: str) -> None:
    with pytest.raises(DurationError) as caught:
        parse_duration(text)
    message = str(caught.value)
    assert repr(text) in message
    assert "'<N> hours', '<N> business hours' or '<N> business days'" in message
    assert "\n" not in message


def test_plain_days_are_rejected_with_a_suggestion() -> None:
    with pytest.raises(DurationError, match=r"'2 days': plain days are ambiguous, write '48 hours' or '2 business days'"):
        parse_duration("2 days")


def test_duration_rejects_bad_fields() -> None:
    with pytest.raises(DurationError):
        Duration(0, "hours")
    with pytest.raises(DurationError):
        Duration(3, "weeks")  # type: ignore[arg-type]


def test_parse_hours_forms() -> None:
    split = ((time(9), time(12)), (time(13), time(17)))
    assert parse_hours("09:00-17:00") == NINE_TO_FIVE
    assert parse_hours("09:00-12:00, 13:00-17:00") == split
    assert parse_hours(["13:00-17:00", "09:00-12:00"]) == split
    assert parse_hours("9:30 - 17:15") == ((time(9, 30), time(17, 15)),)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("17:00-09:00", "invalid business hours '17:00-09:00': start must be before end (a span cannot cross midnight)"),
        ("09:00-09:00", "invalid business hours '09:00-09:00': start must be before end"),
        ("09:00-12:00, 11:00-17:00", "business hours overlap: 09:00-12:00 and 11:00-17:00"),
        ("9-17", "invalid business hours '9-17': expected e.g. '09:00-17:00'"),
        ("09:00-24:00", "invalid business hours '09:00-24:00': times run from 00:00 to 23:59"),
        ("", "business hours are empty"),
    ],
)
def test_bad_hours(spec: str, message: str) -> None:
    with pytest.raises(CalendarError) as caught:
        parse_hours(spec)
    assert str(caught.value).startswith(message)


def test_parse_workdays() -> None:
    assert parse_workdays(["mon", "tue", "wed", "thu", "fri"]) == frozenset({0, 1, 2, 3, 4})
    assert parse_workdays(["Sunday", "MON"]) == frozenset({6, 0})
    with pytest.raises(CalendarError, match=r"unknown weekday 'mun': expected one of mon, tue, wed, thu, fri, sat, sun"):
        parse_workdays(["mun"])
    with pytest.raises(CalendarError, match="no workdays given"):
        parse_workdays([])


@pytest.mark.parametrize(
    ("settings_", "message"),
    [
        ({"country": "XX"}, "unknown holiday country 'XX': expected an ISO 3166-1 alpha-2 code"),
        ({"country": "NL", "subdivision": "ZZ"}, "unknown holiday subdivision 'ZZ' for country NL: expected one of Midden, Noord, Zuid"),
        ({"country": "NL", "categories": ("bogus",)}, "unknown holiday category 'bogus' for country NL: expected one or more of"),
        ({"subdivision": "BY"}, "holiday subdivision 'BY' given without a country"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"hours": ((time(17), time(9)),)}, "invalid business hours '17:00-09:00'"),
        ({"workdays": frozenset()}, "no workdays given"),
    ],
)
def test_bad_calendar(settings_: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"timezone": "Europe/Amsterdam", **settings_}
    with pytest.raises(CalendarError) as caught:
        BusinessCalendar(**arguments)  # type: ignore[arg-type]
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_lower_case_country_code_is_accepted() -> None:
    assert str(BusinessCalendar("Europe/Amsterdam", country="nl").day_kind(date(2026, 12, 25))) == "Christmas Day (NL)"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("garbage", "closure 'x': invalid recurrence rule 'garbage'"),
        ("FREQ=FORTNIGHTLY", "closure 'x': invalid recurrence rule 'FREQ=FORTNIGHTLY'"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "closure 'x': recurrence rule 'FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30' yields no date"),
    ],
)
def test_bad_recurring_closure(rule: str, message: str) -> None:
    with pytest.raises(CalendarError) as caught:
        RecurringClosure(rule, "x")
    assert str(caught.value).startswith(message)


def test_bad_closure_range() -> None:
    with pytest.raises(CalendarError, match=r"closure 'move': end 2026-12-01 is before start 2026-12-02"):
        Closure(date(2026, 12, 2), date(2026, 12, 1), "move")


def test_naive_datetimes_are_rejected() -> None:
    calendar = CALENDARS["NL"]
    naive = datetime(2026, 11, 16, 10)
    with pytest.raises(ValueError, match="is naive"):
        calendar.add(naive, parse_duration("1 hour"))
    with pytest.raises(ValueError, match="is naive"):
        calendar.is_business_moment(naive)
    with pytest.raises(ValueError, match="is naive"):
        calendar.business_time_between(naive, datetime(2026, 11, 17, tzinfo=UTC))


def test_calendar_is_immutable_and_comparable() -> None:
    calendar = CALENDARS["NL"]
    with pytest.raises(AttributeError):
        calendar.country = "DE"  # type: ignore[misc]
    assert calendar == BusinessCalendar("Europe/Amsterdam", country="NL")
    assert hash(calendar) == hash(BusinessCalendar("Europe/Amsterdam", country="NL"))


def test_holiday_cache_sees_each_year() -> None:
    calendar = BusinessCalendar("Europe/Amsterdam", country="NL")
    assert calendar.is_business_day(date(2026, 12, 25)) is False
    assert calendar.is_business_day(date(2030, 12, 25)) is False
    assert calendar.is_business_day(date(2025, 5, 5)) is False
    assert calendar.is_business_day(date(2026, 5, 5)) is True


# Properties. Deadline convention: a business deadline may be the closing moment itself,
# so the instant just before it is always business time.

PROPERTY_CALENDARS = [
    BusinessCalendar(
        "Europe/Amsterdam",
        country="NL",
        hours=((time(9), time(12)), (time(13), time(17))),
        closures=(SHUTDOWN, RecurringClosure("FREQ=MONTHLY;BYDAY=-1FR", "maintenance day")),
    ),
    BusinessCalendar("America/New_York", country="US", hours=((time(8, 30), time(18)),)),
]
MICROSECOND = timedelta(microseconds=1)
PROPERTY_SETTINGS = settings(max_examples=150, deadline=None)

calendars = st.sampled_from(PROPERTY_CALENDARS)
moments = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC))
durations = st.one_of(
    st.builds(Duration, st.integers(1, 200), st.just("hours")),
    st.builds(Duration, st.integers(1, 60), st.just("business_hours")),
    st.builds(Duration, st.integers(1, 25), st.just("business_days")),
)
business_durations = durations.filter(lambda duration: duration.is_business)


@PROPERTY_SETTINGS
@given(calendars, moments, moments, durations)
def test_deadlines_do_not_decrease_with_the_start(calendar: BusinessCalendar, first: datetime, second: datetime, duration: Duration) -> None:
    early, late = sorted((first, second))
    assert calendar.add(early, duration).astimezone(UTC) <= calendar.add(late, duration).astimezone(UTC)


@PROPERTY_SETTINGS
@given(calendars, moments, business_durations)
def test_business_deadlines_end_business_time(calendar: BusinessCalendar, start: datetime, duration: Duration) -> None:
    deadline = calendar.add(start, duration)
    assert calendar.is_business_moment(deadline - MICROSECOND)
    assert calendar.is_business_day(deadline.date())
    assert deadline.tzinfo == calendar.zone


@PROPERTY_SETTINGS
@given(calendars, moments, st.integers(1, 200))
def test_hours_are_elapsed_time(calendar: BusinessCalendar, start: datetime, hours: int) -> None:
    assert calendar.add(start, Duration(hours, "hours")) - start == timedelta(hours=hours)


@PROPERTY_SETTINGS
@given(calendars, moments, st.integers(1, 15), st.integers(1, 15))
def test_business_days_add_up(calendar: BusinessCalendar, start: datetime, first: int, second: int) -> None:
    stepwise = calendar.add(calendar.add(start, Duration(first, "business_days")), Duration(second, "business_days"))
    assert stepwise == calendar.add(start, Duration(first + second, "business_days"))


@PROPERTY_SETTINGS
@given(calendars, moments, st.integers(1, 40), st.integers(1, 40))
def test_business_hours_add_up(calendar: BusinessCalendar, start: datetime, first: int, second: int) -> None:
    stepwise = calendar.add(calendar.add(start, Duration(first, "business_hours")), Duration(second, "business_hours"))
    assert stepwise == calendar.add(start, Duration(first + second, "business_hours"))


@PROPERTY_SETTINGS
@given(calendars, moments, st.integers(1, 60))
def test_business_time_until_deadline_is_the_duration(calendar: BusinessCalendar, start: datetime, hours: int) -> None:
    deadline = calendar.add(start, Duration(hours, "business_hours"))
    assert calendar.business_time_between(start, deadline) == timedelta(hours=hours)


@PROPERTY_SETTINGS
@given(calendars, moments)
def test_next_business_moment_is_business_time_with_none_skipped(calendar: BusinessCalendar, start: datetime) -> None:
    found = calendar.next_business_moment(start)
    assert found >= start
    assert calendar.is_business_moment(found)
    assert calendar.business_time_between(start, found) == timedelta(0)

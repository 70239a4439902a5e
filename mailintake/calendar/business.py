"""Business calendar: business days, business hours and SLA deadlines. Pure: time is passed in.

Conventions:
- Arithmetic runs on UTC instants; results are returned in the calendar's zone. (Adding
  a timedelta to a datetime that carries a ZoneInfo is wall-clock arithmetic in Python,
  which would make "24 hours" last 23 or 25 hours across a DST change.)
- Business hours are local wall-clock spans, half-open [start, end): at closing time the
  office is closed, so is_business_moment(17:00) is False.
- A business deadline is the instant the allowed business time runs out, so it can be the
  closing time itself: "3 business days" ends at 17:00 on the third day, not at 09:00 on
  the fourth. Hence for every business deadline d: is_business_moment(d - 1 microsecond).
- Wall times skipped by a DST change are read with the offset in force before the change
  (PEP 495 fold=0), repeated wall times mean their first occurrence, and spans that
  become inverted that way are clipped so a day's spans never overlap.
- A day with several reasons not to work reports the first of: weekend, public holiday,
  closure. A worked (admin-removed) holiday is an ordinary day.
- Recurring closures are RFC 5545 RRULE text; rules without DTSTART start on 2000-01-01.
- Holiday names are English where the holidays package has them (it otherwise follows
  the process locale), suffixed with their source: "Christmas Day (NL)".
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from dateutil.rrule import rruleset, rrulestr

from mailintake.calendar.durations import Duration
from mailintake.calendar.ranges import format_short_range

UTC = UTC
ONE_DAY = timedelta(days=1)
SEARCH_LIMIT_DAYS = 3660
RRULE_ANCHOR = datetime(2000, 1, 1)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEKDAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_HOURS_EXAMPLE = "expected e.g. '09:00-17:00' or '09:00-12:00, 13:00-17:00'"
_SPAN_RE = re.compile(r"^\s*([0-9]{1,2}):([0-9]{2})\s*-\s*([0-9]{1,2}):([0-9]{2})\s*$")

Span = tuple[time, time]
DayKindName = Literal["business", "weekend", "holiday", "closure"]
SkippedDay = tuple[date, str]


class CalendarError(ValueError):
    """Invalid calendar configuration, or a calendar with no business time ahead."""


def require_aware(moment: datetime, what: str = "datetime") -> datetime:
    if not isinstance(moment, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} {moment.isoformat()} is naive: every datetime must be timezone-aware")
    return moment


def _require_date(day: date) -> date:
    if isinstance(day, datetime) or not isinstance(day, date):
        raise TypeError(f"expected a date, got {type(day).__name__}")
    return day


@dataclass(frozen=True)
class Closure:
    start: date
    end: date
    name: str

    def __post_init__(self) -> None:
        _require_date(self.start)
        _require_date(self.end)
        if not self.name.strip():
            raise CalendarError(f"closure {self.start}..{self.end} has no name")
        if self.end < self.start:
            raise CalendarError(f"closure {self.name!r}: end {self.end} is before start {self.start}")

    def dates_in_year(self, year: int) -> Iterator[date]:
        day = max(self.start, date(year, 1, 1))
        last = min(self.end, date(year, 12, 31))
        while day <= last:
            yield day
            day += ONE_DAY


@dataclass(frozen=True)
class RecurringClosure:
    """A closure on every date an RFC 5545 rule yields, e.g. "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=24"."""

    rule: str
    name: str
    _rules: rruleset = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise CalendarError(f"recurring closure {self.rule!r} has no name")
        object.__setattr__(self, "_rules", _parse_rule(self.rule, self.name))

    def dates_in_year(self, year: int) -> Iterator[date]:
        first = datetime(year, 1, 1)
        last = datetime(year, 12, 31, 23, 59, 59, 999999)
        return (moment.date() for moment in self._rules.between(first, last, inc=True))


def _parse_rule(rule: str, name: str) -> rruleset:
    try:
        rules = rrulestr(rule, dtstart=RRULE_ANCHOR, forceset=True, ignoretz=True)
        first = rules.after(RRULE_ANCHOR, inc=True)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise CalendarError(f"closure {name!r}: invalid recurrence rule {rule!r} ({exc}); expected RRULE text such as 'FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=24'") from None
    if first is None:
        raise CalendarError(f"closure {name!r}: recurrence rule {rule!r} yields no date after {RRULE_ANCHOR.date()}")
    return rules


def parse_hours(spec: str | Iterable[str]) -> tuple[Span, ...]:
    """Parse "09:00-17:00", "09:00-12:00, 13:00-17:00" or a list of such strings."""
    items = [spec] if isinstance(spec, str) else list(spec)
    parts = [part for item in items for part in _as_text(item).split(",") if part.strip()]
    if not parts:
        raise CalendarError(f"business hours are empty: {_HOURS_EXAMPLE}")
    return validate_spans(tuple(_parse_span(part) for part in parts))


def _as_text(item: object) -> str:
    if not isinstance(item, str):
        raise CalendarError(f"invalid business hours {item!r}: {_HOURS_EXAMPLE}")
    return item


def _parse_span(text: str) -> Span:
    match = _SPAN_RE.match(text)
    if match is None:
        raise CalendarError(f"invalid business hours {text.strip()!r}: {_HOURS_EXAMPLE}")
    start_h, start_m, end_h, end_m = (int(group) for group in match.groups())
    if max(start_h, end_h) > 23 or max(start_m, end_m) > 59:
        raise CalendarError(f"invalid business hours {text.strip()!r}: times run from 00:00 to 23:59")
    return time(start_h, start_m), time(end_h, end_m)


def validate_spans(spans: Iterable[Span]) -> tuple[Span, ...]:
    ordered = tuple(sorted(spans))
    if not ordered:
        raise CalendarError(f"business hours are empty: {_HOURS_EXAMPLE}")
    for start, end in ordered:
        if not start < end:
            raise CalendarError(f"invalid business hours {_format_span((start, end))!r}: start must be before end (a span cannot cross midnight)")
    for earlier, later in itertools.pairwise(ordered):
        if later[0] < earlier[1]:
            raise CalendarError(f"business hours overlap: {_format_span(earlier)} and {_format_span(later)}")
    return ordered


def _format_span(span: Span) -> str:
    return f"{span[0]:%H:%M}-{span[1]:%H:%M}"


def parse_workdays(names: Iterable[str]) -> frozenset[int]:
    """Weekday names ("mon" or "monday", any case) to ints, Monday = 0."""
    items = names.split(",") if isinstance(names, str) else list(names)
    days = frozenset(_weekday_number(item) for item in items)
    if not days:
        raise CalendarError("no workdays given: expected names such as ['mon', 'tue', 'wed', 'thu', 'fri']")
    return days


def _weekday_number(name: str) -> int:
    key = name.strip().lower() if isinstance(name, str) else ""
    if key in WEEKDAYS:
        return WEEKDAYS.index(key)
    if key in _WEEKDAY_NAMES:
        return _WEEKDAY_NAMES.index(key)
    raise CalendarError(f"unknown weekday {name!r}: expected one of {', '.join(WEEKDAYS)}")


@dataclass(frozen=True)
class DayKind:
    kind: DayKindName
    name: str = ""

    @property
    def is_business(self) -> bool:
        return self.kind == "business"

    def __str__(self) -> str:
        if self.kind == "business":
            return "business day"
        if self.kind == "closure":
            return f"closure: {self.name}"
        return self.name or self.kind


BUSINESS_DAY = DayKind("business")
WEEKEND = DayKind("weekend")


@dataclass(frozen=True)
class Explanation:
    start: datetime
    duration: Duration
    deadline: datetime
    skipped: tuple[SkippedDay, ...]

    @property
    def skipped_text(self) -> str:
        return ", ".join(format_skipped_days(self.skipped))


def format_skipped_days(skipped: Iterable[SkippedDay]) -> list[str]:
    """One entry per run of consecutive days with the same reason: "2026-12-28..30 closure: shutdown"."""
    runs: list[tuple[date, date, str]] = []
    for day, reason in skipped:
        if runs and runs[-1][2] == reason and runs[-1][1] + ONE_DAY == day:
            runs[-1] = (runs[-1][0], day, reason)
        else:
            runs.append((day, day, reason))
    return [f"{format_short_range(first, last)} {reason}" for first, last, reason in runs]


class _Caches:
    """Per-calendar memo tables; every entry is a pure function of the calendar's fields."""

    def __init__(self) -> None:
        self.holidays: dict[int, dict[date, str]] = {}
        self.closures: dict[int, dict[date, str]] = {}
        self.kinds: dict[date, DayKind] = {}
        self.spans: dict[date, tuple[tuple[datetime, datetime], ...]] = {}


@dataclass(frozen=True)
class BusinessCalendar:
    timezone: str
    workdays: frozenset[int] = frozenset(range(5))
    hours: tuple[Span, ...] = ((time(9), time(17)),)
    country: str | None = None
    subdivision: str | None = None
    categories: tuple[str, ...] = ("public",)
    closures: tuple[Closure | RecurringClosure, ...] = ()
    worked_holidays: frozenset[date] = frozenset()
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _language: str | None = field(init=False, repr=False, compare=False)
    _caches: _Caches = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._set("_zone", _zone_named(self.timezone))
        self._set("workdays", _valid_workdays(self.workdays))
        self._set("hours", validate_spans(self.hours))
        self._set("categories", _lowercase_names(self.categories))
        self._set("closures", _valid_closures(self.closures))
        self._set("worked_holidays", frozenset(_require_date(day) for day in self.worked_holidays))
        self._set("country", self.country.upper() if self.country else None)
        self._set("_language", _holiday_language(self.country, self.subdivision, self.categories))
        self._set("_caches", _Caches())

    def _set(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)

    @property
    def zone(self) -> ZoneInfo:
        return self._zone

    @property
    def holiday_source(self) -> str:
        if self.country is None:
            return ""
        return f"{self.country}-{self.subdivision}" if self.subdivision else self.country

    def holidays_in(self, year: int) -> Mapping[date, str]:
        """Official holidays of a year, minus worked ones, named with their source."""
        cache = self._caches.holidays
        if year not in cache:
            cache[year] = self._load_holidays(year)
        return cache[year]

    def _load_holidays(self, year: int) -> dict[date, str]:
        if self.country is None:
            return {}
        found = holidays.country_holidays(self.country, subdiv=self.subdivision, years=year, categories=self.categories, language=self._language)
        source = self.holiday_source
        return {day: f"{name} ({source})" for day, name in found.items() if day not in self.worked_holidays}

    def _closures_in(self, year: int) -> dict[date, str]:
        cache = self._caches.closures
        if year not in cache:
            names: dict[date, list[str]] = {}
            for closure in self.closures:
                for day in closure.dates_in_year(year):
                    names.setdefault(day, []).append(closure.name)
            cache[year] = {day: "; ".join(found) for day, found in names.items()}
        return cache[year]

    def day_kind(self, day: date) -> DayKind:
        return self._kind_of(_require_date(day))

    def _kind_of(self, day: date) -> DayKind:
        kind = self._caches.kinds.get(day)
        if kind is None:
            kind = self._caches.kinds[day] = self._classify(day)
        return kind

    def _classify(self, day: date) -> DayKind:
        if day.weekday() not in self.workdays:
            return WEEKEND
        holiday = self.holidays_in(day.year).get(day)
        if holiday is not None:
            return DayKind("holiday", holiday)
        closure = self._closures_in(day.year).get(day)
        if closure is not None:
            return DayKind("closure", closure)
        return BUSINESS_DAY

    def is_business_day(self, day: date) -> bool:
        return self._kind_of(_require_date(day)).is_business

    def is_business_moment(self, moment: datetime) -> bool:
        instant = _utc(moment)
        return any(start <= instant < end for start, end in self._spans_on(self._local_date(instant)))

    def next_business_moment(self, moment: datetime) -> datetime:
        """The moment itself if it is business time, else the next opening."""
        instant = _utc(moment)
        for day in self._days_from(self._local_date(instant)):
            for start, end in self._spans_on(day):
                if instant < end:
                    return self._local(max(start, instant))
        raise self._no_business_time_after(instant)

    def add(self, start: datetime, duration: Duration) -> datetime:
        instant = _utc(start)
        if duration.unit == "hours":
            return self._local(instant + timedelta(hours=duration.amount))
        if duration.unit == "business_hours":
            return self._local(self._plus_business_time(instant, timedelta(hours=duration.amount)))
        return self._local(self._end_of_nth_business_day(instant, duration.amount))

    def add_business_time(self, start: datetime, amount: timedelta) -> datetime:
        """The moment by which `amount` of business time has passed since `start`."""
        if amount < timedelta(0):
            raise ValueError(f"business time to add must not be negative, got {amount}")
        return self._local(self._plus_business_time(_utc(start), amount))

    def business_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Business time inside [start, end); zero when end is not after start."""
        low, high = _utc(start), _utc(end)
        total = timedelta(0)
        day, last = self._local_date(low), self._local_date(high)
        while day <= last:
            for span_start, span_end in self._spans_on(day):
                overlap = min(span_end, high) - max(span_start, low)
                if overlap > timedelta(0):
                    total += overlap
            day += ONE_DAY
        return total

    def skipped_days(self, start: datetime, end: datetime) -> list[SkippedDay]:
        """Non-business days from start's local date to end's local date, both included."""
        day, last = self._local_date(_utc(start)), self._local_date(_utc(end))
        skipped: list[SkippedDay] = []
        while day <= last:
            kind = self._kind_of(day)
            if not kind.is_business:
                skipped.append((day, str(kind)))
            day += ONE_DAY
        return skipped

    def explain(self, start: datetime, duration: Duration) -> Explanation:
        deadline = self.add(start, duration)
        skipped = tuple(self.skipped_days(start, deadline))
        return Explanation(self._local(_utc(start)), duration, deadline, skipped)

    def _plus_business_time(self, instant: datetime, amount: timedelta) -> datetime:
        remaining = amount
        if remaining == timedelta(0):
            return instant
        for day in self._days_from(self._local_date(instant)):
            for span_start, span_end in self._spans_on(day):
                begin = max(span_start, instant)
                if begin >= span_end:
                    continue
                if remaining <= span_end - begin:
                    return begin + remaining
                remaining -= span_end - begin
        raise self._no_business_time_after(instant)

    def _end_of_nth_business_day(self, instant: datetime, count: int) -> datetime:
        day = self._local_date(instant)
        for _ in range(count):
            day = self._next_business_day_after(day)
        return self._closing_instant(day)

    def _next_business_day_after(self, day: date) -> date:
        candidate = day
        for _ in range(SEARCH_LIMIT_DAYS):
            candidate += ONE_DAY
            if self._kind_of(candidate).is_business:
                return candidate
        raise CalendarError(f"no business day within {SEARCH_LIMIT_DAYS} days after {day}")

    def _days_from(self, first: date) -> Iterator[date]:
        """Consecutive days from `first`, stopping after SEARCH_LIMIT_DAYS days without business time."""
        day, idle = first, 0
        while idle <= SEARCH_LIMIT_DAYS:
            yield day
            idle = 0 if self._spans_on(day) else idle + 1
            day += ONE_DAY

    def _no_business_time_after(self, instant: datetime) -> CalendarError:
        return CalendarError(f"no business time within {SEARCH_LIMIT_DAYS} days after {self._local(instant).isoformat()}")

    def _closing_instant(self, day: date) -> datetime:
        spans = self._spans_on(day)
        return spans[-1][1] if spans else self._instant(day, self.hours[-1][1])

    def _spans_on(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        """The business spans of a local date as UTC instants, empty on non-business days."""
        spans = self._caches.spans.get(day)
        if spans is None:
            spans = self._caches.spans[day] = self._compute_spans(day) if self._kind_of(day).is_business else ()
        return spans

    def _compute_spans(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        spans: list[tuple[datetime, datetime]] = []
        floor: datetime | None = None
        for wall_start, wall_end in self.hours:
            start = self._instant(day, wall_start)
            start = start if floor is None else max(start, floor)
            end = max(self._instant(day, wall_end), start)
            if end > start:
                spans.append((start, end))
            floor = end
        return tuple(spans)

    def _instant(self, day: date, wall: time) -> datetime:
        return datetime.combine(day, wall, tzinfo=self._zone).astimezone(UTC)

    def _local_date(self, instant: datetime) -> date:
        return instant.astimezone(self._zone).date()

    def _local(self, instant: datetime) -> datetime:
        return instant.astimezone(self._zone)


def _utc(moment: datetime) -> datetime:
    return require_aware(moment).astimezone(UTC)


def _zone_named(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise CalendarError(f"unknown time zone {name!r}: expected an IANA name such as 'Europe/Amsterdam'") from None


def _valid_workdays(days: Iterable[int]) -> frozenset[int]:
    found = frozenset(days)
    if not found:
        raise CalendarError("no workdays given: a calendar needs at least one workday")
    if any(isinstance(day, bool) or not isinstance(day, int) or not 0 <= day <= 6 for day in found):
        raise CalendarError(f"invalid workdays {sorted(found, key=str)}: expected weekday numbers 0 (Monday) to 6")
    return found


def _lowercase_names(categories: str | Iterable[str]) -> tuple[str, ...]:
    names = (categories,) if isinstance(categories, str) else tuple(categories)
    return tuple(name.lower() for name in names)


def _valid_closures(closures: Iterable[Closure | RecurringClosure]) -> tuple[Closure | RecurringClosure, ...]:
    found = tuple(closures)
    for closure in found:
        if not isinstance(closure, (Closure, RecurringClosure)):
            raise TypeError(f"expected Closure or RecurringClosure, got {type(closure).__name__}")
    return found


def _holiday_language(country: str | None, subdivision: str | None, categories: tuple[str, ...]) -> str | None:
    """Validate the holiday source; return the language to request names in."""
    if country is None:
        if subdivision is not None:
            raise CalendarError(f"holiday subdivision {subdivision!r} given without a country")
        return None
    entity = _holiday_entity(country)
    if subdivision is not None and subdivision not in entity.subdivisions and subdivision not in _aliases(entity):
        known = ", ".join(entity.subdivisions) or "none"
        raise CalendarError(f"unknown holiday subdivision {subdivision!r} for country {country}: expected one of {known}")
    supported = ", ".join(entity.supported_categories)
    if not categories:
        raise CalendarError(f"no holiday categories given for country {country}: expected one or more of {supported}")
    unknown = [category for category in categories if category not in entity.supported_categories]
    if unknown:
        raise CalendarError(f"unknown holiday category {unknown[0]!r} for country {country}: expected one or more of {supported}")
    return "en_US" if "en_US" in entity.supported_languages else entity.default_language


def _holiday_entity(country: str) -> holidays.HolidayBase:
    if country not in holidays.list_supported_countries():
        raise CalendarError(f"unknown holiday country {country!r}: expected an ISO 3166-1 alpha-2 code supported by the holidays package, e.g. NL, US, DE")
    return holidays.country_holidays(country)


def _aliases(entity: holidays.HolidayBase) -> Mapping[str, str]:
    return getattr(entity, "subdivisions_aliases", {}) or {}

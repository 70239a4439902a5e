"""Readable and subscribable views of the business calendar: a month-by-month text view and
an iCalendar export. Pure: they take the calendar and the entries, never the database."""

from __future__ import annotations

import calendar as gregorian
import hashlib
from collections.abc import Iterable
from datetime import date, datetime, timedelta

from mailintake.calendar.business import BusinessCalendar
from mailintake.calendar.entries import CalendarEntry
from mailintake.calendar.ranges import format_range

MARKS = {"business": " ", "weekend": "·", "holiday": "H", "closure": "C"}
LEGEND = "· weekend   H public holiday   C closure   (unmarked: business day)"


def year_view(calendar: BusinessCalendar, year: int, entries: Iterable[CalendarEntry]) -> str:
    listed = list(entries)
    blocks = [f"Business calendar {year} ({calendar.timezone}, holidays: {calendar.holiday_source or 'none'})", LEGEND]
    for month in range(1, 13):
        blocks.append(month_view(calendar, year, month, [entry for entry in listed if touches_month(entry, year, month)]))
    return "\n\n".join(blocks) + "\n"


def month_view(calendar: BusinessCalendar, year: int, month: int, entries: list[CalendarEntry]) -> str:
    lines = [f"{gregorian.month_name[month]} {year}", " Mo  Tu  We  Th  Fr  Sa  Su"]
    for week in gregorian.Calendar().monthdayscalendar(year, month):
        cells = ["    " if day == 0 else f"{day:>3}{MARKS[calendar.day_kind(date(year, month, day)).kind]}" for day in week]
        lines.append("".join(cells).rstrip())
    lines += [f"  {format_range(entry.first_day, entry.last_day)}  {entry.label}: {entry.name}" for entry in entries]
    return "\n".join(lines)


def touches_month(entry: CalendarEntry, year: int, month: int) -> bool:
    first = date(year, month, 1)
    last = date(year, month, gregorian.monthrange(year, month)[1])
    return entry.first_day <= last and entry.last_day >= first


def ics_export(calendar: BusinessCalendar, entries: Iterable[CalendarEntry], generated_at: datetime) -> bytes:
    """Holidays and closures as all-day events (DTEND exclusive), with stable UIDs so a
    subscribed client updates events instead of duplicating them."""
    import icalendar  # only `calendar export --ics` needs it, and it is slow to import

    export = icalendar.Calendar()
    export.add("prodid", "-//mailintake//business calendar//EN")
    export.add("version", "2.0")
    export.add("x-wr-calname", f"Security team business calendar ({calendar.holiday_source or calendar.timezone})")
    for entry in entries:
        if entry.source.startswith("worked"):
            continue
        event = icalendar.Event()
        event.add("uid", f"{stable_id(entry)}@mailintake")
        event.add("dtstamp", generated_at)
        event.add("summary", f"{entry.label}: {entry.name}")
        event.add("dtstart", entry.first_day)
        event.add("dtend", entry.last_day + timedelta(days=1))
        event.add("transp", "TRANSPARENT")
        export.add_component(event)
    return export.to_ical()


def stable_id(entry: CalendarEntry) -> str:
    return hashlib.sha256(f"{entry.first_day}|{entry.last_day}|{entry.name}|{entry.source}".encode()).hexdigest()[:24]

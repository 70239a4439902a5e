"""Holiday administration kept in the database: closures added at run time and official
holidays the office works. The effective calendar is config + these rows; every change
recomputes the deadlines of open reports in the same transaction."""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailintake.calendar.business import BusinessCalendar, Closure
from mailintake.calendar.entries import CalendarEntry
from mailintake.calendar.ranges import format_range
from mailintake.config.schema import CalendarConfig
from mailintake.deadlines.milestones import refresh_open_reports
from mailintake.sla.policy import Policy
from mailintake.storage.models import CalendarChange

CLOSURE = "closure"
WORKED_HOLIDAY = "worked_holiday"


class CalendarAdminError(ValueError):
    """An admin request that cannot be carried out; nothing was written."""


def active_changes(session: Session) -> list[CalendarChange]:
    return list(session.scalars(select(CalendarChange).where(CalendarChange.removed_at.is_(None)).order_by(CalendarChange.first_day, CalendarChange.id)))


def effective_calendar(session: Session, config: CalendarConfig) -> BusinessCalendar:
    changes = active_changes(session)
    closures = tuple(Closure(change.first_day, change.last_day, change.name) for change in changes if change.kind == CLOSURE)
    worked = frozenset(change.first_day for change in changes if change.kind == WORKED_HOLIDAY)
    return calendar_for(config, closures, worked)


@lru_cache(maxsize=16)
def calendar_for(config: CalendarConfig, closures: tuple[Closure, ...], worked: frozenset[date]) -> BusinessCalendar:
    """Built once per distinct set of admin changes, so its holiday caches survive between messages."""
    return config.business_calendar(closures, worked)


def add_closure(session: Session, first_day: date, last_day: date, name: str, by: str, now: datetime) -> CalendarChange:
    if last_day < first_day:
        raise CalendarAdminError(f"closure {format_range(first_day, last_day)} ends before it starts")
    if not name.strip():
        raise CalendarAdminError('a closure needs a name, e.g. "year-end shutdown"')
    change = CalendarChange(kind=CLOSURE, first_day=first_day, last_day=last_day, name=name.strip(), created_by=by, created_at=now)
    session.add(change)
    session.flush()
    return change


def remove_day(session: Session, config: CalendarConfig, day: date, by: str, now: datetime) -> tuple[date, str]:
    """Remove an admin closure covering `day`, or else mark the official holiday on `day` as
    worked. Returns the first day that changed and what was done."""
    for change in active_changes(session):
        if change.kind == CLOSURE and change.first_day <= day <= change.last_day:
            change.removed_at, change.removed_by = now, by
            return change.first_day, f"removed closure {format_range(change.first_day, change.last_day)} {change.name}"
    holiday = effective_calendar(session, config).holidays_in(day.year).get(day)
    if holiday is None:
        raise CalendarAdminError(f"{day.isoformat()} is neither an admin closure nor an official holiday (closures from config.toml are changed there)")
    session.add(CalendarChange(kind=WORKED_HOLIDAY, first_day=day, last_day=day, name=holiday, created_by=by, created_at=now))
    session.flush()
    return day, f"{day.isoformat()} {holiday} is now a working day"


def calendar_entries(session: Session, config: CalendarConfig, year: int) -> list[CalendarEntry]:
    """Holidays and closures touching `year`, each with where it comes from."""
    calendar = effective_calendar(session, config)
    entries = [CalendarEntry(day, day, name, "public holiday") for day, name in calendar.holidays_in(year).items()]
    for closure in config.closures:
        if isinstance(closure, Closure):
            if closure.start.year <= year <= closure.end.year:
                entries.append(CalendarEntry(closure.start, closure.end, closure.name, "closure (config)"))
        else:
            entries += [CalendarEntry(day, day, closure.name, "closure (config)") for day in closure.dates_in_year(year)]
    for change in active_changes(session):
        if change.first_day.year <= year <= change.last_day.year:
            source = "closure (admin)" if change.kind == CLOSURE else "worked holiday (admin)"
            entries.append(CalendarEntry(change.first_day, change.last_day, change.name, source, change.created_by, change.created_at))
    return sorted(entries, key=lambda entry: (entry.first_day, entry.source))


def recompute_after_change(session: Session, config: CalendarConfig, policy: Policy, now: datetime, changed_from: date) -> int:
    session.flush()
    return refresh_open_reports(session, policy, effective_calendar(session, config), now, changed_from)

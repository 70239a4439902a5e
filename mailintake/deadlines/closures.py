"""Holiday administration kept in the database: closures added at run time and official
holidays the office works. The effective calendar is config + these rows; every change
recomputes the deadlines of open reports in the same transaction.

Every admin change has its undo, and a day carries at most one admin entry, so no two
entries of one day contradict each other:
- add DATE[..DATE] NAME: an admin closure; refused on a day that already has an admin
  entry (a worked holiday is given back with restore, a closure is changed by removing it).
- remove DATE: ends the admin closure covering DATE (the undo of add), or else records the
  official holiday on DATE as worked.
- restore DATE: ends the worked-holiday entry of DATE, so the holiday counts again (the
  undo of remove).
An ended entry keeps who ended it and when (never deleted); a removed closure comes back
with add. Config closures are changed in config.toml.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Literal

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from mailintake.calendar.business import BusinessCalendar, Closure
from mailintake.calendar.entries import SOURCE_ADMIN_CLOSURE, SOURCE_CONFIG_CLOSURE, SOURCE_PUBLIC_HOLIDAY, SOURCE_WORKED_HOLIDAY, CalendarEntry
from mailintake.calendar.ranges import format_range
from mailintake.config.schema import CalendarConfig
from mailintake.deadlines.milestones import refresh_open_reports
from mailintake.sla.policy import Policy
from mailintake.storage.models import CalendarChange

CLOSURE = "closure"
WORKED_HOLIDAY = "worked_holiday"
NAME_LENGTH = 255  # calendar_changes.name (storage/models.py)

Action = Literal["closed", "reopened", "worked", "restored"]


class CalendarAdminError(ValueError):
    """An admin request that cannot be carried out; nothing was written."""


@dataclass(frozen=True)
class AdminChange:
    """What an admin command did: the days, the name of the closure or holiday, and how."""

    action: Action
    first_day: date
    last_day: date
    name: str

    @property
    def summary(self) -> str:
        days = format_range(self.first_day, self.last_day)
        return {
            "closed": f"closed {days}: {self.name}",
            "reopened": f"removed closure {days} {self.name}",
            "worked": f"{days} {self.name} is now a working day",
            "restored": f"{days} {self.name} is a holiday again",
        }[self.action]


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
    name = checked_name(name)
    serialise_admin_changes(session)
    conflicts = admin_changes_between(session, first_day, last_day)
    if conflicts:
        raise CalendarAdminError(conflict_with(conflicts[0]))
    change = CalendarChange(kind=CLOSURE, first_day=first_day, last_day=last_day, name=name, created_by=by, created_at=now)
    session.add(change)
    session.flush()
    return change


def checked_name(name: str) -> str:
    stripped = name.strip()
    if not stripped:
        raise CalendarAdminError('a closure needs a name, e.g. "year-end shutdown"')
    if not stripped.isprintable():
        raise CalendarAdminError("a closure name is one line of printable text")
    if len(stripped) > NAME_LENGTH:
        raise CalendarAdminError(f"a closure name has at most {NAME_LENGTH} characters")
    return stripped


def conflict_with(change: CalendarChange) -> str:
    """Why a closure cannot be added over an admin entry, and what to do instead."""
    if change.kind == WORKED_HOLIDAY:
        day = change.first_day.isoformat()
        return f"{day} is a worked holiday ({shown(change.name)}): `holidays restore {day}` makes it a holiday again"
    days = format_range(change.first_day, change.last_day)
    return f"{days} is already an admin closure ({shown(change.name)}): `holidays remove {change.first_day.isoformat()}` ends it, then add the new one"


def remove_day(session: Session, config: CalendarConfig, day: date, by: str, now: datetime) -> AdminChange:
    """End the admin closure covering `day`, or else record the official holiday on `day` as worked."""
    serialise_admin_changes(session)
    entries = admin_changes_between(session, day, day)
    closure = next((change for change in entries if change.kind == CLOSURE), None)
    if closure is not None:
        end_change(session, closure, by, now)
        return AdminChange("reopened", closure.first_day, closure.last_day, closure.name)
    if entries:
        worked = entries[0]
        raise CalendarAdminError(f"{day.isoformat()} {shown(worked.name)} is already worked: `holidays restore {day.isoformat()}` makes it a holiday again")
    closed_by = config_closure_on(config, day)
    if closed_by is not None:
        raise CalendarAdminError(f"{day.isoformat()} is closed by config.toml ({shown(closed_by)}): change it there")
    holiday = official_holiday_on(config, day)
    if holiday is None:
        raise CalendarAdminError(f"{day.isoformat()} is neither an admin closure nor an official holiday: nothing to remove")
    session.add(CalendarChange(kind=WORKED_HOLIDAY, first_day=day, last_day=day, name=holiday, created_by=by, created_at=now))
    session.flush()
    return AdminChange("worked", day, day, holiday)


def restore_day(session: Session, day: date, by: str, now: datetime) -> AdminChange:
    """End the worked-holiday entry of `day`: the official holiday counts again."""
    serialise_admin_changes(session)
    entries = admin_changes_between(session, day, day)
    worked = next((change for change in entries if change.kind == WORKED_HOLIDAY), None)
    if worked is None:
        hint = f"; it is in the admin closure {format_range(entries[0].first_day, entries[0].last_day)}, which `holidays remove {day.isoformat()}` ends" if entries else ""
        raise CalendarAdminError(f"{day.isoformat()} is not a worked holiday: nothing to restore{hint}")
    end_change(session, worked, by, now)
    return AdminChange("restored", day, day, worked.name)


def end_change(session: Session, change: CalendarChange, by: str, now: datetime) -> None:
    change.removed_at, change.removed_by = now, by
    session.flush()


def admin_changes_between(session: Session, first_day: date, last_day: date) -> list[CalendarChange]:
    """Active admin entries touching any day of first_day..last_day, oldest first."""
    touching = (CalendarChange.removed_at.is_(None), CalendarChange.first_day <= last_day, CalendarChange.last_day >= first_day)
    return list(session.scalars(select(CalendarChange).where(*touching).order_by(CalendarChange.id)))


def serialise_admin_changes(session: Session) -> None:
    """One admin change at a time, so two admins cannot both pass the check for a day and
    each add an entry to it. Readers are not blocked. (SQLite's BEGIN IMMEDIATE already
    serialises writers.)"""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"LOCK TABLE {CalendarChange.__tablename__} IN SHARE ROW EXCLUSIVE MODE"))


def official_holiday_on(config: CalendarConfig, day: date) -> str | None:
    return calendar_for(config, (), frozenset()).holidays_in(day.year).get(day)


def config_closure_on(config: CalendarConfig, day: date) -> str | None:
    return next((closure.name for closure in config.closures if day in set(closure.dates_in_year(day.year))), None)


def shown(name: str) -> str:
    """A stored name in a one-line message: as it is if printable, else escaped."""
    return name if name.isprintable() else ascii(name)


def calendar_entries(session: Session, config: CalendarConfig, year: int) -> list[CalendarEntry]:
    """Holidays and closures touching `year`, each with where it comes from. A worked
    holiday is listed as such, not also as the holiday it replaces."""
    calendar = effective_calendar(session, config)
    entries = [CalendarEntry(day, day, name, SOURCE_PUBLIC_HOLIDAY) for day, name in calendar.holidays_in(year).items()]
    for closure in config.closures:
        if isinstance(closure, Closure):
            if closure.start.year <= year <= closure.end.year:
                entries.append(CalendarEntry(closure.start, closure.end, closure.name, SOURCE_CONFIG_CLOSURE))
        else:
            entries += [CalendarEntry(day, day, closure.name, SOURCE_CONFIG_CLOSURE) for day in closure.dates_in_year(year)]
    for change in active_changes(session):
        if change.first_day.year <= year <= change.last_day.year:
            source = SOURCE_ADMIN_CLOSURE if change.kind == CLOSURE else SOURCE_WORKED_HOLIDAY
            entries.append(CalendarEntry(change.first_day, change.last_day, change.name, source, change.created_by, change.created_at))
    return sorted(entries, key=lambda entry: (entry.first_day, entry.source))


def recompute_after_change(session: Session, config: CalendarConfig, policy: Policy, now: datetime, changed_from: date) -> int:
    session.flush()
    return refresh_open_reports(session, policy, effective_calendar(session, config), now, changed_from)

"""holidays: the public holidays and admin closures deadlines skip, and changing them.
Each change has its undo (deadlines/closures.py): add ↔ remove of an admin closure,
remove ↔ restore of an official holiday the office works."""

from __future__ import annotations

import argparse
import getpass
from collections.abc import Callable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from mailintake.calendar.business import CalendarError
from mailintake.calendar.entries import LABEL_WIDTH, LABELS, CalendarEntry
from mailintake.calendar.ranges import format_range
from mailintake.cli.context import AppContext
from mailintake.cli.output import print_json, print_listing, show
from mailintake.cli.parser import SUPPORTED_YEARS, Subcommands, UsageError, add_command, add_group, add_json_option, calendar_year, shown
from mailintake.deadlines.closures import NAME_LENGTH, AdminChange, CalendarAdminError, add_closure, calendar_entries, recompute_after_change, remove_day, restore_day
from mailintake.reports.read_model import iso_utc

ONE_ENTRY = "A day has at most one admin entry: a worked holiday is given back with `holidays restore`, an admin closure is changed by removing it first."


def add_to(commands: Subcommands) -> None:
    holidays = add_group(commands, "holidays", "public holidays and closures (admin data, kept in the database); add/remove and remove/restore undo each other")
    listing = add_command(holidays, "list", "holidays and closures of a year, with their source and who added them", list_holidays)
    listing.add_argument("--year", type=calendar_year, help="default: this year")
    add_json_option(listing)
    add = add_command(holidays, "add", "close the office on a day or a range (an admin closure); open reports' deadlines are recomputed", add_holiday)
    add.description = f"Close the office on a day or a range: an admin closure. {ONE_ENTRY} `holidays remove DATE` undoes it."
    add.add_argument("days", metavar="DATE[..DATE]", help="e.g. 2026-12-28 or 2026-12-28..2026-12-31")
    add.add_argument("name", metavar="NAME", help='e.g. "year-end shutdown"')
    add_change_options(add)
    remove = add_command(holidays, "remove", "reopen a day: end the admin closure covering it, or work the official holiday on it", remove_holiday)
    remove.description = (
        "Reopen a day: end the admin closure covering DATE (all its days; `holidays add` brings it back), or else record the official holiday on DATE"
        " as worked (`holidays restore DATE` undoes that). Closures from config.toml are changed there."
    )
    remove.add_argument("day", metavar="DATE", help="e.g. 2026-04-03")
    add_change_options(remove)
    restore = add_command(holidays, "restore", "make a worked holiday a holiday again (the undo of `holidays remove` of a holiday)", restore_holiday)
    restore.description = "End the worked-holiday entry of DATE: the official holiday counts again and open reports' deadlines are recomputed."
    restore.add_argument("day", metavar="DATE", help="e.g. 2026-12-25")
    add_change_options(restore)


def add_change_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--by", help="who makes the change (default: the login name)")
    add_json_option(command)


def list_holidays(arguments: argparse.Namespace, context: AppContext) -> int:
    year = arguments.year if arguments.year is not None else context.clock().year
    zone = ZoneInfo(context.config.calendar.timezone)
    with context.transaction() as session:
        entries = calendar_entries(session, context.config.calendar, year)
    return print_listing([entry_view(entry) for entry in entries], arguments.json, lambda item: entry_line(item, zone), f"no holidays or closures in {year}")


def entry_line(item: dict[str, Any], zone: ZoneInfo) -> str:
    """Days, label, name, and for an admin entry who made it and when (in the calendar's zone)."""
    days = format_range(date.fromisoformat(item["first_day"]), date.fromisoformat(item["last_day"]))
    changed = f"  by {item['changed_by']}, {datetime.fromisoformat(item['changed_at']).astimezone(zone).isoformat(timespec='seconds')}" if item["changed_at"] else ""
    return f"{days:<22}  {LABELS.get(item['source'], item['source']):<{LABEL_WIDTH}}  {item['name']}{changed}"


def entry_view(entry: CalendarEntry) -> dict[str, Any]:
    return {
        "first_day": entry.first_day.isoformat(),
        "last_day": entry.last_day.isoformat(),
        "name": entry.name,
        "source": entry.source,
        "changed_by": entry.changed_by,
        "changed_at": iso_utc(entry.changed_at) if entry.changed_at else None,
    }


def add_holiday(arguments: argparse.Namespace, context: AppContext) -> int:
    first_day, last_day = day_range(arguments.days)
    by = who(arguments)

    def change(session: Session, now: datetime) -> AdminChange:
        added = add_closure(session, first_day, last_day, arguments.name, by, now)
        return AdminChange("closed", added.first_day, added.last_day, added.name)

    return apply_change(arguments, context, change)


def remove_holiday(arguments: argparse.Namespace, context: AppContext) -> int:
    day = one_day(arguments.day)
    by = who(arguments)
    return apply_change(arguments, context, lambda session, now: remove_day(session, context.config.calendar, day, by, now))


def restore_holiday(arguments: argparse.Namespace, context: AppContext) -> int:
    day = one_day(arguments.day)
    by = who(arguments)
    return apply_change(arguments, context, lambda session, now: restore_day(session, day, by, now))


def apply_change(arguments: argparse.Namespace, context: AppContext, change: Callable[[Session, datetime], AdminChange]) -> int:
    """Make the change and recompute the open deadlines it moves, in one transaction: if
    either fails, nothing is written."""
    now = context.clock()
    config = context.config
    with context.transaction() as session:
        try:
            done = change(session, now)
        except CalendarAdminError as error:
            raise UsageError(str(error)) from None
        try:
            moved = recompute_after_change(session, config.calendar, config.sla, now, done.first_day)
        except CalendarError as error:
            raise UsageError(f"not changed: {format_range(done.first_day, done.last_day)} would leave open deadlines without business time ({error})") from None
    if arguments.json:
        print_json({"action": done.action, "first_day": done.first_day.isoformat(), "last_day": done.last_day.isoformat(), "name": done.name, "moved": moved})
    else:
        show(f"{done.summary}; {moved} open deadline(s) moved")
    return 0


def day_range(text: str) -> tuple[date, date]:
    first, separator, last = text.partition("..")
    first_day = one_day(first)
    return first_day, one_day(last) if separator else first_day


def one_day(text: str) -> date:
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{shown(text)} is not a real date (expected YYYY-MM-DD)") from None
    if day.year not in SUPPORTED_YEARS:
        raise UsageError(f"{day.isoformat()} is outside the years this calendar covers ({SUPPORTED_YEARS.start}..{SUPPORTED_YEARS.stop - 1})")
    return day


def who(arguments: argparse.Namespace) -> str:
    by = arguments.by.strip() if arguments.by is not None else login_name()
    if not by or not by.isprintable() or len(by) > NAME_LENGTH:
        raise UsageError(f"--by: {shown(arguments.by)} is not a name (one line of printable text, at most {NAME_LENGTH} characters)")
    return by


def login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"

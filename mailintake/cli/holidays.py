"""holidays: the public holidays and admin closures deadlines skip, and changing them."""

from __future__ import annotations

import argparse
import getpass
from datetime import date
from typing import Any

from mailintake.calendar.entries import CalendarEntry
from mailintake.calendar.ranges import format_range
from mailintake.cli.context import AppContext
from mailintake.cli.output import print_listing
from mailintake.cli.parser import Subcommands, UsageError, add_command, add_group, add_json_option, calendar_year
from mailintake.deadlines.closures import CalendarAdminError, add_closure, calendar_entries, recompute_after_change, remove_day
from mailintake.reports.read_model import iso_utc


def add_to(commands: Subcommands) -> None:
    holidays = add_group(commands, "holidays", "public holidays and closures (admin data, kept in the database)")
    listing = add_command(holidays, "list", "holidays and closures of a year, with their source and who added them", list_holidays)
    listing.add_argument("--year", type=calendar_year, help="default: this year")
    add_json_option(listing)
    add = add_command(holidays, "add", "close the office on a day or a range; open reports' deadlines are recomputed", add_holiday)
    add.add_argument("days", metavar="DATE[..DATE]", help="e.g. 2026-12-28 or 2026-12-28..2026-12-31")
    add.add_argument("name", metavar="NAME", help='e.g. "year-end shutdown"')
    add.add_argument("--by", help="who makes the change (default: the login name)")
    remove = add_command(holidays, "remove", "reopen a day: drop an admin closure, or work an official holiday", remove_holiday)
    remove.add_argument("day", metavar="DATE", help="e.g. 2026-04-03")
    remove.add_argument("--by", help="who makes the change (default: the login name)")


def list_holidays(arguments: argparse.Namespace, context: AppContext) -> int:
    year = arguments.year if arguments.year is not None else context.clock().year
    with context.transaction() as session:
        entries = calendar_entries(session, context.config.calendar, year)
    return print_listing([entry_view(entry) for entry in entries], arguments.json, entry_line, f"no holidays or closures in {year}")


def entry_line(item: dict[str, Any]) -> str:
    changed = f"  (by {item['changed_by']}, {item['changed_at']})" if item["changed_by"] else ""
    days = format_range(date.fromisoformat(item["first_day"]), date.fromisoformat(item["last_day"]))
    return f"{days:<22}  {item['source']:<22}  {item['name']}{changed}"


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
    now = context.clock()
    config = context.config
    with context.transaction() as session:
        try:
            change = add_closure(session, first_day, last_day, arguments.name, arguments.by or login_name(), now)
        except CalendarAdminError as error:
            raise UsageError(str(error)) from None
        moved = recompute_after_change(session, config.calendar, config.sla, now, change.first_day)
        print(f"closed {format_range(change.first_day, change.last_day)}: {change.name}; {moved} open deadline(s) moved")
    return 0


def remove_holiday(arguments: argparse.Namespace, context: AppContext) -> int:
    day = one_day(arguments.day)
    now = context.clock()
    config = context.config
    with context.transaction() as session:
        try:
            changed_from, done = remove_day(session, config.calendar, day, arguments.by or login_name(), now)
        except CalendarAdminError as error:
            raise UsageError(str(error)) from None
        moved = recompute_after_change(session, config.calendar, config.sla, now, changed_from)
        print(f"{done}; {moved} open deadline(s) moved")
    return 0


def day_range(text: str) -> tuple[date, date]:
    first, separator, last = text.partition("..")
    first_day = one_day(first)
    return first_day, one_day(last) if separator else first_day


def one_day(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{text!r} is not a real date (expected YYYY-MM-DD)") from None


def login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"

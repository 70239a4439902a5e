"""calendar: the business calendar deadlines are computed on: a year's view, one deadline, an iCalendar export."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC

from mailintake.calendar.business import CalendarError, format_skipped_days
from mailintake.calendar.durations import DurationError, parse_duration
from mailintake.calendar.views import ics_export, year_view
from mailintake.cli.context import AppContext
from mailintake.cli.output import print_json
from mailintake.cli.parser import Subcommands, UsageError, add_command, add_group, add_json_option, calendar_year
from mailintake.deadlines.closures import calendar_entries
from mailintake.reports.read_model import iso_utc


def add_to(commands: Subcommands) -> None:
    calendar = add_group(commands, "calendar", "the business calendar deadlines are computed on")
    year = add_command(calendar, "show", "a month-by-month view marking weekends, holidays and closures", show_year)
    year.add_argument("--year", type=calendar_year, help="default: this year")
    deadline = add_command(calendar, "deadline", "the deadline for a duration from a moment, in the calendar's zone", show_deadline)
    deadline.add_argument("--from", dest="start", required=True, metavar="ISO", help="e.g. 2026-12-23T16:00+01:00 (without an offset: the calendar's zone)")
    deadline.add_argument("--within", required=True, metavar="DURATION", help='"24 hours", "8 business hours" or "3 business days"')
    deadline.add_argument("--explain", action="store_true", help="list the days skipped and why")
    add_json_option(deadline)
    export = add_command(calendar, "export", "holidays and closures as an iCalendar file on standard output", export_ics)
    export.add_argument("--ics", action="store_true", required=True, help="iCalendar format (RFC 5545)")
    export.add_argument("--year", type=calendar_year, action="append", help="a year to include (repeatable; default: this year and next)")


def show_year(arguments: argparse.Namespace, context: AppContext) -> int:
    year = arguments.year if arguments.year is not None else context.clock().year
    with context.transaction() as session:
        entries = calendar_entries(session, context.config.calendar, year)
    sys.stdout.write(year_view(context.calendar, year, entries))
    return 0


def show_deadline(arguments: argparse.Namespace, context: AppContext) -> int:
    calendar = context.calendar
    start = context.moment(arguments.start, "--from")
    try:
        explanation = calendar.explain(start, parse_duration(arguments.within))
    except (DurationError, CalendarError) as error:
        raise UsageError(f"--within: {error}") from None
    skipped = format_skipped_days(explanation.skipped)
    if arguments.json:
        print_json({"from": start.isoformat(), "within": str(explanation.duration), "deadline": explanation.deadline.isoformat(), "deadline_utc": iso_utc(explanation.deadline.astimezone(UTC)), "skipped": skipped})
        return 0
    print(explanation.deadline.isoformat())
    if arguments.explain:
        print(f"{explanation.duration} from {start.isoformat()} ({calendar.timezone}); days skipped:")
        for line in skipped or ["none"]:
            print(f"  {line}")
    return 0


def export_ics(arguments: argparse.Namespace, context: AppContext) -> int:
    now = context.clock()
    years = arguments.year or [now.year, now.year + 1]
    with context.transaction() as session:
        entries = [entry for year in sorted(set(years)) for entry in calendar_entries(session, context.config.calendar, year)]
    unique = list(dict.fromkeys(entries))
    sys.stdout.buffer.write(ics_export(context.calendar, unique, now))
    sys.stdout.flush()
    return 0

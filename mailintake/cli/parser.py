"""The argument parser: the top level gathers the command groups; a usage error is one
line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, NoReturn, Protocol, TypeAlias

from dateutil.parser import isoparse

from mailintake import __version__
from mailintake.calendar.business import BusinessCalendar

if TYPE_CHECKING:
    from mailintake.cli.context import AppContext

EXIT_USAGE = 2
EXIT_FAILURE = 1
# Years a command accepts: the holiday tables, the zone rules and date arithmetic all hold
# here, with room on either side for a deadline that runs into the next year.
SUPPORTED_YEARS = range(1900, 3000)
# The largest id a row can have (a signed 64-bit integer, on SQLite and PostgreSQL alike).
MAX_ROW_ID = 2**63 - 1

_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")

Subcommands: TypeAlias = "argparse._SubParsersAction[OneLineParser]"
Handler: TypeAlias = "Callable[[argparse.Namespace, AppContext], int]"


class UsageError(Exception):
    """Bad input from the command line: exit status 2."""


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse quotes the offending argument as given: its line breaks would end the line.
        one_line = _CONTROL_RE.sub(lambda match: ascii(match.group())[1:-1], message)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {one_line} (see --help)\n")


class CommandGroup(Protocol):
    """A module of cli/ that adds one command (or a group of subcommands) to the parser."""

    def add_to(self, commands: Subcommands) -> None: ...


def build_parser(groups: Sequence[CommandGroup]) -> OneLineParser:
    parser = OneLineParser(prog="mailintake", description="Runs a security@ mailbox: stores every report, tracks it, answers on time.")
    parser.add_argument("--config", metavar="PATH", help="config file (default: $MAILINTAKE_CONFIG)")
    parser.add_argument("--version", action="version", version=f"mailintake {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser)
    for group in groups:
        group.add_to(commands)
    return parser


def add_group(commands: Subcommands, name: str, help: str) -> Subcommands:
    return commands.add_parser(name, help=help).add_subparsers(dest=f"{name}_command", required=True, metavar="SUBCOMMAND")


def add_command(commands: Subcommands, name: str, help: str, handler: Handler) -> argparse.ArgumentParser:
    command = commands.add_parser(name, help=help)
    command.set_defaults(handler=handler)
    return command


def add_json_option(command: argparse.ArgumentParser) -> None:
    command.add_argument("--json", action="store_true", help="machine-readable output")


def calendar_year(text: str) -> int:
    """argparse type of `--year`: a whole year in SUPPORTED_YEARS."""
    try:
        year = int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{shown(text)} is not a year (e.g. 2026)") from None
    if year not in SUPPORTED_YEARS:
        raise argparse.ArgumentTypeError(f"{year} is outside the years this calendar covers ({SUPPORTED_YEARS.start}..{SUPPORTED_YEARS.stop - 1})")
    return year


def moment_in(calendar: BusinessCalendar, text: str, option: str) -> datetime:
    """An ISO 8601 moment in SUPPORTED_YEARS; without an offset it is wall time in the calendar's zone."""
    try:
        moment: datetime = isoparse(text)
    except (ValueError, OverflowError):
        raise UsageError(f"{option}: {shown(text)} is not an ISO 8601 date and time (e.g. 2026-12-23T16:00+01:00)") from None
    if moment.year not in SUPPORTED_YEARS:
        raise UsageError(f"{option}: {moment.year} is outside the years this calendar covers ({SUPPORTED_YEARS.start}..{SUPPORTED_YEARS.stop - 1})")
    return moment if moment.tzinfo else moment.replace(tzinfo=calendar.zone)


def shown(text: str, limit: int = 60) -> str:
    """An argument quoted in an error line: printable, one line, at most `limit` characters."""
    quoted = ascii(text)
    return quoted if len(quoted) <= limit else quoted[: limit - 2] + "…'"


def row_id(text: str) -> int:
    """argparse type of a row id: a whole number from 1 that the database can hold."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{shown(text)} is not an id (a whole number)") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{shown(text)} is not an id (1 or more)")
    if number > MAX_ROW_ID:
        raise argparse.ArgumentTypeError(f"{shown(text)} is larger than any stored id")
    return number

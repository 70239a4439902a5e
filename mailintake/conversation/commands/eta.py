"""#eta: the date the fix is expected; #assessment's line in the command list names it."""

from __future__ import annotations

import re
from datetime import date

from mailintake.conversation.commands.base import Command, CommandContext, CommandError, no_conflicts, no_events, required, shown

NAME = "eta"
USAGE = "#eta YYYY-MM-DD"
HELP = None
EXAMPLE = "#eta 2027-01-15"
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

conflicts = no_conflicts
events = no_events


def parse(argument: str, line: int) -> Command:
    if not ISO_DATE.fullmatch(required(NAME, argument, EXAMPLE)):
        raise CommandError(f"#eta needs a date as YYYY-MM-DD, e.g. #eta 2027-01-15; got {shown(argument)}")
    try:
        eta = date.fromisoformat(argument)
    except ValueError:
        raise CommandError(f"#eta {argument} is not a real date") from None
    return Command(name=NAME, value=eta.isoformat(), line=line, eta=eta)


def check(command: Command, context: CommandContext) -> list[str]:
    if command.eta is not None and command.eta < context.today:
        return [f"line {command.line}: #eta {command.value} is in the past"]
    return []


def apply(command: Command, context: CommandContext) -> None:
    context.report.eta = command.eta

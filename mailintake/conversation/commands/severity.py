"""#severity: the report's severity; per-severity deadlines follow it."""

from __future__ import annotations

from mailintake.conversation.commands.base import Command, CommandContext, CommandError, no_conflicts, no_events, no_problems, required, shown
from mailintake.core.vocabulary import SEVERITIES

NAME = "severity"
USAGE = "#severity " + "|".join(SEVERITIES)
HELP = "set the severity (per-severity deadlines follow it)"
EXAMPLE = "#severity high"

conflicts = no_conflicts
check = no_problems
events = no_events


def parse(argument: str, line: int) -> Command:
    severity = required(NAME, argument, EXAMPLE).lower()
    if severity not in SEVERITIES:
        raise CommandError(f"#severity {shown(argument)} is not one of {'|'.join(SEVERITIES)}")
    return Command(name=NAME, value=severity, line=line)


def apply(command: Command, context: CommandContext) -> None:
    context.report.severity = command.value

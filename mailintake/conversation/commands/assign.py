"""#assign: who on the staff list handles the report."""

from __future__ import annotations

import re

from mailintake.conversation.commands.base import Command, CommandContext, CommandError, no_conflicts, no_events, required, shown

NAME = "assign"
USAGE = "#assign NAME"
HELP = "assign the report"
EXAMPLE = "#assign alice"
ASSIGNEE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}")

conflicts = no_conflicts
events = no_events


def parse(argument: str, line: int) -> Command:
    if not ASSIGNEE.fullmatch(required(NAME, argument, EXAMPLE)):
        raise CommandError(f"#assign needs one staff name without spaces, e.g. #assign alice; got {shown(argument)}")
    return Command(name=NAME, value=argument, line=line)


def check(command: Command, context: CommandContext) -> list[str]:
    if command.value is not None and context.assignee_of(command.value) is None:
        return [f"line {command.line}: {command.value!r} is not on the staff list ([staff] members)"]
    return []


def apply(command: Command, context: CommandContext) -> None:
    if command.value is not None:
        context.report.assignee = context.assignee_of(command.value)

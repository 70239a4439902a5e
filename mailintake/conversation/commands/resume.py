"""#resume: the report no longer waits on the reporter; #wait's line in the command list
names it."""

from __future__ import annotations

from mailintake.conversation.commands.base import Command, CommandContext, flag, no_conflicts, no_events

NAME = "resume"
USAGE = "#resume"
HELP = None

conflicts = no_conflicts
events = no_events


def parse(argument: str, line: int) -> Command:
    return flag(NAME, argument, line)


def check(command: Command, context: CommandContext) -> list[str]:
    return [] if context.waiting() else ["#resume: the report is not waiting on the reporter"]


def apply(command: Command, context: CommandContext) -> None:
    context.end_pause()

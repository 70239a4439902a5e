"""Every staff command, in the order staff see them listed. A new command is a new module
beside this one and its place in COMMANDS; the parser, the command list in staff mail, the
checks, the changes and the SLA events all follow from this tuple."""

from __future__ import annotations

from collections.abc import Collection

from mailintake.conversation.commands import assessment, assign, attach, bounty, credit, eta, internal, resume, severity, status, wait
from mailintake.conversation.commands.base import CommandContext, StaffCommand, StaffReply

COMMANDS: tuple[StaffCommand, ...] = (status, severity, assign, assessment, eta, internal, credit, bounty, wait, resume, attach)
COMMAND_NAMES = tuple(command.NAME for command in COMMANDS)
BY_NAME = {command.NAME: command for command in COMMANDS}


def command_named(name: str) -> StaffCommand | None:
    return BY_NAME.get(name)


def help_list() -> tuple[tuple[str, str], ...]:
    """(usage, help) of each line of the command list staff are sent."""
    return tuple((command.USAGE, command.HELP) for command in COMMANDS if command.HELP is not None)


def conflicts_of(names: Collection[str]) -> list[str]:
    """What the commands given (by name) cannot be together, in COMMANDS order."""
    return [problem for command in COMMANDS if command.NAME in names for problem in command.conflicts(names)]


def command_problems(context: CommandContext) -> list[str]:
    """What each command of the reply finds wrong with it, in COMMANDS order."""
    problems: list[str] = []
    for command in COMMANDS:
        given = context.reply.command(command.NAME)
        if given is not None:
            problems += command.check(given, context)
    return problems


def carry_out(context: CommandContext) -> None:
    """Every command's change, in the order the reply gives them."""
    for given in context.reply.commands:
        BY_NAME[given.name].apply(given, context)


def command_events(reply: StaffReply, mailed: bool) -> set[str]:
    return {event for given in reply.commands for event in BY_NAME[given.name].events(given, mailed)}

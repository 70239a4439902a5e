"""#assessment: this reply is the assessment the policy promises; #eta gives its date."""

from __future__ import annotations

from collections.abc import Collection

from mailintake.conversation.commands.base import Command, CommandContext, changes_nothing, flag

NAME = "assessment"
USAGE = "#assessment"
HELP = "this reply is the assessment; add #eta YYYY-MM-DD"

apply = changes_nothing


def parse(argument: str, line: int) -> Command:
    return flag(NAME, argument, line)


def conflicts(names: Collection[str]) -> list[str]:
    problems = []
    if "eta" not in names:
        problems.append("#assessment needs #eta YYYY-MM-DD")
    if "internal" in names:
        problems.append("#assessment goes to the reporter and #internal does not: use one of them")
    return problems


def check(command: Command, context: CommandContext) -> list[str]:
    return [] if context.text else ["#assessment: write the assessment itself below the commands"]


def events(command: Command, mailed: bool) -> tuple[str, ...]:
    return ("assessment",) if mailed else ()

"""#internal: the reply is kept as an internal note and nothing goes to the reporter
(conversation/staff.py acts on it when it answers the reply)."""

from __future__ import annotations

from mailintake.conversation.commands.base import Command, changes_nothing, flag, no_conflicts, no_events, no_problems

NAME = "internal"
USAGE = "#internal"
HELP = "keep this reply as an internal note; nothing goes to the reporter"

conflicts = no_conflicts
check = no_problems
apply = changes_nothing
events = no_events


def parse(argument: str, line: int) -> Command:
    return flag(NAME, argument, line)

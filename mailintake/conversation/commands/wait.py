"""#wait: the report waits on the reporter, and pausable deadlines stop running until the
reporter replies or staff send #resume (whose usage shares this command's line)."""

from __future__ import annotations

from collections.abc import Collection

from mailintake.conversation.commands.base import Command, CommandContext, flag, no_events

NAME = "wait"
USAGE = "#wait / #resume"
HELP = "pause or resume the SLA clocks while waiting on the reporter"

events = no_events


def parse(argument: str, line: int) -> Command:
    return flag(NAME, argument, line)


def conflicts(names: Collection[str]) -> list[str]:
    return ["#wait and #resume contradict each other: use one of them"] if "resume" in names else []


def check(command: Command, context: CommandContext) -> list[str]:
    if not any(milestone.pausable for milestone in context.policy.milestones):
        return ["#wait: the SLA policy lets no deadline pause (set pausable = true on a [sla.NAME] table)"]
    if context.waiting():
        return ["#wait: the report is already waiting on the reporter"]
    return []


def apply(command: Command, context: CommandContext) -> None:
    context.start_pause()

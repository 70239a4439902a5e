"""#status: the report's status; `#status duplicate SEC-…` also names the original report."""

from __future__ import annotations

from mailintake.conversation.commands.base import Command, CommandContext, CommandError, no_conflicts, required, shown
from mailintake.core.vocabulary import SETTABLE_STATUSES, TRACKING_ID

NAME = "status"
USAGE = "#status " + "|".join(f"{status} SEC-…" if status == "duplicate" else status for status in SETTABLE_STATUSES)
HELP = "set the report's status"
EXAMPLE = "#status triaged"

conflicts = no_conflicts


def parse(argument: str, line: int) -> Command:
    words = required(NAME, argument, EXAMPLE).split()
    status = words[0].lower()
    if status not in SETTABLE_STATUSES:
        raise CommandError(f"#status {shown(words[0])} is not one of {'|'.join(SETTABLE_STATUSES)}")
    if status == "duplicate":
        if len(words) == 1:
            raise CommandError("#status duplicate needs the original's tracking id, e.g. #status duplicate SEC-2026-0001")
        if len(words) > 2 or not TRACKING_ID.fullmatch(words[1]):
            raise CommandError(f"#status duplicate: {shown(' '.join(words[1:]))} is not a tracking id like SEC-2026-0001")
        return Command(name=NAME, value=status, line=line, duplicate_of=words[1].upper())
    if len(words) > 1:
        raise CommandError(f"#status {status} takes nothing after it, got {shown(' '.join(words[1:]))}")
    return Command(name=NAME, value=status, line=line)


def check(command: Command, context: CommandContext) -> list[str]:
    if command.duplicate_of is None:
        return []
    if command.duplicate_of == context.report.tracking_id:
        return [f"line {command.line}: a report cannot be a duplicate of itself"]
    if context.report_id_of(command.duplicate_of) is None:
        return [f"line {command.line}: there is no report {command.duplicate_of}"]
    return []


def apply(command: Command, context: CommandContext) -> None:
    if command.value is None:
        return
    context.report.status = command.value
    if command.duplicate_of is not None:
        context.report.duplicate_of_id = context.report_id_of(command.duplicate_of)


def events(command: Command, mailed: bool) -> tuple[str, ...]:
    return ("resolved",) if command.value == "resolved" else ()

"""#credit: how the reporter is credited, a name in quotes."""

from __future__ import annotations

from mailintake.conversation.commands.base import Command, CommandContext, CommandError, no_conflicts, no_events, no_problems, required, shown

NAME = "credit"
USAGE = '#credit "Name"'
HELP = "how the reporter is credited"
EXAMPLE = '#credit "Jane Doe"'
MAX_CREDIT = 200
OPENING_QUOTES = '"\u201c\u201e'
CLOSING_QUOTES = '"\u201d\u201c'
QUOTE_CHARS = frozenset(OPENING_QUOTES + CLOSING_QUOTES)

conflicts = no_conflicts
check = no_problems
events = no_events


def parse(argument: str, line: int) -> Command:
    required(NAME, argument, EXAMPLE)
    quoted = len(argument) >= 2 and argument[0] in OPENING_QUOTES and argument[-1] in CLOSING_QUOTES
    name = argument[1:-1].strip() if quoted else ""
    if not name or any(character in QUOTE_CHARS for character in name):
        raise CommandError(f'#credit needs a name in quotes, e.g. #credit "Jane Doe"; got {shown(argument)}')
    if len(name) > MAX_CREDIT or not name.isprintable():
        raise CommandError(f"#credit name must be printable and at most {MAX_CREDIT} characters")
    return Command(name=NAME, value=" ".join(name.split()), line=line)


def apply(command: Command, context: CommandContext) -> None:
    context.report.credit_as = command.value

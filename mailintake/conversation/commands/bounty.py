"""#bounty: the bounty decision, an amount and a currency code; never sent to the reporter."""

from __future__ import annotations

import re
from decimal import Decimal

from mailintake.conversation.commands.base import Command, CommandContext, CommandError, no_conflicts, no_events, no_problems, required, shown

NAME = "bounty"
USAGE = "#bounty 500 EUR"
HELP = "record the bounty decision (not sent to the reporter)"
EXAMPLE = "#bounty 500 EUR"
AMOUNT = re.compile(r"(?:0|[1-9][0-9]{0,8})(?:\.[0-9]{1,2})?")
CURRENCY = re.compile(r"[A-Za-z]{3}")

conflicts = no_conflicts
check = no_problems
events = no_events


def parse(argument: str, line: int) -> Command:
    words = required(NAME, argument, EXAMPLE).split()
    if len(words) != 2 or not AMOUNT.fullmatch(words[0]) or not CURRENCY.fullmatch(words[1]):
        raise CommandError(f"#bounty needs an amount and a currency code, e.g. #bounty 500 EUR; got {shown(argument)}")
    amount, currency = Decimal(words[0]), words[1].upper()
    return Command(name=NAME, value=f"{amount} {currency}", line=line, amount=amount, currency=currency)


def apply(command: Command, context: CommandContext) -> None:
    context.report.bounty = command.value

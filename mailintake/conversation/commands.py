"""Staff commands at the top of a reply: `#status triaged`, `#eta 2027-01-15`, ….

Only the unquoted top counts: leading blank lines are skipped, and the command block ends
at the first line that is neither a command nor blank. Quoted text, quote headers
("On … wrote:", "-----Original Message-----", Outlook's "From: … Sent: …"), forwarded
parts and any "#" line further down are therefore never read as commands; they are text.
Liberal with the case and spacing of the command word, strict with values. Pure.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from mailintake.core.vocabulary import SETTABLE_STATUSES as STATUSES, SEVERITIES, TRACKING_ID

FLAGS = ("assessment", "internal", "wait", "resume", "attach")
COMMAND_NAMES = ("status", "severity", "assign", "assessment", "eta", "internal", "credit", "bounty", "wait", "resume", "attach")

MAX_COMMAND_LINE = 500
MAX_SHOWN = 40
MAX_CREDIT = 200
INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))
LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
COMMAND_LIKE = re.compile(r"#[A-Za-z]")
COMMAND_WORD = re.compile(r"#([A-Za-z][A-Za-z0-9_-]*)(.*)", re.DOTALL)
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
AMOUNT = re.compile(r"(?:0|[1-9][0-9]{0,8})(?:\.[0-9]{1,2})?")
CURRENCY = re.compile(r"[A-Za-z]{3}")
ASSIGNEE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}")
OPENING_QUOTES = '"\u201c\u201e'
CLOSING_QUOTES = '"\u201d\u201c'
QUOTE_CHARS = frozenset(OPENING_QUOTES + CLOSING_QUOTES)


@dataclass(frozen=True)
class Command:
    """One parsed command; `value` is the normalised main value (status, severity, assignee,
    ISO date, credit name, "500 EUR"), None for flags. `line` is 1-based in the reply."""

    name: str
    value: str | None = None
    line: int = 0
    eta: date | None = None
    amount: Decimal | None = None
    currency: str | None = None
    duplicate_of: str | None = None


@dataclass(frozen=True)
class StaffReply:
    commands: tuple[Command, ...]
    errors: tuple[str, ...]
    text: str

    @property
    def ok(self) -> bool:
        return not self.errors

    def command(self, name: str) -> Command | None:
        """The first command of that name, if any."""
        return next((command for command in self.commands if command.name == name), None)

    def has(self, name: str) -> bool:
        return self.command(name) is not None


class CommandError(ValueError):
    """A malformed command value; the message is shown to staff after "line N: "."""


def parse_staff_reply(text: str) -> StaffReply:
    """Commands from the top of a staff reply, the problems found, and the text without them."""
    lines = LINE.findall(text)
    commands: list[Command] = []
    errors: list[str] = []
    block_end = 0
    for number, raw in enumerate(lines, start=1):
        line = raw.translate(INVISIBLE).strip()
        if not line:
            block_end = number
            continue
        if not COMMAND_LIKE.match(line):
            break
        block_end = number
        try:
            commands.append(parsed_command(line, number))
        except CommandError as error:
            errors.append(f"line {number}: {error}")
    if not commands and not errors:
        return StaffReply(commands=(), errors=(), text=text)
    errors.extend(reply_errors(commands))
    return StaffReply(commands=tuple(commands), errors=tuple(errors), text="".join(lines[block_end:]))


def parsed_command(line: str, number: int) -> Command:
    if len(line) > MAX_COMMAND_LINE:
        raise CommandError(f"command line longer than {MAX_COMMAND_LINE} characters")
    match = COMMAND_WORD.fullmatch(line)
    if match is None:
        raise CommandError(f"cannot read {shown(line)}")
    word, rest = match.group(1).lower(), match.group(2)
    if rest and not rest[0].isspace():
        raise CommandError(f"cannot read {shown(line)}; write the value after a space, e.g. #status triaged")
    argument = rest.strip()
    if word not in COMMAND_NAMES:
        close = difflib.get_close_matches(word, COMMAND_NAMES, n=1, cutoff=0.6)
        hint = f" (did you mean #{close[0]}?)" if close else f" (known: {', '.join('#' + name for name in COMMAND_NAMES)})"
        raise CommandError(f"unknown command #{word[:MAX_SHOWN]}{hint}")
    if word in FLAGS:
        if argument:
            raise CommandError(f"#{word} takes no value, got {shown(argument)}")
        return Command(name=word, line=number)
    if not argument:
        raise CommandError(f"#{word} needs a value, e.g. {EXAMPLES[word]}")
    return VALUE_PARSERS[word](argument, number)


def status_command(argument: str, number: int) -> Command:
    words = argument.split()
    status = words[0].lower()
    if status not in STATUSES:
        raise CommandError(f"#status {shown(words[0])} is not one of {'|'.join(STATUSES)}")
    if status == "duplicate":
        if len(words) == 1:
            raise CommandError("#status duplicate needs the original's tracking id, e.g. #status duplicate SEC-2026-0001")
        if len(words) > 2 or not TRACKING_ID.fullmatch(words[1]):
            raise CommandError(f"#status duplicate: {shown(' '.join(words[1:]))} is not a tracking id like SEC-2026-0001")
        return Command(name="status", value=status, line=number, duplicate_of=words[1].upper())
    if len(words) > 1:
        raise CommandError(f"#status {status} takes nothing after it, got {shown(' '.join(words[1:]))}")
    return Command(name="status", value=status, line=number)


def severity_command(argument: str, number: int) -> Command:
    severity = argument.lower()
    if severity not in SEVERITIES:
        raise CommandError(f"#severity {shown(argument)} is not one of {'|'.join(SEVERITIES)}")
    return Command(name="severity", value=severity, line=number)


def assign_command(argument: str, number: int) -> Command:
    if not ASSIGNEE.fullmatch(argument):
        raise CommandError(f"#assign needs one staff name without spaces, e.g. #assign alice; got {shown(argument)}")
    return Command(name="assign", value=argument, line=number)


def eta_command(argument: str, number: int) -> Command:
    if not ISO_DATE.fullmatch(argument):
        raise CommandError(f"#eta needs a date as YYYY-MM-DD, e.g. #eta 2027-01-15; got {shown(argument)}")
    try:
        eta = date.fromisoformat(argument)
    except ValueError:
        raise CommandError(f"#eta {argument} is not a real date") from None
    return Command(name="eta", value=eta.isoformat(), line=number, eta=eta)


def credit_command(argument: str, number: int) -> Command:
    quoted = len(argument) >= 2 and argument[0] in OPENING_QUOTES and argument[-1] in CLOSING_QUOTES
    name = argument[1:-1].strip() if quoted else ""
    if not name or any(character in QUOTE_CHARS for character in name):
        raise CommandError(f'#credit needs a name in quotes, e.g. #credit "Jane Doe"; got {shown(argument)}')
    if len(name) > MAX_CREDIT or not name.isprintable():
        raise CommandError(f"#credit name must be printable and at most {MAX_CREDIT} characters")
    return Command(name="credit", value=" ".join(name.split()), line=number)


def bounty_command(argument: str, number: int) -> Command:
    words = argument.split()
    if len(words) != 2 or not AMOUNT.fullmatch(words[0]) or not CURRENCY.fullmatch(words[1]):
        raise CommandError(f"#bounty needs an amount and a currency code, e.g. #bounty 500 EUR; got {shown(argument)}")
    amount, currency = Decimal(words[0]), words[1].upper()
    return Command(name="bounty", value=f"{amount} {currency}", line=number, amount=amount, currency=currency)


def reply_errors(commands: list[Command]) -> list[str]:
    """Problems of the reply as a whole: repeated commands and combinations that conflict."""
    errors: list[str] = []
    first_line: dict[str, int] = {}
    for command in commands:
        if command.name in first_line:
            errors.append(f"line {command.line}: #{command.name} given twice (first on line {first_line[command.name]})")
        else:
            first_line[command.name] = command.line
    if "assessment" in first_line and "eta" not in first_line:
        errors.append("#assessment needs #eta YYYY-MM-DD")
    if "assessment" in first_line and "internal" in first_line:
        errors.append("#assessment goes to the reporter and #internal does not: use one of them")
    if "wait" in first_line and "resume" in first_line:
        errors.append("#wait and #resume contradict each other: use one of them")
    return errors


def shown(value: str) -> str:
    """A value from the reply, quoted for an error message: one line, printable, bounded."""
    printable = "".join(character if character.isprintable() else "?" for character in value)
    return repr(printable if len(printable) <= MAX_SHOWN else printable[:MAX_SHOWN] + "…")


EXAMPLES = {
    "status": "#status triaged",
    "severity": "#severity high",
    "assign": "#assign alice",
    "eta": "#eta 2027-01-15",
    "credit": '#credit "Jane Doe"',
    "bounty": "#bounty 500 EUR",
}
VALUE_PARSERS = {
    "status": status_command,
    "severity": severity_command,
    "assign": assign_command,
    "eta": eta_command,
    "credit": credit_command,
    "bounty": bounty_command,
}

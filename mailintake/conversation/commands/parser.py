"""Staff commands at the top of a reply: `#status triaged`, `#eta 2027-01-15`, ….

Only the unquoted top counts: leading blank lines are skipped, and the command block ends
at the first line that is neither a command nor blank. Quoted text, quote headers
("On … wrote:", "-----Original Message-----", Outlook's "From: … Sent: …"), forwarded
parts and any "#" line further down are therefore never read as commands; they are text.
Liberal with the case and spacing of the command word, strict with values (each command's
module has its grammar). Pure.
"""

from __future__ import annotations

import difflib
import re

from mailintake.conversation.commands.base import MAX_SHOWN, Command, CommandError, StaffReply, shown
from mailintake.conversation.commands.registry import COMMAND_NAMES, command_named, conflicts_of

MAX_COMMAND_LINE = 500
INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))
LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
COMMAND_LIKE = re.compile(r"#[A-Za-z]")
COMMAND_WORD = re.compile(r"#([A-Za-z][A-Za-z0-9_-]*)(.*)", re.DOTALL)


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
    command = command_named(word)
    if command is None:
        close = difflib.get_close_matches(word, COMMAND_NAMES, n=1, cutoff=0.6)
        hint = f" (did you mean #{close[0]}?)" if close else f" (known: {', '.join('#' + name for name in COMMAND_NAMES)})"
        raise CommandError(f"unknown command #{word[:MAX_SHOWN]}{hint}")
    return command.parse(rest.strip(), number)


def reply_errors(commands: list[Command]) -> list[str]:
    """Problems of the reply as a whole: repeated commands and combinations that conflict."""
    errors: list[str] = []
    first_line: dict[str, int] = {}
    for command in commands:
        if command.name in first_line:
            errors.append(f"line {command.line}: #{command.name} given twice (first on line {first_line[command.name]})")
        else:
            first_line[command.name] = command.line
    return errors + conflicts_of(first_line)

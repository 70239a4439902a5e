"""What a staff command module declares, and the pieces every one of them shares.

A command module declares (StaffCommand spells it out):
  NAME, USAGE, HELP      its word, and its line in the command list staff are sent; HELP is
                         None for a command another command's line names (#resume, #eta)
  parse(argument, line)  the value grammar: a Command, or CommandError
  conflicts(names)       what it cannot be given with in one reply (names: every command given)
  check(command, context)   what the parser cannot know: the report, the policy, the staff
                         list, the date, the reply's text and files
  apply(command, context)   the change it makes to the report
  events(command, mailed)   the SLA events it causes (sla/policy.py MET_BY_EVENTS); `mailed`:
                         the reply sent the reporter a mail
Everything here is pure: check and apply reach the report and storage only through
CommandContext, which conversation/staff.py implements (ARCHITECTURE.md: the pure core).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Protocol

from mailintake.sla.policy import Policy

MAX_SHOWN = 40


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


class ReportFields(Protocol):
    """The fields of a report that commands read and set (storage/models.py Report)."""

    tracking_id: str
    status: str
    severity: str | None
    assignee: str | None
    eta: date | None
    credit_as: str | None
    bounty: str | None
    duplicate_of_id: int | None


@dataclass(frozen=True)
class FilePlan:
    """What the files a staff member attached would make of one mail to the reporter:
    how many there are, the listed ones that would not fit, how many are beyond the list,
    and how many a mail lists."""

    files: int
    left_out: tuple[str, ...]
    more: int
    listed: int


class CommandContext(Protocol):
    """One staff reply being carried out, as its commands see it."""

    @property
    def report(self) -> ReportFields: ...

    @property
    def policy(self) -> Policy: ...

    @property
    def reply(self) -> StaffReply: ...

    @property
    def text(self) -> str:
        """What the reply would relay to the reporter (without quote, signature, commands)."""
        ...

    @property
    def today(self) -> date:
        """Today in the business calendar's time zone."""
        ...

    def report_id_of(self, tracking_id: str) -> int | None: ...

    def assignee_of(self, name: str) -> str | None:
        """The staff address `#assign NAME` names, None if NAME is not on the staff list."""
        ...

    def waiting(self) -> bool:
        """The report is waiting on the reporter (a pause is open)."""
        ...

    def start_pause(self) -> None: ...

    def end_pause(self) -> None: ...

    def file_plan(self) -> FilePlan: ...


class StaffCommand(Protocol):
    """A command module (this module's docstring says what each member is for); its
    constants are read-only here so that a module's plain `NAME = "…"` satisfies it."""

    @property
    def NAME(self) -> str: ...

    @property
    def USAGE(self) -> str: ...

    @property
    def HELP(self) -> str | None: ...

    def parse(self, argument: str, line: int) -> Command: ...

    def conflicts(self, names: Collection[str]) -> list[str]: ...

    def check(self, command: Command, context: CommandContext) -> list[str]: ...

    def apply(self, command: Command, context: CommandContext) -> None: ...

    def events(self, command: Command, mailed: bool) -> tuple[str, ...]: ...


def flag(name: str, argument: str, line: int) -> Command:
    """A command that takes no value."""
    if argument:
        raise CommandError(f"#{name} takes no value, got {shown(argument)}")
    return Command(name=name, line=line)


def required(name: str, argument: str, example: str) -> str:
    """The value of a command that needs one."""
    if not argument:
        raise CommandError(f"#{name} needs a value, e.g. {example}")
    return argument


def shown(value: str) -> str:
    """A value from the reply, quoted for an error message: one line, printable, bounded."""
    printable = "".join(character if character.isprintable() else "?" for character in value)
    return repr(printable if len(printable) <= MAX_SHOWN else printable[:MAX_SHOWN] + "…")


def no_conflicts(names: Collection[str]) -> list[str]:
    return []


def no_problems(command: Command, context: CommandContext) -> list[str]:
    return []


def changes_nothing(command: Command, context: CommandContext) -> None:
    return None


def no_events(command: Command, mailed: bool) -> tuple[str, ...]:
    return ()

"""The staff command modules: each complete, each registered, and the command list staff
are sent unchanged; what carrying a reply out changes and which SLA events it causes."""

from __future__ import annotations

import inspect
import pkgutil
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from types import ModuleType

import pytest

from mailintake.conversation import commands
from mailintake.conversation.commands.base import FilePlan, StaffReply
from mailintake.conversation.commands.parser import parse_staff_reply
from mailintake.conversation.commands.registry import COMMAND_NAMES, COMMANDS, carry_out, command_problems, conflicts_of, help_list
from mailintake.conversation.staff import events_of
from mailintake.sla.policy import Policy, policy_from_mapping
from mailintake.storage.models import Report

SHARED_MODULES = {"base", "registry", "parser"}
DECLARED = {"NAME": str, "USAGE": str}
FUNCTIONS = {
    "parse": ["argument", "line"],
    "conflicts": ["names"],
    "check": ["command", "context"],
    "apply": ["command", "context"],
    "events": ["command", "mailed"],
}
# The list every staff notification carries, as it was before the commands had modules.
LISTED = (
    ("#status triaged|accepted|fixing|resolved|rejected|duplicate SEC-…|out-of-scope", "set the report's status"),
    ("#severity low|medium|high|critical", "set the severity (per-severity deadlines follow it)"),
    ("#assign NAME", "assign the report"),
    ("#assessment", "this reply is the assessment; add #eta YYYY-MM-DD"),
    ("#internal", "keep this reply as an internal note; nothing goes to the reporter"),
    ('#credit "Name"', "how the reporter is credited"),
    ("#bounty 500 EUR", "record the bounty decision (not sent to the reporter)"),
    ("#wait / #resume", "pause or resume the SLA clocks while waiting on the reporter"),
    ("#attach", "send the files attached to this reply to the reporter (forwarded mails never are)"),
)
NOW = datetime(2026, 11, 24, 10, tzinfo=UTC)
PAUSABLE = policy_from_mapping({"assess": {"within": "3 business days", "pausable": True}})


def command_modules() -> list[ModuleType]:
    names = [info.name for info in pkgutil.iter_modules(commands.__path__) if info.name not in SHARED_MODULES]
    return [__import__(f"{commands.__name__}.{name}", fromlist=[name]) for name in sorted(names)]


@pytest.mark.parametrize("module", command_modules(), ids=lambda module: module.__name__.rpartition(".")[2])
def test_every_command_module_is_complete_and_registered(module: ModuleType) -> None:
    for name, kind in DECLARED.items():
        assert isinstance(getattr(module, name, None), kind), name
    assert module.HELP is None or isinstance(module.HELP, str)
    assert module.NAME == module.__name__.rpartition(".")[2]
    assert module.USAGE.startswith(f"#{module.NAME}")
    for name, parameters in FUNCTIONS.items():
        function = getattr(module, name, None)
        assert callable(function), name
        assert list(inspect.signature(function).parameters) == parameters, name
    assert module in COMMANDS


def test_the_registry_holds_each_command_once() -> None:
    assert len(set(COMMAND_NAMES)) == len(COMMANDS) == len(command_modules())
    # The order of the "known: #status, …" hint staff get; new commands come after these.
    assert COMMAND_NAMES[:11] == ("status", "severity", "assign", "assessment", "eta", "internal", "credit", "bounty", "wait", "resume", "attach")


def test_the_command_list_staff_get_is_unchanged() -> None:
    assert help_list() == LISTED


def test_a_command_without_a_line_of_its_own_is_named_on_another() -> None:
    lines = " ".join(f"{usage} {text}" for usage, text in help_list())
    unlisted = [command.NAME for command in COMMANDS if command.HELP is None]
    assert unlisted == ["eta", "resume"]
    assert all(f"#{name}" in lines for name in unlisted)


@pytest.mark.parametrize(
    ("names", "problems"),
    [
        ({"status", "severity"}, []),
        ({"assessment", "eta"}, []),
        ({"assessment"}, ["#assessment needs #eta YYYY-MM-DD"]),
        ({"assessment", "internal"}, ["#assessment needs #eta YYYY-MM-DD", "#assessment goes to the reporter and #internal does not: use one of them"]),
        ({"resume", "wait", "assessment", "eta", "internal"}, ["#assessment goes to the reporter and #internal does not: use one of them", "#wait and #resume contradict each other: use one of them"]),
    ],
)
def test_conflicts_in_registry_order(names: set[str], problems: list[str]) -> None:
    assert conflicts_of(names) == problems


@dataclass
class ReplyInHand:
    """A CommandContext over a report without storage: every other report is SEC-2026-0007
    (id 7), alice is the only staff member."""

    report: Report
    reply: StaffReply
    text: str = "Thanks."
    policy: Policy = PAUSABLE
    today: date = NOW.date()
    pauses: list[str] = field(default_factory=list)
    files: int = 0

    def report_id_of(self, tracking_id: str) -> int | None:
        return 7 if tracking_id == "SEC-2026-0007" else None

    def assignee_of(self, name: str) -> str | None:
        return "alice@example.com" if name == "alice" else None

    def waiting(self) -> bool:
        return bool(self.pauses) and self.pauses[-1] == "started"

    def start_pause(self) -> None:
        self.pauses.append("started")

    def end_pause(self) -> None:
        self.pauses.append("ended")

    def file_plan(self) -> FilePlan:
        return FilePlan(files=self.files, left_out=(), more=0, listed=self.files)


def reply_in_hand(reply_text: str, **changes: object) -> ReplyInHand:
    reply = parse_staff_reply(reply_text)
    assert reply.errors == ()
    return ReplyInHand(Report(tracking_id="SEC-2026-0001", status="new"), reply, **changes)


def test_carrying_out_sets_what_each_command_names() -> None:
    context = reply_in_hand('#status duplicate SEC-2026-0007\n#severity high\n#assign alice\n#eta 2027-01-15\n#credit "Jane Doe"\n#bounty 500 eur\n#wait\n\nHi\n')
    carry_out(context)
    report = context.report
    assert (report.status, report.duplicate_of_id, report.severity, report.assignee) == ("duplicate", 7, "high", "alice@example.com")
    assert (report.eta, report.credit_as, report.bounty) == (date(2027, 1, 15), "Jane Doe", "500 EUR")
    assert context.pauses == ["started"]


def test_resume_ends_the_pause() -> None:
    context = reply_in_hand("#resume\n", pauses=["started"])
    carry_out(context)
    assert context.pauses == ["started", "ended"]


def test_checks_speak_in_registry_order() -> None:
    context = reply_in_hand("#eta 2020-01-01\n#assign bob\n#status duplicate SEC-2026-0001\n#attach\n", text="")
    assert command_problems(context) == [
        "line 3: a report cannot be a duplicate of itself",
        "line 2: 'bob' is not on the staff list ([staff] members)",
        "line 1: #eta 2020-01-01 is in the past",
        "#attach: this reply has no file of your own attached (forwarded mails and what they carry are never passed on)",
    ]


@pytest.mark.parametrize(
    ("text", "status", "mailed", "events"),
    [
        ("#status resolved\n#eta 2027-01-15\n#assessment\n", "resolved", True, ["reply", "assessment", "resolved", "resolution_notice"]),
        ("#status resolved\n", "resolved", False, ["resolved"]),
        ("#assessment\n#eta 2027-01-15\n", "new", False, []),
        ("#severity low\n", "resolved", True, ["reply", "resolution_notice"]),
        ("Just text.\n", "fixing", True, ["reply"]),
        ("#internal\n", "fixing", False, []),
    ],
)
def test_events_in_the_policys_order(text: str, status: str, mailed: bool, events: list[str]) -> None:
    assert events_of(parse_staff_reply(text), Report(status=status), mailed) == events

"""The checks conversation/staff.py and the command modules apply to a staff reply before
acting on it, with the report and the rules in hand."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest

from mailintake.config.schema import StaffConfig
from mailintake.conversation.commands.base import FilePlan, StaffReply
from mailintake.conversation.commands.parser import parse_staff_reply
from mailintake.conversation.commands.registry import command_problems
from mailintake.conversation.staff import assignee_address, carries_staff_only_text, text_problems, without_name
from mailintake.conversation.thread import open_pause
from mailintake.core.tokens import reply_address
from mailintake.sla.policy import Policy, policy_from_mapping
from mailintake.storage.models import Pause, Report

PAUSABLE = policy_from_mapping({"assess": {"within": "3 business days", "pausable": True}})
FIXED = policy_from_mapping({"assess": {"within": "3 business days"}})
NOW = datetime(2026, 11, 24, 10, tzinfo=UTC)


def report_waiting(waiting: bool) -> Report:
    report = Report(tracking_id="SEC-2026-0001")
    if waiting:
        report.pauses.append(Pause(started_at=NOW, started_by="bob@example.com"))
    return report


@dataclass(frozen=True)
class ReplyInHand:
    """A CommandContext that knows the report and the policy; it knows of no other report,
    no staff member and no file."""

    report: Report
    policy: Policy
    reply: StaffReply
    text: str = "Thanks."
    today: date = NOW.date()

    def report_id_of(self, tracking_id: str) -> int | None:
        return None

    def assignee_of(self, name: str) -> str | None:
        return None

    def waiting(self) -> bool:
        return open_pause(self.report) is not None

    def start_pause(self) -> None:
        raise AssertionError("a check changes nothing")

    def end_pause(self) -> None:
        raise AssertionError("a check changes nothing")

    def file_plan(self) -> FilePlan:
        return FilePlan(files=0, left_out=(), more=0, listed=0)


@pytest.mark.parametrize(
    ("policy", "waiting", "text", "problem"),
    [
        (PAUSABLE, False, "#wait\n", None),
        (PAUSABLE, True, "#resume\n", None),
        (FIXED, False, "#wait\n", "lets no deadline pause"),
        (PAUSABLE, True, "#wait\n", "already waiting"),
        (PAUSABLE, False, "#resume\n", "not waiting"),
        (FIXED, False, "#status triaged\n", None),
    ],
)
def test_wait_and_resume_only_where_the_policy_and_the_report_allow(policy, waiting: bool, text: str, problem: str | None) -> None:
    problems = command_problems(ReplyInHand(report_waiting(waiting), policy, parse_staff_reply(text)))
    assert (problems == []) if problem is None else (len(problems) == 1 and problem in problems[0])


STAFF = StaffConfig(notify=("team@example.com",), members=("alice@example.com", "example.org"))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("alice", "alice@example.com"),
        ("ALICE", "alice@example.com"),
        ("team", "team@example.com"),
        ("alice@example.com", "alice@example.com"),
        ("bob", "bob@example.org"),
        ("mallory@evil.test", None),
        ("x" * 300, None),
    ],
)
def test_assign_names_a_staff_address(name: str, expected: str | None) -> None:
    assert assignee_address(STAFF, name) == expected


def test_assign_without_a_member_domain_needs_a_listed_address() -> None:
    assert assignee_address(StaffConfig(members=("alice@example.com",)), "bob") is None


@pytest.mark.parametrize(
    ("text", "name", "expected"),
    [
        ("Fixed.\n\nKind regards,\nBob Builder", "Bob Builder", "Fixed.\n\nKind regards,\nExample Corp Security"),
        ("Fixed.\n\nThanks,\nBob", "Bob Builder", "Fixed.\n\nThanks,"),
        ("Bob Builder here: fixed.", "Bob  Builder", "Example Corp Security here: fixed."),
        ("Fixed.", "", "Fixed."),
        ("Fixed by 1\\2.", "A\\1 B", "Fixed by 1\\2."),
    ],
)
def test_the_authors_name_is_not_relayed(text: str, name: str, expected: str) -> None:
    assert without_name(text, name, "Example Corp Security") == expected


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("Thanks, fixed.", False),
        ("Write to security+s1-abcdefghijklmnop@example.com", True),
        ("Write to SECURITY+S9IX-U5WTLZPP3MNIUDI3@EXAMPLE.COM", True),
        ("Write to security+r1-abcdefghijklmnop@example.com", False),
        ("Write to security+s1-abcdefghijklmnop@example.org", False),
        ("Write to securityxs1-abcdefghijklmnop@example.com", False),
        ("Write to security+s1-abcdefgh@example.com", False),
        ("> For staff only: mailintake never sends this text to the reporter.", True),
        ("----- Report text -----\nx", True),
    ],
)
def test_quoted_staff_mail_is_recognised(text: str, quoted: bool) -> None:
    assert carries_staff_only_text("security@example.com", text) is quoted


def test_the_reply_address_pattern_finds_every_staff_address_the_tokens_make() -> None:
    key = b"k" * 32
    for report_id in (1, 35, 36, 10**12):
        address = reply_address("security@example.com", report_id, "staff", key)
        assert carries_staff_only_text("security@example.com", f"<{address.upper()}>")
        assert not carries_staff_only_text("security@example.com", reply_address("security@example.com", report_id, "reporter", key))


@dataclass(frozen=True)
class Services:
    """What text_problems reads of ConversationServices."""

    public_address: str = "security@example.com"


SERVICES = Services()


@pytest.mark.parametrize(
    ("text", "reply_text", "problems"),
    [
        ("#status triaged\n", "", []),
        ("", "", ["the reply is empty once the quoted text and signature are removed; write your answer above the quote"]),
        ("#internal\n", "See security+s1-abcdefghijklmnop@example.com", []),
        ("Hi\n", "Hi\n  #wait\n", ["#wait is below the start of your text: commands count only on the first lines of the reply, so nothing was sent; move it to the top"]),
    ],
)
def test_what_is_wrong_with_the_text(text: str, reply_text: str, problems: list[str]) -> None:
    assert text_problems(SERVICES, parse_staff_reply(text), reply_text) == problems

"""The pure checks conversation.py applies to a staff reply before acting on it."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from mailintake.conversation.commands import parse_staff_reply
from mailintake.config.schema import StaffConfig
from mailintake.conversation.replies import assignee_address, pause_problems, without_name
from mailintake.storage.models import Pause, Report
from mailintake.sla.policy import policy_from_mapping

PAUSABLE = policy_from_mapping({"assess": {"within": "3 business days", "pausable": True}})
FIXED = policy_from_mapping({"assess": {"within": "3 business days"}})
NOW = datetime(2026, 11, 24, 10, tzinfo=timezone.utc)


def report_waiting(waiting: bool) -> Report:
    report = Report(tracking_id="SEC-2026-0001")
    if waiting:
        report.pauses.append(Pause(started_at=NOW, started_by="bob@example.com"))
    return report


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
    problems = pause_problems(policy, report_waiting(waiting), parse_staff_reply(text))
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

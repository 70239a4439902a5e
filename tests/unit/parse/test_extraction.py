"""What reporters state, in the words they actually use."""

from __future__ import annotations

import pytest

from mailintake.parse.statements import asks_for_anonymity, credit_from, endpoints_from, severity_from, urls_from


@pytest.mark.parametrize(
    ("text", "severity"),
    [
        ("Suggested severity: high", "high"),
        ("Severity: Critical (pre-auth RCE)", "critical"),
        ("severity - moderate", "medium"),
        ("I'd rate this as medium severity.", "medium"),
        ("A high-severity issue", "high"),
        ("Severity (my estimate): LOW", "low"),
        ("This is severe.", None),
        ("The impact is high.", None),
        ("Severity: unknown to me. The attack is critical to your business", None),
        ("", None),
    ],
)
def test_severity_is_only_what_the_reporter_stated(text: str, severity: str | None) -> None:
    assert severity_from(text) == severity


@pytest.mark.parametrize(
    ("text", "credit"),
    [
        ("Please credit me as Jane Researcher.", "Jane Researcher"),
        ('Credit me as "J. Doe (doe.example.org)"', "J. Doe (doe.example.org)"),
        ("Credit: Bob Example if you publish an advisory", "Bob Example"),
        ("Credit name:        Lukas Berg", "Lukas Berg"),
        ("Feel free to credit this to René Müller", "René Müller"),
        ("I found this on my credit card page", None),
        ("no mention at all", None),
    ],
)
def test_credit_preference(text: str, credit: str | None) -> None:
    assert credit_from(text) == credit


@pytest.mark.parametrize(
    ("text", "anonymous"),
    [
        ("I would like to remain anonymous.", True),
        ("Please keep me anonymous", True),
        ("I prefer to stay anonymous in any advisory", True),
        ("Please do not credit me.", True),
        ("Don't name me publicly", True),
        ("Remain anonymous:   no", False),
        ("Anonymous: yes", True),
        ("Anonymous users can reach /admin without a session", False),
        ("The endpoint allows anonymous access", False),
    ],
)
def test_anonymity_when_asked(text: str, anonymous: bool) -> None:
    assert asks_for_anonymity(text) is anonymous


def test_urls_keep_balanced_parentheses_and_lose_prose_punctuation() -> None:
    text = "See https://x.example.com/a?q=alert(1), (and https://y.example.com/b). Also https://x.example.com/a?q=alert(1) again."
    assert urls_from(text) == ("https://x.example.com/a?q=alert(1)", "https://y.example.com/b")


def test_endpoints_are_method_and_path() -> None:
    assert endpoints_from("Send POST /api/v1/users, then GET /admin?x=1.") == ("POST /api/v1/users", "GET /admin?x=1")

"""Which mail may be answered automatically (RFC 3834 and the loop signals in ARCHITECTURE.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailintake.parse.message import parse_message
from mailintake.route.machine_mail import is_our_address, no_auto_reply_reason, our_message_id

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "mail"
OURS = ("security@example.com", "psirt@example.com")
PLAIN = b"From: Researcher <r@example.org>\r\nTo: security@example.com\r\nSubject: XSS\r\nMessage-ID: <m1@example.org>\r\n"


def reason(headers: bytes, envelope_from: str = "r@example.org") -> str | None:
    return no_auto_reply_reason(parse_message(headers + b"\r\nbody\r\n"), envelope_from, OURS)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (b"", None),
        (b"Auto-Submitted: no\r\n", None),
        (b"Auto-Submitted: auto-replied\r\n", "Auto-Submitted: auto-replied"),
        (b"Auto-Submitted: auto-generated; owner-email=x@example.org\r\n", "Auto-Submitted: auto-generated; owner-email=x@example.org"),
        (b"Precedence: bulk\r\n", "Precedence: bulk"),
        (b"Precedence: junk\r\n", "Precedence: junk"),
        (b"Precedence: list\r\n", "Precedence: list"),
        (b"Precedence: first-class\r\n", None),
        (b"List-Id: <announce.example.org>\r\n", "List-Id"),
        (b"List-Unsubscribe: <mailto:u@example.org>\r\n", "List-Unsubscribe"),
        (b"X-Auto-Response-Suppress: All\r\n", "X-Auto-Response-Suppress"),
        (b"X-Loop: security@example.com\r\n", "X-Loop: security@example.com"),
        (b"X-Loop: helpdesk@elsewhere.example.net\r\n", None),
        (b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n", "Content-Type: multipart/report"),
    ],
)
def test_loop_signals_in_headers(extra: bytes, expected: str | None) -> None:
    assert reason(PLAIN + extra) == expected


@pytest.mark.parametrize(
    ("envelope_from", "expected"),
    [
        ("", "null envelope sender"),
        ("MAILER-DAEMON@mx.example.net", "sender is mailer-daemon"),
        ("MAILER-DAEMON", "sender is mailer-daemon"),
        ("owner-announce@lists.example.org", "sender is a list robot"),
        ("announce-request@lists.example.org", "sender is a list robot"),
        ("postmaster@example.net", "sender is postmaster"),
        ("security@example.com", "sent from our own address"),
    ],
)
def test_envelope_senders_that_are_never_answered(envelope_from: str, expected: str) -> None:
    assert reason(PLAIN, envelope_from) == expected


def test_our_own_message_id_coming_back_is_a_loop_but_a_colleagues_is_not() -> None:
    ours = PLAIN.replace(b"<m1@example.org>", b"<" + our_message_id("abc", "example.com").encode() + b">")
    colleague = PLAIN.replace(b"<m1@example.org>", b"<CAF123@example.com>")
    assert reason(ours) == "our own Message-ID"
    assert reason(colleague) is None


@pytest.mark.parametrize(("fixture", "expected"), [("auto-reply.eml", "Auto-Submitted: auto-replied"), ("bounce-dsn.eml", "null envelope sender"), ("plain.eml", None)])
def test_fixture_corpus(fixture: str, expected: str | None) -> None:
    envelope = "" if fixture == "bounce-dsn.eml" else "someone@example.org"
    assert no_auto_reply_reason(parse_message((FIXTURES / fixture).read_bytes()), envelope, OURS) == expected


SIGNED_REPLY = "security+r12-abcdefghijklmnop@example.com"


@pytest.mark.parametrize(
    "envelope_from",
    [SIGNED_REPLY, "security+s12-abcdefghijklmnop@example.com", "security+r12-forged@example.com", "Security+anything@EXAMPLE.com", "SECURITY@example.com", '"security"@example.com', '"security+r1-x"@example.com.', "psirt+x@example.com"],
)
def test_our_own_addresses_and_their_signed_forms_are_never_answered(envelope_from: str) -> None:
    assert reason(PLAIN, envelope_from) == "sent from our own address"


def test_our_own_signed_reply_address_in_from_is_never_answered() -> None:
    assert reason(PLAIN.replace(b"Researcher <r@example.org>", SIGNED_REPLY.encode())) == "sent from our own address"


@pytest.mark.parametrize(
    "address",
    ["securityteam@example.com", "security-r1@example.com", "security+r1@example.org", "security@mail.example.com", "r@example.org", "", "security"],
)
def test_other_addresses_are_not_ours(address: str) -> None:
    assert not is_our_address(address, OURS)

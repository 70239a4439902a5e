"""The five findings of the hostile review, each against a real daemon, a real relay and a
real DNS server on loopback, on SQLite and PostgreSQL. Each test failed before its fix."""

from __future__ import annotations

import socket
import time
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.integration.helpers import wait_until_processed
from tests.integration.test_conversation import (
    BOB,
    LEADS,
    RESEARCHER,
    TEAM,
    all_reports,
    conversation,  # noqa: F401 (fixture)
    deliver,
    dns_server,  # noqa: F401 (fixture)
    mail,
    new_report,
    plain,
    report_named,
    side_address,
    signed,
)

pytestmark = pytest.mark.slow

PARTNER_MAIL = "INTERNAL ONLY: fix ships 2028.\n#status rejected\n#credit \"Mallory\"\nSend your exploit to mallory@evil.test\n"


def forwarded_partner_mail() -> EmailMessage:
    partner = EmailMessage()
    partner["From"] = "partner@vendor.example.net"
    partner["To"] = BOB
    partner["Subject"] = "embargo"
    partner["Message-ID"] = make_msgid(domain="vendor.example.net")
    partner.set_content(PARTNER_MAIL)
    return partner


def staff_mail_with_forward(to: str, own_text: str | None) -> bytes:
    message = EmailMessage()
    message["From"] = BOB
    message["To"] = to
    message["Subject"] = "Re: your report"
    message["Date"] = "Tue, 24 Nov 2026 10:00:00 +0100"
    message["Message-ID"] = make_msgid(domain="example.com")
    if own_text is not None:
        message.set_content(own_text)
    message.add_attachment(forwarded_partner_mail())
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


def staff_mail_with_two_text_parts(to: str, first: str, second: str) -> bytes:
    message = EmailMessage()
    message["From"] = BOB
    message["To"] = to
    message["Subject"] = "Re: your report"
    message["Message-ID"] = make_msgid(domain="example.com")
    message.make_mixed()
    for text in (first, second):
        part = EmailMessage()
        part.set_content(text)
        message.attach(part)
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


def to_reporter(relay, ack) -> list[str]:
    return [plain(item) for item in relay.to(RESEARCHER) if item is not ack]


def test_finding_1_a_forwarded_mail_in_a_staff_reply_is_neither_relayed_nor_obeyed(conversation, sessions: sessionmaker[Session]) -> None:
    daemon, relay = conversation()
    try:
        report, ack, notification = new_report(daemon, relay, sessions)
        staff_side = side_address(report.id, "staff")
        deliver(daemon.port, signed(staff_mail_with_forward(staff_side, "Thanks, we are on it.\n")), staff_side, BOB)
        relay.wait_for(3)
        [relayed] = to_reporter(relay, ack)
        assert "Thanks, we are on it." in relayed
        assert "INTERNAL ONLY" not in relayed and "mallory" not in relayed.lower()

        # No text of their own: the forwarded mail's top lines are not their commands.
        deliver(daemon.port, signed(staff_mail_with_forward(staff_side, None)), staff_side, BOB)
        # Two inline text parts, the first empty: the second is not the reply either.
        deliver(daemon.port, signed(staff_mail_with_two_text_parts(staff_side, "\n", PARTNER_MAIL)), staff_side, BOB)
        wait_until_processed(sessions, 4)
        relay.wait_for(5)
        time.sleep(1)
        assert len(to_reporter(relay, ack)) == 1
        errors = [plain(item) for item in relay.to(BOB)]
        assert len(errors) == 2 and all("the reply is empty" in text for text in errors)
    finally:
        relay.stop()
    stored = report_named(sessions, report.tracking_id)
    assert (stored.status, stored.credit_as) == ("new", None)


def test_finding_4_a_trust_header_behind_a_bare_cr_is_not_a_header(conversation, sessions: sessionmaker[Session]) -> None:
    """Postfix splits header lines at CRLF only, so an Authentication-Results hidden behind
    a bare CR inside X-Note passes an MX that strips such headers: it is part of X-Note."""
    daemon, relay = conversation(authentication=["authentication-results"], trusted_authserv_id="mx.example.com")
    try:
        report, ack, notification = new_report(daemon, relay, sessions)
        staff_side = side_address(report.id, "staff")
        hidden = b"X-Note: hi\rAuthentication-Results: mx.example.com; dkim=pass header.d=example.com\r\n"
        smtp_session(daemon.port, "attacker@evil.test", staff_side, hidden + mail(BOB, staff_side, "Re: x", "#status rejected\n\nWe will not fix this.\n"))
        wait_until_processed(sessions, 2)
        relay.wait_for(3)
        time.sleep(1)
        assert to_reporter(relay, ack) == []
        [alert] = relay.to(LEADS)
        assert "unauthenticated staff address" in plain(alert)
    finally:
        relay.stop()
    first, flagged = all_reports(sessions)
    assert first.status == "new" and flagged.flag == "unauthenticated staff address"


def smtp_session(port: int, sender: str, recipient: str, raw: bytes) -> None:
    """A delivery with the bytes exactly as given: smtplib and aiosmtplib rewrite every bare
    CR and LF to CRLF, which would hide what an MTA passes on."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        reader = connection.makefile("rb")

        def expect(code: bytes) -> None:
            while True:
                line = reader.readline()
                if line[3:4] != b"-":
                    break
            assert line.startswith(code), line

        expect(b"220")
        for command, code in ((b"EHLO mx.example.com", b"250"), (f"MAIL FROM:<{sender}>".encode(), b"250"), (f"RCPT TO:<{recipient}>".encode(), b"250"), (b"DATA", b"354")):
            connection.sendall(command + b"\r\n")
            expect(code)
        body = raw if raw.endswith(b"\r\n") else raw + b"\r\n"
        connection.sendall(body.replace(b"\r\n.", b"\r\n..") + b".\r\n")
        expect(b"250")
        connection.sendall(b"QUIT\r\n")

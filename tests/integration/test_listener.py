"""The real daemon over loopback: reply codes and stored rows, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import re
import smtplib
import socket

import aiosmtplib
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from mailintake.db import transaction
from mailintake.models import Reporter
from mailintake.tokens import key_from_text, reply_address
from tests.daemon import TEST_TOKEN_KEY
from tests.integration.helpers import inbound_rows, report_mail, reports, wait_until_processed

pytestmark = pytest.mark.slow


def send(port: int, raw: bytes, sender: str = "researcher@example.org", recipients: tuple[str, ...] = ("security@example.com",)) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.example.org")
        client.mail(sender)
        for recipient in recipients:
            code, reply = client.rcpt(recipient)
            assert code == 250, reply
        return client.data(raw)


def test_a_report_is_stored_byte_for_byte_before_250_and_becomes_a_report(daemon_factory, sessions: sessionmaker[Session]) -> None:
    daemon = daemon_factory()
    raw = report_mail()
    code, reply = send(daemon.port, raw)
    assert (code, reply) == (250, b"2.0.0 Stored, sha256 " + hashlib.sha256(raw).hexdigest()[:16].encode())
    rows = inbound_rows(sessions)
    assert len(rows) == 1
    assert rows[0].raw == raw
    assert rows[0].sha256 == hashlib.sha256(raw).hexdigest()
    assert rows[0].envelope_from == "researcher@example.org"
    assert rows[0].envelope_to == ["security@example.com"]
    wait_until_processed(sessions, 1)
    [report] = reports(sessions)
    assert re.fullmatch(r"SEC-\d{4}-0001", report.tracking_id)
    assert report.subject == "XSS in login form"
    assert report.suggested_severity == "high"


def test_unknown_recipients_are_refused_with_550_5_1_1(daemon_factory, sessions: sessionmaker[Session]) -> None:
    daemon = daemon_factory()
    with smtplib.SMTP("127.0.0.1", daemon.port, timeout=30) as client:
        client.ehlo("client.example.org")
        client.mail("researcher@example.org")
        assert client.rcpt("nobody@example.com") == (550, b"5.1.1 Recipient address rejected: no such mailbox here")
        assert client.rcpt("security@example.com.evil.test")[0] == 550
        assert client.rcpt("Security@Example.com")[0] == 250
    assert inbound_rows(sessions) == []


def test_oversized_mail_is_refused_with_552_5_3_4_both_by_size_and_by_content(daemon_factory, sessions: sessionmaker[Session]) -> None:
    daemon = daemon_factory(intake={"max_message_size": 50_000})
    with smtplib.SMTP("127.0.0.1", daemon.port, timeout=30) as client:
        client.ehlo("client.example.org")
        assert "size" in client.esmtp_features and client.esmtp_features["size"] == "50000"
        code, reply = client.mail("researcher@example.org", options=["SIZE=60000"])
        assert (code, reply[:5]) == (552, b"5.3.4")
        client.rset()
        client.mail("researcher@example.org")
        client.rcpt("security@example.com")
        code, reply = client.data(b"Subject: big\r\n\r\n" + (b"y" * 900 + b"\r\n") * 80)
        assert (code, reply) == (552, b"5.3.4 Message too big for this system")
    assert inbound_rows(sessions) == []


def test_storage_failure_answers_451_4_3_0_and_the_retry_is_stored(daemon_factory, engine: Engine, sessions: sessionmaker[Session]) -> None:
    daemon = daemon_factory()
    raw = report_mail()
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE inbound_messages RENAME TO inbound_messages_away"))
    code, reply = send(daemon.port, raw)
    assert (code, reply) == (451, b"4.3.0 Storage temporarily unavailable, try again later")
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE inbound_messages_away RENAME TO inbound_messages"))
    assert inbound_rows(sessions) == []
    code, _ = send(daemon.port, raw)
    assert code == 250
    assert [row.raw for row in inbound_rows(sessions)] == [raw]
    assert b"researcher@example.org" not in daemon.log().encode()


def test_same_message_id_twice_is_one_report_and_a_recorded_duplicate(daemon_factory, sessions: sessionmaker[Session]) -> None:
    daemon = daemon_factory()
    raw = report_mail(message_id="<same@example.org>")
    assert send(daemon.port, raw)[0] == 250
    assert send(daemon.port, b"Received: from relay2.example.net by mx.example.com; Mon, 23 Nov 2026 10:00:05 +0100\r\n" + raw)[0] == 250
    wait_until_processed(sessions, 2)
    [report] = reports(sessions)
    rows = inbound_rows(sessions)
    assert [row.status for row in rows] == ["processed", "duplicate"]
    assert {row.report_id for row in rows} == {report.id}


def test_one_message_to_two_of_our_addresses_is_one_report_in_one_envelope_or_two(daemon_factory, sessions: sessionmaker[Session]) -> None:
    daemon = daemon_factory()
    assert send(daemon.port, report_mail(message_id="<both@example.org>"), recipients=("security@example.com", "psirt@example.com"))[0] == 250
    no_id = report_mail(message_id=None, subject="No message id")
    assert send(daemon.port, b"Delivered-To: security@example.com\r\n" + no_id, recipients=("security@example.com",))[0] == 250
    assert send(daemon.port, b"Delivered-To: psirt@example.com\r\n" + no_id, recipients=("psirt@example.com",))[0] == 250
    wait_until_processed(sessions, 3)
    assert [report.subject for report in reports(sessions)] == ["XSS in login form", "No message id"]
    assert [row.status for row in inbound_rows(sessions)] == ["processed", "processed", "duplicate"]
    assert inbound_rows(sessions)[0].envelope_to == ["security@example.com", "psirt@example.com"]


def test_different_mails_without_message_id_are_different_reports(daemon_factory, sessions: sessionmaker[Session]) -> None:
    daemon = daemon_factory()
    assert send(daemon.port, report_mail(message_id=None, body="first"))[0] == 250
    assert send(daemon.port, report_mail(message_id=None, body="second"))[0] == 250
    wait_until_processed(sessions, 2)
    assert len(reports(sessions)) == 2


def test_aiosmtplib_client_smtputf8_sender_and_raw_utf8_headers(daemon_factory, sessions: sessionmaker[Session]) -> None:
    daemon = daemon_factory()
    raw = "From: Jürgen Müller <jürgen@example.org>\r\nTo: security@example.com\r\nSubject: Lücke im Login\r\nMessage-ID: <utf8@example.org>\r\n\r\nDetails.\r\n".encode()

    async def deliver() -> tuple:
        return await aiosmtplib.send(raw, sender="jürgen@example.org", recipients=["security@example.com"], hostname="127.0.0.1", port=daemon.port, start_tls=False, mail_options=["SMTPUTF8"])

    errors, response = asyncio.run(deliver())
    assert errors == {} and response.startswith("2.0.0 Stored")
    wait_until_processed(sessions, 1)
    assert inbound_rows(sessions)[0].envelope_from == "jürgen@example.org"
    assert inbound_rows(sessions)[0].raw == raw
    [report] = reports(sessions)
    assert report.subject == "Lücke im Login"
    with transaction(sessions) as session:
        assert session.get(Reporter, report.reporter_id).address == "jürgen@example.org"


def test_lmtp_answers_once_per_recipient_after_data(daemon_factory, sessions: sessionmaker[Session]) -> None:
    daemon = daemon_factory(listener={"protocol": "lmtp"}, intake={"max_message_size": 20_000})
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=30) as connection:
        stream = connection.makefile("rwb")

        def command(line: bytes) -> list[bytes]:
            stream.write(line + b"\r\n")
            stream.flush()
            return read_reply(stream)

        assert read_reply(stream)[0].startswith(b"220")
        assert command(b"EHLO client")[0].startswith(b"500")
        assert command(b"LHLO client.example.org")[-1].startswith(b"250 ")
        assert command(b"MAIL FROM:<researcher@example.org>") == [b"250 2.1.0 Sender OK"]
        assert command(b"RCPT TO:<security@example.com>") == [b"250 2.1.5 Recipient OK"]
        assert command(b"RCPT TO:<psirt@example.com>") == [b"250 2.1.5 Recipient OK"]
        assert command(b"DATA")[0].startswith(b"354")
        stream.write(report_mail() + b".\r\n")
        stream.flush()
        replies = [read_reply(stream)[0], read_reply(stream)[0]]
        assert all(reply.startswith(b"250 2.0.0 Stored") for reply in replies)
        assert command(b"MAIL FROM:<researcher@example.org>")[0].startswith(b"250")
        command(b"RCPT TO:<security@example.com>")
        command(b"RCPT TO:<psirt@example.com>")
        command(b"DATA")
        stream.write(b"Subject: big\r\n\r\n" + b"z" * 900 + b"\r\n" + (b"z" * 900 + b"\r\n") * 30 + b".\r\n")
        stream.flush()
        assert [read_reply(stream)[0], read_reply(stream)[0]] == [b"552 5.3.4 Message too big for this system"] * 2
        assert command(b"QUIT")[0].startswith(b"221")
    wait_until_processed(sessions, 1)
    assert len(inbound_rows(sessions)) == 1 and len(reports(sessions)) == 1


def read_reply(stream) -> list[bytes]:
    lines = []
    while True:
        line = stream.readline().rstrip(b"\r\n")
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            return lines


def test_protocol_errors_carry_enhanced_status_codes(daemon_factory) -> None:
    daemon = daemon_factory()
    with smtplib.SMTP("127.0.0.1", daemon.port, timeout=30) as client:
        client.ehlo("client.example.org")
        assert client.docmd("FOO") == (500, b'5.5.2 Error: command "FOO" not recognized')
        assert client.docmd("DATA") == (503, b"5.5.1 Error: need RCPT command")
        code, reply = client.docmd("MAIL", "FROM:<a@example.org> BOGUS=1")
        assert (code, reply[:6]) == (555, b"5.5.4 ")
        assert client.docmd("RCPT", "TO:<security@example.com>") == (503, b"5.5.1 Error: need MAIL command")
        assert client.docmd("MAIL", "FROM:<<bad>>") == (553, b"5.1.3 Error: malformed address")
        assert client.docmd("EXPN", "security") == (502, b"5.5.1 EXPN not implemented")


def test_lmtp_answers_only_for_accepted_recipients(daemon_factory, sessions: sessionmaker[Session]) -> None:
    daemon = daemon_factory(listener={"protocol": "lmtp"})
    with smtplib.LMTP("127.0.0.1", daemon.port, timeout=30) as client:
        refused = client.sendmail("researcher@example.org", ["security@example.com", "nobody@example.com"], report_mail())
    assert refused == {"nobody@example.com": (550, b"5.1.1 Recipient address rejected: no such mailbox here")}
    wait_until_processed(sessions, 1)
    assert inbound_rows(sessions)[0].envelope_to == ["security@example.com"]


def test_hostile_envelope_text_is_stored_cleaned_and_costs_no_other_sender_a_451(daemon_factory, sessions: sessionmaker[Session]) -> None:
    daemon = daemon_factory()
    mails = [report_mail(message_id=f"<batch-{index}@example.org>", body=f"report {index}") for index in range(30)]

    async def good(index: int) -> str:
        _, reply = await aiosmtplib.send(mails[index], sender="researcher@example.org", recipients=["security@example.com"], hostname="127.0.0.1", port=daemon.port, start_tls=False)
        return reply

    async def hostile() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", daemon.port)
        replies = [await reader.readline()]
        for line in (b"EHLO bad\x00\xffhost", b"MAIL FROM:<r\xff\x00@example.org>", b"RCPT TO:<security@example.com>", b"DATA"):
            writer.write(line + b"\r\n")
            await writer.drain()
            while (reply := await reader.readline())[3:4] == b"-":
                pass
            replies.append(reply)
        writer.write(report_mail(message_id="<hostile@example.org>") + b".\r\n")
        await writer.drain()
        final = await reader.readline()
        writer.close()
        return final

    async def everyone() -> list:
        return await asyncio.gather(hostile(), *(good(index) for index in range(30)))

    hostile_reply, *good_replies = asyncio.run(everyone())
    assert all(reply.startswith("2.0.0 Stored") for reply in good_replies)
    assert hostile_reply.startswith(b"250 2.0.0 Stored")
    wait_until_processed(sessions, 31)
    hostile_row = next(row for row in inbound_rows(sessions) if b"hostile@example.org" in row.raw)
    assert "\x00" not in hostile_row.helo + hostile_row.envelope_from
    assert hostile_row.envelope_from == "r\ufffd@example.org"


def test_long_lines_are_accepted_and_stored_unchanged(daemon_factory, sessions: sessionmaker[Session]) -> None:
    daemon = daemon_factory()
    raw = b"From: researcher@example.org\r\nTo: security@example.com\r\nSubject: long line\r\nContent-Type: text/html\r\n\r\n<p>" + b"x" * 5000 + b"</p>\r\n"
    assert send(daemon.port, raw)[0] == 250
    wait_until_processed(sessions, 1)
    assert inbound_rows(sessions)[0].raw == raw


def test_more_than_100_recipients_get_452_4_5_3(daemon_factory) -> None:
    daemon = daemon_factory()
    with smtplib.SMTP("127.0.0.1", daemon.port, timeout=30) as client:
        client.ehlo("client.example.org")
        client.mail("researcher@example.org")
        codes = [client.rcpt("security@example.com")[0] for _ in range(101)]
    assert codes[:100] == [250] * 100 and codes[100] == 452


def test_signed_reply_addresses_are_accepted_and_forged_ones_refused_with_550(daemon_factory, sessions: sessionmaker[Session]) -> None:
    daemon = daemon_factory()
    key = key_from_text(TEST_TOKEN_KEY)
    valid = reply_address("security@example.com", 42, "reporter", key)
    local, _, domain = valid.partition("@")
    tampered = local[:-1] + ("a" if local[-1] != "a" else "b") + "@" + domain
    other_key = reply_address("security@example.com", 42, "reporter", key_from_text("another-key-that-is-long-enough-0123456789"))
    with smtplib.SMTP("127.0.0.1", daemon.port, timeout=30) as client:
        client.ehlo("client.example.org")
        client.mail("researcher@example.org")
        assert client.rcpt(valid)[0] == 250
        assert client.rcpt(valid.upper())[0] == 250
        for forged in (tampered, other_key, "security+42@example.com", "security+r16@example.com"):
            assert client.rcpt(forged) == (550, b"5.1.1 Recipient address rejected: no such mailbox here"), forged

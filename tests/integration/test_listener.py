"""The real daemon over loopback: reply codes and stored rows, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import fcntl
import gc
import hashlib
import re
import smtplib
import socket
import ssl
import struct
import subprocess
import termios
import tracemalloc
from pathlib import Path

import aiosmtplib
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from mailintake.config.loading import load_config
from mailintake.config.schema import ConfigError, host_is_loopback
from mailintake.core.clock import utc_now
from mailintake.core.tokens import key_from_text
from mailintake.intake.handler import AcceptedRecipients, IntakeHandler
from mailintake.intake.listener import protocol_factory
from mailintake.intake.rules import ConnectionLimits, SessionRules
from mailintake.intake.store import GroupCommitStore
from mailintake.storage.db import transaction
from mailintake.storage.models import Reporter
from tests.daemon import TEST_TOKEN_KEY, write_config
from tests.integration.helpers import inbound_rows, report_mail, reports, run_cli, wait_until_processed
from tests.tls_certs import self_signed_certificate

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
    daemon = daemon_factory(listener={"max_connections_per_ip": 31})
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


def test_a_transfer_whose_sender_leaves_mid_data_frees_its_buffer_at_once(sessions: sessionmaker[Session]) -> None:
    """The read cancelled by the disconnect stays referenced from its task's traceback until
    the cycle collector runs (here: never), so the session must drop the buffer itself."""
    transfer = 2_000_000

    async def traced_bytes_after_a_sender_leaves() -> tuple[int, int]:
        rules = SessionRules("mailintake.localhost", 10_000_000, idle_timeout=30, data_timeout=30, connections=ConnectionLimits(10, 10))
        recipients = AcceptedRecipients(("security@example.com",), "security@example.com", key_from_text(TEST_TOKEN_KEY))
        handler = IntakeHandler(recipients, GroupCommitStore(sessions), lambda: None, utc_now, "smtp", 30)
        server = await asyncio.get_running_loop().create_server(protocol_factory(handler, "smtp", rules), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for line in (b"EHLO client.example.org", b"MAIL FROM:<researcher@example.org>", b"RCPT TO:<security@example.com>", b"DATA"):
            writer.write(line + b"\r\n")
            while (await reader.readline())[3:4] == b"-":
                pass
        before = tracemalloc.get_traced_memory()[0]
        writer.write(b"Subject: left\r\n\r\n" + (b"a" * 98 + b"\r\n") * (transfer // 100))
        client = writer.get_extra_info("socket")
        for _ in range(200):
            await asyncio.sleep(0.05)
            if writer.transport.get_write_buffer_size() == 0 and unacknowledged_bytes(client) == 0:
                break
        await asyncio.sleep(0.3)
        during = tracemalloc.get_traced_memory()[0] - before
        writer.close()
        await writer.wait_closed()
        await asyncio.sleep(0.5)
        after = tracemalloc.get_traced_memory()[0]
        server.close()
        await server.wait_closed()
        return during, after - before

    gc.disable()
    tracemalloc.start()
    try:
        during, after = asyncio.run(traced_bytes_after_a_sender_leaves())
    finally:
        tracemalloc.stop()
        gc.enable()
    assert during > transfer * 0.9, "the transfer did not reach the session"
    assert after < transfer * 0.1, f"{after} bytes still held after the sender left"


def unacknowledged_bytes(connection: socket.socket) -> int:
    return struct.unpack("i", fcntl.ioctl(connection.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]


def tls_settings(directory: Path) -> dict[str, str]:
    cert, key = self_signed_certificate(directory)
    return {"tls_cert": str(cert), "tls_key": str(key)}


def test_starttls_is_offered_and_a_mail_sent_after_the_upgrade_is_stored(daemon_factory, sessions: sessionmaker[Session], tmp_path: Path) -> None:
    settings = tls_settings(tmp_path)
    daemon = daemon_factory(listener=settings)
    raw = report_mail(message_id="<over-tls@example.org>")
    with smtplib.SMTP("127.0.0.1", daemon.port, timeout=30) as client:
        client.ehlo("client.example.org")
        assert client.has_extn("starttls")
        assert client.starttls(context=ssl.create_default_context(cafile=settings["tls_cert"]))[0] == 220
        client.ehlo("client.example.org")
        assert not client.has_extn("starttls") and not client.has_extn("auth")
        assert isinstance(client.sock, ssl.SSLSocket) and client.sock.version() in ("TLSv1.2", "TLSv1.3")
        client.mail("researcher@example.org")
        client.rcpt("security@example.com")
        assert client.data(raw) == (250, b"2.0.0 Stored, sha256 " + hashlib.sha256(raw).hexdigest()[:16].encode())
    wait_until_processed(sessions, 1)
    assert [row.raw for row in inbound_rows(sessions)] == [raw]
    assert [report.subject for report in reports(sessions)] == ["XSS in login form"]


@pytest.mark.parametrize("protocol", ["smtp", "lmtp"])
def test_require_starttls_refuses_mail_before_the_upgrade_with_530_5_7_0(daemon_factory, sessions: sessionmaker[Session], tmp_path: Path, protocol: str) -> None:
    settings = tls_settings(tmp_path)
    daemon = daemon_factory(listener=settings | {"require_starttls": True, "protocol": protocol})
    client_class = smtplib.LMTP if protocol == "lmtp" else smtplib.SMTP
    with client_class("127.0.0.1", daemon.port, timeout=30) as client:
        client.ehlo_or_helo_if_needed()
        assert client.mail("researcher@example.org") == (530, b"5.7.0 Must issue a STARTTLS command first")
        assert client.rcpt("security@example.com")[0] == 503
        client.starttls(context=ssl.create_default_context(cafile=settings["tls_cert"]))
        assert client.sendmail("researcher@example.org", ["security@example.com"], report_mail()) == {}
    assert len(inbound_rows(sessions)) == 1


def test_serve_with_an_unusable_certificate_or_key_exits_2_with_one_line_naming_the_key(engine: Engine, database_url: str, tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    (tmp_path / "other").mkdir()
    _, other_key = self_signed_certificate(tmp_path / "other")
    encrypted = tmp_path / "encrypted-key.pem"
    subprocess.run(["openssl", "pkey", "-in", str(key), "-aes256", "-passout", "pass:secret", "-out", str(encrypted)], check=True, capture_output=True, timeout=30)
    cases = {
        "missing-cert": ({"tls_cert": str(tmp_path / "absent.pem"), "tls_key": str(key)}, "tls_cert", "cannot read"),
        "key-as-cert": ({"tls_cert": str(key), "tls_key": str(key)}, "tls_cert", "holds no PEM certificate"),
        "unreadable-key": ({"tls_cert": str(cert), "tls_key": str(tmp_path)}, "tls_key", "cannot read"),
        "mismatched-key": ({"tls_cert": str(cert), "tls_key": str(other_key)}, "tls_key", "is not a PEM private key matching tls_cert"),
        "encrypted-key": ({"tls_cert": str(cert), "tls_key": str(encrypted)}, "tls_key", "is encrypted"),
    }
    for name, (listener, key_name, problem) in cases.items():
        config = write_config(tmp_path / f"{name}.toml", database_url, listener=listener)
        result = run_cli(config, "serve")
        assert result.returncode == 2, (name, result.stderr)
        assert result.stderr.startswith(f"mailintake: [listener] {key_name}: ") and problem in result.stderr, (name, result.stderr)
        assert result.stderr.count("\n") == 1 and result.stdout == "", (name, result.stderr)


def test_listener_tls_settings_are_relative_to_the_config_file_and_checked_at_load(tmp_path: Path) -> None:
    def listener_of(**settings: object):
        return load_config(write_config(tmp_path / "config.toml", "sqlite:///var/test.db", listener=settings), environ={}).listener

    both = {"tls_cert": "tls/cert.pem", "tls_key": "tls/key.pem"}
    assert listener_of(**both).tls_cert == tmp_path / "tls" / "cert.pem"
    assert listener_of(**both).require_starttls is False
    assert listener_of(**both, host="0.0.0.0").require_starttls is True
    assert listener_of(**both, host="0.0.0.0", require_starttls=False).require_starttls is False
    assert listener_of(host="0.0.0.0").require_starttls is False
    defaults = listener_of()
    assert (defaults.max_connections, defaults.max_connections_per_ip, defaults.idle_timeout, defaults.data_timeout) == (100, 20, 300, 300)
    refused = [
        ({"tls_cert": "cert.pem"}, "[listener] tls_cert and tls_key go together"),
        ({"require_starttls": True}, "[listener] require_starttls needs tls_cert and tls_key"),
        ({"max_connections": 0}, "[listener] max_connections must be a positive integer"),
        ({"max_connections_per_ip": 2.5}, "[listener] max_connections_per_ip must be a positive integer"),
        ({"idle_timeout": -1}, "[listener] idle_timeout must be a positive number"),
        ({"data_timeout": "5"}, "[listener] data_timeout must be a positive number"),
    ]
    for settings, message in refused:
        with pytest.raises(ConfigError, match=re.escape(message)):
            listener_of(**settings)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True), ("::ffff:127.0.0.1", True), ("0.0.0.0", False), ("::", False), ("192.0.2.10", False), ("mx.example.com", False)],
)
def test_only_loopback_addresses_count_as_loopback(host: str, loopback: bool) -> None:
    assert host_is_loopback(host) is loopback

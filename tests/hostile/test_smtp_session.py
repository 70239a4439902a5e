"""Hostile SMTP sessions against a real `serve` on loopback (cases 1, 2, 4, 5 and 6 of the
checklist), on SQLite and PostgreSQL. Raw sockets where a client library would hide or
fix the bytes."""

from __future__ import annotations

import fcntl
import hashlib
import smtplib
import socket
import ssl
import struct
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.daemon import DaemonProcess
from tests.hostile.helpers import Stack, running_stack
from tests.integration.helpers import inbound_rows, report_mail
from tests.tls_certs import self_signed_certificate

pytestmark = pytest.mark.slow

SECURITY = "security@example.com"
SIZE_LIMIT = 200_000


class Wire:
    """A raw SMTP connection: exactly these bytes go out, every reply line comes back."""

    def __init__(self, port: int, source: str = "127.0.0.1", timeout: float = 10.0) -> None:
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
        self.stream = self.socket.makefile("rwb")

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.stream.close()
        self.socket.close()

    def send(self, data: bytes) -> None:
        self.stream.write(data)
        self.stream.flush()

    def reply(self) -> list[bytes]:
        lines = []
        while True:
            line = self.stream.readline()
            assert line, f"connection closed after {lines}"
            lines.append(line.rstrip(b"\r\n"))
            if line[3:4] != b"-":
                return lines

    def command(self, line: bytes) -> list[bytes]:
        self.send(line + b"\r\n")
        return self.reply()

    def closed_by_server(self) -> bool:
        try:
            return self.stream.read() == b""
        except ConnectionResetError:
            return True

    def start_tls(self, certificate: Path) -> None:
        context = ssl.create_default_context(cafile=str(certificate))
        self.stream.close()
        self.socket = context.wrap_socket(self.socket, server_hostname="127.0.0.1")
        self.stream = self.socket.makefile("rwb")

    def open_transaction(self) -> None:
        assert self.reply()[0].startswith(b"220 ")
        self.begin_data()

    def begin_data(self) -> None:
        assert self.command(b"EHLO client.example.org")[-1].startswith(b"250 ")
        assert self.command(b"MAIL FROM:<researcher@example.org>") == [b"250 2.1.0 Sender OK"]
        assert self.command(b"RCPT TO:<security@example.com>") == [b"250 2.1.5 Recipient OK"]
        assert self.command(b"DATA")[0].startswith(b"354 ")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def stack(stack_database_url: str, certificate: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The shared daemon: STARTTLS offered, default timeouts."""
    cert, key = certificate
    listener = {"tls_cert": str(cert), "tls_key": str(key)}
    with running_stack(tmp_path_factory.mktemp("stack"), stack_database_url, listener=listener, intake={"max_message_size": SIZE_LIMIT}) as running:
        yield running


@pytest.fixture(scope="module")
def brisk(stack_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A daemon with one-second idle and data timeouts."""
    with running_stack(tmp_path_factory.mktemp("brisk"), stack_database_url, listener={"idle_timeout": 1, "data_timeout": 1}) as running:
        yield running


def stored(sessions: sessionmaker[Session], raw: bytes) -> int:
    """How many deliveries with exactly these bytes are stored."""
    digest = hashlib.sha256(raw).hexdigest()
    return sum(1 for row in inbound_rows(sessions) if row.sha256 == digest)


def stored_containing(sessions: sessionmaker[Session], marker: bytes) -> int:
    return sum(1 for row in inbound_rows(sessions) if marker in row.raw)


def test_case_01_smuggling_endings_end_nothing_one_message_body_intact(stack: Stack) -> None:
    smuggled = b"MAIL FROM:<ceo@example.com>\r\nRCPT TO:<security@example.com>\r\nDATA\r\nSubject: smuggled\r\n\r\nforged\r\n"
    carrier = report_mail(message_id="<smuggle-carrier@example.org>", body="carrier")
    sent = carrier + b"\n.\r\n" + smuggled + b"\r\n.\n" + smuggled + b"\n.\n" + smuggled + b"\r.\r\n" + smuggled
    # Only the dot opening a CRLF line is transparency (RFC 5321 4.5.2): `.\nMAIL` loses it.
    expected = carrier + b"\n.\r\n" + smuggled + b"\r\n\n" + smuggled + b"\n.\n" + smuggled + b"\r.\r\n" + smuggled
    with Wire(stack.daemon.port) as wire:
        wire.open_transaction()
        wire.send(sent + b".\r\n")
        [reply] = wire.reply()
        assert reply.startswith(b"250 2.0.0 Stored, sha256 " + hashlib.sha256(expected).hexdigest()[:16].encode())
        assert wire.command(b"NOOP") == [b"250 OK"], "a smuggled command was answered"
    assert stored(stack.sessions, expected) == 1
    assert stored_containing(stack.sessions, b"Subject: smuggled") == 1


def test_case_02_starttls_drops_the_commands_pipelined_behind_it(stack: Stack, certificate: tuple[Path, Path]) -> None:
    with Wire(stack.daemon.port) as wire:
        assert wire.reply()[0].startswith(b"220 ")
        assert b"250-STARTTLS" in wire.command(b"EHLO client.example.org")
        wire.send(b"STARTTLS\r\nMAIL FROM:<attacker@evil.test>\r\n")
        assert wire.reply() == [b"220 Ready to start TLS"]
        wire.start_tls(certificate[0])
        features = wire.command(b"EHLO client.example.org")
        assert features[0] == b"250-mailintake.localhost", "a reply to the pipelined MAIL came first"
        assert not any(b"STARTTLS" in line or b"AUTH" in line for line in features)
        assert wire.command(b"RCPT TO:<security@example.com>") == [b"503 5.5.1 Error: need MAIL command"]


def test_case_04_oversized_mail_is_refused_with_552_5_3_4_both_by_size_and_by_content(daemon_factory, sessions: sessionmaker[Session]) -> None:
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


def test_case_04_data_that_does_not_end_is_cut_off_with_552_after_twice_the_limit(stack: Stack) -> None:
    line = b"z" * 998 + b"\r\n"
    with Wire(stack.daemon.port) as wire:
        wire.open_transaction()
        wire.send(b"Subject: endless\r\n\r\n" + line * (2 * SIZE_LIMIT // len(line) + 1))
        assert wire.reply() == [b"552 5.3.4 Message too big for this system"]
        assert wire.closed_by_server()
    assert stored_containing(stack.sessions, b"Subject: endless") == 0


def test_case_05_command_over_512_octets_gets_500_5_5_2_and_the_session_survives(stack: Stack) -> None:
    with Wire(stack.daemon.port) as wire:
        assert wire.reply()[0].startswith(b"220 ")
        assert wire.command(b"EHLO client.example.org")[-1].startswith(b"250 ")
        longest = b"NOOP " + b"x" * 507
        assert wire.command(longest) == [b"250 OK"]
        assert wire.command(longest + b"x") == [b"500 5.5.2 Command line too long"]
        assert wire.command(b"NOOP " + b"x" * 200_000) == [b"500 5.5.2 Command line too long"]
        assert wire.command(b"MAIL FROM:<researcher@example.org>") == [b"250 2.1.0 Sender OK"]
        assert wire.command(b"RCPT TO:<security@example.com>") == [b"250 2.1.5 Recipient OK"]


def test_case_05_data_line_over_64_kib_gets_500_5_5_2_and_the_session_survives(stack: Stack) -> None:
    overlong = b"Subject: overlong line\r\n\r\n" + b"q" * 65_537 + b"\r\n"
    after = report_mail(message_id="<after-overlong@example.org>", body="after the overlong line")
    with Wire(stack.daemon.port) as wire:
        wire.open_transaction()
        wire.send(overlong + b".\r\n")
        assert wire.reply() == [b"500 5.5.2 Line too long (RFC 5321 4.5.3.1.6)"]
        assert wire.command(b"MAIL FROM:<researcher@example.org>") == [b"250 2.1.0 Sender OK"]
        assert wire.command(b"RCPT TO:<security@example.com>") == [b"250 2.1.5 Recipient OK"]
        assert wire.command(b"DATA")[0].startswith(b"354 ")
        wire.send(after + b".\r\n")
        assert wire.reply()[0].startswith(b"250 2.0.0 Stored")
    assert stored_containing(stack.sessions, b"Subject: overlong line") == 0
    assert stored(stack.sessions, after) == 1


def test_case_06_an_idle_session_gets_421_4_4_2_and_is_closed(brisk: Stack) -> None:
    with Wire(brisk.daemon.port) as wire:
        assert wire.reply()[0].startswith(b"220 ")
        assert wire.command(b"EHLO client.example.org")[-1].startswith(b"250 ")
        started = time.monotonic()
        assert wire.reply() == [b"421 4.4.2 Idle for too long, closing connection"]
        assert 0.8 < time.monotonic() - started < 5
        assert wire.closed_by_server()


def test_case_06_a_command_dribbled_byte_by_byte_is_cut_at_the_idle_timeout(brisk: Stack) -> None:
    with Wire(brisk.daemon.port) as wire:
        assert wire.reply()[0].startswith(b"220 ")
        started = time.monotonic()
        wire.socket.settimeout(0.2)
        received = b""
        for byte in (b"EHLO slow.example.org" * 2)[:40]:
            try:
                wire.socket.sendall(bytes([byte]))
                received += wire.socket.recv(200)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            if received.endswith(b"\r\n"):
                break
        assert received == b"421 4.4.2 Idle for too long, closing connection\r\n"
        assert 0.8 < time.monotonic() - started < 5


def test_case_06_a_stalled_transfer_gets_421_4_4_2_and_nothing_is_stored(brisk: Stack) -> None:
    with Wire(brisk.daemon.port) as wire:
        wire.open_transaction()
        wire.send(b"Subject: stalled transfer\r\n\r\nthe first half")
        started = time.monotonic()
        assert wire.reply() == [b"421 4.4.2 No message data for too long, closing connection"]
        assert 0.8 < time.monotonic() - started < 5
        assert wire.closed_by_server()
    assert stored_containing(brisk.sessions, b"Subject: stalled transfer") == 0


def test_case_06_a_slow_but_steady_transfer_longer_than_both_timeouts_is_stored(brisk: Stack) -> None:
    raw = report_mail(message_id="<slow-steady@example.org>", body="line\n" * 40)
    with Wire(brisk.daemon.port) as wire:
        wire.open_transaction()
        started = time.monotonic()
        pieces = [raw[index : index + 64] for index in range(0, len(raw), 64)]
        for piece in pieces:
            wire.send(piece)
            time.sleep(3.0 / len(pieces))
        wire.send(b".\r\n")
        assert wire.reply()[0].startswith(b"250 2.0.0 Stored")
        assert time.monotonic() - started > 2.5
    assert stored(brisk.sessions, raw) == 1


def test_case_06_connections_over_either_cap_get_421_4_7_0_and_slots_free_up(daemon_factory) -> None:
    daemon = daemon_factory(listener={"max_connections": 4, "max_connections_per_ip": 3})
    local = admitted(daemon, 3)
    with Wire(daemon.port) as fourth_local:
        assert fourth_local.reply() == [b"421 4.7.0 Too many connections from your address, try again later"]
        assert fourth_local.closed_by_server()
    [other] = admitted(daemon, 1, source="127.0.0.2")
    with Wire(daemon.port, source="127.0.0.3") as third_address:
        assert third_address.reply() == [b"421 4.7.0 Too many connections, try again later"]
        assert third_address.closed_by_server()
    for wire in local + [other]:
        assert wire.command(b"QUIT")[0].startswith(b"221")
        wire.close()
    for wire in admitted(daemon, 3) + admitted(daemon, 1, source="127.0.0.3"):
        wire.close()


def test_case_06_stalled_large_transfers_beyond_the_cap_are_refused_and_memory_stays_bounded(daemon_factory) -> None:
    """Four connections each stall after 2 MB of 8-byte lines (aiosmtpd's own DATA kept them
    as one object per line: serve grew by 85 MiB); four more are refused at once. Twice
    over, measured from one baseline. Bound: the four buffers at twice their size plus
    24 MiB."""
    limit, connections, transfer = 2_500_000, 4, 2_000_000
    daemon = daemon_factory(listener={"max_connections": connections}, intake={"max_message_size": limit})
    bound = connections * 2 * transfer + 24 * 2**20
    baseline = resident_bytes(daemon)
    for _ in range(2):
        stalled = admitted(daemon, connections)
        for wire in stalled:
            wire.begin_data()
            wire.send(b"Subject: stalled\r\n\r\n" + b"abcdef\r\n" * (transfer // 8))
        for _ in range(connections):
            with Wire(daemon.port) as extra:
                assert extra.reply() == [b"421 4.7.0 Too many connections, try again later"]
                assert extra.closed_by_server()
        for wire in stalled:
            wait_until_received(wire)
        time.sleep(0.5)
        grown = resident_bytes(daemon) - baseline
        assert grown < bound, f"serve grew by {grown / 2**20:.0f} MiB with {connections} stalled transfers"
        for wire in stalled:
            wire.close()
    for wire in admitted(daemon, connections):
        wire.close()
    with smtplib.SMTP("127.0.0.1", daemon.port, timeout=30) as client:
        assert client.sendmail("researcher@example.org", [SECURITY], report_mail(message_id="<after-stall@example.org>")) == {}


def admitted(daemon: DaemonProcess, count: int, source: str = "127.0.0.1", timeout: float = 10.0) -> list[Wire]:
    """`count` connections greeted with 220; one refused with 421 while the daemon has not yet
    seen an earlier connection close is tried again."""
    wires: list[Wire] = []
    deadline = time.monotonic() + timeout
    while len(wires) < count and time.monotonic() < deadline:
        wire = Wire(daemon.port, source=source)
        greeting = wire.reply()
        if greeting[0].startswith(b"220 "):
            wires.append(wire)
            continue
        assert greeting[0].startswith(b"421 4.7.0 "), greeting
        wire.close()
        time.sleep(0.05)
    assert len(wires) == count, f"only {len(wires)} of {count} connections accepted within {timeout} s"
    return wires


def resident_bytes(daemon: DaemonProcess) -> int:
    assert daemon.process is not None
    for line in Path(f"/proc/{daemon.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def wait_until_received(wire: Wire, timeout: float = 20.0) -> None:
    """Until the peer's kernel has acknowledged everything sent on this connection."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        unsent = struct.unpack("i", fcntl.ioctl(wire.socket.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]
        if unsent == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"the daemon did not take the data within {timeout} s")

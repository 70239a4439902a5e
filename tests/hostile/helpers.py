"""What the hostile-input suite shares: one real daemon, relay sink and DNS server per
module (a `Stack`), hostile mail to feed it, and waits that attribute what comes out to
the mail that caused it, so tests sharing a daemon never read each other's mail."""

from __future__ import annotations

import hashlib
import smtplib
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from mailintake.storage.db import create_database_engine, session_factory, transaction, upgrade_database
from mailintake.storage.models import InboundMessage, Message, OutboxMessage, Report
from tests.daemon import REPO, DaemonProcess, write_config
from tests.dkim_keys import dkim_txt_record
from tests.dns_server import TxtDnsServer
from tests.integration.helpers import mail
from tests.integration.relay import Received, Relay

TEAM, LEADS, BOB = "team@example.com", "leads@example.com", "bob@example.com"
SECURITY = "security@example.com"
POLICY_A = (REPO / "presets" / "policy-a.toml").read_text()
STAFF_ADDRESSES = frozenset({TEAM, LEADS})
FINISHED_INBOUND = frozenset({"processed", "duplicate"})
FINISHED_OUTBOX = frozenset({"sent", "failed"})
DKIM_RECORDS = {"sel._domainkey.example.com": dkim_txt_record(), "sel._domainkey.evil.test": dkim_txt_record()}


@dataclass
class Stack:
    """A running `serve` with staff at example.com (DKIM checked against the loopback DNS
    server), policy A, and a relay sink that records everything it is handed."""

    daemon: DaemonProcess
    relay: Relay
    sessions: sessionmaker[Session]

    def send(self, raw: bytes, sender: str, recipients: Sequence[str] = (SECURITY,)) -> tuple[int, bytes]:
        return send_and_reply(self.daemon.port, raw, sender, recipients)

    def deliver(self, raw: bytes, sender: str, recipients: Sequence[str] = (SECURITY,)) -> InboundMessage:
        """Send, expect 250, and wait until the delivery has been turned into a report or a
        thread message; the stored row."""
        code, reply = self.send(raw, sender, recipients)
        assert code == 250, reply
        return self.processed(reply_sha256_prefix(reply))

    def processed(self, sha256_prefix: str, timeout: float = 30.0) -> InboundMessage:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with transaction(self.sessions) as session:
                rows = list(session.scalars(select(InboundMessage).where(InboundMessage.sha256.startswith(sha256_prefix)).order_by(InboundMessage.id.desc())))
            if rows and rows[0].status in FINISHED_INBOUND:
                return rows[0]
            assert not rows or rows[0].status != "failed", f"processing failed: {rows[0].last_error}"
            time.sleep(0.05)
        raise AssertionError(f"delivery {sha256_prefix} not processed within {timeout} s")

    def report(self, report_id: int) -> Report:
        with transaction(self.sessions) as session:
            return session.scalars(select(Report).where(Report.id == report_id).options(selectinload(Report.messages).selectinload(Message.attachments), selectinload(Report.milestones), selectinload(Report.reporter))).one()

    def report_of(self, row: InboundMessage) -> Report:
        assert row.report_id is not None, f"inbound {row.id} made no report"
        return self.report(row.report_id)

    def reports_after(self, report_id: int) -> list[Report]:
        with transaction(self.sessions) as session:
            ids = list(session.scalars(select(Report.id).where(Report.id > report_id).order_by(Report.id)))
        return [self.report(number) for number in ids]

    def outbox(self, report_id: int | None = None) -> list[OutboxMessage]:
        with transaction(self.sessions) as session:
            query = select(OutboxMessage).order_by(OutboxMessage.id)
            if report_id is not None:
                query = query.where(OutboxMessage.report_id == report_id)
            return list(session.scalars(query))

    def quiet(self, timeout: float = 30.0) -> None:
        """Wait until every stored delivery has been taken up and every outbox row has been
        handed to the relay (or failed), so that an absence in the relay is final. A failed
        delivery is the concern of the test that sent it (`processed` fails on it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with transaction(self.sessions) as session:
                inbound = list(session.scalars(select(InboundMessage.status)))
                outbox = list(session.scalars(select(OutboxMessage.message_id).where(OutboxMessage.status.not_in(FINISHED_OUTBOX))))
                sent = {f"<{row}>" for row in session.scalars(select(OutboxMessage.message_id).where(OutboxMessage.status == "sent"))}
            relayed = {message_id(item) for item in self.relay.received}
            if "received" not in inbound and not outbox and sent <= relayed:
                return
            time.sleep(0.05)
        raise AssertionError(f"daemon not quiet within {timeout} s: {[(row.kind, row.status, row.last_reply) for row in self.outbox() if row.status not in FINISHED_OUTBOX]}")

    def mails_of(self, report_id: int) -> list[Received]:
        """What the relay received for this report's outbox rows, once all are sent."""
        self.quiet()
        ids = {f"<{row.message_id}>" for row in self.outbox(report_id)}
        return [item for item in self.relay.received if message_id(item) in ids]

    def new_report(self, sender: str, body: str = "Reflected XSS in /search?q=\nSuggested severity: high\n", **headers: str) -> tuple[Report, Received, Received]:
        """A plain report from `sender`; the report, its acknowledgement and staff notification."""
        row = self.deliver(mail(sender, SECURITY, headers.pop("subject", "Reflected XSS in search"), body, **headers), sender)
        report = self.report_of(row)
        mails = self.mails_of(report.id)
        [ack] = [item for item in mails if item.rcpt_tos == [sender]]
        [notification] = [item for item in mails if item.rcpt_tos == [TEAM]]
        return report, ack, notification


def send_and_reply(port: int, raw: bytes, sender: str = "researcher@example.org", recipients: Sequence[str] = (SECURITY,)) -> tuple[int, bytes]:
    """One SMTP transaction; the reply to DATA. Every recipient must be accepted."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.example.org")
        client.mail(sender)
        for recipient in recipients:
            code, reply = client.rcpt(recipient)
            assert code == 250, (recipient, code, reply)
        return client.data(raw)


def message_id(item: Received) -> str:
    return str(item.message["Message-ID"] or "")


def reply_sha256_prefix(reply: bytes) -> str:
    """The sha256 prefix in `250 2.0.0 Stored, sha256 <16 hex>`."""
    text = reply.decode("ascii", "replace")
    assert text.startswith("2.0.0 Stored, sha256 "), text
    return text.rsplit(" ", 1)[1]


def staff_settings(dns: tuple[str, int]) -> dict[str, object]:
    host, port = dns
    return {"notify": [TEAM], "alerts": [LEADS], "members": ["example.com"], "dns_server": f"{host}:{port}"}


@contextmanager
def running_stack(directory: Path, database_url: str, **overrides: object) -> Iterator[Stack]:
    """Database, DNS server, daemon and relay for one module; each keyword overrides a
    config section as in tests.daemon.write_config."""
    engine = create_database_engine(database_url)
    upgrade_database(engine)
    with TxtDnsServer(DKIM_RECORDS) as dns:
        settings: dict[str, object] = {"staff": staff_settings(dns), "calendar": {"timezone": "Europe/Amsterdam", "country": "NL"}, "extra": POLICY_A}
        for name, values in overrides.items():
            settings[name] = settings.get(name, {}) | dict(values) if isinstance(values, dict) else values  # type: ignore[operator]
        config = write_config(directory / "config.toml", database_url, **settings)
        daemon = DaemonProcess(config, directory / "daemon.log")
        relay = Relay(daemon.relay_port).start()
        try:
            daemon.start()
            yield Stack(daemon, relay, session_factory(engine))
        finally:
            daemon.terminate()
            relay.stop()
            engine.dispose()


def with_headers(raw: bytes, *lines: bytes) -> bytes:
    """Raw header lines put in front of a message, byte for byte."""
    return b"".join(line + b"\r\n" for line in lines) + raw


def texts(received: Received) -> list[str]:
    """The decoded Subject and every text part of a relayed mail."""
    message = received.message
    parts = [part.get_content() for part in message.walk() if part.get_content_maintype() == "text" and not part.is_attachment()]
    return [str(message["Subject"])] + parts


def header_names(received: Received) -> list[str]:
    """Names of the top-level header lines exactly as they went over the wire."""
    head = received.content.split(b"\r\n\r\n", 1)[0]
    return [line.split(b":", 1)[0].decode("ascii", "replace").lower() for line in head.split(b"\r\n") if line and line[:1] not in (b" ", b"\t")]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()

"""What the integration and hostile tests share: mails as clients send them, a daemon's
SMTP port and CLI, the staff and SLA settings most tests run with, and waits on the database."""

from __future__ import annotations

import smtplib
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import dkim
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mailintake.config.loading import load_config
from mailintake.config.schema import Config
from mailintake.core.tokens import Side, key_from_text, reply_address
from mailintake.outbound.notices import Notices
from mailintake.outbound.templates import Templates
from mailintake.pipeline import Services
from mailintake.storage.db import transaction
from mailintake.storage.models import InboundMessage, OutboxMessage, Report
from tests.daemon import REPO, TEST_TOKEN_KEY
from tests.dkim_keys import PRIVATE_KEY
from tests.integration.relay import Received

REPLY_KEY = key_from_text(TEST_TOKEN_KEY)
FIXTURES = REPO / "tests" / "fixtures" / "mail"
TEAM, LEADS = "team@example.com", "leads@example.com"
POLICY_A = (REPO / "presets" / "policy-a.toml").read_text()
# Staff lists, the NL calendar and policy A: the daemon settings most tests run with.
STAFF = {"staff": {"notify": [TEAM], "alerts": [LEADS]}, "calendar": {"timezone": "Europe/Amsterdam", "country": "NL"}, "extra": POLICY_A}
TRIGGER = "Trigger the broken template"
SHIPPED_ACK = (REPO / "templates" / "acknowledgement.txt.j2").read_text()
# Passes the start check (the sample report has another subject), fails on one real report.
BROKEN_ACK = SHIPPED_ACK.replace("Your report: {{ report.subject }}\n", 'Your report: {{ report.subject }}\n{% if report.subject == "' + TRIGGER + '" %}{{ no_such_name }}{% endif %}\n')


def report_mail(subject: str = "XSS in login form", sender: str = "researcher@example.org", message_id: str | None = "<r1@example.org>", body: str = "Steps to reproduce ...\nSuggested severity: high\n") -> bytes:
    message = EmailMessage()
    message["From"] = f"A Researcher <{sender}>"
    message["To"] = "security@example.com"
    message["Subject"] = subject
    message["Date"] = "Mon, 23 Nov 2026 10:00:00 +0100"
    if message_id:
        message["Message-ID"] = message_id
    message.set_content(body)
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


def mail(
    sender: str,
    to: str,
    subject: str,
    body: str,
    *,
    in_reply_to: str | None = None,
    message_id: str | None = None,
    html: str | None = None,
    reply_to: str | None = None,
    extra: Sequence[tuple[str, str]] = (),
) -> bytes:
    """A mail as a mail client sends it, CRLF line endings: `body` as plain text, or `html`
    instead of it for an HTML-only mail."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = "Tue, 24 Nov 2026 10:00:00 +0100"
    message["Message-ID"] = message_id or make_msgid(domain=sender.rpartition("@")[2].strip(">"))
    if reply_to:
        message["Reply-To"] = reply_to
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = in_reply_to
    for name, value in extra:
        message[name] = value
    if html is None:
        message.set_content(body)
    else:
        message.set_content(html, subtype="html")
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


def signed(raw: bytes, domain: bytes = b"example.com") -> bytes:
    """DKIM-signed with the committed test key, selector `sel`, for `domain`."""
    return dkim.sign(raw, b"sel", domain, PRIVATE_KEY) + raw


def side_address(report_id: int, side: Side) -> str:
    return reply_address("security@example.com", report_id, side, REPLY_KEY)


def plain(received: Received) -> str:
    return received.message.get_body(("plain",)).get_content()


def wait_until_processed(sessions: sessionmaker[Session], expected_inbound: int, timeout: float = 30.0, allow_failed: bool = False) -> None:
    """Wait until every stored delivery is processed; a failed one fails the test unless allowed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with transaction(sessions) as session:
            total = session.scalar(select(func.count()).select_from(InboundMessage))
            pending = session.scalar(select(func.count()).select_from(InboundMessage).where(InboundMessage.status == "received"))
            failed = session.scalars(select(InboundMessage.last_error).where(InboundMessage.status == "failed")).all()
        assert allow_failed or not failed, f"processing failed: {failed}"
        if total >= expected_inbound and pending == 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"not processed within {timeout} s: {total} stored, {pending} pending")


def inbound_rows(sessions: sessionmaker[Session]) -> list[InboundMessage]:
    with transaction(sessions) as session:
        return list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)))


def reports(sessions: sessionmaker[Session]) -> list[Report]:
    with transaction(sessions) as session:
        return list(session.scalars(select(Report).order_by(Report.id)))


def example_rules() -> Services:
    """Processing as configured by config.example.toml (policy A, NL calendar)."""
    return rules_for(load_config(Path(__file__).resolve().parents[2] / "config.example.toml", environ={}))


def rules_for(config: Config) -> Services:
    """Processing as `serve` sets it up for this config, with the shipped templates."""
    return Services.from_config(config, Notices(config, Templates(config.templates.dir), config.secrets.reply_key()))


def send(port: int, raw: bytes, sender: str = "researcher@example.org") -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail(sender, ["security@example.com"], raw)


def run_cli(config: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "mailintake", "--config", str(config), *arguments], capture_output=True, text=True, cwd=REPO, env=environment, timeout=60)


def outbox(sessions: sessionmaker[Session]) -> list[OutboxMessage]:
    with transaction(sessions) as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def wait_for_outbox(sessions: sessionmaker[Session], predicate: Callable[[list[OutboxMessage]], bool], timeout: float = 30.0) -> list[OutboxMessage]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = outbox(sessions)
        if predicate(rows):
            return rows
        time.sleep(0.1)
    raise AssertionError(f"outbox never matched: {[(row.kind, row.status, row.attempts, row.last_reply) for row in outbox(sessions)]}")

"""What goes out stays safe whatever comes in, through one real `serve` (an override
template directory), a real aiosmtpd relay and a real database per module: a template that
fails on real data, a report of very many or very large attachments, a subject written for
backscatter, a sender claiming one of our own addresses, and an anonymous reporter's
Message-IDs. SQLite and PostgreSQL."""

from __future__ import annotations

import smtplib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from uuid import uuid4

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from mailintake.core.tokens import key_from_text, reply_address
from mailintake.storage.db import create_database_engine, session_factory, transaction, upgrade_database
from mailintake.storage.models import InboundMessage, OutboxMessage, Report
from tests.conftest import postgresql_schema_url
from tests.daemon import REPO, TEST_TOKEN_KEY, DaemonProcess, write_config
from tests.integration.helpers import BROKEN_ACK, LEADS, POLICY_A, TEAM, TRIGGER
from tests.integration.relay import Received, Relay

pytestmark = pytest.mark.slow

LIMIT = 10_000


@dataclass
class Setup:
    daemon: DaemonProcess
    relay: Relay
    sessions: sessionmaker[Session]
    database_url: str
    directory: Path


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    directory = tmp_path_factory.mktemp("hostile-outbound")
    if request.param == "sqlite":
        yield f"sqlite:///{directory / 'mailintake.db'}", directory
        return
    with postgresql_schema_url("t") as url:
        yield url, directory


@pytest.fixture(scope="module")
def setup(module_database: tuple[str, Path]) -> Iterator[Setup]:
    database_url, directory = module_database
    engine = create_database_engine(database_url)
    upgrade_database(engine)
    override = directory / "templates"
    override.mkdir()
    (override / "acknowledgement.txt.j2").write_text(BROKEN_ACK)
    config = write_config(
        directory / "config.toml",
        database_url,
        intake={"max_message_size": 2_000_000},
        staff={"notify": [TEAM], "alerts": [LEADS], "max_attachment_bytes": LIMIT},
        templates={"dir": str(override)},
        calendar={"timezone": "Europe/Amsterdam", "country": "NL"},
        extra=POLICY_A,
    )
    daemon = DaemonProcess(config, directory / "daemon.log")
    relay = Relay(daemon.relay_port).start()
    daemon.start()
    try:
        yield Setup(daemon, relay, session_factory(engine), database_url, directory)
    finally:
        daemon.terminate()
        relay.stop()
        engine.dispose()


def report_mail(subject: str, sender: str, *, body: str = "Steps to reproduce ...\n", message_id: str | None = None, attachments: Sequence[tuple[str, bytes]] = ()) -> bytes:
    message = EmailMessage()
    message["From"] = f"A Researcher <{sender}>"
    message["To"] = "security@example.com"
    message["Subject"] = subject
    message["Date"] = "Mon, 23 Nov 2026 10:00:00 +0100"
    message["Message-ID"] = message_id or f"<{uuid4().hex}@{sender.rpartition('@')[2]}>"
    message.set_content(body)
    for filename, content in attachments:
        message.add_attachment(content, maintype="application", subtype="octet-stream", filename=filename)
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


def send(setup: Setup, raw: bytes, sender: str, recipient: str = "security@example.com") -> None:
    with smtplib.SMTP("127.0.0.1", setup.daemon.port, timeout=30) as client:
        client.sendmail(sender, [recipient], raw)


def processed_report(setup: Setup, message_id: str, timeout: float = 30.0) -> Report:
    """The report made of the mail with this Message-ID, once its processing committed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with transaction(setup.sessions) as session:
            pending = session.scalar(select(InboundMessage.id).where(InboundMessage.status.in_(("received", "failed"))).limit(1))
            report = session.scalars(select(Report).options(selectinload(Report.messages), selectinload(Report.milestones)).join(Report.messages).where(Report.messages.any(message_id=message_id.strip("<>")))).first()
        if report is not None and pending is None:
            return report
        time.sleep(0.1)
    raise AssertionError(f"no report for {message_id} within {timeout} s:\n{setup.daemon.log()[-3000:]}")


def rows_of(setup: Setup, report: Report | None = None, kind: str | None = None) -> list[OutboxMessage]:
    with transaction(setup.sessions) as session:
        query = select(OutboxMessage).order_by(OutboxMessage.id)
        if report is not None:
            query = query.where(OutboxMessage.report_id == report.id)
        if kind is not None:
            query = query.where(OutboxMessage.kind == kind)
        return list(session.scalars(query))


def delivered(setup: Setup, predicate: Callable[[Received], bool], count: int = 1, timeout: float = 30.0) -> list[Received]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [item for item in setup.relay.received if predicate(item)]
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"relay got {len([item for item in setup.relay.received if predicate(item)])} of {count} matching mails")


def about(report: Report, recipient: str) -> Callable[[Received], bool]:
    return lambda item: recipient in item.rcpt_tos and f"[{report.tracking_id}]" in item.message["Subject"]


def plain(item: Received) -> str:
    return item.message.get_body(("plain",)).get_content().replace("\r\n", "\n")


# --- templates --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("relative", "source", "expected"),
    [
        ("acknowledgement.txt.j2", "Subject: [{{ report.tracking_id }}] Thanks\n\n{{ no_such_name }}\n", "undefined value 'no_such_name'"),
        ("staff_notification.txt.j2", "Subject: New\n\n{{ report.__class__.__mro__ }}\n", "blocked by the sandbox"),
        ("nl/acknowledgement.txt.j2", "Subject: Bedankt\n\n{{ ('{0.__class__}' | attr('format'))(report) }}\n", "blocked by the sandbox"),
    ],
)
def test_serve_refuses_a_template_that_fails_only_when_rendered(setup: Setup, relative: str, source: str, expected: str) -> None:
    override = setup.directory / f"broken-{uuid4().hex[:8]}"
    path = override / relative
    path.parent.mkdir(parents=True)
    path.write_text(source)
    config = write_config(setup.directory / f"{override.name}.toml", setup.database_url, templates={"dir": str(override)}, staff={"notify": [TEAM]})
    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    try:
        result = subprocess.run([sys.executable, "-m", "mailintake", "--config", str(config), "serve"], capture_output=True, text=True, cwd=REPO, env=environment, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"serve started with the broken template {relative}")
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"mailintake: template {path}:") and expected in line


def test_a_template_failing_on_a_real_report_alerts_once_and_staff_still_hear_of_it(setup: Setup) -> None:
    first_id, second_id = f"<{uuid4().hex}@first.example.org>", f"<{uuid4().hex}@second.example.org>"
    send(setup, report_mail(TRIGGER, "first@reporter.example.org", message_id=first_id, body="Secret steps one\n"), "first@reporter.example.org")
    first = processed_report(setup, first_id)
    [alert] = delivered(setup, lambda item: LEADS in item.rcpt_tos and item.message["Subject"] == "Mail template failed: acknowledgement.txt.j2")
    delivered(setup, about(first, TEAM))
    setup.daemon.terminate()
    setup.daemon.restart()
    send(setup, report_mail(TRIGGER, "second@reporter.example.org", message_id=second_id, body="Secret steps two\n"), "second@reporter.example.org")
    second = processed_report(setup, second_id)
    delivered(setup, about(second, TEAM))
    time.sleep(1.5)
    for report in (first, second):
        assert report.automated is None
        assert sorted(row.kind for row in rows_of(setup, report)) == ["staff_notification"]
    assert len(rows_of(setup, kind="template_failure")) == 1
    assert len([item for item in setup.relay.received if item.message["Subject"].startswith("Mail template failed")]) == 1
    assert not [item for item in setup.relay.received if {"first@reporter.example.org", "second@reporter.example.org"} & set(item.rcpt_tos)]
    text = plain(alert)
    assert f"acknowledgement for {first.tracking_id}" in text and "undefined value 'no_such_name'" in text
    log = setup.daemon.log()
    for report in (first, second):
        assert f"ERROR mailintake.outbound.rendering: acknowledgement mail for {report.tracking_id} not sent: template " in log
    for secret in (TRIGGER, "reporter.example.org", "Secret steps"):
        assert secret not in log and secret not in text


# --- bounded size -------------------------------------------------------------------


def test_many_and_large_attachments_are_listed_and_attached_only_within_the_limit(setup: Setup) -> None:
    sender = "many@parts.example.org"
    big = [("capture.pcap", b"p" * (LIMIT + 1))]
    small = [(f"part-{number:03d}.txt", bytes([65 + number % 26]) * 900) for number in range(160)]
    message_id = f"<{uuid4().hex}@parts.example.org>"
    send(setup, report_mail("Many parts", sender, message_id=message_id, attachments=big + small), sender)
    report = processed_report(setup, message_id)
    [notification] = delivered(setup, about(report, TEAM))
    [ack] = delivered(setup, about(report, sender))
    attached = [(part.get_filename(), len(part.get_content())) for part in notification.message.iter_attachments()]
    assert attached == [(name, 900) for name, _ in small[:11]]
    staff_text = plain(notification)
    assert f"capture.pcap (application/octet-stream, {LIMIT / 1000 + 0.001:.1f} kB), not attached: too large for mail" in staff_text
    assert "part-010.txt (application/octet-stream, 900 Bytes)\n" in staff_text
    assert "part-011.txt (application/octet-stream, 900 Bytes), not attached: too large for mail" in staff_text
    assert "part-098.txt" in staff_text and "part-099.txt" not in staff_text
    assert f"… and 61 more, not listed or attached here\n    (`mailintake reports show {report.tracking_id}` lists every one)" in staff_text
    assert len(notification.content) < len(staff_text.encode()) + 2 * LIMIT
    ack_text = plain(ack)
    assert "part-098.txt" in ack_text and "part-099.txt" not in ack_text and "… and 61 more" in ack_text
    assert len(ack.content) < 25_000


def test_a_forwarded_reporter_reply_attaches_only_within_the_limit(setup: Setup) -> None:
    sender = "replier@parts.example.org"
    message_id = f"<{uuid4().hex}@parts.example.org>"
    send(setup, report_mail("Reply with files", sender, message_id=message_id), sender)
    report = processed_report(setup, message_id)
    delivered(setup, about(report, TEAM))
    reporter_side = reply_address("security@example.com", report.id, "reporter", key_from_text(TEST_TOKEN_KEY))
    files = [("log.txt", b"l" * 3_000), ("dump.bin", b"d" * (LIMIT + 5)), ("trace.txt", b"t" * 6_000), ("more.txt", b"m" * 2_000)]
    send(setup, report_mail(f"Re: [{report.tracking_id}] Reply with files", sender, attachments=files), sender, recipient=reporter_side)
    [forwarded] = delivered(setup, lambda item: TEAM in item.rcpt_tos and "Reporter replied" in item.message["Subject"] and report.tracking_id in item.message["Subject"])
    assert [part.get_filename() for part in forwarded.message.iter_attachments()] == ["log.txt", "trace.txt"]
    text = plain(forwarded)
    assert "dump.bin (application/octet-stream, 10.0 kB), not attached: too large for mail" in text
    assert "more.txt (application/octet-stream, 2.0 kB), not attached: too large for mail" in text


def test_the_acknowledgement_echoes_a_long_subject_cut_short_and_staff_see_it_whole(setup: Setup) -> None:
    sender = "spam-victim@backscatter.example.org"
    subject = "Cheap meds at pharmacy.example.net, visit now and save " * 6
    message_id = f"<{uuid4().hex}@backscatter.example.org>"
    send(setup, report_mail(subject, sender, message_id=message_id), sender)
    report = processed_report(setup, message_id)
    [ack] = delivered(setup, about(report, sender))
    [notification] = delivered(setup, about(report, TEAM))
    [echoed] = [line for line in plain(ack).splitlines() if line.startswith("Your report: ")]
    assert echoed == "Your report: Cheap meds at pharmacy.example.net, visit now and save Cheap meds at pharmacy.example.net, visit…"
    assert plain(ack).count("pharmacy") == 2 and ack.message["Subject"] == f"[{report.tracking_id}] We received your security report"
    assert subject.strip() in " ".join(plain(notification).split())


# --- loops and anonymity -------------------------------------------------------------


@pytest.mark.parametrize("envelope_from", ["security+r1-abcdefghijklmnop@example.com", "SECURITY+s77-forged@Example.com", "psirt@example.com"])
def test_a_sender_claiming_one_of_our_addresses_is_stored_and_never_answered(setup: Setup, envelope_from: str) -> None:
    message_id = f"<{uuid4().hex}@looped.example.org>"
    send(setup, report_mail("Looks like ours", "researcher@looped.example.org", message_id=message_id), envelope_from)
    report = processed_report(setup, message_id)
    assert report.automated == "sent from our own address"
    time.sleep(1)
    assert rows_of(setup, report) == []
    assert not [item for item in setup.relay.received if envelope_from.lower() in (address.lower() for address in item.rcpt_tos)]


def test_an_anonymous_reporters_message_ids_never_reach_staff(setup: Setup) -> None:
    sender = "whistle@hidden-domain.example"
    report_id, reply_id = f"<report-{uuid4().hex}@mx.hidden-domain.example>", f"<reply-{uuid4().hex}@mx.hidden-domain.example>"
    send(setup, report_mail("IDOR in /api/users", sender, message_id=report_id, body="Please keep me anonymous.\nIDOR in /api/users/{id}\n"), sender)
    report = processed_report(setup, report_id)
    assert report.anonymous
    [notification] = delivered(setup, about(report, TEAM))
    [ack] = delivered(setup, about(report, sender))
    reporter_side = reply_address("security@example.com", report.id, "reporter", key_from_text(TEST_TOKEN_KEY))
    reply = report_mail(f"Re: [{report.tracking_id}] IDOR in /api/users", sender, message_id=reply_id, body="One more detail.\n")
    send(setup, reply.replace(b"Subject:", f"In-Reply-To: {ack.message['Message-ID']}\r\nReferences: {report_id} {ack.message['Message-ID']}\r\nSubject:".encode(), 1), sender, recipient=reporter_side)
    [forwarded] = delivered(setup, lambda item: TEAM in item.rcpt_tos and "Reporter replied" in item.message["Subject"] and report.tracking_id in item.message["Subject"])
    secrets = [part for message_id in (report_id, reply_id) for part in message_id.strip("<>").split("@")] + ["hidden-domain"]
    stand_ins = []
    for staff_mail in (notification, forwarded):
        threading = " ".join(str(staff_mail.message[name] or "") for name in ("In-Reply-To", "References"))
        assert threading and not [secret for secret in secrets if secret in threading]
        assert "hidden-domain" not in staff_mail.content.decode("utf-8", "replace")
        stand_ins.append(set(threading.split()) - {notification.message["Message-ID"]})
    assert stand_ins[0] and stand_ins[0] <= stand_ins[1], "the report's stand-in Message-ID is the same in every staff mail"
    assert all(reference.endswith("@example.com>") for reference in stand_ins[1])
    assert ack.message["In-Reply-To"].strip() == report_id

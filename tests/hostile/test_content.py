"""Hostile checklist cases 30–35: whatever the bytes of a mail, they are stored as they
came, never unpacked, and never become markup, headers, recipients or template code in
what we send. A real daemon, relay sink and database."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import zipfile
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailintake.storage.db import create_database_engine, transaction, upgrade_database
from mailintake.storage.models import InboundMessage
from tests.daemon import REPO, write_config
from tests.hostile.helpers import (
    BOB,
    SECURITY,
    TEAM,
    Stack,
    header_names,
    reply_sha256_prefix,
    sha256_hex,
    texts,
    wait_for,
)
from tests.integration.helpers import STAFF, mail, outbox, plain, report_mail, send, side_address, signed
from tests.integration.relay import Relay

pytestmark = pytest.mark.slow

BOMB_INFLATED = 100 * 2**20
MEMORY_GROWTH_LIMIT = 40 * 2**20

HOSTILE_BYTES = {
    "bad-charset": (
        b"Subject: =?x-no-such-charset?q?Caf=E9?= report\r\n",
        b'Content-Type: text/plain; charset="x-no-such-charset"\r\nContent-Transfer-Encoding: 8bit\r\n\r\nStep 1: open /admin \xe9\xe8\xff\r\n',
    ),
    "broken-base64": (
        b"Subject: broken base64\r\n",
        b'Content-Type: multipart/mixed; boundary="b30"\r\n\r\n--b30\r\nContent-Type: text/plain; charset=utf-8\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nU3RlcCAxOiBv!!!cGVu===\r\n--b30\r\nContent-Type: application/octet-stream\r\n"
        b'Content-Disposition: attachment; filename="poc.bin"\r\nContent-Transfer-Encoding: base64\r\n\r\n%%% not base64 at all\r\n--b30--\r\n',
    ),
    "nul": (
        b"Subject: NUL \x00 in the subject\r\nX-Nul: a\x00b\r\n",
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nStep 1:\x00 open /admin\x00\r\n",
    ),
    "8bit-headers": (
        b"Subject: Sicherheitsl\xc3\xbccke im Login \xff\xfe\r\nX-Comment: \xe9t\xe9 \xc3\x28\r\n",
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nSchritt 1: \xc3\xb6ffnen \xc3\x28\r\n",
    ),
}


def hostile_raw(kind: str) -> bytes:
    headers, rest = HOSTILE_BYTES[kind]
    return (f"From: Reporter <r30-{kind}@example.org>\r\nTo: security@example.com\r\nDate: Tue, 24 Nov 2026 10:00:00 +0100\r\nMessage-ID: <case30-{kind}@example.org>\r\nMIME-Version: 1.0\r\n").encode() + headers + rest


@pytest.mark.parametrize("kind", HOSTILE_BYTES)
def test_case_30_malformed_bytes_are_stored_raw_and_become_a_report(stack: Stack, kind: str) -> None:
    raw = hostile_raw(kind)
    code, reply = stack.send(raw, f"r30-{kind}@example.org")
    assert code == 250 and reply_sha256_prefix(reply) == sha256_hex(raw)[:16], reply
    row = stack.processed(sha256_hex(raw)[:16])
    assert row.raw == raw and row.sha256 == sha256_hex(raw)
    report = stack.report_of(row)
    assert report.tracking_id and report.messages[0].raw_sha256 == sha256_hex(raw)


def zip_bomb(inflated: int = BOMB_INFLATED) -> bytes:
    """One entry of `inflated` zero bytes, deflated to about a thousandth of that."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("bomb.bin", "w", force_zip64=True) as entry:
            chunk = bytes(2**20)
            for _ in range(inflated // len(chunk)):
                entry.write(chunk)
    return buffer.getvalue()


def peak_memory(pid: int) -> int:
    """Peak resident memory (VmHWM) of a process, in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE).group(1)) * 1024  # type: ignore[union-attr]


def process_tree(pid: int) -> list[int]:
    """The process and its descendants (serve's parser processes)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except FileNotFoundError:
            continue  # a thread that ended while its process was being read
        for child in children:
            found += process_tree(int(child))
    return found


def test_case_31_zip_bomb_attachment_is_stored_as_the_zip_and_never_extracted(stack: Stack) -> None:
    stack.deliver(mail("warmup31@example.org", SECURITY, "Warm-up", "Starts the parser process.\n"), "warmup31@example.org")
    assert stack.daemon.process is not None
    before = {pid: peak_memory(pid) for pid in process_tree(stack.daemon.process.pid)}
    bomb = zip_bomb()
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "r31@example.org", SECURITY, "Archive with the proof of concept"
    message["Message-ID"] = "<case31@example.org>"
    message.set_content("The PoC is in the attached archive.\n")
    message.add_attachment(bomb, maintype="application", subtype="zip", filename="poc.zip")
    report = stack.report_of(stack.deliver(message.as_bytes(policy=message.policy.clone(linesep="\r\n")), "r31@example.org"))
    [attachment] = report.messages[0].attachments
    assert (attachment.filename, attachment.content_type, attachment.content) == ("poc.zip", "application/zip", bomb)
    [notification] = [item for item in stack.mails_of(report.id) if item.rcpt_tos == [TEAM]]
    assert [(part.get_filename(), part.get_content()) for part in notification.message.iter_attachments()] == [("poc.zip", bomb)]
    after = {pid: peak_memory(pid) for pid in process_tree(stack.daemon.process.pid)}
    growth = {pid: after[pid] - before.get(pid, 0) for pid in after if pid in before}
    assert growth and all(value < MEMORY_GROWTH_LIMIT for value in growth.values()), {pid: f"{value / 2**20:.0f} MiB" for pid, value in growth.items()}


def test_case_32_script_in_subject_is_escaped_in_the_html_part_of_the_ack(stack: Stack) -> None:
    sender = "r32@example.org"
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, SECURITY, "<script>alert(1)</script> XSS"
    message["Message-ID"] = "<case32@example.org>"
    message.set_content("Payload in the subject.\n")
    message.add_attachment(b"x", maintype="text", subtype="plain", filename="<img src=x onerror=alert(2)>.txt")
    report = stack.report_of(stack.deliver(message.as_bytes(policy=message.policy.clone(linesep="\r\n")), sender))
    [ack] = [item for item in stack.mails_of(report.id) if item.rcpt_tos == [sender]]
    html = ack.message.get_body(("html",)).get_content()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; XSS" in html
    assert "<script" not in html.lower() and "<img" not in html.lower()
    assert "<script>alert(1)</script> XSS" in plain(ack)


INJECTED = "victim33@evil.test"


def test_case_33_encoded_crlf_bcc_in_the_subject_adds_no_recipient_and_no_header(stack: Stack) -> None:
    sender = "r33@example.org"
    subject = f"=?utf-8?q?x=0D=0ABcc:_{INJECTED}=0D=0AX-Injected:_yes?="
    raw = (
        f"From: =?utf-8?q?Eve=0D=0ABcc:_{INJECTED}?= <{sender}>\r\nTo: security@example.com\r\nSubject: {subject}\r\n"
        "Date: Tue, 24 Nov 2026 10:00:00 +0100\r\nMessage-ID: <case33@example.org>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nThe subject is the payload.\r\n"
    ).encode()
    report = stack.report_of(stack.deliver(raw, sender))
    staff_side = side_address(report.id, "staff")
    stack.deliver(signed(mail(BOB, staff_side, "Re: x", "Thanks, we are looking into it.\n")), BOB, [staff_side])
    mails = stack.mails_of(report.id)
    assert sorted(item.rcpt_tos[0] for item in mails) == [sender, sender, TEAM]
    for item in mails:
        assert len(item.rcpt_tos) == 1
        names = header_names(item)
        assert "bcc" not in names and "x-injected" not in names and names.count("to") == 1, names
        assert INJECTED not in [address.addr_spec for address in item.message["To"].addresses]
    assert any(f"Bcc: {INJECTED}" in str(item.message["Subject"]) for item in mails), "the subject was not echoed at all"
    assert stack.relay.to(INJECTED) == []


MARKER = "ZZ{{7*7}}ZZ"
EVALUATED = ("ZZ49ZZ", "ZZYESZZ")


def test_case_34_template_syntax_from_a_reporter_is_sent_literally(stack: Stack) -> None:
    sender = "r34@example.org"
    body = f"Template injection {MARKER} in /search.\nZZ{{% if 1 %}}YES{{% endif %}}ZZ\nPlease credit me as {MARKER}.\n"
    report = stack.report_of(stack.deliver(mail(f"{MARKER} <{sender}>", SECURITY, f"Injection {MARKER}", body), sender))
    reporter_side, staff_side = side_address(report.id, "reporter"), side_address(report.id, "staff")
    stack.deliver(mail(sender, reporter_side, f"Re: Injection {MARKER}", f"Also {MARKER} in /profile.\n"), sender, [reporter_side])
    stack.deliver(signed(mail(BOB, staff_side, "Re: x", "We confirmed it.\n")), BOB, [staff_side])
    mails = stack.mails_of(report.id)
    assert len(mails) == 4, [item.rcpt_tos for item in mails]  # acknowledgement, notification, forwarded reply, relayed answer
    for item in mails:
        text = "\n".join(texts(item))
        assert MARKER in text, (item.rcpt_tos, item.message["Subject"])
        assert not any(evaluated in text for evaluated in EVALUATED), (item.rcpt_tos, item.message["Subject"])


ESCAPES = {
    "attr-format": '{{ ("{0.__class__.__mro__}" | attr("format"))(report.subject) }}',
    "dunder-class": "{{ report.subject.__class__.__mro__ }}",
    "attr-dunder": '{{ report.subject | attr("__class__") }}',
}


def override_templates(directory: Path, line: str) -> Path:
    directory.mkdir()
    (directory / "acknowledgement.txt.j2").write_text(f"Subject: [{{{{ report.tracking_id }}}}] Received\n\nThanks.\n{line}\n")
    return directory


def run_mailintake(config: Path, *arguments: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "mailintake", "--config", str(config), *arguments], capture_output=True, text=True, cwd=REPO, env=environment, timeout=timeout)


@pytest.fixture(scope="module")
def upgraded_sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('case35') / 'db.sqlite'}"
    engine = create_database_engine(url)
    upgrade_database(engine)
    engine.dispose()
    return url


@pytest.mark.parametrize("escape", ESCAPES)
def test_case_35_admin_template_reaching_for_internals_stops_serve_with_a_security_error(upgraded_sqlite_url: str, tmp_path: Path, escape: str) -> None:
    templates = override_templates(tmp_path / "templates", ESCAPES[escape])
    config = write_config(tmp_path / "config.toml", upgraded_sqlite_url, templates={"dir": str(templates)})
    try:
        result = run_mailintake(config, "serve", timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("serve started with a template that reaches for Python internals")
    assert result.returncode == 2, result
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert "acknowledgement.txt.j2" in result.stderr and "blocked by the sandbox" in result.stderr, result.stderr


def test_case_35_a_sandbox_escape_reached_only_by_report_data_is_refused_when_rendering(daemon_factory, sessions: sessionmaker[Session], tmp_path: Path) -> None:
    """The escape hides behind a condition no sample at start meets: serve starts, and the
    sandbox refuses the render when a report meets it."""
    templates = override_templates(tmp_path / "templates", '{% if report.subject == "open sesame" %}' + ESCAPES["dunder-class"] + "{% endif %}")
    daemon = daemon_factory(templates={"dir": str(templates)}, **STAFF)
    relay = Relay(daemon.relay_port).start()
    try:
        raw = report_mail(subject="open sesame", sender="r35@example.org", message_id="<case35@example.org>")
        send(daemon.port, raw, sender="r35@example.org")
        wait_for(lambda: "blocked by the sandbox" in daemon.log(), "a log line saying the sandbox blocked the template")
        wait_for(lambda: all(row.status in ("sent", "failed") for row in outbox(sessions)), "outbox settled")
    finally:
        relay.stop()
    with transaction(sessions) as session:
        assert list(session.scalars(select(InboundMessage.raw))) == [raw]
    assert [row.kind for row in outbox(sessions) if "r35@example.org" in row.recipients] == []
    for item in relay.received:
        assert not re.search(r"<class |\(<class|__mro__|builtins", "\n".join(texts(item))), item.message["Subject"]

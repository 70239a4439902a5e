"""Inspecting what is stored (ARCHITECTURE.md, invariant 1: the raw bytes of everything
accepted are kept): `inbound show` of a delivery, failed or not, with its bytes on request;
`reports raw` of a thread's message; `reports attachments --save`, which writes hostile names
safely inside the directory, readable by the owner only, and checks every file's sha256;
`reports show` printing mail text honestly. Reports are made by the real store and pipeline
(a direct parser) on a real SQLite file and, when configured, the real PostgreSQL; the
commands run in-process through `main`, as an admin runs them."""

from __future__ import annotations

import hashlib
import json
import stat
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from mailintake.cli import main
from mailintake.cli.output import MAX_FILE_NAME_BYTES, safe_file_name, terminal_safe
from mailintake.config.loading import load_config
from mailintake.intake.store import Delivery, store_delivery
from mailintake.outbound.notices import Notices
from mailintake.outbound.templates import Templates
from mailintake.parse.message import ParsedMessage, parse_message
from mailintake.parse.pool import ParseFailure
from mailintake.pipeline import Services, process_inbound
from mailintake.storage.db import transaction
from mailintake.storage.models import Attachment, InboundMessage, Message, OutboxMessage, Report
from tests.daemon import write_config

REPO = Path(__file__).resolve().parents[3]
MAIL = REPO / "tests" / "fixtures" / "mail"
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


class DirectParser:
    def parse(self, raw: bytes) -> ParsedMessage:
        return parse_message(raw)


class FailingParser:
    def parse(self, raw: bytes) -> ParsedMessage:
        raise ParseFailure("parse timed out after 30 s")


@pytest.fixture
def config_path(tmp_path: Path, database_url: str, engine: object) -> Path:
    return write_config(tmp_path / "config.toml", database_url, extra=(REPO / "presets" / "policy-a.toml").read_text())


@pytest.fixture
def services(config_path: Path) -> Services:
    config = load_config(config_path)
    notices = Notices(config, Templates(config.templates.dir), config.secrets.reply_key())
    return Services.from_config(config, notices, dnsfunc=lambda *query, **options: None)


class Cli:
    """The command line in-process; output as bytes (raw mail is bytes)."""

    def __init__(self, config_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
        self.config_path = config_path
        self.capture = capsysbinary

    def run(self, *arguments: str, status: int = 0) -> tuple[bytes, str]:
        self.capture.readouterr()
        try:
            ended = main(["--config", str(self.config_path), *arguments])
        except SystemExit as exit:  # argparse refusing an argument
            ended = exit.code if isinstance(exit.code, int) else 1
        assert ended == status, arguments
        printed = self.capture.readouterr()
        return printed.out, printed.err.decode()

    def text(self, *arguments: str) -> str:
        return self.run(*arguments)[0].decode()

    def json(self, *arguments: str) -> Any:
        return json.loads(self.text(*arguments, "--json"))

    def refused(self, *arguments: str, status: int = 2) -> str:
        """The one line on stderr of a command that ends with `status` and prints nothing."""
        out, err = self.run(*arguments, status=status)
        assert out == b"" and err.count("\n") == 1, (arguments, out, err)
        return err


@pytest.fixture
def cli(config_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> Cli:
    return Cli(config_path, capsysbinary)


def delivered(sessions: sessionmaker[Session], raw: bytes, helo: str = "mx1.example.com", sender: str = "researcher@example.org") -> int:
    return store_delivery(sessions, Delivery(NOW, "smtp", "127.0.0.1", helo, sender, ("security@example.com",), raw))


def reported(sessions: sessionmaker[Session], services: Services, raw: bytes) -> str:
    outcome = process_inbound(sessions, DirectParser(), services, delivered(sessions, raw), lambda: NOW)
    assert outcome.status == "processed" and outcome.tracking_id
    return outcome.tracking_id


def mail_with_attachments(contents: list[bytes]) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"], message["Message-ID"] = "Researcher <researcher@example.org>", "security@example.com", "Files", "<files@example.org>"
    message.set_content("The files.\n")
    for number, content in enumerate(contents, start=1):
        message.add_attachment(content, maintype="application", subtype="octet-stream", filename=f"file{number}.bin")
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


def stored_inbound(sessions: sessionmaker[Session], inbound_id: int) -> InboundMessage:
    with transaction(sessions) as session:
        row = session.get(InboundMessage, inbound_id)
        assert row is not None
        session.expunge(row)
        return row


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


# --- inbound show -------------------------------------------------------------------------


def test_inbound_show_of_a_failed_delivery_gives_its_envelope_error_and_headers_one_per_line(cli: Cli, sessions: sessionmaker[Session], services: Services) -> None:
    raw = b"From: Researcher <researcher@example.org>\r\nTo: security@example.com\r\nSubject: =?utf-8?q?invoice=0A=E2=80=AEfdp.exe?=\r\nX-Folded: first\r\n\tsecond\r\nX-Long: " + b"a" * 300 + b"\r\nX-Escape: \x1b[31mred\r\n\r\nbody\r\n"
    inbound_id = delivered(sessions, raw, helo="evil\x1b]0;title\x07")
    assert process_inbound(sessions, FailingParser(), services, inbound_id, lambda: NOW).status == "failed"
    text = cli.text("inbound", "show", str(inbound_id))
    lines = text.splitlines()
    assert lines[0].startswith(f"inbound {inbound_id}  failed  received 2026-12-01T10:00:00Z over smtp from 127.0.0.1 (HELO evil\\u001b]0;title\\u0007)")
    assert "Envelope:  from <researcher@example.org> to <security@example.com>" in lines
    assert "Error:     parse timed out after 30 s" in lines
    assert f"Stored:    {len(raw)} bytes  sha256 {hashlib.sha256(raw).hexdigest()}" in lines
    headers = lines[lines.index("Headers (6; the bytes: --raw)") + 1 :]
    assert headers[:5] == [
        "  From: Researcher <researcher@example.org>",
        "  To: security@example.com",
        "  Subject: invoice\\u000a\\u202efdp.exe",
        "  X-Folded: first second",
        "  X-Long: " + "a" * 200 + "…",
    ]
    assert headers[5] == "  X-Escape: \\u001b[31mred" and len(headers) == 6
    assert "\x1b" not in text and "\u202e" not in text and "\x07" not in text
    detail = cli.json("inbound", "show", str(inbound_id))
    assert (detail["status"], detail["attempts"], detail["last_error"], detail["helo"]) == ("failed", 1, "parse timed out after 30 s", "evil\x1b]0;title\x07")
    assert detail["sha256"] == detail["sha256_at_intake"] == hashlib.sha256(raw).hexdigest() and detail["size"] == len(raw)
    assert {"name": "Subject", "value": "invoice\n\u202efdp.exe"} in detail["headers"] and {"name": "X-Long", "value": "a" * 300} in detail["headers"]


def test_inbound_show_raw_gives_the_stored_bytes_exactly_to_stdout_or_a_new_private_file(cli: Cli, sessions: sessionmaker[Session], services: Services, tmp_path: Path) -> None:
    raw = (MAIL / "multipart-attachments.eml").read_bytes()
    tracking_id = reported(sessions, services, raw)
    row = stored_inbound(sessions, 1)
    assert cli.text("inbound", "show", "1").splitlines()[3] == f"Report:    {tracking_id}  processed 2026-12-01T10:00:00Z"
    assert cli.run("inbound", "show", "1", "--raw")[0] == raw and hashlib.sha256(raw).hexdigest() == row.sha256
    target = tmp_path / "delivery.eml"
    assert cli.run("inbound", "show", "1", "-o", str(target)) == (b"", "")
    assert target.read_bytes() == raw and mode_of(target) == 0o600
    target.write_bytes(b"the admin's own notes")
    assert "exists (--force overwrites it)" in cli.refused("inbound", "show", "1", "--raw", "-o", str(target))
    assert target.read_bytes() == b"the admin's own notes"
    target.chmod(0o644)
    cli.run("inbound", "show", "1", "-o", str(target), "--force")
    assert target.read_bytes() == raw and mode_of(target) == 0o600


def test_writing_raw_bytes_never_follows_a_symbolic_link(cli: Cli, sessions: sessionmaker[Session], services: Services, tmp_path: Path) -> None:
    reported(sessions, services, (MAIL / "plain.eml").read_bytes())
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_bytes(b"untouched")
    link = tmp_path / "link.eml"
    link.symlink_to(elsewhere)
    cli.refused("inbound", "show", "1", "-o", str(link))
    cli.run("reports", "raw", "SEC-2026-0001", "-o", str(link), "--force")
    assert elsewhere.read_bytes() == b"untouched" and not link.is_symlink() and link.read_bytes() == (MAIL / "plain.eml").read_bytes()


# --- reports raw ---------------------------------------------------------------------------


def test_reports_raw_gives_the_bytes_whose_sha256_the_250_reply_gave(cli: Cli, sessions: sessionmaker[Session], services: Services, tmp_path: Path) -> None:
    raw = (MAIL / "multipart-attachments.eml").read_bytes()
    tracking_id = reported(sessions, services, raw)
    shown = cli.json("reports", "show", tracking_id)["messages"][0]["sha256"]
    out = cli.run("reports", "raw", tracking_id.lower())[0]
    assert out == raw and hashlib.sha256(out).hexdigest() == shown == stored_inbound(sessions, 1).sha256
    assert cli.run("reports", "raw", tracking_id, "--message", "1", "-o", str(tmp_path / "report.eml")) == (b"", "")
    assert (tmp_path / "report.eml").read_bytes() == raw and mode_of(tmp_path / "report.eml") == 0o600


def test_reports_raw_of_a_message_we_sent_is_the_outbox_content_its_sha256_names(cli: Cli, sessions: sessionmaker[Session], services: Services) -> None:
    tracking_id = reported(sessions, services, (MAIL / "plain.eml").read_bytes())
    sent = b"From: security@example.com\r\nTo: researcher@example.org\r\nSubject: Re: report\r\n\r\nFixed.\r\n"
    with transaction(sessions) as session:
        report = session.scalars(select(Report)).one()
        for number, content in enumerate((b"an earlier draft", sent)):
            session.add(OutboxMessage(key=f"k{number}", kind="staff_reply", report_id=report.id, envelope_from="security@example.com", recipients=["researcher@example.org"], message_id="<sent@example.com>", content=content, created_at=NOW))
        session.add(Message(report_id=report.id, direction="out", kind="relayed", message_id="<sent@example.com>", received_at=NOW + timedelta(hours=1), raw_sha256=hashlib.sha256(sent).hexdigest()))
        session.add(Message(report_id=report.id, direction="out", kind="notice", message_id="<gone@example.com>", received_at=NOW + timedelta(hours=2), raw_sha256="0" * 64))
    assert "message 2  " in cli.text("reports", "show", tracking_id)
    assert cli.run("reports", "raw", tracking_id, "--message", "2")[0] == sent
    assert cli.refused("reports", "raw", tracking_id, "--message", "3", status=1) == f"mailintake: {tracking_id}: message 3 was sent by us and its bytes are no longer stored\n"


def test_bad_ids_numbers_and_directories_are_one_line_and_exit_2(cli: Cli, sessions: sessionmaker[Session], services: Services, tmp_path: Path) -> None:
    tracking_id = reported(sessions, services, (MAIL / "plain.eml").read_bytes())
    assert cli.refused("inbound", "show", "99") == "mailintake: no inbound delivery with id 99\n"
    assert cli.refused("inbound", "show", "99", "-o", str(tmp_path / "never.eml")) and not (tmp_path / "never.eml").exists()
    for arguments in (["inbound", "show", "0"], ["inbound", "show", "9" * 40], ["reports", "raw", tracking_id, "--message", "0"], ["reports", "raw", tracking_id, "--message", "x"]):
        cli.refused(*arguments)
    assert cli.refused("inbound", "show", "1", "--raw", "--json")
    assert cli.refused("reports", "raw", "SEC-2026-0099") == "mailintake: no report with tracking id 'SEC-2026-0099'\n"
    assert cli.refused("reports", "raw", tracking_id, "--message", "2") == f"mailintake: {tracking_id}: message 2: the thread has 1 message\n"
    assert cli.refused("reports", "attachments", "SEC-2026-0099")
    assert "is not an existing directory" in cli.refused("reports", "attachments", tracking_id, "--save", str(tmp_path / "missing"))
    assert cli.refused("reports", "attachments", tracking_id, "--save", "")


# --- reports attachments -------------------------------------------------------------------


def test_attachments_are_listed_in_thread_order_with_their_sha256(cli: Cli, sessions: sessionmaker[Session], services: Services) -> None:
    tracking_id = reported(sessions, services, (MAIL / "multipart-attachments.eml").read_bytes())
    listed = cli.json("reports", "attachments", tracking_id)
    assert [(item["message"], item["filename"], item["content_type"], item["size"]) for item in listed] == [
        (1, "screenshot.png", "image/png", 96),
        (1, "report.pdf", "application/pdf", 481),
        (1, "poc.py", "text/plain", 734),
    ]
    assert listed[0]["sha256"] == "d694e56bc7293f8969663106f53ac40feda1efc6419310152f739035be695fd6"
    assert cli.text("reports", "attachments", tracking_id).splitlines()[1] == "message 1  report.pdf  application/pdf  481 bytes  sha256 d0a3c82e45211c1edd564b8342706d994d5335c745bf53dd31a7261b6bb2d521"


def test_attachments_with_hostile_names_are_saved_inside_the_directory_private_and_checked(cli: Cli, sessions: sessionmaker[Session], services: Services, tmp_path: Path, database_url: str) -> None:
    hostile = ["../../etc/passwd", ".bashrc", "a\x1bb\u202ec", "CON", "report.pdf", "report.pdf", "..", "/", "sub\\..\\..\\x.txt", "con.txt"]
    expected = ["passwd-2", "bashrc-2", "a_b_c", "_CON", "report.pdf", "report-2.pdf", "attachment", "attachment-2", "x.txt", "_con.txt"]
    if database_url.startswith("sqlite"):  # PostgreSQL stores no NUL in text
        hostile, expected = hostile + ["a\x00b"], expected + ["a_b"]
    contents = [f"content {number}\n".encode() * (number + 1) for number in range(len(hostile))]
    tracking_id = reported(sessions, services, mail_with_attachments(contents))
    with transaction(sessions) as session:
        ids = session.scalars(select(Attachment.id).order_by(Attachment.id)).all()
        assert len(ids) == len(hostile)
        for attachment_id, name in zip(ids, hostile, strict=True):
            session.execute(update(Attachment).where(Attachment.id == attachment_id).values(filename=name))
    directory = tmp_path / "saved"
    directory.mkdir()
    (directory / "passwd").write_bytes(b"already here")
    outside = tmp_path / "outside"
    outside.write_bytes(b"outside")
    (directory / "bashrc").symlink_to(outside)
    before = sorted(path for path in tmp_path.rglob("*") if directory not in path.parents)
    saved = cli.json("reports", "attachments", tracking_id, "--save", str(directory))
    assert [Path(item["saved_as"]) for item in saved] == [directory.resolve() / name for name in expected]
    for item, content in zip(saved, contents, strict=True):
        path = Path(item["saved_as"])
        assert path.read_bytes() == content and hashlib.sha256(content).hexdigest() == item["sha256"] and mode_of(path) == 0o600, item
    assert sorted(path.name for path in directory.iterdir()) == sorted(expected + ["passwd", "bashrc"])
    assert (directory / "passwd").read_bytes() == b"already here" and outside.read_bytes() == b"outside"
    assert sorted(path for path in tmp_path.rglob("*") if directory not in path.parents) == before
    lines = cli.text("reports", "attachments", tracking_id, "--save", str(directory)).splitlines()
    assert lines[2] == f"message 1  a\\u001bb\\u202ec  application/octet-stream  {len(contents[2])} bytes  sha256 {hashlib.sha256(contents[2]).hexdigest()}  saved as {directory.resolve() / 'a_b_c-2'} (sha256 checked)"


def test_an_attachment_that_does_not_match_its_sha256_is_removed_and_the_command_fails(cli: Cli, sessions: sessionmaker[Session], services: Services, tmp_path: Path) -> None:
    tracking_id = reported(sessions, services, (MAIL / "multipart-attachments.eml").read_bytes())
    with transaction(sessions) as session:
        session.execute(update(Attachment).where(Attachment.filename == "report.pdf").values(content=b"tampered"))
    directory = tmp_path / "saved"
    directory.mkdir()
    error = cli.refused("reports", "attachments", tracking_id, "--save", str(directory), status=1)
    assert error.startswith("mailintake: attachment 2 (message 1): the bytes written do not match the stored sha256 d0a3c82e") and "report.pdf" not in error
    assert sorted(path.name for path in directory.iterdir()) == ["screenshot.png"]


# --- reports show: text as it is ----------------------------------------------------------


def test_reports_show_prints_crlf_mail_as_lines_and_escapes_only_real_control_characters(cli: Cli, sessions: sessionmaker[Session], services: Services) -> None:
    body = "Steps:\r\n\t1. open /search\r\n2. file \u202egnp.exe\u2028next \x1b[31m red \x85 \u00e9\u00e8 \U0001f600\r\n"
    raw = ("From: researcher@example.org\r\nTo: security@example.com\r\nSubject: CRLF\r\nMessage-ID: <crlf@example.org>\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body).encode()
    tracking_id = reported(sessions, services, raw)
    text = cli.text("reports", "show", tracking_id)
    assert "\\u000d" not in text and "\r" not in text
    assert "Steps:\n\t1. open /search\n2. file \\u202egnp.exe\\u2028next \\u001b[31m red \\u0085 \u00e9\u00e8 \U0001f600\n" in text
    assert cli.json("reports", "show", tracking_id)["messages"][0]["body"].startswith("Steps:\r\n\t1. open")


def test_terminal_safe_escapes_controls_and_keeps_text() -> None:
    assert terminal_safe("a\r\nb\rc\td\n") == "a\nb\\u000dc\td\n"
    assert terminal_safe("\u200b\u2066x\u2069\u2029\ud800\U000e0001") == "\\u200b\\u2066x\\u2069\\u2029\\ud800\\U000e0001"
    assert terminal_safe("ünïcödé 日本 \U0001f600 \\n") == "ünïcödé 日本 \U0001f600 \\n"
    assert terminal_safe("a\r\nb\tc", keep="\t") == "a\\u000d\\u000ab\tc"


def test_safe_file_names() -> None:
    assert [safe_file_name(name) for name in ("../../etc/passwd", ".bashrc", "a\x00b", "CON", "lpt1.txt", "  . ", "", "..\\..\\win.ini", "ok name.pdf", "x\u202egnp.exe", "con")] == [
        "passwd",
        "bashrc",
        "a_b",
        "_CON",
        "_lpt1.txt",
        "attachment",
        "attachment",
        "win.ini",
        "ok name.pdf",
        "x_gnp.exe",
        "_con",
    ]
    long = safe_file_name("ü" * 300 + ".pdf")
    assert long.endswith(".pdf") and len(long.encode()) <= MAX_FILE_NAME_BYTES and long.startswith("üü")

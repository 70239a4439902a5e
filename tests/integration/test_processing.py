"""From stored delivery to report: corpus round trip, failures kept and retried, ids under concurrency."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import subprocess
import sys
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiosmtplib
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from mailintake.intake.store import Delivery, store_delivery
from mailintake.parse.message import parse_message
from mailintake.pipeline import process_inbound
from mailintake.service.workers import Claims, DueDeliveries
from mailintake.storage.db import transaction
from mailintake.storage.models import Attachment, InboundMessage
from tests.daemon import REPO
from tests.integration.helpers import example_rules, inbound_rows, report_mail, reports, wait_until_processed

FIXTURES = REPO / "tests" / "fixtures" / "mail"
EXPECTED = tomllib.loads((FIXTURES / "expected.toml").read_text(encoding="utf-8"))
CLAIMS = Claims("test-worker:1", timedelta(minutes=5))


def run_cli(config: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mailintake", "--config", str(config), *arguments], capture_output=True, text=True, cwd=REPO, timeout=120)


class DirectParser:
    """The real parse function, called in-process (the pool adds only the time limit)."""

    def parse(self, raw: bytes):
        return parse_message(raw)


@pytest.mark.slow
def test_every_fixture_is_accepted_stored_byte_for_byte_and_shown_by_the_cli(daemon_factory, sessions: sessionmaker[Session]) -> None:
    daemon = daemon_factory()
    names = sorted(path.name for path in FIXTURES.glob("*.eml"))

    async def deliver_all() -> list[str]:
        replies = []
        for name in names:
            _, reply = await aiosmtplib.send((FIXTURES / name).read_bytes(), sender="researcher@example.org", recipients=["security@example.com"], hostname="127.0.0.1", port=daemon.port, start_tls=False)
            replies.append(reply)
        return replies

    assert all(reply.startswith("2.0.0 Stored") for reply in asyncio.run(deliver_all()))
    wait_until_processed(sessions, len(names))
    rows = inbound_rows(sessions)
    assert [row.raw for row in rows] == [(FIXTURES / name).read_bytes() for name in names]
    assert {row.status for row in rows} == {"processed"}

    listing = json.loads(run_cli(daemon.config_path, "reports", "list", "--json").stdout)
    assert [item["subject"] for item in listing] == [EXPECTED[name].get("subject", "") for name in names]
    index = names.index("multipart-attachments.eml")
    shown = run_cli(daemon.config_path, "reports", "show", listing[index]["tracking_id"], "--json")
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(shown.stdout)
    [message] = detail["messages"]
    assert message["direction"] == "in"
    assert message["from"] == EXPECTED["multipart-attachments.eml"]["from_address"]
    assert message["to"] == ["security@example.com"]
    assert message["sha256"] == rows[index].sha256
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", message["received_at"])
    assert message["message_id"] and message["subject"] == EXPECTED["multipart-attachments.eml"]["subject"]
    assert message["attachments"] == EXPECTED["multipart-attachments.eml"]["attachments"]
    assert detail["anonymous"] is True
    readable = run_cli(daemon.config_path, "reports", "show", listing[index]["tracking_id"])
    assert "attachment screenshot.png (image/png, 96 bytes" in readable.stdout


@pytest.mark.slow
def test_a_message_that_fails_parsing_stays_stored_is_listed_and_is_retried(daemon_factory, sessions: sessionmaker[Session], tmp_path: Path) -> None:
    daemon = daemon_factory(intake={"parse_timeout": 0.001, "max_parse_attempts": 2, "retry_interval": 3600})
    raw = report_mail(subject="Parsed later", sender="secret-reporter@example.org")
    _, reply = asyncio.run(aiosmtplib.send(raw, sender="secret-reporter@example.org", recipients=["security@example.com"], hostname="127.0.0.1", port=daemon.port, start_tls=False))
    assert reply.startswith("2.0.0")
    deadline = time.monotonic() + 30
    while inbound_rows(sessions)[0].status != "failed":
        assert time.monotonic() < deadline, daemon.log()
        time.sleep(0.2)
    [row] = inbound_rows(sessions)
    assert (row.status, row.attempts) == ("failed", 1) and row.next_attempt_at is not None
    assert row.last_error == "parse timed out after 0.001 s"
    assert row.raw == raw
    assert reports(sessions) == []

    failed = run_cli(daemon.config_path, "inbound", "failed", "--json")
    assert [item["id"] for item in json.loads(failed.stdout)] == [row.id]
    assert "next try" in run_cli(daemon.config_path, "inbound", "failed").stdout

    patient = tmp_path / "patient.toml"
    patient.write_text(daemon.config_path.read_text().replace("parse_timeout = 0.001", "parse_timeout = 30"))
    retried = run_cli(patient, "inbound", "retry")
    assert retried.returncode == 0, retried.stderr
    assert re.fullmatch(rf"inbound {row.id}: processed SEC-\d{{4}}-0001\n", retried.stdout)
    assert [report.subject for report in reports(sessions)] == ["Parsed later"]
    assert run_cli(patient, "inbound", "failed").stdout == "no failed deliveries\n"
    for secret in ("secret-reporter@example.org", "Parsed later", "Suggested severity"):
        assert secret not in daemon.log()


def test_tracking_ids_stay_unique_when_many_workers_process_at_once(sessions: sessionmaker[Session]) -> None:
    moment = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    ids = [store_delivery(sessions, Delivery(moment, "smtp", "127.0.0.1", "client", "r@example.org", ("security@example.com",), report_mail(message_id=f"<c{index}@example.org>", body=f"report {index}"))) for index in range(40)]
    rules = example_rules()
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda inbound_id: process_inbound(sessions, DirectParser(), rules, inbound_id, lambda: moment), ids * 2))
    assert sorted(outcome.status for outcome in outcomes) == ["processed"] * 40 + ["skipped"] * 40
    assert sorted(report.tracking_id for report in reports(sessions)) == [f"SEC-2026-{number:04d}" for number in range(1, 41)]


def test_the_same_origin_processed_concurrently_makes_one_report(sessions: sessionmaker[Session]) -> None:
    moment = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    raw = report_mail(message_id="<twice@example.org>")
    ids = [store_delivery(sessions, Delivery(moment, "smtp", "127.0.0.1", "client", "r@example.org", (address,), raw)) for address in ("security@example.com", "psirt@example.com") * 5]
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda inbound_id: process_inbound(sessions, DirectParser(), example_rules(), inbound_id, lambda: moment), ids))
    assert sorted(outcome.status for outcome in outcomes) == ["duplicate"] * 9 + ["processed"]
    assert len(reports(sessions)) == 1


@pytest.mark.slow
def test_nothing_confidential_reaches_the_log_even_from_malformed_mail(daemon_factory, sessions: sessionmaker[Session]) -> None:
    daemon = daemon_factory()
    raw = (
        b"From: Hidden Name <hidden-reporter@example.org>\r\nTo: security@example.com\r\n"
        b"Subject: TOPSECRET RCE in billing =?x-unknown?q?zz?=\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n'
        b"SECRETBODY \xff\xfe\r\n--b\r\nContent-Type: application/x-weird\r\n"
        b'Content-Disposition: attachment; filename="x =?utf-8?b?A?= secret-exploit.py"\r\nContent-Transfer-Encoding: base64\r\n\r\n!!notbase64\r\n--b--\r\n'
    )
    _, reply = asyncio.run(aiosmtplib.send(raw, sender="hidden-reporter@example.org", recipients=["security@example.com"], hostname="127.0.0.1", port=daemon.port, start_tls=False))
    assert reply.startswith("2.0.0")
    wait_until_processed(sessions, 1)
    [report] = reports(sessions)
    with transaction(sessions) as session:
        assert [item.filename for item in session.scalars(select(Attachment))] == ["x =?utf-8?b?A?= secret-exploit.py"]
    daemon.terminate()
    for secret in ("hidden-reporter", "Hidden Name", "TOPSECRET", "SECRETBODY", "secret-exploit"):
        assert secret not in daemon.log()


def test_reports_show_json_carries_every_documented_field(sessions: sessionmaker[Session], tmp_path: Path, database_url: str) -> None:
    moment = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    raw = (FIXTURES / "plain.eml").read_bytes()
    first = store_delivery(sessions, Delivery(moment, "smtp", "127.0.0.1", "client", "bounce+x@example.org", ("security@example.com",), raw))
    second = store_delivery(sessions, Delivery(moment, "smtp", "127.0.0.1", "client", "bounce+x@example.org", ("psirt@example.com",), raw))
    for inbound_id in (first, second):
        process_inbound(sessions, DirectParser(), example_rules(), inbound_id, lambda: moment)
    config = tmp_path / "config.toml"
    config.write_text(f'[intake]\naddresses = ["security@example.com"]\n[database]\nurl = "{database_url}"\n')
    detail = json.loads(run_cli(config, "reports", "show", "sec-2026-0001", "--json").stdout)
    expected = EXPECTED["plain.eml"]
    assert {key: detail[key] for key in ("tracking_id", "status", "received_at", "reporter", "envelope_sender", "suggested_severity", "credit_as", "anonymous", "urls", "endpoints", "duplicate_deliveries")} == {
        "tracking_id": "SEC-2026-0001",
        "status": "new",
        "received_at": "2026-11-23T10:00:00Z",
        "reporter": expected["from_address"],
        "envelope_sender": "bounce+x@example.org",
        "suggested_severity": "high",
        "credit_as": "Jane Researcher",
        "anonymous": False,
        "urls": expected["urls"],
        "endpoints": ["POST /api/v1/users"],
        "duplicate_deliveries": [second],
    }
    assert detail["reporter_name"]
    assert detail["messages"][0]["sha256"] == hashlib.sha256(raw).hexdigest()


def test_inbound_retry_of_a_delivery_that_did_not_fail_is_refused(sessions: sessionmaker[Session], tmp_path: Path, database_url: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[intake]\naddresses = ["security@example.com"]\n[database]\nurl = "{database_url}"\n')
    result = run_cli(config, "inbound", "retry", "424242")
    assert result.returncode == 2 and result.stderr == "mailintake: inbound 424242 is not a failed delivery (see `mailintake inbound failed`)\n"


def test_lanes_take_one_senders_mail_in_arrival_order_and_others_alongside(sessions: sessionmaker[Session]) -> None:
    """A staff member's `#status fixing` then `#status resolved` must be recorded in that
    order; another sender's mail need not wait for them."""
    moment = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    senders = ("bob@example.com", "bob@example.com", "researcher@example.org", "bob@example.com")
    ids = [store_delivery(sessions, Delivery(moment, "smtp", "127.0.0.1", "client", sender, ("security@example.com",), report_mail(body=f"mail {index}"))) for index, sender in enumerate(senders)]
    due = DueDeliveries(sessions, lambda: moment, CLAIMS)
    never = lambda: False  # noqa: E731

    def finished(inbound_id: int) -> None:
        with transaction(sessions) as session:
            session.execute(update(InboundMessage).where(InboundMessage.id == inbound_id).values(status="processed", claimed_until=None, claimed_by=None))
        due.finished(inbound_id)

    assert [due.next(never), due.next(never)] == [ids[0], ids[2]]
    stopped_waiting = iter([False, True])
    assert due.next(lambda: next(stopped_waiting)) is None, "bob's second mail must wait for his first"
    finished(ids[0])
    assert due.next(never) == ids[1]
    finished(ids[1])
    finished(ids[2])
    assert due.next(never) == ids[3]
    finished(ids[3])
    assert due.next(never) is None


def test_a_round_ends_for_every_lane_at_once(sessions: sessionmaker[Session]) -> None:
    """Once one lane found nothing due and nothing in flight, a lane still looking must not
    take new mail alone: it would hold it while the others have left (the next round,
    with every lane, takes it)."""
    moment = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    due = DueDeliveries(sessions, lambda: moment, CLAIMS)
    assert due.next(lambda: False) is None
    store_delivery(sessions, Delivery(moment, "smtp", "127.0.0.1", "client", "late@example.org", ("security@example.com",), report_mail(body="late")))
    assert due.next(lambda: False) is None
    assert DueDeliveries(sessions, lambda: moment, CLAIMS).next(lambda: False) is not None

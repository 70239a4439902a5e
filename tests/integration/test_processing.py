"""From stored delivery to report: corpus round trip, failures kept and retried, ids under concurrency."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import aiosmtplib
import pytest
from sqlalchemy.orm import Session, sessionmaker

from mailintake.intake import Delivery, store_delivery
from mailintake.parsing import parse_message
from mailintake.processing import process_inbound
from tests.daemon import REPO
from tests.integration.helpers import example_rules, inbound_rows, report_mail, reports, wait_until_processed

FIXTURES = REPO / "tests" / "fixtures" / "mail"
EXPECTED = tomllib.loads((FIXTURES / "expected.toml").read_text(encoding="utf-8"))


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
    daemon = daemon_factory(intake={"parse_timeout": 0.001, "max_parse_attempts": 2})
    raw = report_mail(subject="Parsed later", sender="secret-reporter@example.org")
    _, reply = asyncio.run(aiosmtplib.send(raw, sender="secret-reporter@example.org", recipients=["security@example.com"], hostname="127.0.0.1", port=daemon.port, start_tls=False))
    assert reply.startswith("2.0.0")
    deadline = time.monotonic() + 30
    while inbound_rows(sessions)[0].attempts < 2:
        assert time.monotonic() < deadline, daemon.log()
        time.sleep(0.2)
    [row] = inbound_rows(sessions)
    assert (row.status, row.attempts, row.next_attempt_at) == ("failed", 2, None)
    assert row.last_error == "parse timed out after 0.001 s"
    assert row.raw == raw
    assert reports(sessions) == []

    failed = run_cli(daemon.config_path, "inbound", "failed", "--json")
    assert [item["id"] for item in json.loads(failed.stdout)] == [row.id]
    assert "no automatic retry left" in run_cli(daemon.config_path, "inbound", "failed").stdout

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
    moment = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)
    ids = [
        store_delivery(sessions, Delivery(moment, "smtp", "127.0.0.1", "client", "r@example.org", ("security@example.com",), report_mail(message_id=f"<c{index}@example.org>", body=f"report {index}")))
        for index in range(40)
    ]
    rules = example_rules()
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda inbound_id: process_inbound(sessions, DirectParser(), rules, inbound_id, lambda: moment), ids * 2))
    assert sorted(outcome.status for outcome in outcomes) == ["processed"] * 40 + ["skipped"] * 40
    assert sorted(report.tracking_id for report in reports(sessions)) == [f"SEC-2026-{number:04d}" for number in range(1, 41)]


def test_the_same_origin_processed_concurrently_makes_one_report(sessions: sessionmaker[Session]) -> None:
    moment = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)
    raw = report_mail(message_id="<twice@example.org>")
    ids = [store_delivery(sessions, Delivery(moment, "smtp", "127.0.0.1", "client", "r@example.org", (address,), raw)) for address in ("security@example.com", "psirt@example.com") * 5]
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda inbound_id: process_inbound(sessions, DirectParser(), example_rules(), inbound_id, lambda: moment), ids))
    assert sorted(outcome.status for outcome in outcomes) == ["duplicate"] * 9 + ["processed"]
    assert len(reports(sessions)) == 1

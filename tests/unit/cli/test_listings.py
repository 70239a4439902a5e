"""The listing commands (`sla status`, `outbox list`, `reports list`) page and filter in SQL,
on a real SQLite file and, when configured, the real PostgreSQL: following the `… more:
--after X` line (or `next_after` in JSON) shows every row exactly once in order; a page
costs the same statements whatever the size of the table and loads at most a page of ORM
objects. The commands run in-process through `main`, as an admin runs them."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, exists, insert, select
from sqlalchemy.orm import Mapper, Session, sessionmaker

from mailintake.cli import main
from mailintake.cli.output import print_json, print_json_stream
from mailintake.config.loading import load_config
from mailintake.deadlines.closures import effective_calendar
from mailintake.deadlines.milestones import meet_milestone, refresh_open_reports
from mailintake.storage.db import transaction
from mailintake.storage.models import MilestoneRecord, OutboxMessage, Pause, Report
from tests.daemon import write_config
from tests.statements import counted_statements

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
MORE = "… more: --after "
STATES = ("ok", "warning", "breached", "met", "waiting", "paused")


@pytest.fixture
def config_path(tmp_path: Path, database_url: str, engine: Engine) -> Path:
    return write_config(tmp_path / "config.toml", database_url, extra=(REPO / "presets" / "policy-a.toml").read_text())


class Cli:
    def __init__(self, config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.config_path = config_path
        self.capsys = capsys

    def run(self, *arguments: str) -> str:
        self.capsys.readouterr()
        assert main(["--config", str(self.config_path), *arguments]) == 0
        return self.capsys.readouterr().out

    def lines(self, *arguments: str) -> list[str]:
        return self.run(*arguments).splitlines()

    def json(self, *arguments: str) -> Any:
        return json.loads(self.run(*arguments, "--json"))

    def text_pages(self, *arguments: str, limit: int) -> list[list[str]]:
        """Every page of a listing, following the last line of each full one."""
        pages, after = [], []
        while True:
            lines = self.lines(*arguments, "--limit", str(limit), *after)
            if not lines or not lines[-1].startswith(MORE):
                return pages + [lines]
            pages.append(lines[:-1])
            after = ["--after", lines[-1].removeprefix(MORE)]

    def json_pages(self, *arguments: str, limit: int) -> list[list[dict[str, Any]]]:
        pages, after = [], []
        while True:
            page = self.json(*arguments, "--limit", str(limit), *after)
            assert set(page) == {"items", "next_after"}
            pages.append(page["items"])
            if page["next_after"] is None:
                return pages
            after = ["--after", page["next_after"]]


@pytest.fixture
def cli(config_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(config_path, capsys)


def reports_added(sessions: sessionmaker[Session], count: int, start: int = 1) -> None:
    """Reports received two at a time over the past days (ties in received_at and in every
    deadline), tracking numbers in the reverse of insertion order (so a tie is broken by
    the tracking id, not by the id); every fifth resolved, every seventh pointing at the
    one before (flagged)."""
    rows = []
    for index in range(count):
        number = start + count - 1 - index
        received = NOW - timedelta(hours=7 * (index // 2))
        rows.append(
            {
                "tracking_id": f"SEC-2026-{number:04d}",
                "origin_key": f"origin:{number}",
                "status": "resolved" if number % 5 == 0 else "new",
                "subject": f"Report {number}",
                "envelope_sender": f"r{number}@example.org",
                "anonymous": False,
                "urls": [],
                "endpoints": [],
                "received_at": received,
                "created_at": received,
            }
        )
    with transaction(sessions) as session:
        session.execute(insert(Report), rows)
        reports = session.scalars(select(Report).order_by(Report.id)).all()
        for previous, report in zip(reports, reports[1:], strict=False):
            if report.id % 7 == 0:
                report.flag, report.related_report_id = "reply address misused", previous.id


def deadlines_computed(sessions: sessionmaker[Session], config_path: Path) -> None:
    """Every open report's milestones; of the reports new since the last call, some
    acknowledged, some waiting on the reporter."""
    config = load_config(config_path)
    with transaction(sessions) as session:
        calendar = effective_calendar(session, config.calendar)
        fresh = session.scalars(select(Report).where(Report.status == "new", ~exists().where(MilestoneRecord.report_id == Report.id)).order_by(Report.id)).all()
        refresh_open_reports(session, config.sla, calendar, NOW)
        for report in fresh:
            if report.id % 3 == 0:
                meet_milestone(session, report, "acknowledge", report.received_at + timedelta(hours=1), "acknowledgement", config.sla, calendar)
            if report.id % 4 == 0:
                report.pauses.append(Pause(started_at=report.received_at + timedelta(hours=2), started_by="alice@example.com"))
        session.flush()
        refresh_open_reports(session, config.sla, calendar, NOW)


def outbox_added(sessions: sessionmaker[Session], count: int, start: int = 0) -> None:
    kinds, statuses = ("acknowledgement", "staff_notification", "sla_breach"), ("pending", "sent", "sent", "failed")
    rows = [
        {
            "key": f"key:{number}",
            "kind": kinds[number % 3],
            "envelope_from": "security@example.com",
            "recipients": [f"r{number}@example.org"],
            "message_id": f"<{number}@example.com>",
            "content": b"Subject: x\r\n\r\n" + b"body " * 200,
            "status": statuses[number % 4],
            "attempts": number % 3,
            "created_at": NOW + timedelta(minutes=number),
        }
        for number in range(start, start + count)
    ]
    with transaction(sessions) as session:
        session.execute(insert(OutboxMessage), rows)


@contextmanager
def loaded_objects() -> Iterator[Counter[str]]:
    """ORM objects built from rows, by class."""
    loaded: Counter[str] = Counter()

    def count(target: object, context: object) -> None:
        loaded[type(target).__name__] += 1

    event.listen(Mapper, "load", count)
    try:
        yield loaded
    finally:
        event.remove(Mapper, "load", count)


# --- paging: every row once, in order ---------------------------------------------------


def test_reports_pages_show_every_report_once_in_order(cli: Cli, sessions: sessionmaker[Session]) -> None:
    reports_added(sessions, 23)
    everything = cli.lines("reports", "list", "--limit", "0")
    assert len(everything) == 23 and not any(line.startswith(MORE) for line in everything)
    pages = cli.text_pages("reports", "list", limit=5)
    assert [len(page) for page in pages] == [5, 5, 5, 5, 3]
    assert sum(pages, []) == everything
    listed = cli.json("reports", "list")
    assert [item["tracking_id"] for item in listed] == [line.split()[0] for line in everything]
    assert [(item["received_at"]) for item in listed] == sorted(item["received_at"] for item in listed)
    assert sum(cli.json_pages("reports", "list", limit=4), []) == listed
    assert cli.lines("reports", "list", "--limit", "23")[-1] == everything[-1]
    assert cli.lines("reports", "list", "--after", listed[-1]["tracking_id"]) == [f"nothing after {listed[-1]['tracking_id']}"]


def test_outbox_pages_show_every_mail_once_in_order(cli: Cli, sessions: sessionmaker[Session]) -> None:
    outbox_added(sessions, 31)
    everything = cli.lines("outbox", "list", "--limit", "0")
    assert [int(line.split()[0]) for line in everything] == sorted(int(line.split()[0]) for line in everything) and len(everything) == 31
    assert sum(cli.text_pages("outbox", "list", limit=10), []) == everything
    listed = cli.json("outbox", "list")
    assert sum(cli.json_pages("outbox", "list", limit=8), []) == listed and len(listed) == 31


def test_sla_status_pages_show_every_open_milestone_once_soonest_due_first(cli: Cli, sessions: sessionmaker[Session], config_path: Path) -> None:
    reports_added(sessions, 30)
    deadlines_computed(sessions, config_path)
    moment = ["--now", NOW.isoformat()]
    listed = cli.json("sla", "status", *moment)
    with transaction(sessions) as session:
        open_ids = session.scalars(select(Report.tracking_id).where(Report.status == "new")).all()
    names = load_config(config_path).sla.names
    assert Counter((item["tracking_id"], item["milestone"]) for item in listed) == Counter((tracking_id, name) for tracking_id in open_ids for name in names)
    order = [(item["due_at"] is None, datetime.fromisoformat(item["due_at"]) if item["due_at"] else None, item["tracking_id"]) for item in listed]
    assert order == sorted(order, key=lambda key: (key[0], key[1] or NOW, key[2]))
    assert len({item["due_at"] for item in listed if item["due_at"]}) < len([item for item in listed if item["due_at"]]), "no ties in due time: the tie-break is not tested"
    assert sum(cli.json_pages("sla", "status", *moment, limit=7), []) == listed
    everything = cli.lines("sla", "status", *moment, "--limit", "0")
    assert len(everything) == len(listed)
    pages = cli.text_pages("sla", "status", *moment, limit=9)
    assert sum(pages, []) == everything and all(len(page) == 9 for page in pages[:-1])


def test_the_default_page_is_a_hundred_and_json_lists_everything_as_before(cli: Cli, sessions: sessionmaker[Session]) -> None:
    reports_added(sessions, 100)
    assert cli.lines("reports", "list") == cli.lines("reports", "list", "--limit", "0")
    reports_added(sessions, 5, start=101)
    lines = cli.lines("reports", "list")
    assert len(lines) == 101 and lines[-1] == MORE + lines[-2].split()[0]
    listed = cli.json("reports", "list")
    assert isinstance(listed, list) and len(listed) == 105


def test_a_bad_cursor_is_a_one_line_usage_error(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    for arguments, message in (
        (["reports", "list", "--after", "SEC-1999-0001"], "--after: no report with tracking id 'SEC-1999-0001'"),
        (["outbox", "list", "--after", "twelve"], "--after: 'twelve' is not an id"),
        (["sla", "status", "--after", "tomorrow"], "--after: 'tomorrow' is not DUE,TRACKING-ID,N"),
    ):
        for output in ([], ["--json"], ["--json", "--limit", "5"]):
            capsys.readouterr()
            assert main(["--config", str(cli.config_path), *arguments, *output]) == 2
            printed = capsys.readouterr()
            assert message in printed.err and printed.err.count("\n") == 1 and printed.out == ""


# --- filters ------------------------------------------------------------------------------


def test_sla_status_filters_by_state_and_report(cli: Cli, sessions: sessionmaker[Session], config_path: Path) -> None:
    reports_added(sessions, 30)
    deadlines_computed(sessions, config_path)
    moment = ["--now", NOW.isoformat()]
    listed = cli.json("sla", "status", *moment)
    assert {item["state"] for item in listed} == set(STATES)
    for state in STATES:
        assert cli.json("sla", "status", *moment, "--state", state) == [item for item in listed if item["state"] == state], state
    both = [item for item in listed if item["state"] in ("warning", "breached")]
    assert sum(cli.json_pages("sla", "status", *moment, "--state", "breached", "--state", "warning", limit=3), []) == both
    one = listed[len(listed) // 2]["tracking_id"]
    assert cli.json("sla", "status", *moment, "--report", one.lower()) == [item for item in listed if item["tracking_id"] == one]


def test_outbox_list_filters_by_status_and_kind(cli: Cli, sessions: sessionmaker[Session]) -> None:
    outbox_added(sessions, 40)
    listed = cli.json("outbox", "list")
    assert cli.json("outbox", "list", "--status", "failed") == [item for item in listed if item["status"] == "failed"] != []
    assert cli.json("outbox", "list", "--kind", "sla_breach", "--status", "pending", "--status", "sent") == [item for item in listed if item["kind"] == "sla_breach" and item["status"] in ("pending", "sent")]
    pending = [item for item in listed if item["status"] == "pending"]
    assert sum(cli.json_pages("outbox", "list", "--status", "pending", limit=3), []) == pending


def test_reports_list_filters_by_status(cli: Cli, sessions: sessionmaker[Session]) -> None:
    reports_added(sessions, 20)
    listed = cli.json("reports", "list")
    resolved = [item for item in listed if item["status"] == "resolved"]
    assert cli.json("reports", "list", "--status", "resolved") == resolved and len(resolved) == 4
    assert sum(cli.json_pages("reports", "list", "--status", "new", limit=6), []) == [item for item in listed if item["status"] == "new"]


# --- a page costs the same whatever the size of the table ---------------------------------


def page_cost(cli: Cli, *arguments: str) -> tuple[int, Counter[str]]:
    with counted_statements() as statements, loaded_objects() as loaded:
        cli.run(*arguments)
    return len(statements), loaded


def test_a_page_of_reports_costs_the_same_statements_and_objects_at_any_size(cli: Cli, sessions: sessionmaker[Session]) -> None:
    reports_added(sessions, 30)
    small = page_cost(cli, "reports", "list", "--limit", "20")
    reports_added(sessions, 970, start=31)
    large = page_cost(cli, "reports", "list", "--limit", "20")
    after = page_cost(cli, "reports", "list", "--limit", "20", "--after", "SEC-2026-0500")
    assert small[0] == large[0] <= 6 and after[0] <= large[0] + 1, (small, large, after)
    assert large[1]["Report"] <= 21 + 3 and after[1]["Report"] <= 21 + 3, (large, after)


def test_a_page_of_the_outbox_costs_the_same_statements_and_objects_at_any_size(cli: Cli, sessions: sessionmaker[Session]) -> None:
    outbox_added(sessions, 150)
    small = page_cost(cli, "outbox", "list")
    outbox_added(sessions, 4850, start=150)
    with counted_statements() as statements, loaded_objects() as loaded:
        lines = cli.lines("outbox", "list")
    assert len(lines) == 101 and lines[-1].startswith(MORE)
    assert len(statements) == small[0] <= 4 and loaded == Counter({"OutboxMessage": 101}), (statements, loaded)
    assert all(" LIMIT " in statement for statement in statements if "FROM outbox" in statement)


def test_a_page_of_milestones_costs_the_same_statements_at_any_size_and_loads_no_objects(cli: Cli, sessions: sessionmaker[Session], config_path: Path) -> None:
    reports_added(sessions, 40)
    deadlines_computed(sessions, config_path)
    moment = ["--now", NOW.isoformat()]
    small = page_cost(cli, "sla", "status", *moment)
    reports_added(sessions, 360, start=41)
    deadlines_computed(sessions, config_path)
    with counted_statements() as statements, loaded_objects() as loaded:
        lines = cli.lines("sla", "status", *moment)
    assert len(lines) == 101 and lines[-1].startswith(MORE)
    # The calendar's transaction (2), the page's BEGIN, at most 4 reads: rows with a
    # deadline, rows without one (where the page crosses into them), met times, pauses.
    assert len(statements) <= small[0] <= 7 and not loaded, (statements, loaded)
    filtered = page_cost(cli, "sla", "status", *moment, "--state", "breached", "--state", "paused", "--after", lines[-1].removeprefix(MORE))
    assert filtered[0] <= 7 and not filtered[1], filtered


# --- JSON written as it comes reads as before ---------------------------------------------


def test_streamed_json_is_the_text_json_dump_gives(capsys: pytest.CaptureFixture[str]) -> None:
    items = [{"a": 1, "nested": {"b": [], "c": {}, "d": ["x", {"e": None}]}}, {"text": "line\nbreak \u2028 separator \u00e9 \x1b[31m"}, {}]
    for case in ([], items):
        print_json(case)
        expected = capsys.readouterr().out
        print_json_stream(iter(case))
        assert capsys.readouterr().out == expected
    print_json_stream(iter(items), indent="  ", end="")
    assert json.loads("{" + '"items": ' + capsys.readouterr().out + "}") == {"items": items}

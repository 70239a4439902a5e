"""The holidays commands as an admin runs them (in-process through `main`, a real SQLite file
and, when configured, the real PostgreSQL): working a holiday and restoring it, adding a
closure and removing it, each leave the listings and every open deadline as they were;
what cannot be done is one line and exit 2; the listings label each entry once, flat.

Calendar and reports: tests/unit/deadlines/calendar_admin.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from mailintake.calendar.entries import LABELS
from mailintake.cli import main
from tests.unit.deadlines.calendar_admin import NOW, admin_rows, config_written, deadlines, loaded, reports_with_deadlines

MOVED = re.compile(r"; (\d+) open deadline\(s\) moved\n\Z")
ENTRY_LINE = re.compile(r"^(?P<days>\d{4}-\d\d-\d\d(?:\.\.\d{4}-\d\d-\d\d)?) +(?P<label>[a-z]+ [a-z]+) +(?P<name>\S.*)$")
MONTH_ENTRY_LINE = re.compile(r"^  (?P<days>\d{4}-\d\d-\d\d(?:\.\.\d{4}-\d\d-\d\d)?)  (?P<label>[a-z ]+): (?P<name>\S.*)$")


@pytest.fixture
def config_path(tmp_path: Path, database_url: str, engine: Engine) -> Path:
    return config_written(tmp_path / "config.toml", database_url)


class Cli:
    def __init__(self, config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.config_path = config_path
        self.capsys = capsys

    def run(self, *arguments: str) -> str:
        self.capsys.readouterr()
        status = main(["--config", str(self.config_path), *arguments])
        printed = self.capsys.readouterr()
        assert status == 0, (arguments, printed.err)
        return printed.out

    def json(self, *arguments: str) -> Any:
        return json.loads(self.run(*arguments, "--json"))

    def refused(self, *arguments: str) -> str:
        """The one line a refused command prints; it prints nothing else and exits 2."""
        self.capsys.readouterr()
        status = main(["--config", str(self.config_path), *arguments])
        printed = self.capsys.readouterr()
        assert (status, printed.out, printed.err.count("\n")) == (2, "", 1), (arguments, printed)
        return printed.err

    def everything_shown(self) -> tuple[Any, ...]:
        """What an admin sees of the calendar and the deadlines."""
        now = ["--now", NOW.isoformat()]
        return (
            self.json("holidays", "list", "--year", "2026"),
            self.json("holidays", "list", "--year", "2027"),
            self.run("holidays", "list", "--year", "2026"),
            self.run("calendar", "show", "--year", "2026"),
            self.json("sla", "status", *now, "--limit", "0"),
        )


@pytest.fixture
def cli(config_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(config_path, capsys)


def moved_in(line: str) -> int:
    found = MOVED.search(line)
    assert found is not None, line
    return int(found.group(1))


def nesting(text: str) -> int:
    """How deep parentheses nest in a line: "a (b) (c)" is 1, "a (b (c))" is 2."""
    depth = deepest = 0
    for character in text:
        depth += {"(": 1, ")": -1}.get(character, 0)
        deepest = max(deepest, depth)
    return deepest


def test_working_a_holiday_and_restoring_it_leaves_everything_shown_as_before(cli: Cli, sessions: sessionmaker[Session], config_path: Path) -> None:
    reports_with_deadlines(sessions, loaded(config_path))
    shown, due = cli.everything_shown(), deadlines(sessions)

    worked = cli.run("holidays", "remove", "2026-12-25", "--by", "carol")
    assert worked.startswith("2026-12-25 Christmas Day (NL) is now a working day; ")
    moved = moved_in(worked)
    assert moved > 0 and deadlines(sessions) != due
    listed = [(entry["first_day"], entry["source"]) for entry in cli.json("holidays", "list", "--year", "2026") if entry["first_day"] == "2026-12-25"]
    assert listed == [("2026-12-25", "worked holiday (admin)")]

    assert "`holidays restore 2026-12-25`" in cli.refused("holidays", "remove", "2026-12-25")
    assert "`holidays restore 2026-12-25`" in cli.refused("holidays", "add", "2026-12-25", "Christmas after all")
    assert "`holidays restore 2026-12-25`" in cli.refused("holidays", "add", "2026-12-21..2026-12-27", "Christmas week")

    restored = cli.json("holidays", "restore", "2026-12-25", "--by", "dave")
    assert restored == {"action": "restored", "first_day": "2026-12-25", "last_day": "2026-12-25", "name": "Christmas Day (NL)", "moved": moved}
    assert "2026-12-25 is not a worked holiday: nothing to restore" in cli.refused("holidays", "restore", "2026-12-25")
    assert cli.everything_shown() == shown
    assert deadlines(sessions) == due
    assert [row[4:6] for row in admin_rows(sessions)] == [("carol", "dave")]


def test_adding_a_closure_and_removing_it_leaves_everything_shown_as_before(cli: Cli, sessions: sessionmaker[Session], config_path: Path) -> None:
    reports_with_deadlines(sessions, loaded(config_path))
    shown, due = cli.everything_shown(), deadlines(sessions)

    closed = cli.json("holidays", "add", "2026-12-22..2026-12-23", "office move", "--by", "alice")
    assert closed["moved"] > 0 and {key: closed[key] for key in ("action", "first_day", "last_day", "name")} == {"action": "closed", "first_day": "2026-12-22", "last_day": "2026-12-23", "name": "office move"}
    assert "`holidays remove 2026-12-22` ends it" in cli.refused("holidays", "add", "2026-12-23", "training")
    assert "nothing to restore; it is in the admin closure 2026-12-22..2026-12-23" in cli.refused("holidays", "restore", "2026-12-23")

    reopened = cli.run("holidays", "remove", "2026-12-23", "--by", "bob")
    assert reopened == f"removed closure 2026-12-22..2026-12-23 office move; {closed['moved']} open deadline(s) moved\n"
    assert "2026-12-23 is neither an admin closure nor an official holiday: nothing to remove" in cli.refused("holidays", "remove", "2026-12-23")
    assert cli.everything_shown() == shown
    assert deadlines(sessions) == due


def test_a_closure_that_leaves_no_business_time_is_one_line_and_changes_nothing(cli: Cli, sessions: sessionmaker[Session], config_path: Path) -> None:
    reports_with_deadlines(sessions, loaded(config_path))
    due = deadlines(sessions)
    message = cli.refused("holidays", "add", "2026-12-07..2036-12-31", "typo in year")
    assert message.startswith("mailintake: not changed: 2026-12-07..2036-12-31 would leave open deadlines without business time")
    assert admin_rows(sessions) == [] and deadlines(sessions) == due
    for arguments in (
        ("remove", "1899-12-25"),
        ("restore", "3000-01-01"),
        ("add", "2026-12-01..12026-12-01", "x"),
        ("add", "2026-12-01", "two\nlines"),
        ("add", "2026-12-01", "x", "--by", "a\x1b[2Jb"),
        ("remove", "2026-12-25", "--by", "x" * 256),
    ):
        cli.refused("holidays", *arguments)
    assert admin_rows(sessions) == []


def test_each_entry_is_labelled_once_with_a_flat_label(cli: Cli) -> None:
    cli.run("holidays", "remove", "2026-04-03", "--by", "carol")
    cli.run("holidays", "add", "2026-12-21..2026-12-23", "office move", "--by", "alice")
    cli.run("holidays", "add", "2026-05-01", "Labour Day (office)", "--by", "alice")

    listing = cli.run("holidays", "list", "--year", "2026").splitlines()
    as_json = cli.json("holidays", "list", "--year", "2026")
    assert len(listing) == len(as_json)
    for line, entry in zip(listing, as_json, strict=True):
        found = ENTRY_LINE.match(line)
        assert found is not None, line
        assert found["label"] == LABELS[entry["source"]] and found["name"].startswith(entry["name"]), line
        assert sum(line.count(label) for label in LABELS.values()) == 1 and nesting(line) <= 1, line
    assert {LABELS[entry["source"]] for entry in as_json} == set(LABELS.values())

    month_lines = [line for line in cli.run("calendar", "show", "--year", "2026").splitlines() if line.startswith("  2026-")]
    assert len(month_lines) == len(as_json)
    for line in month_lines:
        found = MONTH_ENTRY_LINE.match(line)
        assert found is not None and found["label"] in LABELS.values(), line
        assert sum(line.count(label) for label in LABELS.values()) == 1 and nesting(line) <= 1, line
    assert "  2026-04-03  worked holiday: Good Friday (NL)" in month_lines
    assert "  2026-12-28..2026-12-31  config closure: year-end shutdown" in month_lines


def test_the_help_tells_how_each_change_is_undone(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    helps = {}
    for command in ("add", "remove", "restore"):
        capsys.readouterr()
        with pytest.raises(SystemExit):
            main(["holidays", command, "--help"])
        helps[command] = " ".join(capsys.readouterr().out.split())
    assert "`holidays remove DATE` undoes it" in helps["add"]
    assert "`holidays restore DATE` undoes that" in helps["remove"]
    assert "the official holiday counts again" in helps["restore"]

"""Benchmark (not a test): the first page of the listing commands with many open reports.

Fills a fresh database with N open reports received over the past year (open_reports.py),
their milestones as the example policy computes them (every third acknowledged, so chained
duties run; met, waiting, ok, warning and breached all occur) and one sent acknowledgement
of `--mail-size` bytes each in the outbox (a few pending or failed). Then runs each command
as an admin does, a `python -m mailintake` subprocess, and reports its wall time and peak
RSS (/usr/bin/time; median of --repeat runs), next to the interpreter's startup with
mailintake's imports (`--version`) and the command's own time run in this process
(imports done). `--all` also streams every row (`--limit 0`).

    .venv/bin/python bench/listings.py [--reports 100000] [--database-url URL] [--all] [--json]

The PostgreSQL database (or search_path schema) given must be empty. `--mailintake DIR`
runs the commands from another checkout (e.g. the code before paging) on the same data.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stdout
from datetime import timedelta
from pathlib import Path
from typing import Any

from open_reports import NOW, REPO, database_with_open_reports, example_config
from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session, sessionmaker

from mailintake.calendar.business import BusinessCalendar
from mailintake.cli.main import main as cli_main
from mailintake.deadlines.closures import effective_calendar
from mailintake.deadlines.milestones import earliest
from mailintake.sla.policy import Policy
from mailintake.sla.schedule import compute_schedule
from mailintake.storage.db import transaction
from mailintake.storage.models import MilestoneRecord, OutboxMessage, Report

INSERT_BATCH = 10_000
MOMENT = ["--now", NOW.isoformat()]
# What every command pays before it reads a row: the interpreter and mailintake's imports.
STARTUP = ("mailintake --version (startup)", ["--version"])
FIRST_PAGES = (
    ("sla status", ["sla", "status", *MOMENT]),
    ("sla status --state breached", ["sla", "status", *MOMENT, "--state", "breached"]),
    ("sla status --state warning", ["sla", "status", *MOMENT, "--state", "warning"]),
    ("outbox list", ["outbox", "list"]),
    ("outbox list --status failed", ["outbox", "list", "--status", "failed"]),
    ("reports list", ["reports", "list"]),
    ("reports list --json --limit 100", ["reports", "list", "--json", "--limit", "100"]),
)
EVERY_ROW = (
    ("sla status --limit 0", ["sla", "status", *MOMENT, "--limit", "0"]),
    ("outbox list --limit 0", ["outbox", "list", "--limit", "0"]),
    ("reports list --limit 0", ["reports", "list", "--limit", "0"]),
)


def bench_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=100_000)
    parser.add_argument("--database-url", help="default: a fresh SQLite file in a temporary directory")
    parser.add_argument("--mail-size", type=int, default=6000, help="bytes of each outbox message (never read by the listing)")
    parser.add_argument("--all", action="store_true", help="also time streaming every row (--limit 0)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command (the median time is shown)")
    parser.add_argument("--mailintake", type=Path, default=REPO, help="the checkout whose commands run (default: this one)")
    parser.add_argument("--json", action="store_true", help="print one JSON object of the figures as the last line")
    return parser.parse_args()


def milestone_rows(report: Any, policy: Policy, calendar: BusinessCalendar) -> list[dict[str, object]]:
    """A report's milestones as refresh_milestones stores them (no promises, no pauses)."""
    met = {"acknowledge": report.received_at + timedelta(hours=1)} if report.id % 3 == 0 else {}
    rows = []
    for status in compute_schedule(policy, calendar, report.received_at, NOW, met):
        awaiting = status.state != "met" and status.due_at is not None
        warn_at = earliest(status.warn_at, status.due_at)
        rows.append(
            {
                "report_id": report.id,
                "name": status.name,
                "started_at": status.started_at,
                "computed_due_at": status.due_at,
                "due_at": status.due_at,
                "warn_at": warn_at,
                "met_at": status.met_at,
                "met_by": "acknowledgement" if status.met_at else None,
                "awaiting": awaiting,
                "next_alert_at": earliest(warn_at, status.due_at) if awaiting else None,
            }
        )
    return rows


def outbox_row(report: Any, size: int) -> dict[str, object]:
    status = "failed" if report.id % 1000 == 0 else "pending" if report.id % 100 == 0 else "sent"
    return {
        "key": f"ack:{report.id}",
        "kind": "acknowledgement",
        "report_id": report.id,
        "envelope_from": "security@example.com",
        "recipients": [f"reporter{report.id}@example.org"],
        "message_id": f"<ack.{report.id}@example.com>",
        "content": (b"Subject: Re: your report\r\n\r\n" + b"x" * size)[:size],
        "status": status,
        "attempts": 1,
        "created_at": report.received_at,
        "sent_at": report.received_at + timedelta(seconds=1) if status == "sent" else None,
        "last_reply": "250 2.0.0 Ok" if status == "sent" else "550 5.1.1 no such user" if status == "failed" else None,
    }


def filled(sessions: sessionmaker[Session], mail_size: int) -> tuple[int, int]:
    """Milestones and outbox rows for every report, inserted INSERT_BATCH at a time."""
    config = example_config()
    with transaction(sessions) as session:
        calendar = effective_calendar(session, config.calendar)
        reports = session.execute(select(Report.id, Report.received_at).order_by(Report.id)).all()
    milestones = 0
    for start in range(0, len(reports), INSERT_BATCH):
        batch = reports[start : start + INSERT_BATCH]
        rows = [row for report in batch for row in milestone_rows(report, config.sla, calendar)]
        with transaction(sessions) as session:
            session.execute(insert(MilestoneRecord), rows)
            session.execute(insert(OutboxMessage), [outbox_row(report, mail_size) for report in batch])
        milestones += len(rows)
    return milestones, len(reports)


def timed(command: list[str], database_url: str, checkout: Path, repeat: int) -> dict[str, Any]:
    """Median wall and CPU time, largest peak RSS and output lines of a command run as a child
    process `repeat` times. /usr/bin/time measures it: a child forked from this process
    would count this process's memory as its own (Linux keeps the peak across exec)."""
    environment = os.environ | {"MAILINTAKE_DATABASE_URL": database_url, "PYTHONPATH": str(checkout)}
    options = [] if command == STARTUP[1] else ["--config", str(REPO / "config.example.toml")]
    runs = []
    with tempfile.TemporaryDirectory() as directory:
        figures, output = Path(directory) / "time", Path(directory) / "output"
        for _ in range(repeat):
            with output.open("wb") as stdout:
                child = subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", "-o", str(figures), sys.executable, "-m", "mailintake", *options, *command], stdout=stdout, stderr=subprocess.PIPE, env=environment, cwd=checkout)
            if child.returncode != 0:
                raise SystemExit(f"{' '.join(command)} exited {child.returncode}: {child.stderr.decode(errors='replace').strip()[-500:]}")
            seconds, user, system, kilobytes = figures.read_text().split()
            runs.append((float(seconds), float(user) + float(system), int(kilobytes)))
        lines = sum(1 for _ in output.open("rb"))
    middle = len(runs) // 2
    return {
        "seconds": sorted(run[0] for run in runs)[middle],
        "cpu_seconds": sorted(run[1] for run in runs)[middle],
        "peak_rss_mib": max(run[2] for run in runs) / 1024,
        "lines": lines,
    }


def in_process_seconds(command: list[str], database_url: str) -> float:
    """The command's own time, imports already done: what paging changed."""
    os.environ["MAILINTAKE_DATABASE_URL"] = database_url
    with open(os.devnull, "w") as null, redirect_stdout(null):
        started = time.perf_counter()
        assert cli_main(["--config", str(REPO / "config.example.toml"), *command]) == 0
        return time.perf_counter() - started


def main() -> None:
    arguments = bench_arguments()
    backend = (arguments.database_url or "sqlite").split(":", 1)[0]
    results = []
    with database_with_open_reports(arguments.database_url, arguments.reports) as sessions:
        started = time.perf_counter()
        milestones, mails = filled(sessions, arguments.mail_size)
        if backend.startswith("postgresql"):
            # Statistics, as autovacuum keeps them on a database that grew to this size:
            # without them the planner sorts deep pages instead of walking the indexes.
            with transaction(sessions) as session:
                session.execute(text("ANALYZE"))
        print(f"database {backend}: {arguments.reports:,} open reports, {milestones:,} milestones, {mails:,} outbox rows of {arguments.mail_size:,} bytes (filled in {time.perf_counter() - started:.0f} s)")
        url = sessions.kw["bind"].url.render_as_string(hide_password=False)
        startup = timed(STARTUP[1], url, arguments.mailintake, arguments.repeat)
        print(f"  {STARTUP[0]:<34} {startup['seconds']:7.2f} s  (CPU {startup['cpu_seconds']:5.2f} s)  peak RSS {startup['peak_rss_mib']:7.1f} MiB")
        for name, command in FIRST_PAGES + (EVERY_ROW if arguments.all else ()):
            result = {"command": name} | timed(command, url, arguments.mailintake, 1 if command in [every for _, every in EVERY_ROW] else arguments.repeat)
            if arguments.mailintake == REPO:
                result["in_process_seconds"] = in_process_seconds(command, url)
            results.append(result)
            own = f"  in-process {result['in_process_seconds']:6.3f} s" if "in_process_seconds" in result else ""
            print(f"  {name:<34} {result['seconds']:7.2f} s  (CPU {result['cpu_seconds']:5.2f} s)  peak RSS {result['peak_rss_mib']:7.1f} MiB  {result['lines']:>9,} lines{own}")
    first = [result for result in results if not result["command"].endswith("--limit 0")]
    slowest, largest = max(result["seconds"] for result in first), max(result["peak_rss_mib"] for result in first)
    own = max((result["in_process_seconds"] for result in first if "in_process_seconds" in result), default=None)
    met = slowest < 1 and largest < 200
    print(
        f"target (first page < 1 s, < 200 MB): {'met' if met else 'missed'}; slowest first page {slowest:.2f} s of which startup {startup['seconds']:.2f} s, largest {largest:.0f} MiB"
        + (f", own time at most {own:.3f} s" if own is not None else "")
    )
    if arguments.json:
        print(json.dumps({"database": backend, "reports": arguments.reports, "milestones": milestones, "outbox": mails, "mail_size": arguments.mail_size, "startup": startup, "commands": results, "target_met": met}))


if __name__ == "__main__":
    main()

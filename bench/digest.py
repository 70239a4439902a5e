"""Benchmark (not a test): the daily digest over many open reports.

Fills a fresh database with N open reports (as bench/open_reports.py does, with a subject
and a first message each), each with an `acknowledge` milestone: half of them breached long
ago, half due over the coming weeks. Then times the day's digest (counted in SQL, the
first DIGEST_ITEMS of each list) and prints its time and the size of the mail; then makes
the next day's digest under tracemalloc and prints the most it allocated at once, and the
peak RSS of the process (filling the database included).

    .venv/bin/python bench/digest.py [--reports 100000] [--database-url URL] [--json]

With --json the last line is one JSON object: reports, database, seconds, mail_bytes,
allocated_peak_mib, peak_rss_mib and listed (items per section).
"""

from __future__ import annotations

import json
import resource
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from open_reports import NOW, bench_arguments, example_config, report_rows
from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from mailintake.config.schema import Config
from mailintake.deadlines.closures import effective_calendar
from mailintake.jobs.digest import DIGEST_ITEMS, daily_digest_pass
from mailintake.outbound.notices import Notices
from mailintake.outbound.templates import checked_templates
from mailintake.storage.db import create_database_engine, session_factory, transaction, upgrade_database
from mailintake.storage.models import Message, MilestoneRecord, OutboxMessage, Report

SUBJECTS = ("Stored XSS in the profile page", "IDOR on /api/v2/invoices/{id}", "Open redirect after login", "SQL injection in the search filter")


def digest_report_rows(count: int) -> list[dict[str, object]]:
    rows = report_rows(count)
    for number, row in enumerate(rows):
        row["subject"] = f"{SUBJECTS[number % len(SUBJECTS)]} (case {number})"
        row["envelope_sender"] = f"researcher{number}@reporter.example.org"
    return rows


def milestone_rows(report_ids: list[int]) -> list[dict[str, object]]:
    """Half breached a month ago with their alerts out, half due from now over 30 days."""
    rows = []
    for index, report_id in enumerate(report_ids):
        breached = index % 2 == 0
        due = NOW - timedelta(days=30) if breached else NOW + timedelta(minutes=43 * index % (30 * 24 * 60))
        warn = due - timedelta(hours=4)
        rows.append({"report_id": report_id, "name": "acknowledge", "started_at": due - timedelta(days=1), "computed_due_at": due, "due_at": due, "warn_at": warn, "awaiting": True, "next_alert_at": None if breached else warn})
    return rows


def message_rows(report_ids: list[int]) -> list[dict[str, object]]:
    return [
        {
            "report_id": report_id,
            "direction": "in",
            "from_address": f"researcher{report_id}@reporter.example.org",
            "subject": "report",
            "message_id": f"<r{report_id}@reporter.example.org>",
            "received_at": NOW,
            "body_text": "Steps to reproduce.\n" * 20,
            "raw_sha256": "ab" * 32,
        }
        for report_id in report_ids
    ]


@contextmanager
def database_with_digest_queue(database_url: str | None, count: int) -> Iterator[sessionmaker[Session]]:
    with tempfile.TemporaryDirectory() as directory:
        engine = create_database_engine(database_url or f"sqlite:///{directory}/bench.db")
        upgrade_database(engine)
        sessions = session_factory(engine)
        with transaction(sessions) as session:
            session.execute(insert(Report), digest_report_rows(count))
            report_ids = list(session.scalars(select(Report.id).order_by(Report.id)))
            session.execute(insert(Message), message_rows(report_ids))
            session.execute(insert(MilestoneRecord), milestone_rows(report_ids))
        try:
            yield sessions
        finally:
            engine.dispose()


def main() -> None:
    arguments = bench_arguments(__doc__.splitlines()[0])
    config = example_config()
    # Compiled and checked before the clock starts, as `serve` and the CLI do at start.
    notices = Notices(config, checked_templates(config.templates.dir), config.secrets.reply_key())
    with database_with_digest_queue(arguments.database_url, arguments.reports) as sessions:
        started = time.perf_counter()
        enqueued = digest_at(sessions, config, notices, NOW)
        seconds = time.perf_counter() - started
        with transaction(sessions) as session:
            mail = session.scalar(select(OutboxMessage.content).where(OutboxMessage.kind == "daily_digest"))
        tracemalloc.start()
        enqueued += digest_at(sessions, config, notices, NOW + timedelta(days=1))
        allocated = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    if enqueued != 2 or mail is None:
        raise SystemExit("no digest was enqueued: check digest_time and the calendar of config.example.toml")
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    backend = (arguments.database_url or "sqlite").split(":", 1)[0]
    print(f"open reports: {arguments.reports:,}, half breached, half due over 30 days; database {backend}")
    print(f"daily digest: {seconds * 1000:.1f} ms, mail {len(mail) / 1024:.1f} KiB ({DIGEST_ITEMS} listed per section); allocated at most {allocated / 2**20:.1f} MiB; peak RSS {peak_rss / 1024:.0f} MiB")
    if arguments.json:
        result = {
            "reports": arguments.reports,
            "database": backend,
            "seconds": round(seconds, 4),
            "mail_bytes": len(mail),
            "allocated_peak_mib": round(allocated / 2**20, 1),
            "peak_rss_mib": round(peak_rss / 1024, 1),
            "listed": DIGEST_ITEMS,
        }
        print(json.dumps(result))


def digest_at(sessions: sessionmaker[Session], config: Config, notices: Notices, now: datetime) -> int:
    with transaction(sessions) as session:
        return daily_digest_pass(session, config.scheduler.digest_time, effective_calendar(session, config.calendar), notices, now)


if __name__ == "__main__":
    main()

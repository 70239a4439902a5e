"""Benchmark (not a test): `holidays add` on a database with many open reports.

Fills a fresh database with N open reports received at random moments over the past
year, computes their milestones, then adds a four-day closure starting tomorrow the way the CLI does
(add_closure + recompute_after_change, one transaction) and prints how long that took.

    .venv/bin/python bench/recompute.py [--reports 100000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mailintake.config.loading import load_config  # noqa: E402
from mailintake.deadlines.closures import add_closure, effective_calendar, recompute_after_change  # noqa: E402
from mailintake.deadlines.milestones import refresh_open_reports  # noqa: E402
from mailintake.storage.db import create_database_engine, session_factory, transaction, upgrade_database  # noqa: E402
from mailintake.storage.models import Report  # noqa: E402

SEED = 20261123
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def report_rows(count: int) -> list[dict[str, object]]:
    rng = random.Random(SEED)
    rows = []
    for number in range(1, count + 1):
        received = NOW - timedelta(seconds=rng.randrange(0, 365 * 86400))
        rows.append(
            {
                "tracking_id": f"SEC-{received.year}-{number:06d}",
                "origin_key": f"bench:{number}",
                "status": "new",
                "subject": "",
                "envelope_sender": "",
                "anonymous": False,
                "urls": [],
                "endpoints": [],
                "received_at": received,
                "created_at": received,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=100_000)
    parser.add_argument("--database-url", help="default: a fresh SQLite file in a temporary directory")
    arguments = parser.parse_args()
    config = load_config(Path(__file__).resolve().parent.parent / "config.example.toml", environ={})
    with tempfile.TemporaryDirectory() as directory:
        engine = create_database_engine(arguments.database_url or f"sqlite:///{directory}/bench.db")
        upgrade_database(engine)
        sessions = session_factory(engine)
        with transaction(sessions) as session:
            session.execute(insert(Report), report_rows(arguments.reports))
        started = time.perf_counter()
        with transaction(sessions) as session:
            refresh_open_reports(session, config.sla, effective_calendar(session, config.calendar), NOW)
        initial = time.perf_counter() - started
        started = time.perf_counter()
        with transaction(sessions) as session:
            closure = add_closure(session, date(2026, 11, 24), date(2026, 11, 27), "bench closure", "bench", NOW)
            moved = recompute_after_change(session, config.calendar, config.sla, NOW, closure.first_day)
        recompute = time.perf_counter() - started
        engine.dispose()
    backend = (arguments.database_url or "sqlite").split(":", 1)[0]
    print(f"open reports: {arguments.reports} ({len(config.sla.milestones)} milestones each, policy A, NL calendar), database {backend}")
    print(f"first computation of all milestones: {initial:.1f} s ({arguments.reports / initial:.0f} reports/s)")
    print(f"holidays add (closure from tomorrow) + recompute, one transaction: {recompute:.2f} s; {moved} deadlines moved")
    print("(only reports with a deadline on or after the changed day are recomputed; the rest cannot move)")


if __name__ == "__main__":
    main()

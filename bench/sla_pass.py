"""Benchmark (not a test): one SLA pass over many open reports whose breaches were alerted.

Fills a fresh database with N open reports, each with an `acknowledge` milestone: half of
them breached long ago with their alerts already in the outbox (as the pass leaves them:
no next alert), half due in the coming weeks (next alert at their warning). Then times one
pass at a moment when nothing new is due, the steady state of a neglected queue.

    .venv/bin/python bench/sla_pass.py [--reports 100000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.recompute import NOW, report_rows  # noqa: E402
from mailintake.config.loading import load_config  # noqa: E402
from mailintake.deadlines.closures import effective_calendar  # noqa: E402
from mailintake.jobs.sla_pass import sla_pass  # noqa: E402
from mailintake.outbound.notices import Notices  # noqa: E402
from mailintake.outbound.templates import Templates  # noqa: E402
from mailintake.storage.db import create_database_engine, session_factory, transaction, upgrade_database  # noqa: E402
from mailintake.storage.models import MilestoneRecord, Report  # noqa: E402


def milestone_rows(report_ids: list[int]) -> list[dict[str, object]]:
    rows = []
    for index, report_id in enumerate(report_ids):
        breached = index % 2 == 0
        due = NOW - timedelta(days=30) if breached else NOW + timedelta(days=1 + index % 30)
        warn = due - timedelta(hours=4)
        rows.append(
            {
                "report_id": report_id,
                "name": "acknowledge",
                "started_at": due - timedelta(days=1),
                "computed_due_at": due,
                "due_at": due,
                "warn_at": warn,
                "awaiting": True,
                "next_alert_at": None if breached else warn,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=100_000)
    parser.add_argument("--database-url", help="default: a fresh SQLite file in a temporary directory")
    arguments = parser.parse_args()
    config = load_config(Path(__file__).resolve().parent.parent / "config.example.toml", environ={})
    notices = Notices(config, Templates(config.templates.dir), config.secrets.reply_key())
    with tempfile.TemporaryDirectory() as directory:
        engine = create_database_engine(arguments.database_url or f"sqlite:///{directory}/bench.db")
        upgrade_database(engine)
        sessions = session_factory(engine)
        with transaction(sessions) as session:
            session.execute(insert(Report), report_rows(arguments.reports))
            report_ids = list(session.scalars(select(Report.id).order_by(Report.id)))
            session.execute(insert(MilestoneRecord), milestone_rows(report_ids))
        memory_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        with transaction(sessions) as session:
            enqueued = sla_pass(session, config.sla, effective_calendar(session, config.calendar), notices, NOW)
        seconds = time.perf_counter() - started
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - memory_before
        engine.dispose()
    backend = (arguments.database_url or "sqlite").split(":", 1)[0]
    print(f"open reports: {arguments.reports:,}, half breached and alerted, half due later; database {backend}")
    print(f"one SLA pass (nothing new due): {seconds * 1000:.1f} ms, {len(enqueued)} alerts enqueued, peak RSS grew {grown / 1024:.1f} MiB")


if __name__ == "__main__":
    main()

"""Benchmark (not a test): one SLA pass over many open reports whose breaches were alerted.

Fills a fresh database with N open reports, each with an `acknowledge` milestone: half of
them breached long ago with their alerts already in the outbox (as the pass leaves them:
no next alert), half due in the coming weeks (next alert at their warning). Then times one
pass at a moment when nothing new is due, the steady state of a neglected queue.

    .venv/bin/python bench/sla_pass.py [--reports 100000] [--database-url URL] [--json]
"""

from __future__ import annotations

import json
import resource
import time
from datetime import timedelta

from open_reports import NOW, bench_arguments, database_with_open_reports, example_config
from sqlalchemy import insert, select

from mailintake.deadlines.closures import effective_calendar
from mailintake.jobs.sla_pass import sla_pass
from mailintake.outbound.notices import Notices
from mailintake.outbound.templates import Templates
from mailintake.storage.db import transaction
from mailintake.storage.models import MilestoneRecord, Report


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
    arguments = bench_arguments(__doc__.splitlines()[0])
    config = example_config()
    notices = Notices(config, Templates(config.templates.dir), config.secrets.reply_key())
    with database_with_open_reports(arguments.database_url, arguments.reports) as sessions:
        with transaction(sessions) as session:
            report_ids = list(session.scalars(select(Report.id).order_by(Report.id)))
            session.execute(insert(MilestoneRecord), milestone_rows(report_ids))
        memory_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        with transaction(sessions) as session:
            enqueued = sla_pass(session, config.sla, effective_calendar(session, config.calendar), notices, NOW)
        seconds = time.perf_counter() - started
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - memory_before
    backend = (arguments.database_url or "sqlite").split(":", 1)[0]
    print(f"open reports: {arguments.reports:,}, half breached and alerted, half due later; database {backend}")
    print(f"one SLA pass (nothing new due): {seconds * 1000:.1f} ms, {len(enqueued)} alerts enqueued, peak RSS grew {grown / 1024:.1f} MiB")
    if arguments.json:
        print(json.dumps({"database": backend, "reports": arguments.reports, "seconds": seconds, "enqueued": len(enqueued), "peak_rss_growth_mib": grown / 1024}))


if __name__ == "__main__":
    main()

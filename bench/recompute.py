"""Benchmark (not a test): `holidays add` on a database with many open reports.

Fills a fresh database with N open reports received at random moments over the past
year, computes their milestones, then adds a four-day closure starting tomorrow the way the CLI does
(add_closure + recompute_after_change, one transaction) and prints how long that took.

    .venv/bin/python bench/recompute.py [--reports 100000] [--database-url URL] [--json]
"""

from __future__ import annotations

import json
import time
from datetime import date

from open_reports import NOW, bench_arguments, database_with_open_reports, example_config

from mailintake.deadlines.closures import add_closure, effective_calendar, recompute_after_change
from mailintake.deadlines.milestones import refresh_open_reports
from mailintake.storage.db import transaction


def main() -> None:
    arguments = bench_arguments(__doc__.splitlines()[0])
    config = example_config()
    with database_with_open_reports(arguments.database_url, arguments.reports) as sessions:
        started = time.perf_counter()
        with transaction(sessions) as session:
            refresh_open_reports(session, config.sla, effective_calendar(session, config.calendar), NOW)
        initial = time.perf_counter() - started
        started = time.perf_counter()
        with transaction(sessions) as session:
            closure = add_closure(session, date(2026, 11, 24), date(2026, 11, 27), "bench closure", "bench", NOW)
            moved = recompute_after_change(session, config.calendar, config.sla, NOW, closure.first_day)
        recompute = time.perf_counter() - started
    backend = (arguments.database_url or "sqlite").split(":", 1)[0]
    print(f"open reports: {arguments.reports} ({len(config.sla.milestones)} milestones each, policy A, NL calendar), database {backend}")
    print(f"first computation of all milestones: {initial:.1f} s ({arguments.reports / initial:.0f} reports/s)")
    print(f"holidays add (closure from tomorrow) + recompute, one transaction: {recompute:.2f} s; {moved} deadlines moved")
    print("(only reports with a deadline on or after the changed day are recomputed; the rest cannot move)")
    if arguments.json:
        print(json.dumps({"database": backend, "reports": arguments.reports, "initial_seconds": initial, "recompute_seconds": recompute, "moved": moved}))


if __name__ == "__main__":
    main()

"""Benchmark of the pure business calendar and SLA engine (not a test).

Run: .venv/bin/python bench/deadlines.py [--samples 200000] [--reports 100000] [--json]

(Named deadlines.py, not calendar.py: a bench/calendar.py would shadow the standard
library's `calendar` module for every script in bench/.)
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402
from datetime import UTC, date, datetime, timedelta  # noqa: E402

from mailintake.calendar.business import BusinessCalendar, Closure  # noqa: E402
from mailintake.calendar.durations import Duration, parse_duration  # noqa: E402
from mailintake.sla.policy import Policy, policy_from_mapping  # noqa: E402
from mailintake.sla.schedule import compute_schedule  # noqa: E402

SEED = 20261120
BASE = datetime(2026, 1, 1, tzinfo=UTC)
TEN_YEARS = timedelta(days=3652)
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
OPEN_REPORT_AGE = timedelta(days=90)
THROUGHPUT_SAMPLES = 200_000
OPEN_REPORTS = 100_000
SHUTDOWN = Closure(date(2026, 12, 21), date(2027, 1, 8), "year-end shutdown")
ADDED_CLOSURE = Closure(date(2026, 12, 4), date(2026, 12, 4), "office move")
DURATIONS = tuple(parse_duration(text) for text in ("24 hours", "8 business hours", "3 business days", "10 business days"))
POLICY_A = {
    "acknowledge": {"within": "24 hours", "warn_at": 0.75},
    "assess": {"within": "3 business days", "warn_at": 0.75},
    "update": {"after": "acknowledge", "every": "10 business days", "until": "resolve", "warn_at": 0.8},
    "resolve": {},
    "notify_resolved": {"after": "resolve", "within": "1 business day"},
}

Job = tuple[datetime, Duration]


def nl_calendar(*extra: Closure) -> BusinessCalendar:
    return BusinessCalendar("Europe/Amsterdam", country="NL", closures=(SHUTDOWN, *extra))


def random_moments(rng: random.Random, count: int, start: datetime, span: timedelta) -> list[datetime]:
    seconds = int(span.total_seconds())
    return [start + timedelta(seconds=rng.randrange(seconds)) for _ in range(count)]


def random_jobs(rng: random.Random, moments: list[datetime]) -> list[Job]:
    return [(moment, rng.choice(DURATIONS)) for moment in moments]


def deadlines_of(calendar: BusinessCalendar, jobs: list[Job]) -> list[datetime]:
    return [calendar.add(start, duration) for start, duration in jobs]


def seconds_for_deadlines(calendar: BusinessCalendar, jobs: list[Job]) -> float:
    began = time.perf_counter()
    deadlines_of(calendar, jobs)
    return time.perf_counter() - began


def seconds_to_rebuild_and_recompute(jobs: list[Job]) -> tuple[float, list[datetime]]:
    began = time.perf_counter()
    deadlines = deadlines_of(nl_calendar(ADDED_CLOSURE), jobs)
    return time.perf_counter() - began, deadlines


def seconds_for_schedules(policy: Policy, calendar: BusinessCalendar, jobs: list[Job]) -> float:
    acknowledged = timedelta(hours=2)
    began = time.perf_counter()
    for received, _ in jobs:
        compute_schedule(policy, calendar, received, NOW, {"acknowledge": received + acknowledged})
    return time.perf_counter() - began


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=THROUGHPUT_SAMPLES, help="deadlines computed for the throughput figures")
    parser.add_argument("--reports", type=int, default=OPEN_REPORTS, help="open reports recomputed after a closure is added")
    parser.add_argument("--json", action="store_true", help="print one JSON object of the figures as the last line")
    return parser.parse_args()


def main() -> None:
    options = arguments()
    rng = random.Random(SEED)
    units = ", ".join(str(duration) for duration in DURATIONS)
    print(f"NL calendar (Europe/Amsterdam, Mon-Fri 09:00-17:00, year-end shutdown); durations mixed: {units}")

    spread = random_jobs(rng, random_moments(rng, options.samples, BASE, TEN_YEARS))
    cold = seconds_for_deadlines(nl_calendar(), spread)
    calendar = nl_calendar()
    seconds_for_deadlines(calendar, spread)
    warm = seconds_for_deadlines(calendar, spread)
    print(f"starts spread over 10 years from {BASE.date()}, {options.samples:,} deadlines:")
    print(f"  new calendar (empty caches): {options.samples / cold:>10,.0f} deadlines/s")
    print(f"  warm caches:                 {options.samples / warm:>10,.0f} deadlines/s")

    open_jobs = random_jobs(rng, random_moments(rng, options.reports, NOW - OPEN_REPORT_AGE, OPEN_REPORT_AGE))
    before = deadlines_of(nl_calendar(), open_jobs)
    rebuild, after = seconds_to_rebuild_and_recompute(open_jobs)
    changed = sum(1 for old, new in zip(before, after, strict=True) if old != new)
    print(f"{options.reports:,} open reports received in the 90 days before {NOW.date()}, closure {ADDED_CLOSURE.start} added:")
    print(f"  build new calendar + recompute all deadlines: {rebuild:.3f} s ({changed:,} deadlines moved)")

    policy = policy_from_mapping(POLICY_A)
    schedules = seconds_for_schedules(policy, nl_calendar(ADDED_CLOSURE), open_jobs)
    print(f"  full policy-A schedule at one `now` ({len(policy.milestones)} milestones, warnings): {schedules:.3f} s")
    if options.json:
        figures = {
            "samples": options.samples,
            "cold_per_second": options.samples / cold,
            "warm_per_second": options.samples / warm,
            "reports": options.reports,
            "rebuild_and_recompute_seconds": rebuild,
            "moved": changed,
            "schedules_seconds": schedules,
        }
        print(json.dumps(figures))


if __name__ == "__main__":
    main()

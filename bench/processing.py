"""Benchmark (not a test): stored deliveries into reports, in this process, one parse lane.

Stores N reports of about 6 KB from N researchers (as the listener would), then works them
off with the worker's own round (`service/workers.process_due`, the example config: policy
A deadlines, staff notification and acknowledgement per report) and prints reports/s.
`--profile` prints where the time goes (cProfile, cumulative and own time); `--direct`
parses in this process instead of the bounded parser process.

    .venv/bin/python bench/processing.py [--deliveries 300] [--database-url URL] [--profile] [--direct] [--json]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import tempfile
import time
from datetime import timedelta

from open_reports import NOW, example_config

from mailintake.intake.store import Delivery, store_deliveries
from mailintake.outbound.notices import Notices
from mailintake.outbound.templates import checked_templates
from mailintake.parse.message import ParsedMessage, parse_message
from mailintake.parse.pool import parser_pool_for
from mailintake.pipeline import Parser, Services
from mailintake.service.workers import Claims, process_due
from mailintake.storage.db import create_database_engine, session_factory, upgrade_database

LINE = "The search box reflects its input unescaped; details and a proof of concept follow. "


class InProcess:
    def parse(self, raw: bytes) -> ParsedMessage:
        return parse_message(raw)


def report(number: int) -> bytes:
    headers = f"From: Researcher {number} <r{number}@example.org>\r\nTo: security@example.com\r\nSubject: Finding {number}\r\nMessage-ID: <finding-{number}@example.org>\r\nDate: Mon, 23 Nov 2026 12:00:00 +0000\r\n\r\n"
    return (headers + (LINE * 70)[:5800] + "\r\n").encode()


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=300)
    parser.add_argument("--database-url", help="default: a fresh SQLite file in a temporary directory")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--direct", action="store_true", help="parse in this process (no bounded parser process)")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args()


def main() -> None:
    options = arguments()
    config = example_config()
    with tempfile.TemporaryDirectory() as directory:
        engine = create_database_engine(options.database_url or f"sqlite:///{directory}/processing.db")
        upgrade_database(engine)
        sessions = session_factory(engine)
        store_deliveries(sessions, [Delivery(NOW, "smtp", "127.0.0.1", "bench", f"r{number}@example.org", ("security@example.com",), report(number)) for number in range(options.deliveries)])
        notices = Notices(config, checked_templates(config.templates.dir), config.secrets.reply_key())
        services = Services.from_config(config, notices, dnsfunc=lambda *query, **settings: None)
        parser: Parser = InProcess()
        if not options.direct:
            pool = parser_pool_for(config.intake)
            pool.warm_up()
            parser = pool
        claims = Claims("bench:1", timedelta(minutes=5))
        profile = cProfile.Profile()
        started, done = time.perf_counter(), 0
        if options.profile:
            profile.enable()
        while outcomes := process_due(sessions, [parser], services, lambda: NOW, claims):
            done += len(outcomes)
        profile.disable()
        seconds = time.perf_counter() - started
        engine.dispose()
    backend = (options.database_url or "sqlite").split(":", 1)[0]
    print(f"{done} deliveries into reports in {seconds:.2f} s: {done / seconds:.1f} reports/s ({backend}, one lane, {'in-process parse' if options.direct else 'bounded parser process'})")
    if options.profile:
        pstats.Stats(profile).sort_stats("cumulative").print_stats(40)
        pstats.Stats(profile).sort_stats("tottime").print_stats(20)
    if options.json:
        print(json.dumps({"database": backend, "deliveries": done, "seconds": seconds, "reports_per_second": done / seconds}))


if __name__ == "__main__":
    main()

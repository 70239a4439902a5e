"""What the database benchmarks share: their options, the example config, and a fresh
database filled with N open reports received over the past year. Importing it puts the
repository on sys.path, so the benchmarks import it before mailintake."""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mailintake.config.loading import load_config  # noqa: E402
from mailintake.config.schema import Config  # noqa: E402
from mailintake.storage.db import create_database_engine, session_factory, transaction, upgrade_database  # noqa: E402
from mailintake.storage.models import Report  # noqa: E402

SEED = 20261123
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def bench_arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--reports", type=int, default=100_000)
    parser.add_argument("--database-url", help="default: a fresh SQLite file in a temporary directory")
    parser.add_argument("--json", action="store_true", help="print one JSON object of the figures as the last line (make bench reads it)")
    return parser.parse_args()


def example_config() -> Config:
    return load_config(REPO / "config.example.toml", environ={})


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


@contextmanager
def database_with_open_reports(database_url: str | None, count: int) -> Iterator[sessionmaker[Session]]:
    with tempfile.TemporaryDirectory() as directory:
        engine = create_database_engine(database_url or f"sqlite:///{directory}/bench.db")
        upgrade_database(engine)
        sessions = session_factory(engine)
        with transaction(sessions) as session:
            session.execute(insert(Report), report_rows(count))
        try:
            yield sessions
        finally:
            engine.dispose()

"""Shared fixtures: real databases (SQLite file and, when configured, PostgreSQL) and a
real daemon process on a loopback port."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import uuid4

import pytest
from hypothesis import settings
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from mailintake.storage.db import create_database_engine, session_factory, upgrade_database
from tests.daemon import DaemonProcess, write_config

POSTGRES_ENV = "MAILINTAKE_TEST_DATABASE_URL"

# In CI every property test draws the same examples each run, so a red run is this change's
# doing, not a new draw; run locally (or raise an example count, e.g. HOSTILE_EXAMPLES) to explore.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'mailintake.db'}"
        return
    with postgresql_schema_url("t") as url:
        yield url


@contextmanager
def postgresql_schema_url(prefix: str) -> Iterator[str]:
    """A URL of the test PostgreSQL whose search path is a fresh schema of its own, dropped
    afterwards; skips the test when no PostgreSQL is configured."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"PostgreSQL variant needs {POSTGRES_ENV} (set by .ci/run)")
    schema = f"{prefix}_{uuid4().hex[:16]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield make_url(base).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    finally:
        drop_schema(admin, schema)
        admin.dispose()


def drop_schema(admin: Engine, schema: str, attempts: int = 5) -> None:
    """A test that kills a daemon mid-statement leaves its server process finishing that
    statement; dropping the schema meanwhile can deadlock with it. PostgreSQL aborts one
    side, so try again."""
    for attempt in range(1, attempts + 1):
        try:
            with admin.connect() as connection:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            return
        except OperationalError as error:
            if "deadlock detected" not in str(error) or attempt == attempts:
                raise
            time.sleep(0.2 * attempt)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_database_engine(database_url)
    upgrade_database(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


@pytest.fixture
def daemon_factory(tmp_path: Path, database_url: str, engine: Engine) -> Iterator[Callable[..., DaemonProcess]]:
    started: list[DaemonProcess] = []

    def start(**overrides: object) -> DaemonProcess:
        config_path = write_config(tmp_path / f"config-{len(started)}.toml", database_url, **overrides)
        daemon = DaemonProcess(config_path, tmp_path / f"daemon-{len(started)}.log")
        daemon.start()
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.terminate()

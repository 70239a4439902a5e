"""One daemon per module for the hostile cases that can share it (`stack`), on SQLite and,
when MAILINTAKE_TEST_DATABASE_URL is set, on PostgreSQL. A module configures its daemon
with a STACK_OVERRIDES dict (config sections, as for tests.daemon.write_config)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from uuid import uuid4

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import POSTGRES_ENV, drop_schema
from tests.hostile.helpers import Stack, running_stack


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack_database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('stack-db') / 'mailintake.db'}"
        return
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"PostgreSQL variant needs {POSTGRES_ENV} (set by .ci/run)")
    schema = f"h_{uuid4().hex[:16]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield make_url(base).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    finally:
        drop_schema(admin, schema)
        admin.dispose()


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest, stack_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    overrides = getattr(request.module, "STACK_OVERRIDES", {})
    with running_stack(tmp_path_factory.mktemp("stack"), stack_database_url, **overrides) as running:
        yield running

"""One daemon per module for the hostile cases that can share it (`stack`), on SQLite and,
when MAILINTAKE_TEST_DATABASE_URL is set, on PostgreSQL. A module configures its daemon
with a STACK_OVERRIDES dict (config sections, as for tests.daemon.write_config)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import postgresql_schema_url
from tests.hostile.helpers import Stack, running_stack


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack_database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('stack-db') / 'mailintake.db'}"
        return
    with postgresql_schema_url("h") as url:
        yield url


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest, stack_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    overrides = getattr(request.module, "STACK_OVERRIDES", {})
    with running_stack(tmp_path_factory.mktemp("stack"), stack_database_url, **overrides) as running:
        yield running

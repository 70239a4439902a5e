"""The app context disposes its engine when the command ends: every database connection a
command opened is closed, also when the command fails (an SQLite file and, when
configured, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.pool import Pool

from mailintake.cli import main
from mailintake.cli.context import AppContext
from mailintake.config.loading import load_config
from mailintake.config.schema import Config
from tests.daemon import write_config


class ConnectionLog:
    """Counts DBAPI connections opened and closed by any pool while it listens."""

    def __init__(self) -> None:
        self.opened = 0
        self.closed = 0

    def on_connect(self, dbapi_connection: Any, record: Any) -> None:
        self.opened += 1

    def on_close(self, dbapi_connection: Any, record: Any) -> None:
        self.closed += 1


@pytest.fixture
def connections() -> Iterator[ConnectionLog]:
    log = ConnectionLog()
    event.listen(Pool, "connect", log.on_connect)
    event.listen(Pool, "close", log.on_close)
    yield log
    event.remove(Pool, "connect", log.on_connect)
    event.remove(Pool, "close", log.on_close)


@pytest.fixture
def config_path(tmp_path: Path, database_url: str) -> Path:
    return write_config(tmp_path / "config.toml", database_url)


@pytest.fixture
def config(config_path: Path) -> Config:
    return load_config(config_path)


def test_the_context_closes_the_connections_of_its_engine_at_the_end(config: Config, connections: ConnectionLog) -> None:
    with AppContext(config) as context:
        with context.transaction() as session:
            session.execute(text("SELECT 1"))
        assert connections.opened >= 1 and connections.closed == 0
    assert connections.closed == connections.opened


def test_the_context_closes_them_when_the_command_fails(config: Config, connections: ConnectionLog) -> None:
    with pytest.raises(RuntimeError), AppContext(config) as context:
        with context.transaction() as session:
            session.execute(text("SELECT 1"))
        raise RuntimeError("the command failed")
    assert connections.opened >= 1 and connections.closed == connections.opened


def test_a_context_that_never_touched_the_database_creates_no_engine(config: Config) -> None:
    with AppContext(config) as context:
        pass
    assert "engine" not in vars(context)


def test_commands_leave_no_connection_open(config_path: Path, connections: ConnectionLog, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(config_path), "db", "upgrade"]) == 0
    assert main(["--config", str(config_path), "reports", "list"]) == 0
    assert main(["--config", str(config_path), "reports", "show", "SEC-1999-0001"]) == 2
    assert capsys.readouterr().out == "database is at the current schema version\nno reports\n"
    assert connections.opened >= 3 and connections.closed == connections.opened

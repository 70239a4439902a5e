"""The command line as an admin meets it: one line and exit 2 for every mistake, no traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.daemon import REPO, write_config


def run(*arguments: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    prefix = ["--config", str(config)] if config else []
    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "mailintake", *prefix, *arguments], capture_output=True, text=True, cwd=REPO, env=environment, timeout=60)


def assert_one_line_usage_error(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode == 2, result
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert fragment in result.stderr


@pytest.fixture
def sqlite_config(tmp_path: Path) -> Path:
    return write_config(tmp_path / "config.toml", f"sqlite:///{tmp_path / 'db.sqlite'}")


def test_help_lists_every_command() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("serve", "db", "reports", "inbound"):
        assert command in result.stdout


def test_no_config_is_one_line_and_exit_2() -> None:
    assert_one_line_usage_error(run("reports", "list"), "no config file: pass --config PATH or set MAILINTAKE_CONFIG")


def test_a_bad_config_value_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[intake]\naddresses = ["security@example.com"]\nmax_message_size = "lots"\n')
    assert_one_line_usage_error(run("db", "upgrade", config=config), "[intake] max_message_size: 'lots' is not a size")
    assert not (tmp_path / "var").exists()


def test_an_unknown_command_is_one_line_and_exit_2(sqlite_config: Path) -> None:
    assert_one_line_usage_error(run("reports", "delete", config=sqlite_config), "invalid choice: 'delete'")
    assert_one_line_usage_error(run("inbound", "retry", "abc", config=sqlite_config), "invalid int value: 'abc'")


def test_an_unknown_report_is_one_line_and_exit_2(sqlite_config: Path) -> None:
    assert run("db", "upgrade", config=sqlite_config).returncode == 0
    assert_one_line_usage_error(run("reports", "show", "SEC-1999-0001", config=sqlite_config), "no report with tracking id 'SEC-1999-0001'")


def test_serve_refuses_a_database_that_was_not_upgraded(sqlite_config: Path) -> None:
    assert_one_line_usage_error(run("serve", config=sqlite_config), "run `mailintake db upgrade` first")


def test_serve_reports_a_port_in_use_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path / "config.toml", f"sqlite:///{tmp_path / 'db.sqlite'}", listener={"port": port})
        assert run("db", "upgrade", config=config).returncode == 0
        assert_one_line_usage_error(run("serve", config=config), f"cannot listen on 127.0.0.1:{port}")

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
    assert_one_line_usage_error(run("inbound", "retry", "abc", config=sqlite_config), "'abc' is not an id (a whole number)")


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


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[calendar]\ncountry = "QQ"\n', "[calendar] unknown holiday country 'QQ'"),
        ('[sla.ack]\nwithin = "3 fortnights"\n', "invalid duration '3 fortnights'"),
        ('[sla.a]\nwithin = "1 hours"\nafter = "b"\n[sla.b]\nwithin = "1 hours"\nafter = "a"\n', "cycle"),
        ('[sla.assess]\nwithin = "1 business day"\nafter = "acknowledged"\n', "'acknowledged'"),
    ],
)
def test_calendar_and_policy_mistakes_stop_every_command_with_one_line(tmp_path: Path, extra: str, message: str) -> None:
    config = write_config(tmp_path / "config.toml", f"sqlite:///{tmp_path / 'db.sqlite'}")
    config.write_text(config.read_text() + extra)
    assert_one_line_usage_error(run("db", "upgrade", config=config), message)
    assert not (tmp_path / "db.sqlite").exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [("sqlite://host/db.sqlite", "[database] url cannot be used"), ("sqlite:////proc/no/such/dir/db.sqlite", "cannot create the directory"), ("nosuchdb://x/y", "[database] url cannot be used")],
)
def test_unusable_database_urls_are_one_line(tmp_path: Path, url: str, message: str) -> None:
    config = write_config(tmp_path / "config.toml", url)
    assert_one_line_usage_error(run("db", "upgrade", config=config), message)


def test_serve_refuses_a_broken_template_override_in_one_line(tmp_path: Path) -> None:
    overrides = tmp_path / "my-templates"
    overrides.mkdir()
    (overrides / "acknowledgement.txt.j2").write_text("Subject: [{{ report.tracking_id }}] Thanks\n\n{% if %}\n")
    config = write_config(tmp_path / "config.toml", f"sqlite:///{tmp_path / 'db.sqlite'}", templates={"dir": str(overrides)})
    assert run("db", "upgrade", config=config).returncode == 0
    assert_one_line_usage_error(run("serve", config=config), "acknowledgement.txt.j2")


def test_serve_refuses_to_run_without_a_reply_address_key_outside_dev_mode(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.toml", f"sqlite:///{tmp_path / 'db.sqlite'}", secrets={"token_key": ""})
    assert run("db", "upgrade", config=config).returncode == 0
    assert_one_line_usage_error(run("serve", config=config), "[secrets] token_key is required")

"""No command answers any argument with a traceback: every command of the parser (found by
walking it, so a new command is covered the day it is added) is run in-process through
`main` against a real database with arguments drawn from hostile values, and must end with
exit 0, 1 or 2, print no traceback and never reach the catch-all for defects."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from mailintake.cli import main
from mailintake.cli.main import GROUPS, INTERNAL_ERROR
from mailintake.cli.parser import build_parser
from tests.daemon import write_config

REPO = Path(__file__).resolve().parents[3]
# Long-running by design (they serve until stopped): their arguments are few and parsed by
# argparse alone, which the other commands' runs cover.
NEVER_RETURN = {("serve",), ("work",)}
HOSTILE = (
    "",
    " ",
    "0",
    "-1",
    "1",
    "99999",
    "9" * 40,
    "1e309",
    "nan",
    "-",
    "x",
    "2026-02-30",
    "0001-01-01",
    "9999-12-31",
    "2026-12-07",
    "2026-12-07..2036-12-31",
    "2026-12-31..2026-01-01",
    "2026-12-08T10:00",
    "9999-12-30T16:00",
    "0001-01-01T00:00+14:00",
    "2026-12-08T25:61",
    "SEC-2026-0001",
    "SEC-9999-99999999",
    "3 business days",
    "10000 business days",
    "0 hours",
    "24 hours",
    "\x00",
    "a\r\nb",
    "\u202e\u2028",
    "ü" * 300,
    "../../etc/passwd",
    "%s%n{0}",
    "new",
    "warning",
    "pending",
    "x" * 5000,
)
VALUES = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=40))


def leaf_commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    subparsers = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    if not subparsers:
        yield path, parser
        return
    for name, child in subparsers[0].choices.items():
        yield from leaf_commands(child, (*path, name))


COMMANDS = {path: command for path, command in leaf_commands(build_parser(GROUPS)) if path not in NEVER_RETURN}


@st.composite
def arguments_for(draw: st.DrawFn, command: argparse.ArgumentParser) -> list[str]:
    argv: list[str] = []
    for action in command._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if not action.option_strings:
            count = {None: 1, "?": draw(st.integers(0, 1)), "*": draw(st.integers(0, 2)), "+": draw(st.integers(1, 3))}.get(action.nargs, 1)  # type: ignore[call-overload]
            argv += [draw(VALUES) for _ in range(count)]
        elif draw(st.booleans()):
            option = draw(st.sampled_from(action.option_strings))
            if action.nargs == 0:
                argv.append(option)
            else:
                choices = list(action.choices) if action.choices else []
                argv += [option, draw(st.sampled_from(choices) | VALUES if choices else VALUES)]
    return argv


@pytest.fixture
def config_path(tmp_path: Path, database_url: str, engine: Engine) -> Path:
    return write_config(tmp_path / "config.toml", database_url, extra=(REPO / "presets" / "policy-a.toml").read_text())


def test_every_command_is_reached() -> None:
    assert ("reports", "list") in COMMANDS and ("calendar", "deadline") in COMMANDS and ("holidays", "add") in COMMANDS
    assert len(COMMANDS) >= 17


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=" ".join)
def test_no_command_answers_hostile_arguments_with_a_traceback(path: tuple[str, ...], config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    @settings(max_examples=int(os.environ.get("HOSTILE_EXAMPLES", "25")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(arguments=arguments_for(COMMANDS[path]))
    def run(arguments: list[str]) -> None:
        capsys.readouterr()
        try:
            status = main(["--config", str(config_path), *path, *arguments])
        except SystemExit as exit:
            status = exit.code if isinstance(exit.code, int) else 1
        output = capsys.readouterr()
        assert status in (0, 1, 2), (path, arguments, status)
        assert "Traceback" not in output.err + output.out, (path, arguments)
        assert INTERNAL_ERROR not in output.err, (path, arguments, output.err)
        if status == 2:
            assert len(output.err.strip().splitlines()) == 1, (path, arguments, output.err)

    run()

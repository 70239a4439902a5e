"""The command line is gathered from its group modules: a group written but not registered,
a subcommand without a handler or without help text, fails here."""

from __future__ import annotations

import argparse
import pkgutil
from collections.abc import Iterator
from types import ModuleType

import mailintake.cli
from mailintake.cli.main import GROUPS
from mailintake.cli.parser import build_parser

SUPPORT_MODULES = {"context", "main", "output", "parser"}
COMMANDS = {
    "serve": [],
    "work": [],
    "db": ["upgrade"],
    "reports": ["list", "show", "raw", "attachments"],
    "inbound": ["failed", "retry", "show"],
    "holidays": ["list", "add", "remove", "restore"],
    "calendar": ["show", "deadline", "export"],
    "sla": ["status", "recompute", "check"],
    "outbox": ["list", "flush", "retry"],
}


def subcommands_of(parser: argparse.ArgumentParser) -> argparse._SubParsersAction[argparse.ArgumentParser] | None:
    return next((action for action in parser._actions if isinstance(action, argparse._SubParsersAction)), None)


def commands_with_help(parser: argparse.ArgumentParser) -> list[tuple[str, str | None, argparse.ArgumentParser]]:
    """(name, help text, parser) of each command directly below `parser`, in help order."""
    action = subcommands_of(parser)
    assert action is not None
    helps = {choice.dest: choice.help for choice in action._choices_actions}
    return [(name, helps.get(name), command) for name, command in action.choices.items()]


def leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    for name, _, command in commands_with_help(parser):
        if subcommands_of(command) is None:
            yield path + (name,), command
        else:
            yield from leaves(command, path + (name,))


def short_name(group: object) -> str:
    assert isinstance(group, ModuleType)
    return group.__name__.rpartition(".")[2]


def test_every_module_of_the_cli_package_is_a_registered_group_or_a_support_module() -> None:
    modules = {module.name for module in pkgutil.iter_modules(mailintake.cli.__path__)}
    assert modules - SUPPORT_MODULES == {short_name(group) for group in GROUPS}


def test_each_group_module_adds_the_command_of_its_name() -> None:
    for group in GROUPS:
        assert [name for name, _, _ in commands_with_help(build_parser((group,)))] == [short_name(group)]


def test_the_commands_and_their_order_are_those_users_rely_on() -> None:
    parser = build_parser(GROUPS)
    tree = {name: [sub for sub, _, _ in commands_with_help(command)] if subcommands_of(command) else [] for name, _, command in commands_with_help(parser)}
    assert list(tree.items()) == list(COMMANDS.items())


def test_every_command_and_subcommand_has_help_text() -> None:
    parser = build_parser(GROUPS)
    for name, help_text, command in commands_with_help(parser):
        assert help_text, name
        if subcommands_of(command) is not None:
            for sub, sub_help, _ in commands_with_help(command):
                assert sub_help, (name, sub)


def test_every_subcommand_has_a_handler_defined_in_its_group_module() -> None:
    parser = build_parser(GROUPS)
    found = list(leaves(parser))
    assert len(found) == sum(max(len(subs), 1) for subs in COMMANDS.values())
    for path, command in found:
        handler = command.get_default("handler")
        assert callable(handler), path
        assert handler.__module__ == f"mailintake.cli.{path[0]}", path


def test_only_subcommands_carry_a_handler() -> None:
    parser = build_parser(GROUPS)
    assert parser.get_default("handler") is None
    for name, _, command in commands_with_help(parser):
        if subcommands_of(command) is not None:
            assert command.get_default("handler") is None, name

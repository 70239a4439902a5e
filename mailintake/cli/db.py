"""db: administration of the database schema."""

from __future__ import annotations

import argparse

from mailintake.cli.context import AppContext
from mailintake.cli.parser import Subcommands, add_command, add_group
from mailintake.storage.db import upgrade_database


def add_to(commands: Subcommands) -> None:
    db = add_group(commands, "db", "database administration")
    add_command(db, "upgrade", "create or migrate the database schema to the current version", upgrade)


def upgrade(arguments: argparse.Namespace, context: AppContext) -> int:
    upgrade_database(context.engine)
    print("database is at the current schema version")
    return 0

"""What a command works with, built once from the config: the database engine and its
sessions, the effective business calendar, the clock and the outbound notices. Used as a
context manager, it disposes the engine when the command ends."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from mailintake.calendar.business import BusinessCalendar
from mailintake.cli.parser import UsageError, moment_in
from mailintake.config.schema import Config
from mailintake.core.clock import Clock, utc_now
from mailintake.deadlines.closures import effective_calendar
from mailintake.outbound.templates import TemplateError, checked_templates
from mailintake.storage.db import create_database_engine, session_factory, transaction

if TYPE_CHECKING:
    from mailintake.outbound.notices import Notices


class AppContext:
    """Each part is built on first use: `serve` and `calendar deadline` need different parts,
    and a command that fails on its arguments has touched nothing."""

    def __init__(self, config: Config, clock: Clock = utc_now, config_path: Path | None = None) -> None:
        self.config = config
        self.clock = clock
        # Where the config was read from: `serve` starts its worker processes with it.
        self.config_path = config_path

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None) -> None:
        if "engine" in vars(self):
            self.engine.dispose()

    @cached_property
    def engine(self) -> Engine:
        return create_database_engine(self.config.database.url)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return session_factory(self.engine)

    def transaction(self) -> AbstractContextManager[Session]:
        return transaction(self.sessions)

    @cached_property
    def calendar(self) -> BusinessCalendar:
        """The configured calendar with the admin's closures and worked holidays. It is read
        in a transaction of its own: take it before opening another (on SQLite, a second
        transaction waits for the first's write lock)."""
        with self.transaction() as session:
            return effective_calendar(session, self.config.calendar)

    def moment(self, text: str, option: str) -> datetime:
        """The moment an option gives; without an offset it is wall time in the calendar's zone."""
        return moment_in(self.calendar, text, option)

    @cached_property
    def notices(self) -> Notices:
        from mailintake.outbound.notices import Notices  # what sends mail is imported by the commands that send

        try:
            templates = checked_templates(self.config.templates.dir)
        except TemplateError as error:
            raise UsageError(str(error)) from None
        return Notices(self.config, templates, self.config.secrets.reply_key())

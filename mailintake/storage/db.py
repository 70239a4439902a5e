"""Engine creation, sessions and migrations for SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

SQLITE_BUSY_TIMEOUT_SECONDS = 30
CONNECT_TIMEOUT_SECONDS = 10


class DatabaseUrlError(ValueError):
    """The configured database URL cannot be used."""


def create_database_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            return sqlite_engine(url, parsed.database)
        connect_args = {"connect_timeout": CONNECT_TIMEOUT_SECONDS} if parsed.get_backend_name() == "postgresql" else {}
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10, connect_args=connect_args)
    except DatabaseUrlError:
        raise
    except (ArgumentError, ModuleNotFoundError, ValueError) as error:
        raise DatabaseUrlError(f"[database] url cannot be used ({type(error).__name__}); expected e.g. sqlite:///var/mailintake.db or postgresql+psycopg://user@host/db") from None


def sqlite_engine(url: str, database: str | None) -> Engine:
    if database and database != ":memory:":
        try:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DatabaseUrlError(f"[database] url: cannot create the directory of {database} ({error.strerror or type(error).__name__})") from None
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})

    @event.listens_for(engine, "connect")
    def configure_connection(dbapi_connection: Any, record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (see "begin" below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def begin_immediately(connection: Any) -> None:
        # Take the write lock at BEGIN so the busy timeout applies, instead of failing
        # with SQLITE_BUSY when a read transaction later tries to write.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
    with sessions() as session, session.begin():
        yield session


def insert_ignoring_conflicts(session: Session, table: Any, values: dict[str, Any]) -> bool:
    """INSERT … ON CONFLICT DO NOTHING on both supported backends; True if a row was added."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        statement = postgresql.insert(table).values(**values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        statement = sqlite.insert(table).values(**values).on_conflict_do_nothing()
    else:
        statement = insert(table).values(**values)
    # RETURNING says reliably whether a row went in; rowcount does not on every driver.
    return session.execute(statement.returning(*table.primary_key.columns)).first() is not None


def migrations_directory() -> Path:
    package = Path(__file__).resolve().parents[1]
    for candidate in (package.parent / "migrations", package / "_migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError("the Alembic migrations directory is missing from this installation")


# Alembic is imported where it is used: most commands never migrate, and it costs every
# command's start (a worker process's too) a noticeable part of a second.
def alembic_config(engine: Engine) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(migrations_directory()))
    config.attributes["engine"] = engine
    return config


def upgrade_database(engine: Engine, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def database_is_current(engine: Engine) -> bool:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision() == head

"""Alembic environment: mailintake passes its engine in; `alembic` on the command line reads
MAILINTAKE_DATABASE_URL (see alembic.ini)."""

import os

from alembic import context

from mailintake.storage.db import create_database_engine
from mailintake.storage.models import Base

config = context.config
target_metadata = Base.metadata


def engine_for_run():
    engine = config.attributes.get("engine")
    if engine is not None:
        return engine
    return create_database_engine(os.environ.get("MAILINTAKE_DATABASE_URL", "sqlite:///var/mailintake.db"))


def run_migrations_online() -> None:
    with engine_for_run().connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()

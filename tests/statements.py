"""Counting the statements SQL sends: the tests that say a query costs a fixed number of
statements, whatever the size of the queue, count with this."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, event


@contextmanager
def counted_statements(target: Engine | type[Engine] = Engine) -> Iterator[list[str]]:
    """Every statement `target` sends meanwhile (default: every engine, for a command that builds its own)."""
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(target, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(target, "before_cursor_execute", count)

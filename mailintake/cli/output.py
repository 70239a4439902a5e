"""What commands print: listings as lines or JSON, text from outside made terminal-safe.

A paged listing (`--limit`, `--after`) reads its rows in short transactions of at most
STREAM_BATCH and prints them as they come, so neither memory nor a lock grows with the
table; a full page ends with the `--after` value that continues it.
"""

from __future__ import annotations

import argparse
import json
import sys
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from typing import Any

# Rows a listing shows unless --limit says otherwise (text; --json lists all unless told).
DEFAULT_PAGE = 100
# Rows read in one transaction when a listing streams.
STREAM_BATCH = 1000


def print_listing(items: list[dict[str, Any]], as_json: bool, line: Callable[[dict[str, Any]], str], empty: str) -> int:
    if as_json:
        print_json(items)
        return 0
    for item in items:
        show(line(item))
    if not items:
        print(empty)
    return 0


def show(text: str = "") -> None:
    """Print text from outside (subjects, bodies, names) with control characters made
    visible, so a report cannot drive the admin's terminal (escape sequences)."""
    print(terminal_safe(text))


def terminal_safe(text: str) -> str:
    return "".join(character if character in "\n\t" or unicodedata.category(character) not in ("Cc", "Cf") else f"\\u{ord(character):04x}" for character in text)


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


# --- paged listings ---------------------------------------------------------------------


@dataclass(frozen=True)
class Listed:
    """One row of a listing and the --after value that continues after it."""

    item: dict[str, Any]
    after: str


# (after, at most how many) -> the next rows in the listing's order, read in one transaction.
Fetch = Callable[[str | None, int], list[Listed]]


def add_paging_options(command: argparse.ArgumentParser, after_metavar: str, after_help: str) -> None:
    command.add_argument(
        "--limit",
        type=page_size,
        metavar="N",
        help=f"show at most N rows (default {DEFAULT_PAGE}; with --json every row unless given); 0: every row, read {STREAM_BATCH:,} at a time. A full page ends with the --after that shows the next",
    )
    command.add_argument("--after", metavar=after_metavar, help=after_help)


def page_size(text: str) -> int:
    try:
        size = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of rows") from None
    if size < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a number of rows is 0 (all) or more")
    return size


def print_paged_listing(fetch: Fetch, arguments: argparse.Namespace, line: Callable[[dict[str, Any]], str], empty: str) -> int:
    """Text: one line a row, then `… more: --after X` if the page is full and more follow.
    JSON without --limit and --after: the list of every row, as before paging existed;
    with either: {"items": [...], "next_after": X or null}."""
    limit = arguments.limit if arguments.limit is not None else (0 if arguments.json else DEFAULT_PAGE)
    page = Page(first_batch_read(rows_after(fetch, arguments.after, limit)), limit)
    if arguments.json and arguments.limit is None and arguments.after is None:
        print_json_stream(row.item for row in page)
    elif arguments.json:
        sys.stdout.write('{\n  "items": ')
        print_json_stream((row.item for row in page), indent="  ", end="")
        sys.stdout.write(f',\n  "next_after": {json.dumps(page.next_after)}\n}}\n')
    else:
        for row in page:
            show(line(row.item))
        if page.shown == 0:
            print(empty if arguments.after is None else f"nothing after {arguments.after}")
        if page.next_after is not None:
            print(f"… more: --after {page.next_after}")
    return 0


def rows_after(fetch: Fetch, after: str | None, limit: int) -> Iterator[Listed]:
    """The rows after `after`, at most limit + 1 (0: all), read STREAM_BATCH at a time:
    the row past the limit only tells that more follow."""
    wanted = None if limit == 0 else limit + 1
    taken = 0
    while wanted is None or taken < wanted:
        size = STREAM_BATCH if wanted is None else min(STREAM_BATCH, wanted - taken)
        batch = fetch(after, size)
        yield from batch
        taken += len(batch)
        if len(batch) < size:
            return
        after = batch[-1].after


def first_batch_read(rows: Iterator[Listed]) -> Iterator[Listed]:
    """The rows, the first batch read now: a bad --after fails before anything is printed."""
    first = next(rows, None)
    return iter(()) if first is None else chain((first,), rows)


class Page:
    """Iterates at most `limit` rows (0: all); afterwards `next_after` is the --after of
    the last row shown if more follow, else None."""

    def __init__(self, rows: Iterator[Listed], limit: int) -> None:
        self.rows = rows
        self.limit = limit
        self.shown = 0
        self.next_after: str | None = None

    def __iter__(self) -> Iterator[Listed]:
        last: Listed | None = None
        for row in self.rows:
            if self.limit and self.shown == self.limit:
                assert last is not None
                self.next_after = last.after
                return
            self.shown += 1
            last = row
            yield row


def print_json_stream(items: Iterable[Any], indent: str = "", end: str = "\n") -> None:
    """The same text as print_json(list(items)) (nested `indent` deep), written as the
    items come: a listing of 100,000 rows never holds them all. Split at "\\n" only:
    JSON escapes it inside strings, not U+2028 and the other line breaks."""
    write = sys.stdout.write
    first = True
    for item in items:
        write("[\n" if first else ",\n")
        write("\n".join(indent + "  " + text for text in json.dumps(item, indent=2, ensure_ascii=False).split("\n")))
        first = False
    write(("[]" if first else f"\n{indent}]") + end)

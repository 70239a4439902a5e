"""What commands print: listings as lines or JSON, text from outside made terminal-safe,
and stored bytes written out (raw mail, attachments) to files only their owner can read.

A paged listing (`--limit`, `--after`) reads its rows in short transactions of at most
STREAM_BATCH and prints them as they come, so neither memory nor a lock grows with the
table; a full page ends with the `--after` value that continues it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any, BinaryIO

from mailintake.cli.parser import shown

# Rows a listing shows unless --limit says otherwise (text; --json lists all unless told).
DEFAULT_PAGE = 100
# Rows read in one transaction when a listing streams.
STREAM_BATCH = 1000
# Unicode categories of what terminal_safe escapes: controls, format characters (bidi
# overrides and isolates, zero widths), surrogates, line and paragraph separators.
UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


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


def terminal_safe(text: str, keep: str = "\n\t") -> str:
    """The text with every control character but those in `keep` written as an escape
    (`\\u202e`): C0 and C1 controls, a CR that does not end a line, invisible format
    characters (bidi overrides and isolates, zero widths), the Unicode line and paragraph
    separators and lone surrogates. A CRLF, the line break of mail, is read as a line break."""
    if "\n" in keep:
        text = text.replace("\r\n", "\n")
    return "".join(character if character in keep or unicodedata.category(character) not in UNSAFE_CATEGORIES else escaped(character) for character in text)


def one_line(text: str) -> str:
    """terminal_safe on one line: line breaks escaped too."""
    return terminal_safe(text, keep="\t")


def escaped(character: str) -> str:
    code = ord(character)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


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


# --- stored bytes written out: raw mail and attachments ------------------------------------

# Longest file name written, in UTF-8 bytes: room under the usual 255 for a "-NNN" suffix.
MAX_FILE_NAME_BYTES = 200
# Numbered names tried for one attachment before giving up (name, name-2 … name-999).
MAX_NAME_SUFFIX = 999
# Names Windows reserves for devices, whatever their extension (a directory may be a share).
RESERVED_NAMES = frozenset({"CON", "PRN", "AUX", "NUL", *(f"COM{digit}" for digit in range(1, 10)), *(f"LPT{digit}" for digit in range(1, 10))})


class FileRefused(Exception):
    """A file the command will not or cannot write; its message is one line without content."""


def write_bytes_out(data: bytes, path: str | None, overwrite: bool) -> None:
    """The bytes exactly, to stdout (never to a terminal: they can drive it) or, for a
    path, to a new file only its owner can read (an existing one only when `overwrite`)."""
    if path is None or path == "-":
        if sys.stdout.isatty():
            raise FileRefused("raw mail is not written to a terminal: give -o FILE or pipe it")
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    elif overwrite:
        replace_private_file(Path(path), data)
    else:
        with new_private_file(Path(path)) as file:
            file.write(data)


def new_private_file(path: Path) -> BinaryIO:
    """A file created now, mode 0600, open for reading and writing; never an existing file
    and never through a symbolic link."""
    try:
        return created_private_file(path)
    except FileExistsError:
        raise FileRefused(f"{shown(str(path))} exists (--force overwrites it)") from None
    except OSError as error:
        raise FileRefused(f"cannot create {shown(str(path))}: {error.strerror}") from None


def created_private_file(path: Path) -> BinaryIO:
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    os.fchmod(descriptor, 0o600)
    return os.fdopen(descriptor, "w+b")


def replace_private_file(path: Path, data: bytes) -> None:
    """Write beside the target, then rename over it: the old file (or a symbolic link in
    its place) is replaced, never written through."""
    if path.is_dir():
        raise FileRefused(f"{shown(str(path))} is a directory")
    try:
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".mailintake-")
    except OSError as error:
        raise FileRefused(f"cannot write in {shown(str(path.parent))}: {error.strerror}") from None
    try:
        with os.fdopen(descriptor, "wb") as file:
            os.fchmod(file.fileno(), 0o600)
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def saved_attachment(directory: Path, name: str, content: bytes) -> tuple[Path, str]:
    """The attachment written under a safe form of `name` in `directory` (numbered while
    that name is taken), and the sha256 of the bytes read back from the file. Messages
    never carry the name: it is report content."""
    root = directory.resolve()
    base = safe_file_name(name)
    for number in range(1, MAX_NAME_SUFFIX + 1):
        target = root / numbered_name(base, number)
        if target.is_symlink() or target.exists():
            continue
        if target.resolve().parent != root:
            raise FileRefused("an attachment's name leads out of the directory")
        try:
            file = created_private_file(target)
        except FileExistsError:
            continue
        except OSError as error:
            raise FileRefused(f"cannot create a file in {shown(str(directory))}: {error.strerror}") from None
        with file:
            file.write(content)
            file.flush()
            file.seek(0)
            return target, hashlib.file_digest(file, "sha256").hexdigest()
    raise FileRefused(f"no free name for an attachment in {shown(str(directory))} (tried {MAX_NAME_SUFFIX} numbers)")


def safe_file_name(name: str) -> str:
    """A name from a mail made harmless as a file name: the last path component (either
    slash), control and format characters as "_", no leading dots or spaces (nothing hidden,
    never "." or ".."), no trailing ones, device names prefixed, at most MAX_FILE_NAME_BYTES."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join("_" if unicodedata.category(character) in UNSAFE_CATEGORIES else character for character in base).strip(". ")
    if not cleaned:
        return "attachment"
    if cleaned.split(".", 1)[0].rstrip(" ").upper() in RESERVED_NAMES:
        cleaned = "_" + cleaned
    return shortened(cleaned)


def shortened(name: str) -> str:
    """At most MAX_FILE_NAME_BYTES of UTF-8, the extension kept when it is short."""
    if len(name.encode()) <= MAX_FILE_NAME_BYTES:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension) > 16:
        stem, extension = name, ""
    suffix = f".{extension}" if extension else ""
    budget = MAX_FILE_NAME_BYTES - len(suffix.encode())
    return stem.encode()[:budget].decode("utf-8", "ignore").rstrip(". ") + suffix


def numbered_name(name: str, number: int) -> str:
    """name, then name-2.ext, name-3.ext … (before the extension)."""
    if number == 1:
        return name
    stem, dot, extension = name.rpartition(".")
    return f"{stem}-{number}.{extension}" if dot and stem else f"{name}-{number}"

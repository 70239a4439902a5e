"""Header section of a raw message: line endings as the MTA split them, header values
decoded for people, the message's identity across deliveries, and the signals that a
machine sent it. Pure: no database, no clock."""

from __future__ import annotations

import email.message
import hashlib
import re
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.header import Header, decode_header, make_header
from email.utils import parsedate_to_datetime

LINE_ENDING = re.compile(rb"\r\n|\r|\n")
BARE_LINE_BREAK = re.compile(rb"\r(?!\n)|(?<!\r)\n")
MESSAGE_ID = re.compile(r"<([\x21-\x3b\x3d\x3f-\x7e]{1,500})>")
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
MAX_SUBJECT_LENGTH = 2000
LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8}){0,2}")
# Headers an MTA adds per delivery; left out of the content fingerprint so that one
# message delivered once per recipient address is recognised as the same message.
TRACE_HEADERS = frozenset({"received", "return-path", "delivered-to", "x-original-to", "x-envelope-to", "envelope-to", "authentication-results", "arc-authentication-results", "x-spam-status", "x-spam-score", "received-spf"})


def normalized_line_endings(raw: bytes) -> bytes:
    """The message with its header lines as the MTA in front split them: at CRLF only. A
    bare CR or LF inside the header section is data, so it becomes a space and can never
    start a header of its own (a trusted Authentication-Results hidden behind a bare CR in
    an innocent header passes the MX untouched). Body line breaks all become CRLF. A message
    with no CRLF at all (a file, a Unix tool) uses LF as its line break."""
    if b"\r\n" not in raw:
        raw = raw.replace(b"\n", b"\r\n")
    head, separator, body = raw.partition(b"\r\n\r\n")
    return BARE_LINE_BREAK.sub(b" ", head) + separator + LINE_ENDING.sub(b"\r\n", body)


def has_bare_line_break_in_header(raw: bytes) -> bool:
    if b"\r\n" not in raw:
        return b"\r" in raw.partition(b"\n\n")[0]
    return BARE_LINE_BREAK.search(raw.partition(b"\r\n\r\n")[0]) is not None


def origin_key(normalized: bytes, message_id: str | None, from_address: str) -> str:
    """The identity of a message across deliveries: its content without per-delivery trace
    headers, plus Message-ID and author. A different message reusing a Message-ID (a form
    mailer's counter, a forger) is therefore a different report, never a silent duplicate."""
    identity = f"{message_id or ''}\0{from_address}\0{content_fingerprint(normalized)}"
    return "origin:" + hashlib.sha256(identity.encode("utf-8", "surrogateescape")).hexdigest()


def content_fingerprint(normalized: bytes) -> str:
    head, separator, body = normalized.partition(b"\r\n\r\n")
    kept = [field_ for field_ in header_fields(head) if field_.split(b":", 1)[0].strip().lower().decode("ascii", "replace") not in TRACE_HEADERS]
    return hashlib.sha256(b"\r\n".join(kept) + separator + body).hexdigest()


def header_fields(head: bytes) -> list[bytes]:
    fields: list[bytes] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\r\n" + line
        else:
            fields.append(line)
    return fields


def header_text(value: object) -> str:
    """A header's raw text as str, with raw 8-bit bytes (RFC 6532) read as UTF-8."""
    if value is None:
        return ""
    if isinstance(value, Header):
        return "".join(part.decode("utf-8", "replace") if isinstance(part, bytes) else part for part, _ in decode_header(value))
    return str(value).encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def decoded_header(value: object) -> str:
    """RFC 2047 encoded words decoded; raw 8-bit bytes read as UTF-8; never raises."""
    text = header_text(value)
    try:
        return str(make_header(decode_header(text)))
    except (HeaderParseError, LookupError, UnicodeError, ValueError):
        return text


def storable_text(value: str) -> str:
    """Text every database stores: undecodable bytes (surrogate escapes) become U+FFFD, NUL goes."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace").replace("\x00", "")


def single_line(value: str) -> str:
    return " ".join(CONTROL_CHARACTERS.sub(" ", storable_text(value)).split())


def first_message_id(value: object) -> str | None:
    match = MESSAGE_ID.search(header_text(value))
    return None if match is None else match.group(1)


def date_of(value: object) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(header_text(value))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        return None


def language_of(headers: email.message.Message) -> str | None:
    """The reporter's language tag from Content-Language or Accept-Language (first entry)."""
    for name in ("Content-Language", "Accept-Language"):
        first = header_text(headers.get(name)).split(",")[0].split(";")[0].strip()
        if LANGUAGE_TAG.fullmatch(first):
            return first.lower()
    return None


def automation_signals(headers: email.message.Message) -> tuple[str, ...]:
    """Headers saying a machine sent this (RFC 3834, RFC 2369, RFC 3462, Microsoft's own)."""
    signals = []
    auto_submitted = single_line(header_text(headers.get("Auto-Submitted"))).lower()
    if auto_submitted and auto_submitted.split(";")[0].strip() != "no":
        signals.append(f"Auto-Submitted: {auto_submitted[:60]}")
    precedence = single_line(header_text(headers.get("Precedence"))).lower()
    if precedence in ("bulk", "junk", "list"):
        signals.append(f"Precedence: {precedence}")
    for name in ("List-Id", "List-Unsubscribe", "X-Auto-Response-Suppress"):
        if headers.get(name) is not None:
            signals.append(name)
    if headers.get_content_type() == "multipart/report":
        signals.append("Content-Type: multipart/report")
    signals += [f"X-Loop: {single_line(header_text(value))[:254]}" for value in headers.get_all("X-Loop", [])]
    return tuple(signals)

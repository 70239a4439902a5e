"""Raw RFC 5322 bytes → ParsedMessage, with mail-parser. Pure: no database, no clock.

Runs inside the bounded parser pool (parser_pool.py) because CPython's email parser has
super-linear cases; everything returned is plain picklable data.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import mailparser
from inscriptis import get_text

from mailintake.addresses import header_addresses
from mailintake.extraction import ReporterStatements, reporter_statements

LINE_ENDING = re.compile(rb"\r\n|\r|\n")
MESSAGE_ID = re.compile(r"<([^<>\s]{1,500})>")
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
MAX_FILENAME_LENGTH = 255
MAX_SUBJECT_LENGTH = 2000
# Headers an MTA adds per delivery; left out of the content fingerprint so that one
# message delivered once per recipient address is recognised as the same message.
TRACE_HEADERS = frozenset(
    {"received", "return-path", "delivered-to", "x-original-to", "x-envelope-to", "envelope-to", "authentication-results", "arc-authentication-results", "x-spam-status", "x-spam-score", "received-spf"}
)


@dataclass(frozen=True)
class ParsedAttachment:
    filename: str
    content_type: str
    content: bytes

    @property
    def size(self) -> int:
        return len(self.content)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass(frozen=True)
class ParsedMessage:
    origin_key: str
    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    subject: str
    from_name: str
    from_address: str
    to_addresses: tuple[str, ...]
    date: datetime | None
    body_text: str
    body_from_html: bool
    attachments: tuple[ParsedAttachment, ...]
    statements: ReporterStatements
    defects: tuple[str, ...] = field(default_factory=tuple)


def parse_message(raw: bytes) -> ParsedMessage:
    normalized = normalized_line_endings(raw)
    mail = mailparser.parse_from_bytes(normalized)
    headers = mail.message
    from_name, from_address = first_address(headers.get_all("From", []))
    message_id = first_message_id(headers.get("Message-ID"))
    body_text, from_html = body_text_of(mail)
    return ParsedMessage(
        origin_key=origin_key(normalized, message_id, from_address),
        message_id=message_id,
        in_reply_to=first_message_id(headers.get("In-Reply-To")),
        references=tuple(MESSAGE_ID.findall(header_text(headers.get("References")))),
        subject=single_line(mail.subject or "")[:MAX_SUBJECT_LENGTH],
        from_name=single_line(from_name),
        from_address=from_address,
        to_addresses=tuple(address for value in headers.get_all("To", []) + headers.get_all("Cc", []) for _, address in header_addresses(header_text(value))),
        date=date_of(headers.get("Date")),
        body_text=body_text,
        body_from_html=from_html,
        attachments=tuple(attachment_of(item) for item in mail.attachments),
        statements=reporter_statements(body_text),
        defects=tuple(sorted(set(mail.defects_categories))),
    )


def normalized_line_endings(raw: bytes) -> bytes:
    """Every bare CR or LF becomes CRLF, so every reader of the message sees the same header lines."""
    return LINE_ENDING.sub(b"\r\n", raw)


def origin_key(normalized: bytes, message_id: str | None, from_address: str) -> str:
    """The identity of a message across deliveries: Message-ID and author, else its content."""
    if message_id:
        digest = hashlib.sha256(f"{message_id}\0{from_address}".encode("utf-8", "surrogateescape")).hexdigest()
        return f"mid:{digest}"
    return f"content:{content_fingerprint(normalized)}"


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
    return "" if value is None else str(value)


def storable_text(value: str) -> str:
    """Text every database stores: undecodable bytes (surrogate escapes) become U+FFFD, NUL goes."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace").replace("\x00", "")


def single_line(value: str) -> str:
    return " ".join(CONTROL_CHARACTERS.sub(" ", storable_text(value)).split())


def first_address(values: list[object]) -> tuple[str, str]:
    for value in values:
        pairs = header_addresses(header_text(value))
        if pairs:
            return pairs[0]
    return "", ""


def first_message_id(value: object) -> str | None:
    match = MESSAGE_ID.search(header_text(value))
    if match is None or not match.group(1).isascii():
        return None
    return match.group(1)


def date_of(value: object) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(header_text(value))
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def body_text_of(mail: mailparser.MailParser) -> tuple[str, bool]:
    plain = [part for part in mail.text_plain if part.strip()]
    if plain:
        return storable_text("\n\n".join(plain)), False
    html = [part for part in mail.text_html if part.strip()]
    if html:
        return storable_text("\n\n".join(get_text(part).strip() for part in html)), True
    return "", False


def attachment_of(item: dict[str, object]) -> ParsedAttachment:
    return ParsedAttachment(
        filename=safe_filename(str(item.get("filename") or "unnamed")),
        content_type=single_line(str(item.get("mail_content_type") or "application/octet-stream")).lower()[:255],
        content=attachment_content(item),
    )


def attachment_content(item: dict[str, object]) -> bytes:
    payload = item.get("payload") or ""
    if isinstance(payload, bytes):
        return payload
    text = str(payload)
    if item.get("binary"):
        try:
            return base64.b64decode(text)
        except (binascii.Error, ValueError):
            return text.encode("utf-8", "surrogateescape")
    return text.encode("utf-8", "surrogateescape")


def safe_filename(name: str) -> str:
    """Display name of an attachment: no control characters, no directories."""
    cleaned = single_line(name).replace("\\", "/").rsplit("/", 1)[-1].strip(". ")
    return (cleaned or "unnamed")[:MAX_FILENAME_LENGTH]

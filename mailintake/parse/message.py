"""Raw RFC 5322 bytes → ParsedMessage, with mail-parser. Pure: no database, no clock.

Runs inside the bounded parser pool (pool.py) because CPython's email parser has
super-linear cases; everything returned is plain picklable data. The header section is
read by headers.py, the body by body.py (and tnef.py), within the limits of limits.py.
"""

from __future__ import annotations

import email.message
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from email.parser import BytesParser
from typing import TypeVar

import mailparser

from mailintake.core.addresses import header_addresses, single_sender
from mailintake.parse.body import BodyFacts, ParsedAttachment, attachment_of, chosen_body_text, decoded_budget, decoded_text, first_own_text, own_attachment_digests, safe_filename, within_budget
from mailintake.parse.headers import (
    MAX_SUBJECT_LENGTH,
    MESSAGE_ID,
    automation_signals,
    date_of,
    decoded_header,
    first_message_id,
    has_bare_line_break_in_header,
    header_text,
    language_of,
    normalized_line_endings,
    origin_key,
    single_line,
    storable_text,
)
from mailintake.parse.limits import DEFAULT_LIMITS, ParseLimits, shape_of
from mailintake.parse.statements import ReporterStatements, reporter_statements
from mailintake.parse.tnef import with_tnef_unpacked

MAX_RECIPIENTS = 200
MAX_REFERENCES = 100
RAW_ONLY_HEAD_BYTES = 65_536
RAW_ONLY_BODY_BYTES = 20_000
T = TypeVar("T")


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
    automation_signals: tuple[str, ...] = field(default_factory=tuple)
    language: str | None = None
    # What the author wrote themselves: the first text part (or the text of its HTML
    # alternative), never a forwarded message, a further text part or an attachment.
    own_text: str = ""
    # sha256 of the author's own attached files: not inside a forwarded message.
    own_attachments: frozenset[str] = frozenset()


def parse_message(raw: bytes, limits: ParseLimits = DEFAULT_LIMITS) -> ParsedMessage:
    """Parse a message with mail-parser. A message over the limits (parts, nesting, header
    fields) is read by the standard library's walk of its first parts instead, and so is
    one mail-parser gives up on (a malformed encoded word, a recursion limit, a library
    bug); where that fails too the headers alone still make a report; the defects say
    which happened."""
    normalized = normalized_line_endings(raw)
    headers = BytesParser().parsebytes(normalized, headersonly=True)
    budget = decoded_budget(raw)
    try:
        message = BytesParser().parsebytes(normalized)
        shape = shape_of(message, limits)
        if shape.defects:
            body = leaves_body_facts(message, shape.kept, shape.defects, budget)
        else:
            body = within_budget(body_facts(mailparser.MailParser(message)), budget)
    except Exception as mail_parser_error:
        fallback = f"MailParserFailed:{type(mail_parser_error).__name__}"
        try:
            message = BytesParser().parsebytes(normalized)
            body = leaves_body_facts(message, shape_of(message, limits).kept, (fallback,), budget)
        except Exception as error:
            body = BodyFacts("", False, (), (fallback, f"BodyNotParsed:{type(error).__name__}"))
    if has_bare_line_break_in_header(raw):
        body = replace(body, defects=body.defects + ("BareLineBreakInHeader",))
    try:
        return message_of(normalized, headers, body)
    except Exception as error:
        return raw_only_message(raw, f"HeadersNotParsed:{type(error).__name__}")


def raw_only_message(raw: bytes, reason: str) -> ParsedMessage:
    """The last resort when a message cannot be parsed (the parser timed out, crashed, or a
    stage after it failed every time): a report made from a bounded read of the header
    section, each header read on its own so one unreadable header costs only itself, and
    the start of the body as text. Never raises: a stored mail always becomes a report."""
    head, _, rest = raw[:RAW_ONLY_HEAD_BYTES].partition(b"\r\n\r\n") if b"\r\n" in raw[:RAW_ONLY_HEAD_BYTES] else raw[:RAW_ONLY_HEAD_BYTES].partition(b"\n\n")
    try:
        headers = BytesParser().parsebytes(normalized_line_endings(head + b"\r\n\r\n"), headersonly=True)
    except Exception:
        headers = email.message.Message()
    sender = guarded(lambda: single_sender([header_text(value) for value in headers.get_all("From", [])]), None)
    from_name, from_address = sender or ("", "")
    message_id = guarded(lambda: first_message_id(headers.get("Message-ID")), None)
    body = storable_text(rest[:RAW_ONLY_BODY_BYTES].decode("utf-8", "replace"))
    return ParsedMessage(
        origin_key=origin_key(normalized_line_endings(raw), message_id, from_address),
        message_id=message_id,
        in_reply_to=guarded(lambda: first_message_id(headers.get("In-Reply-To")), None),
        references=(),
        subject=guarded(lambda: single_line(decoded_header(headers.get("Subject")))[:MAX_SUBJECT_LENGTH], ""),
        from_name=single_line(from_name),
        from_address=storable_text(from_address),
        to_addresses=(),
        date=guarded(lambda: date_of(headers.get("Date")), None),
        body_text=body,
        body_from_html=False,
        attachments=(),
        statements=reporter_statements(""),
        defects=(reason, "ReportFromRawBytesOnly"),
        automation_signals=guarded(lambda: automation_signals(headers), ("unreadable headers",)),
        language=None,
    )


def guarded(read: Callable[[], T], fallback: T) -> T:
    try:
        return read()
    except Exception:
        return fallback


def body_facts(mail: mailparser.MailParser) -> BodyFacts:
    text, from_html = chosen_body_text(mail.text_plain, mail.text_html)
    attachments = tuple(attachment_of(item) for item in mail.attachments)
    own = (first_own_text(mail.message), own_attachment_digests(mail.message))
    return with_tnef_unpacked(BodyFacts(text, from_html, attachments, tuple(sorted(set(mail.defects_categories))), *own))


def leaves_body_facts(message: email.message.Message, leaves: tuple[email.message.Message, ...], defects: tuple[str, ...], budget: int) -> BodyFacts:
    plain: list[str] = []
    html: list[str] = []
    attachments: list[ParsedAttachment] = []
    for part in leaves:
        content_type = part.get_content_type()
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename or part.get_content_disposition() == "attachment" or content_type not in ("text/plain", "text/html"):
            attachments.append(ParsedAttachment(safe_filename(decoded_header(filename) if filename else "unnamed"), content_type, payload))
        else:
            (plain if content_type == "text/plain" else html).append(decoded_text(payload, part.get_content_charset()))
    text, from_html = chosen_body_text(plain, html)
    return within_budget(with_tnef_unpacked(BodyFacts(text, from_html, tuple(attachments), defects, first_own_text(message), own_attachment_digests(message))), budget)


def message_of(normalized: bytes, headers: email.message.Message, body: BodyFacts) -> ParsedMessage:
    sender = single_sender([header_text(value) for value in headers.get_all("From", [])])
    from_name, from_address = sender or ("", "")
    message_id = first_message_id(headers.get("Message-ID"))
    recipients = headers.get_all("To", []) + headers.get_all("Cc", [])
    return ParsedMessage(
        origin_key=origin_key(normalized, message_id, from_address),
        message_id=message_id,
        in_reply_to=first_message_id(headers.get("In-Reply-To")),
        references=tuple(MESSAGE_ID.findall(header_text(headers.get("References"))))[:MAX_REFERENCES],
        subject=single_line(decoded_header(headers.get("Subject")))[:MAX_SUBJECT_LENGTH],
        from_name=single_line(from_name),
        from_address=storable_text(from_address),
        to_addresses=tuple(storable_text(address) for value in recipients for _, address in header_addresses(header_text(value)))[:MAX_RECIPIENTS],
        date=date_of(headers.get("Date")),
        body_text=body.text,
        body_from_html=body.from_html,
        attachments=body.attachments,
        statements=reporter_statements(body.text),
        defects=body.defects + (() if sender or not headers.get_all("From") else ("AmbiguousFrom",)),
        automation_signals=automation_signals(headers),
        language=language_of(headers),
        own_text=storable_text(body.own_text or ""),
        own_attachments=body.own_attachments,
    )

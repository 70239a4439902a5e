"""Raw RFC 5322 bytes → ParsedMessage, with mail-parser. Pure: no database, no clock.

Runs inside the bounded parser pool (parser_pool.py) because CPython's email parser has
super-linear cases; everything returned is plain picklable data.
"""

from __future__ import annotations

import base64
import binascii
import email.message
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from email.errors import HeaderParseError
from email.header import Header, decode_header, make_header
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from typing import TypeVar

import mailparser
import tnefparse
from inscriptis import get_text
from tnefparse.properties import MAPI_ATTACH_MIME_TAG

from mailintake.core.addresses import header_addresses, single_sender
from mailintake.parse.statements import ReporterStatements, reporter_statements

LINE_ENDING = re.compile(rb"\r\n|\r|\n")
BARE_LINE_BREAK = re.compile(rb"\r(?!\n)|(?<!\r)\n")
MESSAGE_ID = re.compile(r"<([\x21-\x3b\x3d\x3f-\x7e]{1,500})>")
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
MAX_FILENAME_LENGTH = 255
MAX_SUBJECT_LENGTH = 2000
MAX_RECIPIENTS = 200
LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8}){0,2}")
MAX_REFERENCES = 100
MAX_OWN_TEXT_DEPTH = 20
RAW_ONLY_HEAD_BYTES = 65_536
RAW_ONLY_BODY_BYTES = 20_000
T = TypeVar("T")
TNEF_CONTENT_TYPES = ("application/ms-tnef", "application/vnd.ms-tnef")
# tnefparse copies the rest of a winmail.dat once per TNEF object it reads, so a file of
# many tiny objects takes quadratic time; one whose objects × size exceeds this stays packed.
TNEF_COPY_BUDGET = 2**34
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
    automation_signals: tuple[str, ...] = field(default_factory=tuple)
    language: str | None = None
    # What the author wrote themselves: the first text part (or the text of its HTML
    # alternative), never a forwarded message, a further text part or an attachment.
    own_text: str = ""
    # sha256 of the author's own attached files: not inside a forwarded message.
    own_attachments: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ParseLimits:
    """How much of a message is read into a report; the rest stays in the stored raw bytes.
    Applied inside the bounded parser process, so what it hands back is bounded too."""

    max_parts: int = 1000
    max_depth: int = 50
    max_headers: int = 1000


DEFAULT_LIMITS = ParseLimits()
# Defects that say a limit left part of a message out of its report ("Name:what was left out").
LIMIT_DEFECTS = ("TooManyParts", "NestingTooDeep", "TooManyHeaderFields", "DecodedSizeLimit")


def left_out_by_limits(defects: Sequence[str]) -> list[str]:
    """What the parse limits left out of a report, e.g. "29000 of 30000 parts left out"."""
    return [defect.partition(":")[2] for defect in defects if defect.partition(":")[0] in LIMIT_DEFECTS]


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


@dataclass(frozen=True)
class BodyFacts:
    text: str
    from_html: bool
    attachments: tuple[ParsedAttachment, ...]
    defects: tuple[str, ...]
    own_text: str | None = None
    own_attachments: frozenset[str] = frozenset()


def body_facts(mail: mailparser.MailParser) -> BodyFacts:
    text, from_html = chosen_body_text(mail.text_plain, mail.text_html)
    attachments = tuple(attachment_of(item) for item in mail.attachments)
    own = (first_own_text(mail.message), own_attachment_digests(mail.message))
    return with_tnef_unpacked(BodyFacts(text, from_html, attachments, tuple(sorted(set(mail.defects_categories))), *own))


def first_own_text(part: email.message.Message, depth: int = 0) -> str | None:
    """The author's own text: the first inline text part from the top, looking into
    multiparts but never into a forwarded message (message/*) or an attachment; of a
    multipart/alternative the plain text, else the HTML as text. None: no text part at all.
    An empty first part stays empty: a later part is no longer the author's reply."""
    if part.is_multipart():
        if depth >= MAX_OWN_TEXT_DEPTH:
            return None
        children = [child for child in part.get_payload() if isinstance(child, email.message.Message) and is_own_content(child)]
        if part.get_content_type() == "multipart/alternative":
            children.sort(key=lambda child: child.get_content_type() != "text/plain")
        for child in children:
            text = first_own_text(child, depth + 1)
            if text is not None:
                return text
        return None
    content_type = part.get_content_type()
    if content_type not in ("text/plain", "text/html"):
        return None
    text = decoded_text(part.get_payload(decode=True) or b"", part.get_content_charset())
    return storable_text(get_text(text).strip() if content_type == "text/html" else text)


def own_attachment_digests(message: email.message.Message, limit: int = DEFAULT_LIMITS.max_parts) -> frozenset[str]:
    """sha256 of the files the author attached: leaf parts reached without entering a
    forwarded message (message/*), which is never the author's to pass on."""
    digests: set[str] = set()
    stack = [message]
    while stack and len(digests) < limit:
        part = stack.pop()
        if part.get_content_maintype() == "message" and part is not message:
            continue
        children = part.get_payload() if part.is_multipart() else None
        if isinstance(children, list):
            stack.extend(child for child in reversed(children) if isinstance(child, email.message.Message))
        elif part.get_filename() or part.get_content_disposition() == "attachment":
            digests.add(hashlib.sha256(part.get_payload(decode=True) or b"").hexdigest())
    return frozenset(digests)


def is_own_content(part: email.message.Message) -> bool:
    return part.get_content_disposition() != "attachment" and part.get_content_maintype() != "message" and not part.get_filename()


@dataclass(frozen=True)
class Shape:
    kept: tuple[email.message.Message, ...]
    defects: tuple[str, ...]


def shape_of(message: email.message.Message, limits: ParseLimits) -> Shape:
    """The leaf parts within the limits, in order, and what was left out. Iterative: a
    message nested deeper than Python's recursion limit is read too."""
    kept: list[email.message.Message] = []
    leaves = deepest = 0
    stack: list[tuple[email.message.Message, int]] = [(message, 0)]
    while stack:
        part, depth = stack.pop()
        deepest = max(deepest, depth)
        children = part.get_payload() if part.is_multipart() else None
        if isinstance(children, list):
            if depth < limits.max_depth:
                stack.extend((child, depth + 1) for child in reversed(children) if isinstance(child, email.message.Message))
            continue
        leaves += 1
        if len(kept) < limits.max_parts:
            kept.append(part)
    defects = []
    if leaves > len(kept):
        defects.append(f"TooManyParts:{leaves - len(kept)} of {leaves} parts left out")
    if deepest >= limits.max_depth:
        defects.append(f"NestingTooDeep:parts below depth {limits.max_depth} left out")
    if len(message.keys()) > limits.max_headers:
        defects.append(f"TooManyHeaderFields:{len(message.keys())}")
    return Shape(tuple(kept), tuple(defects))


def decoded_budget(raw: bytes) -> int:
    """Decoded attachment bytes a report keeps: a forwarded mail nested in a forwarded mail
    must not multiply the message's size."""
    return 2 * len(raw) + 1_000_000


def within_budget(body: BodyFacts, budget: int) -> BodyFacts:
    kept: list[ParsedAttachment] = []
    for attachment in body.attachments:
        if attachment.size > budget:
            break
        budget -= attachment.size
        kept.append(attachment)
    if len(kept) == len(body.attachments):
        return body
    left_out = len(body.attachments) - len(kept)
    return replace(body, attachments=tuple(kept), defects=body.defects + (f"DecodedSizeLimit:{left_out} attachments left out",))


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


def with_tnef_unpacked(body: BodyFacts) -> BodyFacts:
    """Outlook's winmail.dat (TNEF) replaced by the files inside it; its body becomes the
    message's body if the message has no text of its own. Undecodable: kept as it is."""
    text, from_html, defects, own_text = body.text, body.from_html, body.defects, body.own_text
    attachments: list[ParsedAttachment] = []
    for attachment in body.attachments:
        if not is_tnef(attachment):
            attachments.append(attachment)
            continue
        try:
            tnef = decoded_tnef(attachment.content)
            inner = [tnef_attachment(item) for item in tnef.attachments]
            tnef_text, tnef_from_html = chosen_body_text([tnef_string(tnef.body, tnef.codepage)], [tnef_string(tnef.htmlbody, tnef.codepage)])
        except Exception:
            attachments.append(attachment)
            if "TnefNotDecoded" not in defects:
                defects += ("TnefNotDecoded",)
            continue
        attachments += inner
        if not text and tnef_text:
            text, from_html = tnef_text, tnef_from_html
        if own_text is None and tnef_text:
            own_text = tnef_text
    return BodyFacts(text, from_html, tuple(attachments), defects, own_text, body.own_attachments)


def is_tnef(attachment: ParsedAttachment) -> bool:
    return attachment.content_type in TNEF_CONTENT_TYPES or attachment.filename.lower() == "winmail.dat"


def decoded_tnef(data: bytes) -> tnefparse.TNEF:
    limit = TNEF_COPY_BUDGET // max(len(data), 1)
    offset, objects = 6, 0
    while offset + tnefparse.TNEF.MIN_OBJ_SIZE < len(data):
        objects += 1
        if objects > limit:
            raise ValueError("too many TNEF objects")
        offset += min(len(data) - offset, int.from_bytes(data[offset + 5 : offset + 9], "little") + 11)
    return tnefparse.TNEF(data, do_checksum=False)


def tnef_attachment(item: tnefparse.TNEFAttachment) -> ParsedAttachment:
    mime_tags = [single_line(tnef_string(attribute.data, None)).lower() for attribute in item.mapi_attrs if attribute.name == MAPI_ATTACH_MIME_TAG]
    content_type = mime_tags[0][:255] if mime_tags and "/" in mime_tags[0] else "application/octet-stream"
    return ParsedAttachment(safe_filename(tnef_string(item.long_filename(), None) or "unnamed"), content_type, bytes(item.data))


def tnef_string(value: object, codepage: str | None) -> str:
    """tnefparse gives text as str, or as bytes in the TNEF's code page."""
    if isinstance(value, bytes):
        return decoded_text(value, codepage)
    return "" if value is None else str(value)


def decoded_text(payload: bytes, charset: str | None) -> str:
    try:
        return payload.decode(charset or "utf-8", "replace")
    except LookupError:
        return payload.decode("utf-8", "replace")


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


def decoded_header(value: object) -> str:
    """RFC 2047 encoded words decoded; raw 8-bit bytes read as UTF-8; never raises."""
    text = header_text(value)
    try:
        return str(make_header(decode_header(text)))
    except (HeaderParseError, LookupError, UnicodeError, ValueError):
        return text


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
        parsed = parsed.replace(tzinfo=timezone.utc)
    try:
        return parsed.astimezone(timezone.utc)
    except OverflowError:
        return None


def chosen_body_text(plain_parts: list[str], html_parts: list[str]) -> tuple[str, bool]:
    """The text/plain parts; for HTML-only mail the HTML parts converted to text."""
    plain = [part for part in plain_parts if part.strip()]
    if plain:
        return storable_text("\n\n".join(plain)), False
    html = [part for part in html_parts if part.strip()]
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

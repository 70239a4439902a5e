"""Outbound mail as EmailMessage objects, built by the standard library. Pure.

Every header value passes through safe_header_text(), and the finished message is checked
once more, so no CR, LF or other control character from any input reaches a header.
Checking the input text alone is not enough: when a header is set, `email.policy.default`
decodes RFC 2047 encoded words in the value, so the literal text `=?utf-8?q?a=0D=0AX:1?=`
would become a line break in the serialised header.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from email import policy
from email.errors import MessageError
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.utils import format_datetime
from functools import lru_cache
from types import MappingProxyType

MAX_REFERENCES = 20
MAX_HEADER_LENGTH = 998
MAX_FILENAME_LENGTH = 255
MAX_ECHOED_LENGTH = 100
AUTO_SUBMITTED_VALUES = ("auto-generated", "auto-replied", "no")


class ReusedHeaderClasses(HeaderRegistry):
    """The standard registry makes a new class for every header it builds (`type(...)` per
    call), a tenth of what composing a mail costs; this one makes each class once. The
    headers built are the same."""

    def __init__(self) -> None:
        super().__init__()
        self.made: dict[type, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        specialised = self.registry.get(name.lower(), self.default_class)
        if specialised not in self.made:
            self.made[specialised] = type("_" + specialised.__name__, (specialised, self.base_class), {})
        return self.made[specialised]


COMPOSE_POLICY = policy.default.clone(header_factory=ReusedHeaderClasses())
WIRE_POLICY = COMPOSE_POLICY.clone(linesep="\r\n")
# Pure functions of their text that every mail repeats (our own addresses, the team's name).
CACHED_TEXTS = 4096

_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SURROGATE_RE = re.compile(r"[\ud800-\udfff]")
_MSG_ID_RE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\[\]-]+")
_HEADER_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,75}")
_DOMAIN_LABEL_RE = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_CONTENT_TYPE_RE = re.compile(r"([a-z0-9][a-z0-9!#$&^_.+-]{0,126})/([a-z0-9][a-z0-9!#$&^_.+-]{0,126})")
_RESERVED_HEADERS = frozenset(
    {
        "auto-submitted",
        "bcc",
        "cc",
        "date",
        "from",
        "in-reply-to",
        "message-id",
        "orig-date",
        "mime-version",
        "references",
        "reply-to",
        "return-path",
        "sender",
        "subject",
        "to",
    }
)
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


def compose(
    *,
    sender: str,
    sender_name: str,
    to: Sequence[str],
    subject: str,
    text: str,
    html: str | None,
    message_id: str,
    date: datetime,
    tracking_id: str | None = None,
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    reply_to: str | None = None,
    auto_submitted: str | None = None,
    attachments: Sequence[tuple[str, str, bytes]] = (),
    extra_headers: Mapping[str, str] = _NO_HEADERS,
) -> EmailMessage:
    """One outbound mail. `message_id` comes from the outbox row (no angle brackets), so a
    resend carries the same Message-ID. Raises ValueError (one line) on an invalid address,
    Message-ID, date, header name, Auto-Submitted value or attachment type."""
    message = EmailMessage(policy=COMPOSE_POLICY)
    message["From"] = mailbox(sender, sender_name)
    message["To"] = recipients(to)
    if reply_to is not None:
        message["Reply-To"] = mailbox(reply_to)
    message["Subject"] = subject_with_tracking_id(subject, tracking_id) if tracking_id else safe_header_text(subject)
    message["Date"] = format_datetime(aware(date))
    message["Message-ID"] = f"<{valid_message_id(message_id)}>"
    add_threading(message, in_reply_to, references)
    if auto_submitted is not None:
        message["Auto-Submitted"] = auto_submitted_value(auto_submitted)
    for name, value in extra_headers.items():
        message[extra_header_name(name)] = safe_header_text(value)
    add_body(message, text, html)
    for filename, content_type, data in attachments:
        add_attachment(message, filename, content_type, data)
    require_clean_headers(message)
    return message


def message_bytes(message: EmailMessage) -> bytes:
    """The message as stored in the outbox and sent: CRLF line endings."""
    return message.as_bytes(policy=WIRE_POLICY)


def subject_with_tracking_id(subject: str, tracking_id: str) -> str:
    """`[SEC-2026-0042] subject`, unless the bracketed id is already anywhere in the subject
    (a reply's "Re: [SEC-2026-0042] …"); compared case-insensitively."""
    tag = f"[{safe_header_text(tracking_id, 100)}]"
    clean = safe_header_text(subject)
    if tag == "[]" or tag.lower() in clean.lower():
        return clean
    return safe_header_text(f"{tag} {clean}")


def safe_header_text(value: str, limit: int = MAX_HEADER_LENGTH) -> str:
    """One line of at most `limit` characters: control characters and line breaks become
    spaces, whitespace runs collapse, lone surrogates become U+FFFD. Should the email
    library still read the text differently (encoded words, see the module docstring),
    every `=?` is broken up as `= ?`, so the text goes out literally."""
    text = " ".join(_CONTROL_RE.sub(" ", _SURROGATE_RE.sub("\ufffd", str(value))).split())[:limit].rstrip()
    if read_back(text) != text:
        text = text.replace("=?", "= ?")
    return text


def shortened_line(value: str, limit: int = MAX_ECHOED_LENGTH) -> str:
    """Text from a reporter as mail back to them repeats it: one line of at most `limit`
    characters, cut at a word with "…". An acknowledgement goes to whatever envelope
    sender a mail claims, so a long subject would turn us into a carrier of someone
    else's text (backscatter)."""
    text = " ".join(_CONTROL_RE.sub(" ", _SURROGATE_RE.sub("\ufffd", str(value))).split())
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    space = head.rfind(" ")
    if space >= limit // 2:
        head = head[:space]
    return head.rstrip() + "…"


@lru_cache(maxsize=CACHED_TEXTS)
def read_back(text: str) -> str:
    """How the email library understands `text` when it is set as an unstructured header."""
    return str(COMPOSE_POLICY.header_factory("x-mailintake-check", text))


@lru_cache(maxsize=CACHED_TEXTS)
def mailbox(address: str, display_name: str = "") -> Address:
    """A validated mailbox; the display name is header-safe and must survive a round trip."""
    username, domain = addr_spec_parts(address)
    name = safe_header_text(display_name, 256)
    result = Address(display_name=name, username=username, domain=domain)
    parsed = COMPOSE_POLICY.header_factory("from", str(result)).addresses
    if len(parsed) != 1 or parsed[0] != result:
        raise ValueError(f"display name {excerpt(display_name)!r} cannot be written safely")
    return result


def recipients(addresses: Sequence[str]) -> tuple[Address, ...]:
    if isinstance(addresses, str):
        raise ValueError("recipients must be a list of addresses, not one string")
    unique: dict[str, Address] = {}
    for address in addresses:
        unique.setdefault(address.strip().lower(), mailbox(address))
    if not unique:
        raise ValueError("a mail needs at least one recipient")
    return tuple(unique.values())


def addr_spec_parts(address: str) -> tuple[str, str]:
    """(local part, ASCII domain) of exactly one plain address; IDN domains are converted to
    their ASCII form, non-ASCII local parts (which need SMTPUTF8) are refused."""
    text = str(address).strip()
    invalid = ValueError(f"invalid email address {excerpt(address)!r}: expected one address like security@example.com")
    if not text or _CONTROL_RE.search(text):
        raise invalid
    try:
        parsed = Address(addr_spec=text)
    except (ValueError, IndexError, MessageError):
        raise invalid from None
    if parsed.addr_spec != text or not parsed.username or not parsed.username.isascii():
        raise invalid
    return parsed.username, ascii_domain(parsed.domain, invalid)


def ascii_domain(domain: str, invalid: ValueError) -> str:
    if domain.startswith("[") and domain.endswith("]") and domain.isascii():
        return domain
    try:
        ascii_form = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise invalid from None
    labels = ascii_form.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL_RE.fullmatch(label) for label in labels):
        raise invalid
    return ascii_form


def valid_message_id(message_id: str) -> str:
    """Our own Message-ID, bare (`abc@example.com`); surrounding angle brackets are dropped."""
    bare = bare_message_id(message_id)
    if bare is None:
        raise ValueError(f"invalid Message-ID {excerpt(message_id)!r}: expected id-left@id-right without spaces")
    return bare


def bare_message_id(value: str) -> str | None:
    """`abc@example.com` from `abc@example.com` or `<abc@example.com>`; None for anything that
    is not a plain msg-id, or that the email library would decode as an encoded word."""
    text = str(value).strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    if len(text) > 250 or "=?" in text or not _MSG_ID_RE.fullmatch(text):
        return None
    return text


def thread_references(in_reply_to: str | None, references: Sequence[str]) -> list[str]:
    """References for a reply: the given ones, then the parent, deduplicated in order, with
    the parent last, at most the last MAX_REFERENCES. Ids that are not plain msg-ids come
    from other mailers and are dropped rather than failing the mail."""
    parent = bare_message_id(in_reply_to) if in_reply_to else None
    ordered: dict[str, None] = {}
    for reference in references:
        bare = bare_message_id(reference)
        if bare is not None and bare != parent:
            ordered.setdefault(bare, None)
    ids = [*ordered, *([parent] if parent else [])]
    return ids[-MAX_REFERENCES:]


def add_threading(message: EmailMessage, in_reply_to: str | None, references: Sequence[str]) -> None:
    if isinstance(references, str):
        raise ValueError("references must be a list of Message-IDs, not one string")
    parent = bare_message_id(in_reply_to) if in_reply_to else None
    if parent is not None:
        message["In-Reply-To"] = f"<{parent}>"
    ids = thread_references(in_reply_to, references)
    if ids:
        message["References"] = " ".join(f"<{bare}>" for bare in ids)


def aware(date: datetime) -> datetime:
    if date.tzinfo is None or date.utcoffset() is None:
        raise ValueError("the Date of a mail must be timezone-aware")
    return date


def auto_submitted_value(value: str) -> str:
    clean = safe_header_text(value, 40).lower()
    if clean not in AUTO_SUBMITTED_VALUES:
        raise ValueError(f"invalid Auto-Submitted {excerpt(value)!r}: expected one of {', '.join(AUTO_SUBMITTED_VALUES)}")
    return clean


def extra_header_name(name: str) -> str:
    """A plain custom header name; headers that compose sets itself, address headers and
    MIME structure headers cannot be given this way."""
    text = str(name)
    lowered = text.lower()
    if not _HEADER_NAME_RE.fullmatch(text):
        raise ValueError(f"invalid header name {excerpt(name)!r}: expected letters, digits and '-'")
    if lowered in _RESERVED_HEADERS or lowered.startswith(("content-", "resent-")):
        raise ValueError(f"header {text} is set by compose and cannot be given as an extra header")
    return text


def add_body(message: EmailMessage, text: str, html: str | None) -> None:
    message.set_content(body_text(text), cte=transfer_encoding(text))
    if html is not None:
        message.add_alternative(body_text(html), subtype="html", cte=transfer_encoding(html))


def body_text(value: str) -> str:
    return _SURROGATE_RE.sub("\ufffd", value)


def transfer_encoding(body: str) -> str | None:
    """quoted-printable for non-ASCII bodies, so the mail is 7-bit clean and needs no
    8BITMIME from the relay; None lets the library pick for ASCII (7bit, or qp/base64
    when lines are too long)."""
    return None if body.isascii() else "quoted-printable"


def add_attachment(message: EmailMessage, filename: str, content_type: str, data: bytes) -> None:
    maintype, subtype = attachment_type(content_type)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"attachment {excerpt(filename)!r}: content must be bytes")
    message.add_attachment(bytes(data), maintype=maintype, subtype=subtype, filename=outgoing_filename(filename))


def attachment_type(content_type: str) -> tuple[str, str]:
    """(maintype, subtype). multipart/* and message/* are refused: they would be read as MIME
    structure, not as a file; attach a mail as application/octet-stream (.eml)."""
    match = _CONTENT_TYPE_RE.fullmatch(str(content_type).strip().lower())
    if match is None or match.group(1) in ("multipart", "message"):
        raise ValueError(f"invalid attachment content type {excerpt(content_type)!r}: expected type/subtype, not multipart/* or message/*")
    return match.group(1), match.group(2)


def outgoing_filename(filename: str) -> str:
    """The file name an outgoing attachment carries: header-safe (see safe_header_text, so
    `=?` is broken up too) with directory separators shown as "_". Not the name parse gives a
    received attachment (its last path component, for display and storage): this one only
    has to survive being written into a header."""
    name = safe_header_text(str(filename).replace("/", "_").replace("\\", "_"), MAX_FILENAME_LENGTH)
    return name.lstrip(".") or "attachment"


def require_clean_headers(message: EmailMessage) -> None:
    """The last line of defence: every header of every part, as the library will write it,
    is free of control characters."""
    for part in message.walk():
        for name, value in part.items():
            if _CONTROL_RE.search(str(value)):
                raise ValueError(f"refusing to write header {name}: it would contain a control character")


def excerpt(value: object, limit: int = 80) -> str:
    """Input quoted in an error: one line, at most `limit` characters."""
    text = " ".join(_CONTROL_RE.sub(" ", _SURROGATE_RE.sub("\ufffd", str(value))).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"

"""A message's body as a report keeps it: its text, its attachments, and what the author
wrote themselves rather than forwarded. Pure."""

from __future__ import annotations

import base64
import binascii
import email.message
import hashlib
from dataclasses import dataclass, replace

from inscriptis import get_text

from mailintake.parse.headers import single_line, storable_text
from mailintake.parse.limits import DEFAULT_LIMITS

MAX_FILENAME_LENGTH = 255
MAX_OWN_TEXT_DEPTH = 20


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
class BodyFacts:
    text: str
    from_html: bool
    attachments: tuple[ParsedAttachment, ...]
    defects: tuple[str, ...]
    own_text: str | None = None
    own_attachments: frozenset[str] = frozenset()


def chosen_body_text(plain_parts: list[str], html_parts: list[str]) -> tuple[str, bool]:
    """The text/plain parts; for HTML-only mail the HTML parts converted to text."""
    plain = [part for part in plain_parts if part.strip()]
    if plain:
        return storable_text("\n\n".join(plain)), False
    html = [part for part in html_parts if part.strip()]
    if html:
        return storable_text("\n\n".join(get_text(part).strip() for part in html)), True
    return "", False


def decoded_text(payload: bytes, charset: str | None) -> str:
    try:
        return payload.decode(charset or "utf-8", "replace")
    except LookupError:
        return payload.decode("utf-8", "replace")


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

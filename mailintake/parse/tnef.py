"""Outlook's winmail.dat (TNEF): replaced by the files inside it, its body used where the
message has no text of its own. Pure."""

from __future__ import annotations

import tnefparse
from tnefparse.properties import MAPI_ATTACH_MIME_TAG

from mailintake.parse.body import BodyFacts, ParsedAttachment, chosen_body_text, decoded_text, safe_filename
from mailintake.parse.headers import single_line

TNEF_CONTENT_TYPES = ("application/ms-tnef", "application/vnd.ms-tnef")
# tnefparse copies the rest of a winmail.dat once per TNEF object it reads, so a file of
# many tiny objects takes quadratic time; one whose objects × size exceeds this stays packed.
TNEF_COPY_BUDGET = 2**34


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

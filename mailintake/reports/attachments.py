"""What a mail says about a message's attachments, and which of them it carries: the one
rule for staff notifications, forwarded replies and files staff pass on with #attach."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mailintake.storage.models import Attachment

CONTENT_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
MAX_LISTED_ATTACHMENTS = 100


@dataclass(frozen=True)
class AttachmentPlan:
    """What a mail says about a message's attachments: the first MAX_LISTED_ATTACHMENTS
    listed (each marked attached or not), how many more there are, and the files attached."""

    listed: list[dict[str, Any]]
    more: int
    attached: list[tuple[str, str, bytes]]


def attachment_plan(attachments: Sequence[Attachment], limit: int, listed_limit: int = MAX_LISTED_ATTACHMENTS) -> AttachmentPlan:
    """Attach in order each listed file that still fits: at most `limit` bytes each and in
    total, so a mail with 30,000 parts or a 100 MB capture never makes a mail that size."""
    listed: list[dict[str, Any]] = []
    attached: list[tuple[str, str, bytes]] = []
    total = 0
    for item in attachments[:listed_limit]:
        fits = limit > 0 and total + len(item.content) <= limit
        if fits:
            attached.append(mailable_attachment(item.filename, item.content_type, item.content))
            total += len(item.content)
        listed.append({"filename": item.filename, "content_type": item.content_type, "size": item.size, "sha256": item.sha256, "attached": fits})
    return AttachmentPlan(listed, max(0, len(attachments) - listed_limit), attached)


def mailable_attachment(filename: str, content_type: str, content: bytes) -> tuple[str, str, bytes]:
    """Attachments are passed to staff as files: a forwarded mail (message/rfc822) or a
    part with an odd type goes as application/octet-stream, never re-parsed as MIME."""
    if not CONTENT_TYPE.fullmatch(content_type) or content_type.startswith(("message/", "multipart/")):
        suffix = ".eml" if content_type.startswith("message/") and not filename.lower().endswith(".eml") else ""
        return filename + suffix, "application/octet-stream", content
    return filename, content_type, content

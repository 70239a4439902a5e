"""Whether a message may be answered automatically (RFC 3834 and the loop signals other
help desks learned from: lists, bounces, auto-replies, our own mail). Pure: headers come from parsing, our own addresses from config."""

from __future__ import annotations

import re
from collections.abc import Iterable

from mailintake.parse.message import ParsedMessage

ROBOT_LOCAL_PARTS = frozenset({"mailer-daemon", "postmaster"})
LOOP_HEADER = "X-Loop"
OUR_MESSAGE_ID_PREFIX = "mailintake."


def our_message_id(unique_part: str, domain: str) -> str:
    """Message-ID for our outbound mail; recognisable when it comes back."""
    return f"{OUR_MESSAGE_ID_PREFIX}{unique_part}@{domain}"


def is_our_address(address: str, own_addresses: Iterable[str]) -> bool:
    """One of our addresses or a subaddress of one (`security+r12-…@example.com`, signed or
    not, any case, quoted local part): a sender can claim any of them, and answering
    would mail ourselves."""
    local, domain = comparable_parts(address)
    if not local:
        return False
    for own in own_addresses:
        own_local, own_domain = comparable_parts(own)
        if domain == own_domain and (local == own_local or local.startswith(own_local + "+")):
            return True
    return False


def comparable_parts(address: str) -> tuple[str, str]:
    """(local part, domain), lower case, without the quotes or escapes of a quoted local
    part and without a trailing dot on the domain; ("", "") without an @."""
    local, at, domain = address.strip().strip("<>").rpartition("@")
    if not at:
        return "", ""
    if len(local) >= 2 and local.startswith('"') and local.endswith('"'):
        local = re.sub(r"\\(.)", r"\1", local[1:-1])
    return local.casefold(), domain.rstrip(".").casefold()


def no_auto_reply_reason(parsed: ParsedMessage, envelope_from: str, own_addresses: Iterable[str]) -> str | None:
    """Why this message must not be answered automatically, or None if it may be."""
    own = {address.lower() for address in own_addresses}
    own_domains = {address.rpartition("@")[2] for address in own}
    if not envelope_from:
        return "null envelope sender"
    for address in (envelope_from, parsed.from_address):
        local = address.lower().split("@", 1)[0]
        if local in ROBOT_LOCAL_PARTS:
            return f"sender is {local}"
        if local.startswith("owner-") or local.endswith("-request"):
            return "sender is a list robot"
        if is_our_address(address, own):
            return "sent from our own address"
    local, _, domain = (parsed.message_id or "").rpartition("@")
    if local.startswith(OUR_MESSAGE_ID_PREFIX) and domain.lower() in own_domains:
        return "our own Message-ID"
    for signal in parsed.automation_signals:
        name, _, value = signal.partition(":")
        if name == LOOP_HEADER and value.strip().lower() not in own:
            continue
        return signal
    return None

"""Whether a message may be answered automatically (RFC 3834 and the loop signals of
DESIGN.md). Pure: headers come from parsing, our own addresses from config."""

from __future__ import annotations

from collections.abc import Iterable

from mailintake.parsing import ParsedMessage

ROBOT_LOCAL_PARTS = frozenset({"mailer-daemon", "postmaster"})
LOOP_HEADER = "X-Loop"
OUR_MESSAGE_ID_PREFIX = "mailintake."


def our_message_id(unique_part: str, domain: str) -> str:
    """Message-ID for our outbound mail; recognisable when it comes back."""
    return f"{OUR_MESSAGE_ID_PREFIX}{unique_part}@{domain}"


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
        if address.lower() in own:
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

"""Whether a reply was already recorded: one staff reply acts once, one reporter reply is
stored once, whichever way and however often it arrives."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailintake.parse.message import ParsedMessage
from mailintake.route.decision import Route
from mailintake.storage.models import Message


def dedup_key_of(route: Route, parsed: ParsedMessage) -> str:
    """One staff reply acts once per report whatever way it arrives (its Message-ID); a
    reporter reply is stored once (its content identity)."""
    if route.kind == "staff_reply" and parsed.message_id:
        return f"staff:{route.report_id}:{parsed.message_id}"
    return f"{route.kind}:{route.report_id}:{parsed.origin_key}"


def reply_already_recorded(session: Session, route: Route, parsed: ParsedMessage) -> bool:
    return session.scalars(select(Message.id).where(Message.dedup_key == dedup_key_of(route, parsed))).first() is not None

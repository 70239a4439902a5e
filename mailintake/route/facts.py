"""The facts routing decides on, read from the envelope, the headers and storage: signed
reply addresses among the recipients, the reports a mail's thread headers and subject tags
name, and who reported each (route/decision.py decides from them)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailintake.core.tokens import ReplyToken, parse_reply_address
from mailintake.core.vocabulary import tracking_tag_pattern
from mailintake.parse.message import ParsedMessage
from mailintake.route.decision import Arrival, ReportParty
from mailintake.storage.models import Message, OutboxMessage, Report

MAX_REFERENCED = 50


def arrival_of(
    session: Session,
    parsed: ParsedMessage,
    envelope_to: Sequence[str],
    staff_member: bool,
    staff_authenticated: bool,
    *,
    public_address: str,
    reply_key: bytes,
    tracking_prefix: str,
) -> Arrival:
    tokens = reply_tokens(envelope_to, public_address, reply_key)
    most_recent_first = ((parsed.in_reply_to,) if parsed.in_reply_to else ()) + tuple(reversed(parsed.references))
    referenced = referenced_reports(session, most_recent_first)
    tagged = tagged_reports(session, tracking_prefix, parsed.subject)
    ids = {token.report_id for token in tokens} | set(referenced) | set(tagged)
    return Arrival(
        from_address=parsed.from_address,
        staff_member=staff_member,
        staff_authenticated=staff_authenticated,
        tokens=tokens,
        referenced=referenced,
        tagged=tagged,
        parties=report_parties(session, ids),
    )


def reply_tokens(envelope_to: Sequence[str], public_address: str, reply_key: bytes) -> tuple[ReplyToken, ...]:
    parsed = (parse_reply_address(address, public_address, reply_key) for address in envelope_to)
    return tuple(dict.fromkeys(token for token in parsed if token is not None))


def referenced_reports(session: Session, message_ids: Sequence[str]) -> tuple[int, ...]:
    """Reports whose thread holds one of these Message-IDs (a stored message, or one of our
    outbound mails), in the order the Message-IDs are given."""
    wanted = [message_id for message_id in dict.fromkeys(message_ids) if message_id][:MAX_REFERENCED]
    if not wanted:
        return ()
    found: dict[str, int] = {}
    for message_id, report_id in session.execute(select(Message.message_id, Message.report_id).where(Message.message_id.in_(wanted))):
        found.setdefault(message_id, report_id)
    for message_id, report_id in session.execute(select(OutboxMessage.message_id, OutboxMessage.report_id).where(OutboxMessage.message_id.in_(wanted), OutboxMessage.report_id.is_not(None))):
        found.setdefault(message_id, report_id)
    return tuple(dict.fromkeys(found[message_id] for message_id in wanted if message_id in found))


def tagged_reports(session: Session, prefix: str, subject: str) -> tuple[int, ...]:
    tags = re.findall(tracking_tag_pattern(prefix), subject, re.IGNORECASE)[:MAX_REFERENCED]
    if not tags:
        return ()
    rows = {tracking_id: report_id for tracking_id, report_id in session.execute(select(Report.tracking_id, Report.id).where(Report.tracking_id.in_([tag.upper() for tag in tags])))}
    return tuple(dict.fromkeys(rows[tag.upper()] for tag in tags if tag.upper() in rows))


def report_parties(session: Session, report_ids: set[int]) -> dict[int, ReportParty]:
    if not report_ids:
        return {}
    reports = session.scalars(select(Report).where(Report.id.in_(report_ids)))
    return {report.id: ReportParty(report.id, report.reporter.address if report.reporter else report.envelope_sender) for report in reports}

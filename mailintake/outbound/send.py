"""Send due outbox rows through the relay and record each answer.

A delivered acknowledgement meets the milestones marked `auto = true`; a message the relay
refuses for good (5xx, or too many temporary failures) is marked failed and staff are
alerted (once per row; an alert about a failed alert is not sent).
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, selectinload, sessionmaker

from mailintake.config.schema import Config
from mailintake.core.clock import Clock
from mailintake.deadlines.closures import effective_calendar
from mailintake.deadlines.milestones import meet_milestone
from mailintake.outbound.notices import Notices
from mailintake.outbound.outbox import Claimed, claim_due, lease_for, mark_failed, mark_for_retry, mark_sent
from mailintake.outbound.relay import RelayAnswer, relay_message
from mailintake.storage.db import transaction
from mailintake.storage.models import Report

log = logging.getLogger(__name__)

ROUND_LIMIT = 200


async def deliver_due(sessions: sessionmaker[Session], config: Config, notices: Notices, clock: Clock, limit: int = ROUND_LIMIT) -> int:
    """Send what is due, one claimed row at a time (a claim's lease covers one delivery);
    returns how many rows were attempted."""
    attempted = 0
    while attempted < limit:
        claimed = await asyncio.to_thread(claim_in_transaction, sessions, clock(), lease_for(config.relay.timeout))
        if not claimed:
            break
        row = claimed[0]
        try:
            answer = await relay_message(config.relay, row.envelope_from, row.recipients, row.content)
        except Exception as error:
            answer = RelayAnswer("temporary", f"sending failed ({type(error).__name__})")
        await asyncio.to_thread(record_answer, sessions, config, notices, row, answer, clock())
        attempted += 1
    return attempted


def claim_in_transaction(sessions: sessionmaker[Session], now: datetime, lease: timedelta) -> list[Claimed]:
    with transaction(sessions) as session:
        return claim_due(session, now, lease, limit=1)


def record_answer(sessions: sessionmaker[Session], config: Config, notices: Notices, row: Claimed, answer: RelayAnswer, now: datetime) -> None:
    if answer.verdict == "sent":
        record_delivery(sessions, config, notices, row, answer, now)
        return
    with transaction(sessions) as session:
        if answer.verdict == "temporary" and (row.attempts < config.outbox.max_attempts or not answer.reached):
            mark_for_retry(session, row, answer.reply, now, config.outbox.retry_interval, count_attempt=answer.reached)
            log.warning("outbox %d (%s) not delivered yet (attempt %d): %s", row.id, row.kind, row.attempts, reply_codes(answer.reply))
            return
        if mark_failed(session, row, answer.reply) and row.kind != "delivery_failure":
            report = session.get(Report, row.report_id) if row.report_id else None
            notices.delivery_failure(session, row.id, row.kind, row.recipients, answer.reply, row.attempts, report, now)
        log.error("outbox %d (%s) failed after %d attempt(s): %s", row.id, row.kind, row.attempts, reply_codes(answer.reply))


def reply_codes(reply: str) -> str:
    """The SMTP codes of a relay reply, for logs: its text may name the recipient."""
    codes = re.findall(r"\b[245]\d\d(?: [245]\.\d{1,3}\.\d{1,3})?", reply)
    return ", ".join(codes) or reply.split("(")[0].strip()[:60]


def record_delivery(sessions: sessionmaker[Session], config: Config, notices: Notices, row: Claimed, answer: RelayAnswer, now: datetime) -> None:
    """Mark the row sent in its own transaction first: nothing after it may cause a resend."""
    with transaction(sessions) as session:
        ours = mark_sent(session, row, answer.reply, now)
        if ours and answer.refused and row.kind != "delivery_failure":
            report = session.get(Report, row.report_id) if row.report_id else None
            notices.delivery_failure(session, row.id, row.kind, answer.refused, answer.reply, row.attempts, report, now)
    log.info("outbox %d (%s) delivered%s", row.id, row.kind, f", {len(answer.refused)} recipient(s) refused" if answer.refused else "")
    if not (ours and row.kind == "acknowledgement" and row.report_id is not None):
        return
    try:
        with transaction(sessions) as session:
            meet_automatic_milestones(session, config, row.report_id, now)
    except Exception as error:
        log.error("outbox %d: acknowledgement sent, but its milestones could not be recorded (%s)", row.id, type(error).__name__)


def meet_automatic_milestones(session: Session, config: Config, report_id: int, now: datetime) -> None:
    report = session.get(Report, report_id, options=[selectinload(Report.milestones)])
    if report is None:
        return
    calendar = effective_calendar(session, config.calendar)
    for milestone in config.sla.milestones:
        if milestone.auto:
            meet_milestone(session, report, milestone.name, now, "automatic acknowledgement", config.sla, calendar)

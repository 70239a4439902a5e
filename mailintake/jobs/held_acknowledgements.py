"""The combined acknowledgement: reports the hourly limit held back (`[outbox]
auto_replies_per_hour`, outbound/notices.py HELD_BY_LIMIT) are a person's reports, not
machine mail. Staff were notified and their deadlines run; once their sender is under the
limit again (the hour of its last acknowledgements has passed), one mail acknowledges
them all and meets each one's `auto` milestones, as a delivered acknowledgement would.

Exactly once: each sender's mail is written in its own transaction with the milestones it
meets, the promises it makes and the end of the reports' label, under a key over the
reports it covers (notices.held_acknowledgement_key). A crash before the commit leaves
neither, and the next pass builds the same mail again; after the commit nothing is held.

The combined mail counts towards the limit like any acknowledgement, so a sender never
gets more than `auto_replies_per_hour` automatic replies in an hour.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from mailintake.calendar.business import BusinessCalendar
from mailintake.config.schema import Config
from mailintake.deadlines.milestones import meet_milestone, record_promise
from mailintake.jobs.sla_pass import never
from mailintake.outbound.notices import HELD_BY_LIMIT, HELD_PER_MAIL, Notices
from mailintake.outbound.outbox import over_auto_reply_limit
from mailintake.reports.read_model import MAIL_SUMMARY_LOADS
from mailintake.storage.db import transaction
from mailintake.storage.models import Report

log = logging.getLogger(__name__)

MET_BY = "combined acknowledgement"


def held_by_sender(session: Session) -> dict[str, list[int]]:
    """The held reports' ids per sender (the envelope sender, lower case, as the limit
    counts it), oldest first."""
    rows = session.execute(select(Report.id, Report.envelope_sender).where(Report.automated == HELD_BY_LIMIT).order_by(Report.received_at, Report.id))
    held: dict[str, list[int]] = {}
    for report_id, envelope_sender in rows:
        if envelope_sender:
            held.setdefault(envelope_sender.lower(), []).append(report_id)
    return held


def still_held(session: Session, report_ids: Sequence[int]) -> list[Report]:
    """Those of `report_ids` still held, locked (a second daemon's pass waits, then finds
    none), with what the mail reads loaded."""
    query = select(Report).where(Report.id.in_(report_ids), Report.automated == HELD_BY_LIMIT).order_by(Report.received_at, Report.id)
    return list(session.scalars(query.with_for_update(of=Report).options(*MAIL_SUMMARY_LOADS)))


def acknowledged_together(session: Session, config: Config, notices: Notices, sender: str, report_ids: Sequence[int], calendar: BusinessCalendar, now: datetime) -> int:
    """The combined acknowledgement of `sender`'s held reports (the first HELD_PER_MAIL of
    `report_ids`), in the caller's transaction, if the sender is under the limit at `now`;
    returns how many mails were enqueued (0 or 1)."""
    if over_auto_reply_limit(session, sender, config.outbox.auto_replies_per_hour, now):
        return 0
    reports = still_held(session, report_ids[:HELD_PER_MAIL])
    if not reports:
        return 0
    promised = notices.held_acknowledgement(session, reports, sender, calendar, now)
    if promised is None:
        return 0
    for report in reports:
        record_promise(report, promised[report.id])
        meet_automatic_milestones(session, config, report, calendar, now)
        report.automated = None
    log.info("reports %s acknowledged together", ", ".join(report.tracking_id for report in reports))
    return 1


def meet_automatic_milestones(session: Session, config: Config, report: Report, calendar: BusinessCalendar, now: datetime) -> None:
    """As send.py does for a delivered acknowledgement. Deadlines that cannot be computed
    cost this report its milestones, not the mail (as for a new report)."""
    try:
        with session.begin_nested():
            for milestone in config.sla.milestones:
                if milestone.auto:
                    meet_milestone(session, report, milestone.name, now, MET_BY, config.sla, calendar)
    except (ValueError, ArithmeticError) as error:
        log.error("report %s: acknowledged together, but its milestones could not be recorded (%s)", report.tracking_id, type(error).__name__)


def held_acknowledgements_pass(sessions: sessionmaker[Session], config: Config, notices: Notices, calendar: BusinessCalendar, now: datetime, stopping: Callable[[], bool] = never) -> int:
    """A combined acknowledgement to each sender with held reports who is under the limit
    at `now`, each in its own short transaction; returns how many were enqueued. `stopping`
    is asked between senders: the rest waits for the next pass."""
    with transaction(sessions) as session:
        held = held_by_sender(session)
    enqueued = 0
    for sender, report_ids in held.items():
        if stopping():
            break
        enqueued += sender_acknowledged(sessions, config, notices, sender, report_ids, calendar, now)
    return enqueued


def sender_acknowledged(sessions: sessionmaker[Session], config: Config, notices: Notices, sender: str, report_ids: Sequence[int], calendar: BusinessCalendar, now: datetime) -> int:
    """One sender in its own transaction: if it fails, it costs only that sender (tried
    again next pass). A database that fails (locked, gone) ends the pass."""
    try:
        with transaction(sessions) as session:
            return acknowledged_together(session, config, notices, sender, report_ids, calendar, now)
    except OperationalError:
        raise
    except Exception as error:
        log.error("combined acknowledgement of %d held report(s) could not be enqueued (%s); tried again next pass", len(report_ids), type(error).__name__)
        return 0

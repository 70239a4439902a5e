"""One SLA pass at a moment: warnings, breaches, escalations and progress reminders.

Each alert's outbox key names the milestone and the deadline it is about, so running the
pass again (next interval, after a restart, `sla check` by hand) enqueues nothing twice.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from mailintake.calendar.business import BusinessCalendar
from mailintake.core.vocabulary import CLOSED_STATUSES
from mailintake.outbound.notices import Notices
from mailintake.outbound.templates import TemplateError
from mailintake.sla.policy import Policy
from mailintake.storage.models import MilestoneRecord, Report

log = logging.getLogger(__name__)


def milestones_needing_attention(session: Session, now: datetime) -> list[MilestoneRecord]:
    """Only the milestones whose next alert is due (one indexed range scan): a milestone
    whose alerts are all in the outbox is not read again, however many there are."""
    return list(
        session.scalars(
            select(MilestoneRecord)
            .where(MilestoneRecord.next_alert_at <= now)
            # A reply moving a deadline meanwhile holds its row: skipped now, read next pass.
            .with_for_update(of=MilestoneRecord, skip_locked=True)
            .options(selectinload(MilestoneRecord.report).selectinload(Report.messages), selectinload(MilestoneRecord.report).selectinload(Report.milestones))
            .order_by(MilestoneRecord.next_alert_at, MilestoneRecord.id)
        )
    )


def alert_kinds(record: MilestoneRecord, policy: Policy, now: datetime) -> tuple[str, ...]:
    """Which alerts a milestone calls for at `now` (pure, given the record)."""
    assert record.due_at is not None
    if now > record.due_at:
        return ("sla_breach", "sla_escalation")
    recurring = record.name in policy.names and policy.milestone(record.name).recurring
    return ("progress_reminder",) if recurring else ("sla_warning",)


def sla_pass(session: Session, policy: Policy, calendar: BusinessCalendar, notices: Notices, now: datetime) -> list[str]:
    """Enqueue the alerts due at `now`; returns the kinds newly enqueued. Each milestone
    then waits for its next alert: its breach after a warning, nothing after a breach (until
    its deadline changes). One that could not be built is tried again next pass."""
    enqueued = []
    for record in milestones_needing_attention(session, now):
        if not record.awaiting or record.due_at is None or record.report.status in CLOSED_STATUSES:
            record.next_alert_at = None
            continue
        kinds = alert_kinds(record, policy, now)
        for kind in kinds:
            try:
                with session.begin_nested():
                    if notices.sla_alert(session, kind, record, calendar, now):
                        enqueued.append(kind)
            except (ValueError, TemplateError) as error:
                # One alert that cannot be built must not hold up the others.
                log.error("%s for milestone %d could not be built (%s)", kind, record.id, type(error).__name__)
        if all(notices.sla_alert_done(session, kind, record) for kind in kinds):
            record.next_alert_at = None if now > record.due_at else record.due_at
    return enqueued

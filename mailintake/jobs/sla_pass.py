"""One SLA pass at a moment: warnings, breaches, escalations and progress reminders.

Each alert's outbox key names the milestone and the deadline it is about, so running the
pass again (next interval, after a restart, `sla check` by hand) enqueues nothing twice.

`serve` and `sla check` run it in short transactions (`sla_pass_in_batches`): the due
milestones are read in one, then alerted BATCH_SIZE at a time, each batch committed on its
own, so a backlog of thousands of alerts never holds SQLite's write lock for more than one
batch, and intake stores new mail between batches.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from mailintake.calendar.business import BusinessCalendar
from mailintake.core.vocabulary import CLOSED_STATUSES
from mailintake.outbound.notices import Notices
from mailintake.outbound.templates import TemplateError
from mailintake.reports.read_model import MAIL_SUMMARY_LOADS
from mailintake.sla.policy import Policy
from mailintake.storage.db import transaction
from mailintake.storage.models import MilestoneRecord

log = logging.getLogger(__name__)

# Milestones alerted per write transaction (up to two alerts each, ~1 s of rendering and
# composing on a small machine), so the write lock is held briefly and a failing batch
# costs little to retry one milestone at a time.
BATCH_SIZE = 100
# On SQLite, the pause between batches. A writer waiting for the lock (intake storing a
# mail) is woken by SQLite's busy handler at most 100 ms apart: a pass that took the lock
# again at once would keep it from ever getting in.
SQLITE_WRITER_GAP = 0.15


def never() -> bool:
    return False


def due_milestones(now: datetime) -> Select[tuple[MilestoneRecord]]:
    """The milestones whose next alert is due (one indexed range scan): a milestone whose
    alerts are all in the outbox is not read again, however many there are."""
    return select(MilestoneRecord).where(MilestoneRecord.next_alert_at <= now).order_by(MilestoneRecord.next_alert_at, MilestoneRecord.id)


def locked_for_alerts(query: Select[tuple[MilestoneRecord]]) -> Select[tuple[MilestoneRecord]]:
    """The rows locked, with what their alerts read loaded in a few statements. A reply
    moving a deadline meanwhile holds its row: skipped now, read next pass."""
    return query.with_for_update(of=MilestoneRecord, skip_locked=True).options(selectinload(MilestoneRecord.report).options(*MAIL_SUMMARY_LOADS))


def milestones_needing_attention(session: Session, now: datetime) -> list[MilestoneRecord]:
    return list(session.scalars(locked_for_alerts(due_milestones(now))))


def due_milestone_ids(session: Session, now: datetime) -> list[int]:
    return list(session.scalars(due_milestones(now).with_only_columns(MilestoneRecord.id)))


def still_due(session: Session, ids: Sequence[int], now: datetime) -> list[MilestoneRecord]:
    """Those of `ids` still due at `now` when the batch runs: one that a reply, a command
    or another daemon moved on since they were read is left alone."""
    return list(session.scalars(locked_for_alerts(due_milestones(now).where(MilestoneRecord.id.in_(ids)))))


def alert_kinds(record: MilestoneRecord, policy: Policy, now: datetime) -> tuple[str, ...]:
    """Which alerts a milestone calls for at `now` (pure, given the record)."""
    assert record.due_at is not None
    if now > record.due_at:
        return ("sla_breach", "sla_escalation")
    recurring = record.name in policy.names and policy.milestone(record.name).recurring
    return ("progress_reminder",) if recurring else ("sla_warning",)


def alerts_for(session: Session, records: Sequence[MilestoneRecord], policy: Policy, calendar: BusinessCalendar, notices: Notices, now: datetime) -> list[str]:
    """Enqueue the alerts `records` call for at `now`; returns the kinds newly enqueued.
    Each milestone then waits for its next alert: its breach after a warning, nothing after
    a breach (until its deadline changes). One that could not be built is tried again next
    pass."""
    enqueued = []
    for record in records:
        if not record.awaiting or record.due_at is None or record.report.status in CLOSED_STATUSES:
            record.next_alert_at = None
            continue
        kinds = alert_kinds(record, policy, now)
        sent = []
        for kind in kinds:
            try:
                if notices.sla_alert(session, kind, record, calendar, now):
                    sent.append(kind)
            except (ValueError, TemplateError) as error:
                # Refused before anything was written (compose checks, then the row goes in):
                # one alert that cannot be built must not hold up the others.
                log.error("%s for milestone %d could not be built (%s)", kind, record.id, type(error).__name__)
        enqueued += sent
        if all(kind in sent or notices.sla_alert_done(session, kind, record) for kind in kinds):
            record.next_alert_at = None if now > record.due_at else record.due_at
    return enqueued


def sla_pass(session: Session, policy: Policy, calendar: BusinessCalendar, notices: Notices, now: datetime) -> list[str]:
    """Every alert due at `now`, in the caller's transaction."""
    return alerts_for(session, milestones_needing_attention(session, now), policy, calendar, notices, now)


def sla_pass_in_batches(
    sessions: sessionmaker[Session],
    policy: Policy,
    calendar: BusinessCalendar,
    notices: Notices,
    now: datetime,
    batch_size: int = BATCH_SIZE,
    stopping: Callable[[], bool] = never,
) -> list[str]:
    """Every alert due at `now`: the due milestones read in one short transaction, then
    alerted `batch_size` at a time, each batch in its own transaction. Returns the kinds
    newly enqueued. `stopping` is asked between batches: the rest waits for the next pass."""
    with transaction(sessions) as session:
        ids = due_milestone_ids(session, now)
        gap = SQLITE_WRITER_GAP if session.get_bind().dialect.name == "sqlite" else 0.0
    enqueued: list[str] = []
    for start in range(0, len(ids), batch_size):
        if start and gap:
            time.sleep(gap)
        if stopping():
            log.info("SLA pass stopped between batches; the next pass carries on")
            break
        enqueued += batch_alerts(sessions, ids[start : start + batch_size], policy, calendar, notices, now)
    return enqueued


def batch_alerts(sessions: sessionmaker[Session], ids: Sequence[int], policy: Policy, calendar: BusinessCalendar, notices: Notices, now: datetime) -> list[str]:
    """One batch in its own transaction. If it fails for one of its milestones, it is
    rolled back and its milestones tried one at a time, so that one costs only itself. A
    database that fails (locked, gone) ends the pass: the next one carries on."""
    try:
        with transaction(sessions) as session:
            return alerts_for(session, still_due(session, ids, now), policy, calendar, notices, now)
    except OperationalError:
        raise
    except Exception as error:
        if len(ids) == 1:
            log.error("SLA alerts for milestone %d could not be enqueued (%s); tried again next pass", ids[0], type(error).__name__)
            return []
        log.error("SLA batch of %d milestones failed (%s); trying them one at a time", len(ids), type(error).__name__)
        return [kind for one in ids for kind in batch_alerts(sessions, (one,), policy, calendar, notices, now)]

"""One SLA pass at a moment: warnings, breaches, escalations and progress reminders.

Each alert's outbox key names the milestone and the deadline it is about, so running the
pass again (next interval, after a restart, `sla check` by hand) enqueues nothing twice.

`serve` and `sla check` run it in short transactions (`sla_pass_in_batches`): the due
milestones are read in one, then alerted BATCH_SIZE at a time, each batch committed on its
own, so a backlog of thousands of alerts never holds SQLite's write lock for more than one
batch, and intake stores new mail between batches.

A burst (a backlog, a long closure ending, a restart after downtime) is not thousands of
mails: when a pass finds more than BURST_THRESHOLD alerts of one kind due (counted in the
transaction that reads the due milestones), each batch sends that kind as one combined
mail (`sla_alert_burst`, to that kind's recipients) instead of one mail per milestone.
Each combined mail is written in its batch's transaction with the advance of every
milestone it covers, under a key over the deadlines it covers: a batch rolled back leaves
neither, a batch done again after a crash before its commit writes the same row once,
and a committed one leaves nothing due. So 2,000 breaches due at once are 20 mails to
`[staff] notify` and 20 to `[staff] alerts`, each counting its 100 and listing the
BURST_ITEMS most overdue, and no write transaction is longer than a batch.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import UTC, datetime

from sqlalchemy import Select, case, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from mailintake.calendar.business import BusinessCalendar
from mailintake.core.vocabulary import CLOSED_STATUSES
from mailintake.outbound.notices import Notices
from mailintake.outbound.templates import TemplateError
from mailintake.reports.read_model import MAIL_SUMMARY_LOADS
from mailintake.sla.policy import Policy
from mailintake.storage.db import transaction
from mailintake.storage.models import MilestoneRecord, Report

log = logging.getLogger(__name__)

# Milestones alerted per write transaction (up to two alerts each, ~1 s of rendering and
# composing on a small machine), so the write lock is held briefly and a failing batch
# costs little to retry one milestone at a time.
BATCH_SIZE = 100
# On SQLite, the pause between batches. A writer waiting for the lock (intake storing a
# mail) is woken by SQLite's busy handler at most 100 ms apart: a pass that took the lock
# again at once would keep it from ever getting in.
SQLITE_WRITER_GAP = 0.15
# More alerts of one kind than this due in one pass, and that kind goes out as one combined
# mail per batch: more than a person reads one by one, fewer than a day of ordinary reports.
BURST_THRESHOLD = 10
# Deadlines a combined mail lists, most urgent first; it counts them all (`sla status`
# lists every one).
BURST_ITEMS = 50
# The next alert of a breach alerted in a combined mail: a moment that never comes. It has
# no outbox key of its own for a later pass to find, and None would be turned back into its
# warning time by the next refresh of its report (a reply, `sla recompute`), which a single
# alert survives only because the pass then finds its key. A deadline that moves is
# alerted again as ever: the refresh gives it its new first alert.
ALERTED_IN_BURST = datetime(9999, 1, 1, tzinfo=UTC)


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


def kinds_at(name: str, overdue: bool, policy: Policy) -> tuple[str, ...]:
    """Which alerts a milestone of this name calls for, overdue or not (pure)."""
    if overdue:
        return ("sla_breach", "sla_escalation")
    recurring = name in policy.names and policy.milestone(name).recurring
    return ("progress_reminder",) if recurring else ("sla_warning",)


def alert_kinds(record: MilestoneRecord, policy: Policy, now: datetime) -> tuple[str, ...]:
    """Which alerts a milestone calls for at `now` (pure, given the record)."""
    assert record.due_at is not None
    return kinds_at(record.name, now > record.due_at, policy)


def alertable(record: MilestoneRecord) -> bool:
    """A deadline still to meet, of an open report: the only kind the pass alerts."""
    return record.awaiting and record.due_at is not None and record.report.status not in CLOSED_STATUSES


def due_alert_counts(session: Session, policy: Policy, now: datetime) -> Counter[str]:
    """How many alerts of each kind are due at `now`: one aggregate over the due milestones
    (per milestone name, how many are overdue), so a pass knows a burst before its batches."""
    overdue = func.count(case((MilestoneRecord.due_at < now, 1)))
    rows = session.execute(
        select(MilestoneRecord.name, overdue, func.count())
        .join(Report, Report.id == MilestoneRecord.report_id)
        .where(MilestoneRecord.next_alert_at <= now, MilestoneRecord.awaiting.is_(True), MilestoneRecord.due_at.is_not(None), Report.status.not_in(CLOSED_STATUSES))
        .group_by(MilestoneRecord.name)
    )
    counts: Counter[str] = Counter()
    for name, late, due in rows:
        counts.update(dict.fromkeys(kinds_at(name, True, policy), late))
        counts.update(dict.fromkeys(kinds_at(name, False, policy), due - late))
    return counts


def alert_counts(records: Iterable[MilestoneRecord], policy: Policy, now: datetime) -> Counter[str]:
    """How many alerts of each kind `records` call for at `now` (pure, given the records)."""
    return Counter(kind for record in records if alertable(record) for kind in alert_kinds(record, policy, now))


def burst_kinds(counts: Counter[str]) -> frozenset[str]:
    """The kinds of alert due too many at once to send one by one."""
    return frozenset(kind for kind, count in counts.items() if count > BURST_THRESHOLD)


def alerts_for(
    session: Session,
    records: Sequence[MilestoneRecord],
    policy: Policy,
    calendar: BusinessCalendar,
    notices: Notices,
    now: datetime,
    bursting: Collection[str] = frozenset(),
) -> list[str]:
    """Enqueue the alerts `records` call for at `now`, those of a `bursting` kind as one
    combined mail; returns the kinds newly enqueued, one per mail. Each milestone then
    waits for its next alert: its breach after a warning, nothing after a breach (until its
    deadline changes). One that could not be built is tried again next pass."""
    for record in records:
        if not alertable(record):
            record.next_alert_at = None
    open_records = [record for record in records if alertable(record)]
    enqueued, in_burst = burst_alerts(session, open_records, policy, calendar, notices, now, bursting)
    for record in open_records:
        assert record.due_at is not None
        kinds = alert_kinds(record, policy, now)
        sent = []
        for kind in kinds:
            if kind in bursting:
                continue
            try:
                if notices.sla_alert(session, kind, record, calendar, now):
                    sent.append(kind)
            except (ValueError, TemplateError) as error:
                # Refused before anything was written (compose checks, then the row goes in):
                # one alert that cannot be built must not hold up the others.
                log.error("%s for milestone %d could not be built (%s)", kind, record.id, type(error).__name__)
        enqueued += sent
        if all(kind in sent or (kind, record.id) in in_burst or notices.sla_alert_done(session, kind, record) for kind in kinds):
            record.next_alert_at = next_alert_after(record, now, any((kind, record.id) in in_burst for kind in kinds))
    return enqueued


def burst_alerts(
    session: Session,
    records: Sequence[MilestoneRecord],
    policy: Policy,
    calendar: BusinessCalendar,
    notices: Notices,
    now: datetime,
    bursting: Collection[str],
) -> tuple[list[str], set[tuple[str, int]]]:
    """For each `bursting` kind, one mail covering the milestones of `records` whose alert
    of that kind is not out yet. Returns the kinds newly enqueued and the (kind, milestone
    id) pairs a combined mail in the outbox now covers."""
    enqueued, covered = [], set()
    for kind in sorted(bursting):
        due = [record for record in records if kind in alert_kinds(record, policy, now) and not notices.sla_alert_done(session, kind, record)]
        if not due:
            continue
        try:
            if notices.sla_alert_burst(session, kind, due, BURST_ITEMS, calendar, now):
                enqueued.append(kind)
        except (ValueError, TemplateError) as error:
            log.error("combined %s for %d milestones could not be built (%s)", kind, len(due), type(error).__name__)
        if notices.sla_alert_burst_done(session, kind, due):
            covered.update((kind, record.id) for record in due)
    return enqueued, covered


def next_alert_after(record: MilestoneRecord, now: datetime, in_burst: bool) -> datetime | None:
    """When a milestone whose alerts due at `now` are out needs the pass again: at its
    deadline after a warning or reminder; after its breach, never (see ALERTED_IN_BURST)."""
    assert record.due_at is not None
    if now <= record.due_at:
        return record.due_at
    return ALERTED_IN_BURST if in_burst else None


def sla_pass(session: Session, policy: Policy, calendar: BusinessCalendar, notices: Notices, now: datetime) -> list[str]:
    """Every alert due at `now`, in the caller's transaction: one pass, one burst decision."""
    records = milestones_needing_attention(session, now)
    return alerts_for(session, records, policy, calendar, notices, now, burst_kinds(alert_counts(records, policy, now)))


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
        bursting = burst_kinds(due_alert_counts(session, policy, now))
        gap = SQLITE_WRITER_GAP if session.get_bind().dialect.name == "sqlite" else 0.0
    enqueued: list[str] = []
    for start in range(0, len(ids), batch_size):
        if start and gap:
            time.sleep(gap)
        if stopping():
            log.info("SLA pass stopped between batches; the next pass carries on")
            break
        enqueued += batch_alerts(sessions, ids[start : start + batch_size], policy, calendar, notices, now, bursting)
    return enqueued


def batch_alerts(
    sessions: sessionmaker[Session],
    ids: Sequence[int],
    policy: Policy,
    calendar: BusinessCalendar,
    notices: Notices,
    now: datetime,
    bursting: Collection[str] = frozenset(),
) -> list[str]:
    """One batch in its own transaction, the `bursting` kinds as one mail each. If it fails
    for one of its milestones, it is rolled back (combined mails and all) and its
    milestones tried one at a time with their single alerts, so that one costs only
    itself. A database that fails (locked, gone) ends the pass: the next one carries on."""
    try:
        with transaction(sessions) as session:
            return alerts_for(session, still_due(session, ids, now), policy, calendar, notices, now, bursting)
    except OperationalError:
        raise
    except Exception as error:
        if len(ids) == 1:
            log.error("SLA alerts for milestone %d could not be enqueued (%s); tried again next pass", ids[0], type(error).__name__)
            return []
        log.error("SLA batch of %d milestones failed (%s); trying them one at a time", len(ids), type(error).__name__)
        return [kind for one in ids for kind in batch_alerts(sessions, (one,), policy, calendar, notices, now)]

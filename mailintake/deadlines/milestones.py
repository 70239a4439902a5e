"""Reports' SLA milestones in the database: computed by the pure engine (sla/schedule.py), stored
with their due time and the moment the SLA pass must look at them next (`next_alert_at`).

A promise does not move: once a milestone's deadline has been communicated to the
reporter (promised_due_at), a recomputation can bring it earlier but never later. Its
warning is computed against the deadline that holds, so it still comes before it
(sla/schedule.py: `warning_moment`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, and_, func, or_, select, true, union_all
from sqlalchemy.orm import Session, selectinload

from mailintake.calendar.business import BusinessCalendar
from mailintake.core.vocabulary import CLOSED_STATUSES
from mailintake.sla.policy import Policy
from mailintake.sla.schedule import MilestoneStatus, compute_schedule, state_at, warning_held_to
from mailintake.storage.models import MilestoneRecord, Pause, Report

# Milestones `sla status` reads at a time.
VIEW_BATCH = 1000


class UnknownMilestone(LookupError):
    pass


@dataclass(frozen=True)
class MilestoneKey:
    """A milestone's place in `sla status`'s order: its stored deadline (none last), its
    report's tracking id, its id. Stored, not recomputed, so SQL can order and page by it."""

    due_at: datetime | None
    tracking_id: str
    id: int


@dataclass(frozen=True)
class MilestoneView:
    tracking_id: str
    status: MilestoneStatus
    computed_due_at: datetime | None
    promised_due_at: datetime | None
    due_at: datetime | None
    key: MilestoneKey


@dataclass(frozen=True)
class MilestoneFilter:
    """Which milestones `sla status` lists: these states (none given: all), of this report."""

    states: frozenset[str] = frozenset()
    tracking_id: str | None = None


EVERY_MILESTONE = MilestoneFilter()
# Where the milestones without a deadline begin in `sla status`'s order.
FIRST_UNDATED = MilestoneKey(None, "", 0)


def refresh_milestones(session: Session, report: Report, policy: Policy, calendar: BusinessCalendar, now: datetime) -> list[MilestoneRecord]:
    records = {record.name: record for record in report.milestones}
    for status in schedule_of(report, records, policy, calendar, now):
        record = records.get(status.name)
        if record is None:
            record = MilestoneRecord(name=status.name)
            report.milestones.append(record)
            records[status.name] = record
        deadline = (record.due_at, record.warn_at, record.awaiting)
        record.started_at = status.started_at
        record.computed_due_at = status.due_at
        record.due_at, record.warn_at = deadline_held(status, record.promised_due_at, paused_by_reporter(report, policy, status.name), policy, calendar)
        record.awaiting = status.state != "met" and record.due_at is not None
        if (record.due_at, record.warn_at, record.awaiting) != deadline or (record.awaiting and record.next_alert_at is None):
            record.next_alert_at = first_alert_at(record)
    session.flush()
    return list(records.values())


def first_alert_at(record: MilestoneRecord) -> datetime | None:
    """From a new deadline on, the SLA pass looks at it from its warning. A deadline whose
    alerts were all sent is looked at once more after a refresh (e.g. a report reopened):
    the pass finds their outbox keys and moves on."""
    return earliest(record.warn_at, record.due_at) if record.awaiting else None


def schedule_of(report: Report, records: dict[str, MilestoneRecord], policy: Policy, calendar: BusinessCalendar, now: datetime) -> tuple[MilestoneStatus, ...]:
    met = {name: record.met_at for name, record in records.items() if record.met_at is not None}
    pauses = tuple((pause.started_at, pause.ended_at) for pause in report.pauses)
    return compute_schedule(policy, calendar, report.received_at, now, met, report.severity, pauses=pauses)


def meet_milestone(session: Session, report: Report, name: str, at: datetime, by: str, policy: Policy, calendar: BusinessCalendar) -> None:
    """Record a milestone as met; chained milestones start their clocks from `at`. A one-off
    milestone keeps the moment it was first met."""
    if name not in policy.names:
        raise UnknownMilestone(name)
    record = next((record for record in report.milestones if record.name == name), None)
    if record is None:
        record = MilestoneRecord(name=name)
        report.milestones.append(record)
    elif record.met_at is not None and not policy.milestone(name).recurring:
        return
    record.met_at = at
    record.met_by = by
    if policy.milestone(name).recurring:
        record.promised_due_at = None
    refresh_milestones(session, report, policy, calendar, at)


def record_promise(report: Report, names: tuple[str, ...]) -> None:
    """The deadlines of these milestones were just communicated to the reporter."""
    for record in report.milestones:
        if record.name in names and record.due_at is not None and record.met_at is None:
            record.promised_due_at = record.due_at


def milestones_due_before(session: Session, moment: datetime) -> list[MilestoneRecord]:
    """Deadlines still to be met that fall before `moment`, on open reports, soonest first."""
    return list(
        session.scalars(
            select(MilestoneRecord)
            .join(Report)
            .where(MilestoneRecord.awaiting.is_(True), MilestoneRecord.due_at < moment, Report.status.not_in(CLOSED_STATUSES))
            .options(selectinload(MilestoneRecord.report))
            .order_by(MilestoneRecord.due_at, MilestoneRecord.id)
        )
    )


def open_reports(session: Session, due_from: datetime | None = None) -> list[Report]:
    """Open reports; with `due_from`, only those with a deadline still to meet at or after it."""
    query = select(Report).where(Report.status.not_in(CLOSED_STATUSES))
    if due_from is not None:
        awaiting_later = select(MilestoneRecord.report_id).where(MilestoneRecord.awaiting.is_(True), MilestoneRecord.computed_due_at >= due_from)
        query = query.where(Report.id.in_(awaiting_later))
    return list(session.scalars(query.options(selectinload(Report.milestones), selectinload(Report.pauses)).order_by(Report.id)))


def refresh_open_reports(session: Session, policy: Policy, calendar: BusinessCalendar, now: datetime, changed_from: date | None = None) -> int:
    """Recompute open reports' deadlines; returns how many moved.

    A calendar change from `changed_from` on cannot move a deadline that falls before that
    day, so only reports with a deadline still to meet from then on are recomputed.
    """
    due_from = None if changed_from is None else datetime.combine(changed_from - timedelta(days=1), time(0), tzinfo=UTC)
    moved = 0
    for report in open_reports(session, due_from):
        before = {record.name: record.due_at for record in report.milestones}
        for record in refresh_milestones(session, report, policy, calendar, now):
            moved += before.get(record.name) != record.due_at
    return moved


def milestone_views(session: Session, policy: Policy, calendar: BusinessCalendar, now: datetime, wanted: MilestoneFilter = EVERY_MILESTONE, after: MilestoneKey | None = None, batch: int = VIEW_BATCH) -> Iterator[MilestoneView]:
    """The policy's milestones of open reports with their state at `now`, soonest stored
    deadline first (none last), then by tracking id, each after `after`.

    Read `batch` rows at a time (SQL orders, filters and limits; at most four statements
    a batch, no ORM objects), so memory does not grow with the queue. The state is
    computed from the report as `sla recompute` would; a state filter is decided in SQL on
    the stored deadlines and confirmed on the computed state (they differ only until `sla
    recompute` after a config change).
    """
    while True:
        rows = next_milestone_rows(session, policy, now, wanted, after, batch)
        for view in views_of(session, rows, policy, calendar, now):
            if not wanted.states or view.status.state in wanted.states:
                yield view
        if len(rows) < batch:
            return
        after = MilestoneKey(rows[-1].due_at, rows[-1].tracking_id, rows[-1].id)


def next_milestone_rows(session: Session, policy: Policy, now: datetime, wanted: MilestoneFilter, after: MilestoneKey | None, batch: int) -> list[Row[Any]]:
    """Up to `batch` rows after `after`: those with a deadline, soonest first, then those
    without one by tracking id. Each part is read in the order of an index, so a page
    costs the same at any size: deadlines through (awaiting, due_at), the awaited ones and
    the others apart and merged in SQL; no deadline through the tracking ids. One report's
    few milestones are read through the report and sorted."""
    rows: list[Row[Any]] = []
    if after is None or after.due_at is not None:
        dated = dated_rows(policy, now, wanted, after, batch)
        rows = [] if dated is None else list(session.execute(dated))
    if len(rows) < batch:
        undated = undated_rows(policy, now, wanted, after if after is not None and after.due_at is None else FIRST_UNDATED, batch - len(rows))
        rows += [] if undated is None else session.execute(undated).all()
    return rows


def listed_milestones(policy: Policy, wanted: MilestoneFilter) -> Select[Any]:
    query = (
        select(MilestoneRecord.id, MilestoneRecord.report_id, MilestoneRecord.name, MilestoneRecord.due_at, Report.tracking_id, Report.received_at, Report.severity)
        .join(Report, Report.id == MilestoneRecord.report_id)
        .where(Report.status.not_in(CLOSED_STATUSES), MilestoneRecord.name.in_(policy.names))
    )
    return query if wanted.tracking_id is None else query.where(Report.tracking_id == wanted.tracking_id.upper())


def dated_rows(policy: Policy, now: datetime, wanted: MilestoneFilter, after: MilestoneKey | None, batch: int) -> Select[Any] | None:
    """Milestones with a deadline after `after`, in order; None if none can be wanted."""
    parts = [(awaiting, condition) for awaiting in (True, False) if (condition := wanted_states(wanted, policy, now, awaiting)) is not None]
    if not parts:
        return None
    order = (MilestoneRecord.due_at, Report.tracking_id, MilestoneRecord.id)
    dated = listed_milestones(policy, wanted).where(MilestoneRecord.due_at.is_not(None), dated_after(after))
    if wanted.tracking_id is not None:
        return dated.where(or_(*(and_(MilestoneRecord.awaiting == awaiting, condition) for awaiting, condition in parts))).order_by(*order).limit(batch)
    ordered = [dated.where(MilestoneRecord.awaiting == awaiting, condition).order_by(*order).limit(batch).subquery() for awaiting, condition in parts]
    merged = union_all(*(select(part) for part in ordered)).subquery() if len(ordered) > 1 else ordered[0]
    return select(merged).order_by(merged.c.due_at, merged.c.tracking_id, merged.c.id).limit(batch)


def dated_after(after: MilestoneKey | None) -> ColumnElement[bool]:
    """Later in (due_at, tracking_id, id); `due_at >=` (implied) gives the index a range."""
    if after is None:
        return true()
    record = MilestoneRecord
    later_in_tie = or_(Report.tracking_id > after.tracking_id, and_(Report.tracking_id == after.tracking_id, record.id > after.id))
    return and_(record.due_at >= after.due_at, or_(record.due_at > after.due_at, later_in_tie))


def undated_rows(policy: Policy, now: datetime, wanted: MilestoneFilter, after: MilestoneKey, limit: int) -> Select[Any] | None:
    """No deadline, later in (tracking_id, id); `tracking_id >=` (implied) lets SQLite walk
    the tracking id index instead of sorting every undated milestone."""
    condition = wanted_states(wanted, policy, now, None)
    if condition is None:
        return None
    later = or_(Report.tracking_id > after.tracking_id, MilestoneRecord.id > after.id)
    undated = listed_milestones(policy, wanted).where(MilestoneRecord.due_at.is_(None), condition, Report.tracking_id >= after.tracking_id, later)
    return undated.order_by(Report.tracking_id, MilestoneRecord.id).limit(limit)


def wanted_states(wanted: MilestoneFilter, policy: Policy, now: datetime, awaiting: bool | None) -> ColumnElement[bool] | None:
    """The wanted states in stored columns, for awaited deadlines (True), other deadlines
    (False) or milestones without one (None); None if none of them is wanted there."""
    if not wanted.states:
        return true()
    conditions = stored_states(policy, now, awaiting)
    chosen = [conditions[state] for state in sorted(wanted.states) if state in conditions]
    return or_(*chosen) if chosen else None


def stored_states(policy: Policy, now: datetime, awaiting: bool | None) -> dict[str, ColumnElement[bool]]:
    """What the stored columns of a milestone in each state at `now` satisfy (a superset: the
    computed state decides). An awaited deadline is ok, warning or breached; another
    deadline was met; without one a milestone waits for its start, is paused, met (a duty
    ended) or ok (no deadline of its own)."""
    record = MilestoneRecord
    met = or_(record.met_at.is_not(None), record.name.in_([milestone.name for milestone in policy.milestones if milestone.until is not None]))
    if awaiting is None:
        pausable = [milestone.name for milestone in policy.milestones if milestone.pausable]
        waiting_on_reporter = Report.id.in_(select(Pause.report_id).where(Pause.ended_at.is_(None)))
        started = record.started_at.is_not(None)
        return {"waiting": record.started_at.is_(None), "paused": and_(started, record.name.in_(pausable), waiting_on_reporter), "ok": and_(started, record.met_at.is_(None)), "met": met}
    if not awaiting:
        return {"met": met}
    # An expression, not the column: the planner then walks (awaiting, due_at) in the
    # listing's order instead of sorting every warning before the first page.
    warned_at = func.coalesce(record.warn_at, record.due_at)
    return {"breached": record.due_at < now, "warning": and_(record.due_at >= now, warned_at <= now), "ok": and_(record.due_at >= now, warned_at >= now)}


def views_of(session: Session, rows: Sequence[Row[Any]], policy: Policy, calendar: BusinessCalendar, now: datetime) -> Iterator[MilestoneView]:
    """The rows' milestones as their reports' schedules have them at `now`: each report's
    met moments, promises and pauses read in one statement each for the whole batch."""
    report_ids = {row.report_id for row in rows}
    if not report_ids:
        return
    met: dict[int, dict[str, datetime]] = defaultdict(dict)
    promised: dict[tuple[int, str], datetime] = {}
    for report_id, name, met_at, promised_due_at in session.execute(select(MilestoneRecord.report_id, MilestoneRecord.name, MilestoneRecord.met_at, MilestoneRecord.promised_due_at).where(MilestoneRecord.report_id.in_(report_ids))):
        if met_at is not None:
            met[report_id][name] = met_at
        if promised_due_at is not None:
            promised[report_id, name] = promised_due_at
    pauses: dict[int, list[tuple[datetime, datetime | None]]] = defaultdict(list)
    for report_id, started_at, ended_at in session.execute(select(Pause.report_id, Pause.started_at, Pause.ended_at).where(Pause.report_id.in_(report_ids)).order_by(Pause.report_id, Pause.id)):
        pauses[report_id].append((started_at, ended_at))
    schedules: dict[int, dict[str, MilestoneStatus]] = {}
    for row in rows:
        if row.report_id not in schedules:
            statuses = compute_schedule(policy, calendar, row.received_at, now, met[row.report_id], row.severity, pauses=pauses[row.report_id])
            schedules[row.report_id] = {status.name: status for status in statuses}
        moved_by_pauses = bool(pauses[row.report_id]) and policy.milestone(row.name).pausable
        key = MilestoneKey(row.due_at, row.tracking_id, row.id)
        yield view_at(schedules[row.report_id][row.name], promised.get((row.report_id, row.name)), moved_by_pauses, now, key, policy, calendar)


def view_at(status: MilestoneStatus, promised: datetime | None, moved_by_pauses: bool, now: datetime, key: MilestoneKey, policy: Policy, calendar: BusinessCalendar) -> MilestoneView:
    due_at, warn_at = deadline_held(status, promised, moved_by_pauses, policy, calendar)
    state = status.state if status.state in ("met", "waiting", "paused") else state_at(now, due_at, warn_at)
    kept = MilestoneStatus(status.name, state, status.started_at, due_at, warn_at, status.met_at, status.allowed)
    return MilestoneView(key.tracking_id, kept, status.due_at, promised, due_at, key)


def deadline_held(status: MilestoneStatus, promised: datetime | None, moved_by_pauses: bool, policy: Policy, calendar: BusinessCalendar) -> tuple[datetime | None, datetime | None]:
    """The deadline a milestone is judged by and its warning: its promise if earlier, unless
    the reporter's wait moved it (paused_by_reporter); the warning always before it."""
    due_at = status.due_at if moved_by_pauses else earliest(status.due_at, promised)
    return due_at, warning_held_to(status, due_at, calendar, policy.milestone(status.name).warn_at)


def paused_by_reporter(report: Report, policy: Policy, name: str) -> bool:
    """A deadline the reporter made us wait on moves later with the wait, even if promised:
    the promise was made for time the company could act in."""
    return bool(report.pauses) and name in policy.names and policy.milestone(name).pausable


def earliest(first: datetime | None, second: datetime | None) -> datetime | None:
    if first is None:
        return second
    if second is None:
        return first
    return min(first, second)

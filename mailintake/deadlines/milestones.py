"""Reports' SLA milestones in the database: computed by the pure engine (sla/schedule.py), stored
with their due time and the moment the SLA pass must look at them next (`next_alert_at`).

A promise does not move: once a milestone's deadline has been communicated to the
reporter (promised_due_at), a recomputation can bring it earlier but never later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from mailintake.calendar.business import BusinessCalendar
from mailintake.core.vocabulary import CLOSED_STATUSES
from mailintake.sla.policy import Policy
from mailintake.sla.schedule import MilestoneStatus, compute_schedule, state_at
from mailintake.storage.models import MilestoneRecord, Report


class UnknownMilestone(LookupError):
    pass


@dataclass(frozen=True)
class MilestoneView:
    tracking_id: str
    status: MilestoneStatus
    computed_due_at: datetime | None
    promised_due_at: datetime | None
    due_at: datetime | None


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
        record.due_at = status.due_at if paused_by_reporter(report, policy, status.name) else earliest(status.due_at, record.promised_due_at)
        record.warn_at = earliest(status.warn_at, record.due_at)
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


def milestone_views(session: Session, policy: Policy, calendar: BusinessCalendar, now: datetime) -> list[MilestoneView]:
    """Every milestone of every open report with its state at `now`, soonest due first."""
    views = []
    for report in open_reports(session):
        records = {record.name: record for record in report.milestones}
        for status in schedule_of(report, records, policy, calendar, now):
            promised = records[status.name].promised_due_at if status.name in records else None
            due_at = status.due_at if paused_by_reporter(report, policy, status.name) else earliest(status.due_at, promised)
            warn_at = earliest(status.warn_at, due_at)
            state = status.state if status.state in ("met", "waiting", "paused") else state_at(now, due_at, warn_at)
            kept = MilestoneStatus(status.name, state, status.started_at, due_at, warn_at, status.met_at)
            views.append(MilestoneView(report.tracking_id, kept, status.due_at, promised, due_at))
    return sorted(views, key=lambda view: (view.due_at is None, view.due_at or now, view.tracking_id))


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

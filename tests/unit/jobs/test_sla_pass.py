"""The SLA pass reads only milestones whose next alert is due: after their alerts are in
the outbox, thousands of breached deadlines cost the pass nothing (statements counted)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from mailintake.deadlines.closures import effective_calendar
from mailintake.deadlines.milestones import refresh_milestones
from mailintake.jobs.sla_pass import sla_pass
from mailintake.pipeline import Services, process_inbound
from mailintake.sla.policy import policy_from_mapping
from mailintake.storage.db import transaction
from mailintake.storage.models import MilestoneRecord, OutboxMessage, Report
from tests.statements import counted_statements
from tests.unit.pipeline.test_pipeline import NOW, DirectParser, delivered, report_raw, services  # noqa: F401 (fixture)


def reports_received(sessions: sessionmaker[Session], services: Services, count: int) -> None:
    for number in range(count):
        process_inbound(sessions, DirectParser(), services, delivered(sessions, report_raw(f"Report {number}")), lambda: NOW)


def run_pass(sessions: sessionmaker[Session], services: Services, moment) -> list[str]:  # type: ignore[no-untyped-def]
    with transaction(sessions) as session:
        return sla_pass(session, services.policy, effective_calendar(session, services.calendar), services.notices, moment)


def alert_kinds(sessions: sessionmaker[Session]) -> list[str]:
    with transaction(sessions) as session:
        return sorted(session.scalars(select(OutboxMessage.kind).where(OutboxMessage.kind.like("sla_%"))))


def test_alerted_breaches_cost_the_pass_one_statement_however_many(engine: Engine, sessions: sessionmaker[Session], services: Services) -> None:
    reports_received(sessions, services, 12)
    later = NOW + timedelta(days=30)
    assert run_pass(sessions, services, later)
    sent = alert_kinds(sessions)
    with transaction(sessions) as session:
        calendar = effective_calendar(session, services.calendar)
        with counted_statements(engine) as statements:
            assert sla_pass(session, services.policy, calendar, services.notices, later + timedelta(minutes=1)) == []
    assert len(statements) == 1 and "FROM milestones" in statements[0], statements
    assert alert_kinds(sessions) == sent


def test_a_milestone_is_read_at_its_warning_then_at_its_breach_then_not_again(sessions: sessionmaker[Session], services: Services) -> None:
    reports_received(sessions, services, 1)
    with transaction(sessions) as session:
        record = session.scalars(select(MilestoneRecord).where(MilestoneRecord.name == "acknowledge")).one()
        warn_at, due_at = record.warn_at, record.due_at
        assert record.next_alert_at == warn_at < due_at
    assert run_pass(sessions, services, warn_at) == ["sla_warning"]
    with transaction(sessions) as session:
        assert session.scalars(select(MilestoneRecord.next_alert_at).where(MilestoneRecord.name == "acknowledge")).one() == due_at
    assert run_pass(sessions, services, due_at + timedelta(seconds=1)) == ["sla_breach", "sla_escalation"]
    with transaction(sessions) as session:
        assert session.scalars(select(MilestoneRecord.next_alert_at).where(MilestoneRecord.name == "acknowledge")).one() is None


def test_a_closed_report_is_not_read_again_and_a_reopened_one_is_alerted(sessions: sessionmaker[Session], services: Services) -> None:
    reports_received(sessions, services, 1)
    later = NOW + timedelta(days=30)
    with transaction(sessions) as session:
        session.execute(update(Report).values(status="resolved"))
    assert run_pass(sessions, services, later) == []
    with transaction(sessions) as session:
        assert session.scalars(select(MilestoneRecord).where(MilestoneRecord.next_alert_at.is_not(None))).all() == []
        report = session.scalars(select(Report)).one()
        report.status = "fixing"
        refresh_milestones(session, report, services.policy, effective_calendar(session, services.calendar), later)
    assert "sla_breach" in run_pass(sessions, services, later)


def test_a_warning_moved_by_a_policy_change_is_looked_at_at_its_new_moment(sessions: sessionmaker[Session], services: Services) -> None:
    reports_received(sessions, services, 1)
    earlier_warning = policy_from_mapping({"acknowledge": {"within": "24 hours", "auto": True, "warn_at": 0.5}})
    with transaction(sessions) as session:
        report = session.scalars(select(Report)).one()
        refresh_milestones(session, report, earlier_warning, effective_calendar(session, services.calendar), NOW)
        record = next(record for record in report.milestones if record.name == "acknowledge")
        assert record.warn_at == NOW + timedelta(hours=12) == record.next_alert_at

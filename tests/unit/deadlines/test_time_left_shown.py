"""`sla status` and the SLA alert mails say the same about a stored deadline: the time left
in its own unit (sla/time_left.py), against a real database (an SQLite file and, when
configured, PostgreSQL).

Calendar: Europe/Amsterdam, NL holidays, Mon-Fri 09:00-17:00. Received Mon 16 Nov 2026
10:00 (UTC+1).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailintake.calendar.business import BusinessCalendar
from mailintake.cli.sla import milestone_item
from mailintake.deadlines.milestones import meet_milestone, milestone_views, refresh_milestones
from mailintake.reports.read_model import mail_milestone
from mailintake.sla.policy import policy_from_mapping
from mailintake.storage.models import MilestoneRecord, Report

NL = BusinessCalendar("Europe/Amsterdam", country="NL")
POLICY = policy_from_mapping(
    {
        "acknowledge": {"within": "24 hours", "warn_at": 0.75},
        "triage": {"within": "8 business hours"},
        "assess": {"within": "3 business days", "warn_at": 0.75},
        # First round in elapsed hours, each later one in business days: the unit follows the round.
        "update": {"after": "acknowledge", "within": "48 hours", "every": "10 business days", "until": "resolve"},
        "resolve": {},
    }
)
RECEIVED = datetime.fromisoformat("2026-11-16T10:00+01:00")


def local(text: str) -> datetime:
    return datetime.fromisoformat(text)


def shown(session: Session, report: Report, now: datetime) -> dict[str, tuple[str, str]]:
    """Per milestone with a running deadline: (what `sla status` says, what an alert mail says)."""
    session.expire_all()
    records = {record.name: record for record in session.scalars(select(MilestoneRecord).where(MilestoneRecord.report_id == report.id))}
    items = {view.status.name: milestone_item(view, NL, now) for view in milestone_views(session, POLICY, NL, now)}
    return {name: (item["left"], mail_milestone(records[name], NL, now, POLICY)["left"]) for name, item in items.items() if item["left"]}


def test_the_cli_and_the_mails_show_the_time_left_in_each_deadlines_unit(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        report = Report(tracking_id="SEC-2026-0001", origin_key="origin:1", status="new", received_at=RECEIVED, created_at=RECEIVED)
        session.add(report)
        session.flush()
        refresh_milestones(session, report, POLICY, NL, RECEIVED)
        meet_milestone(session, report, "acknowledge", local("2026-11-16T10:30+01:00"), "alice", POLICY, NL)
        assert shown(session, report, local("2026-11-16T10:50+01:00")) == {
            "triage": ("7 h 10 min business time left", "7 h 10 min business time left"),
            "assess": ("3 business days 6 h 10 min left", "3 business days 6 h 10 min left"),
            "update": ("47 h 40 min left", "47 h 40 min left"),
        }
        meet_milestone(session, report, "update", local("2026-11-17T12:00+01:00"), "alice", POLICY, NL)
        # Next round: 10 business days after Tue 17 (Wed 18 ... Tue 1 Dec); Tue 12:30-17:00 partly.
        assert shown(session, report, local("2026-11-17T12:30+01:00")) == {
            "triage": ("overdue by 2 h 30 min", "overdue by 2 h 30 min"),
            "assess": ("2 business days 4 h 30 min left", "2 business days 4 h 30 min left"),
            "update": ("10 business days 4 h 30 min left", "10 business days 4 h 30 min left"),
        }
        session.rollback()


def test_the_cli_shows_the_due_moment_in_the_calendars_zone_to_the_second_and_the_unit(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        report = Report(tracking_id="SEC-2026-0001", origin_key="origin:1", status="new", received_at=RECEIVED, created_at=RECEIVED)
        session.add(report)
        session.flush()
        refresh_milestones(session, report, POLICY, NL, RECEIVED)
        now = local("2026-11-16T10:50+01:00")
        items = {view.status.name: milestone_item(view, NL, now) for view in milestone_views(session, POLICY, NL, now)}
        assert (items["assess"]["due_at"], items["assess"]["warn_at"], items["assess"]["unit"]) == ("2026-11-19T17:00:00+01:00", "2026-11-19T09:15:00+01:00", "business_days")
        assert (items["acknowledge"]["due_at"], items["acknowledge"]["unit"]) == ("2026-11-17T10:00:00+01:00", "hours")
        record = session.scalars(select(MilestoneRecord).where(MilestoneRecord.report_id == report.id, MilestoneRecord.name == "assess")).one()
        assert mail_milestone(record, NL, now, None)["left"] == "78 h 10 min left", "without the policy: real time, which is never misread"
        session.rollback()

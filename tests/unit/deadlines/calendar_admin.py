"""What the holiday administration tests share: a config with a real calendar, open reports
with deadlines around Christmas, and snapshots of the calendar and of the deadlines to
compare before and after a change and its undo.

Calendar: Europe/Amsterdam, NL public holidays (Fri 25 and Sat 26 Dec 2026, Fri 1 Jan
2027), Mon–Fri 09:00–17:00, config closures 24 Dec (yearly) and 28–31 Dec 2026; policy A.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailintake.config.loading import load_config
from mailintake.config.schema import Config
from mailintake.deadlines.closures import calendar_entries, effective_calendar
from mailintake.deadlines.milestones import meet_milestone, record_promise, refresh_open_reports
from mailintake.storage.db import transaction
from mailintake.storage.models import CalendarChange, MilestoneRecord, Report
from tests.daemon import write_config

REPO = Path(__file__).resolve().parents[3]
CALENDAR = """
[calendar]
timezone = "Europe/Amsterdam"
country = "NL"
closures = [
    { start = 2026-12-28, end = 2026-12-31, name = "year-end shutdown" },
    { rule = "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=24", name = "Christmas Eve" },
]
"""
NOW = datetime(2026, 12, 21, 11, 0, tzinfo=UTC)
# Received Mon 21 to Wed 23 Dec: their "3 business days" run over Christmas and New Year.
RECEIVED = tuple(NOW + timedelta(hours=hours) for hours in (0, 5, 22, 28, 47, 53))
# The days the calendar snapshot covers: 14 Dec 2026 to 17 Jan 2027.
WINDOW = tuple(date(2026, 12, 14) + timedelta(days=offset) for offset in range(35))


def config_written(path: Path, database_url: str) -> Path:
    return write_config(path, database_url, extra=CALENDAR + (REPO / "presets" / "policy-a.toml").read_text())


def loaded(path: Path) -> Config:
    return load_config(path, environ={})


def reports_with_deadlines(sessions: sessionmaker[Session], config: Config) -> None:
    """Open reports received around Christmas with their deadlines; the first one's
    `assess` promised to its reporter, the even ones acknowledged (so `update` runs)."""
    with transaction(sessions) as session:
        for number, received in enumerate(RECEIVED, 1):
            session.add(
                Report(
                    tracking_id=f"SEC-2026-{number:04d}",
                    origin_key=f"origin:{number}",
                    status="new",
                    subject=f"Report {number}",
                    envelope_sender=f"r{number}@example.org",
                    anonymous=False,
                    urls=[],
                    endpoints=[],
                    received_at=received,
                    created_at=received,
                )
            )
        session.flush()
        calendar = effective_calendar(session, config.calendar)
        refresh_open_reports(session, config.sla, calendar, NOW)
        reports = session.scalars(select(Report).order_by(Report.id)).all()
        record_promise(reports[0], ("assess",))
        for report in reports[1::2]:
            meet_milestone(session, report, "acknowledge", report.received_at + timedelta(hours=1), "acknowledgement", config.sla, calendar)


def deadlines(sessions: sessionmaker[Session]) -> list[tuple[Any, ...]]:
    """Every milestone's stored times, in a fixed order."""
    columns = (MilestoneRecord.due_at, MilestoneRecord.warn_at, MilestoneRecord.computed_due_at, MilestoneRecord.promised_due_at, MilestoneRecord.next_alert_at, MilestoneRecord.awaiting)
    with transaction(sessions) as session:
        rows = session.execute(select(Report.tracking_id, MilestoneRecord.name, *columns).join(Report).order_by(Report.tracking_id, MilestoneRecord.name))
        return [tuple(row) for row in rows]


def calendar_seen(sessions: sessionmaker[Session], config: Config) -> tuple[Any, ...]:
    """What the effective calendar says about each day of WINDOW, and the entries listed for
    2026 and 2027 (without who/when)."""
    with transaction(sessions) as session:
        calendar = effective_calendar(session, config.calendar)
        kinds = tuple((day, str(calendar.day_kind(day))) for day in WINDOW)
        entries = tuple((entry.first_day, entry.last_day, entry.name, entry.source) for year in (2026, 2027) for entry in calendar_entries(session, config.calendar, year))
    return kinds, entries


def admin_rows(sessions: sessionmaker[Session]) -> list[tuple[Any, ...]]:
    with transaction(sessions) as session:
        changes = session.scalars(select(CalendarChange).order_by(CalendarChange.id)).all()
        return [(change.kind, change.first_day, change.last_day, change.name, change.created_by, change.removed_by, change.removed_at) for change in changes]

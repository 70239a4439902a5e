"""The daily digest: once a business day, at its local time, staff get a summary of the
open reports and their deadlines.

Its outbox key names the day, so every pass after digest_time asks again and enqueues
nothing twice; once the day's digest is out, no report is even loaded.
"""

from __future__ import annotations

from datetime import date, datetime, time

from sqlalchemy.orm import Session

from mailintake.calendar.business import BusinessCalendar
from mailintake.deadlines.milestones import open_reports
from mailintake.outbound.notices import Notices, digest_key
from mailintake.outbound.outbox import key_exists


def digest_day(calendar: BusinessCalendar, digest_time: time | None, now: datetime) -> date | None:
    """The local day whose digest is due at `now`: a business day once its digest_time has
    come; None when there is none (no digest_time, not yet, not a business day)."""
    local = now.astimezone(calendar.zone)
    if digest_time is not None and local.time() >= digest_time and calendar.is_business_day(local.date()):
        return local.date()
    return None


def daily_digest_pass(session: Session, digest_time: time | None, calendar: BusinessCalendar, notices: Notices, now: datetime) -> int:
    """Enqueue the day's digest if it is due and not yet out; returns how many mails were enqueued."""
    day = digest_day(calendar, digest_time, now)
    if day is None or key_exists(session, digest_key(day)):
        return 0
    return int(notices.daily_digest(session, day, open_reports(session), calendar, now))

"""The daily digest: once a business day, at its local time, staff get a summary of the
open reports and their deadlines.

Its outbox key names the day, so every pass after digest_time asks again and enqueues
nothing twice; once the day's digest is out, no report is even loaded.

It reads the same whatever the size of the queue: counts aggregated in SQL, and of each
list (open reports, overdue, due today, due this week) only the first DIGEST_ITEMS, with
"and N more" for the rest; `sla status` and `reports list` page through everything.
"""

from __future__ import annotations

from datetime import date, datetime, time

from sqlalchemy.orm import Session

from mailintake.calendar.business import BusinessCalendar
from mailintake.outbound.notices import Notices, digest_key
from mailintake.outbound.outbox import key_exists
from mailintake.reports.read_model import digest_of

# Items listed per section of the digest: the oldest open reports, the most overdue
# deadlines, the soonest due today and this week.
DIGEST_ITEMS = 50


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
    return int(notices.daily_digest(session, day, digest_of(session, calendar, day, now, DIGEST_ITEMS), calendar, now))

"""How a deadline stands, in words that cannot be misread: the time left in the unit of the
deadline, or how long ago it passed. `sla status` and the SLA alert mails both write it
here, so they say the same. Pure: `now` is passed in.

- "N hours" (elapsed): real time, "23 h 10 min left" (hours past 24 stay hours: "71 h left").
- "N business hours": business time, "7 h 54 min business time left".
- "N business days": whole business days, then the business time of the days only partly
  ahead: "2 business days 5 h left". A business day counts whole when all of its business
  time lies between now and the deadline; only today (after now) and the deadline's own day
  (before a deadline that is not at closing time, e.g. one a wait on the reporter moved) can
  be partly ahead, and their business time in that span is added as hours and minutes. Mon
  11:30 with the deadline Thu 17:00 (09:00-17:00) is "3 business days 5 h 30 min left"; with
  no whole day left it reads like business hours.
- No business time left before a business deadline (closures cover the rest): "no business
  time left".
- Past the deadline, whatever its unit: real time, "overdue by 1 day 2 h 5 min" (a day is
  24 hours).
Minutes are rounded down; under a minute is "less than 1 min". An unknown unit (a milestone
the policy no longer has) is shown in real time, which is always true.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from mailintake.calendar.business import BusinessCalendar
from mailintake.calendar.durations import Unit

ONE_DAY = timedelta(days=1)
ONE_MINUTE = timedelta(minutes=1)


def time_left_text(calendar: BusinessCalendar, now: datetime, due_at: datetime, unit: Unit | None) -> str:
    """The time left in the deadline's unit ("… left"), or how long ago it passed ("overdue by …")."""
    instant, due = now.astimezone(UTC), due_at.astimezone(UTC)
    if instant > due:
        return f"overdue by {real_time_text(instant - due)}"
    if unit == "business_days":
        return business_days_left_text(calendar, instant, due)
    if unit == "business_hours":
        return business_time_left_text(calendar.business_time_between(instant, due))
    return f"{hours_minutes_text(due - instant)} left"


def business_days_left_text(calendar: BusinessCalendar, now: datetime, due_at: datetime) -> str:
    whole, partial = business_days_left(calendar, now, due_at)
    if whole == 0:
        return business_time_left_text(partial)
    days = f"{whole} business day" if whole == 1 else f"{whole} business days"
    return f"{days} {hours_minutes_text(partial)} left" if partial >= ONE_MINUTE else f"{days} left"


def business_time_left_text(amount: timedelta) -> str:
    return f"{hours_minutes_text(amount)} business time left" if amount else "no business time left"


def business_days_left(calendar: BusinessCalendar, now: datetime, due_at: datetime) -> tuple[int, timedelta]:
    """The business days wholly inside [now, due_at), and the business time in it of the
    days only partly inside (at most the first and the last)."""
    zone = calendar.zone
    first, last = now.astimezone(zone).date(), due_at.astimezone(zone).date()
    whole, partial = 0, timedelta(0)
    day = first
    while day <= last:
        if calendar.is_business_day(day) and first < day < last:
            whole += 1
        elif calendar.is_business_day(day):
            opening, closing = midnight(day, calendar), midnight(day + ONE_DAY, calendar)
            ahead = calendar.business_time_between(max(now, opening), min(due_at, closing))
            if ahead and ahead == calendar.business_time_between(opening, closing):
                whole += 1
            else:
                partial += ahead
        day += ONE_DAY
    return whole, partial


def midnight(day: date, calendar: BusinessCalendar) -> datetime:
    return datetime.combine(day, time(0), tzinfo=calendar.zone).astimezone(UTC)


def hours_minutes_text(amount: timedelta) -> str:
    """Hours and minutes, hours past 24 staying hours: 7 h 54 min, 7 h, 54 min, less than 1 min."""
    minutes = int(amount // ONE_MINUTE)
    hours, minutes = divmod(minutes, 60)
    if hours and minutes:
        return f"{hours} h {minutes} min"
    if hours:
        return f"{hours} h"
    return f"{minutes} min" if minutes else "less than 1 min"


def real_time_text(amount: timedelta) -> str:
    """Days of 24 hours, then hours and minutes: 1 day 2 h 5 min, 3 days, 23 h 10 min."""
    days, rest = divmod(amount, ONE_DAY)
    if not days:
        return hours_minutes_text(rest)
    counted = "1 day" if days == 1 else f"{days} days"
    return f"{counted} {hours_minutes_text(rest)}" if rest >= ONE_MINUTE else counted

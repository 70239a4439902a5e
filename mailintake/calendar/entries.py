"""A holiday or closure as the calendar views and the CLI list it, with where it comes from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime


@dataclass(frozen=True)
class CalendarEntry:
    first_day: date
    last_day: date
    name: str
    source: str
    changed_by: str | None = None
    changed_at: datetime | None = None

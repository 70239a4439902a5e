"""A holiday or closure as the calendar views and the CLI list it, with where it comes from.

`source` is the stable identifier `holidays list --json` prints and the iCalendar UIDs are
made from; `label` is what people read. Labels are flat (no parentheses) and are shown
beside the name, never around it, so no line reads "name (closure (config))"."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

SOURCE_PUBLIC_HOLIDAY = "public holiday"
SOURCE_CONFIG_CLOSURE = "closure (config)"
SOURCE_ADMIN_CLOSURE = "closure (admin)"
SOURCE_WORKED_HOLIDAY = "worked holiday (admin)"
LABELS = {
    SOURCE_PUBLIC_HOLIDAY: "public holiday",
    SOURCE_CONFIG_CLOSURE: "config closure",
    SOURCE_ADMIN_CLOSURE: "admin closure",
    SOURCE_WORKED_HOLIDAY: "worked holiday",
}
LABEL_WIDTH = max(len(label) for label in LABELS.values())


@dataclass(frozen=True)
class CalendarEntry:
    first_day: date
    last_day: date
    name: str
    source: str
    changed_by: str | None = None
    changed_at: datetime | None = None

    @property
    def label(self) -> str:
        return LABELS.get(self.source, self.source)

"""Ranges of days as text, in the two forms people read: in full for listings and messages
("2026-12-28..2026-12-30"), and shortened for the days a deadline skipped ("2026-12-28..30")."""

from __future__ import annotations

from datetime import date


def format_range(first_day: date, last_day: date) -> str:
    return first_day.isoformat() if first_day == last_day else f"{first_day.isoformat()}..{last_day.isoformat()}"


def format_short_range(first: date, last: date) -> str:
    """The last day without what it shares with the first: "2026-12-28..30", "2026-12-28..01-02"."""
    if first == last:
        return first.isoformat()
    if first.year != last.year:
        return f"{first.isoformat()}..{last.isoformat()}"
    if first.month != last.month:
        return f"{first.isoformat()}..{last:%m-%d}"
    return f"{first.isoformat()}..{last:%d}"

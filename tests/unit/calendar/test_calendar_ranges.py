"""Ranges of days as text: in full for listings, shortened for skipped days."""

from __future__ import annotations

from datetime import date

import pytest

from mailintake.calendar.ranges import format_range, format_short_range


@pytest.mark.parametrize(
    ("first", "last", "full", "short"),
    [
        (date(2026, 12, 24), date(2026, 12, 24), "2026-12-24", "2026-12-24"),
        (date(2026, 12, 28), date(2026, 12, 30), "2026-12-28..2026-12-30", "2026-12-28..30"),
        (date(2026, 11, 30), date(2026, 12, 2), "2026-11-30..2026-12-02", "2026-11-30..12-02"),
        (date(2026, 12, 31), date(2027, 1, 1), "2026-12-31..2027-01-01", "2026-12-31..2027-01-01"),
    ],
)
def test_a_range_reads_in_full_or_shortened(first: date, last: date, full: str, short: str) -> None:
    assert format_range(first, last) == full
    assert format_short_range(first, last) == short

"""Hypothesis strategies for the warning properties: random business calendars (zones with
and without DST, any workdays, split and odd hours, holidays of a country or none, closures)
and the shipped presets, loaded through the config loader."""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from hypothesis import strategies as st

from mailintake.calendar.business import WEEKDAYS, Closure
from mailintake.config.loading import config_from_document
from mailintake.config.schema import CalendarConfig
from mailintake.sla.policy import Policy

PRESETS_DIR = Path(__file__).resolve().parents[3] / "presets"
MINIMAL_CONFIG = '[intake]\naddresses = ["security@example.com"]\n'
TIMEZONES = ("Europe/Amsterdam", "America/New_York", "Asia/Kolkata", "Pacific/Auckland", "UTC")
# Ordinary, split, all-day, inside a DST gap (02:00-03:00 in Europe), late, short.
HOURS = (("09:00-17:00",), ("08:30-12:00", "13:00-17:30"), ("00:00-23:59",), ("02:00-03:30",), ("22:00-23:30",), ("12:00-12:30",))
FIRST_DAY = date(2026, 1, 1)
LAST_START = datetime(2027, 10, 31, tzinfo=UTC)


def preset_policy(name: str) -> Policy:
    """The [sla.*] tables of presets/NAME pasted into a minimal config, as `serve` loads them."""
    text = MINIMAL_CONFIG + (PRESETS_DIR / name).read_text()
    return config_from_document(tomllib.loads(text), PRESETS_DIR / name, {}).sla


PRESETS = {name: preset_policy(name) for name in ("policy-a.toml", "policy-b.toml")}


def closures(first: date = FIRST_DAY, days: int = 700, longest: int = 30) -> st.SearchStrategy[Closure]:
    return st.builds(lambda offset, length: Closure(first + timedelta(days=offset), first + timedelta(days=offset + length - 1), f"closure {offset}"), st.integers(0, days), st.integers(1, longest))


def calendar_configs() -> st.SearchStrategy[CalendarConfig]:
    return st.builds(
        CalendarConfig,
        timezone=st.sampled_from(TIMEZONES),
        country=st.sampled_from((None, "NL", "US")),
        workdays=st.sets(st.sampled_from(WEEKDAYS), min_size=1).map(lambda days: tuple(sorted(days, key=WEEKDAYS.index))),
        hours=st.sampled_from(HOURS),
        closures=st.lists(closures(), max_size=3).map(tuple),
    )


def starts() -> st.SearchStrategy[datetime]:
    return st.datetimes(min_value=datetime(2026, 1, 1), max_value=LAST_START.replace(tzinfo=None), timezones=st.just(UTC))

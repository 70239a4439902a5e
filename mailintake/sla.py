"""SLA policy engine: milestones, chained deadlines, warnings and breaches. Pure: `now` is passed in.

A milestone's clock starts when the milestone named in `after` is actually met ("received"
is the report's arrival). `within` gives a one-off deadline. `every` makes a recurring duty:
the first one is due `within` (or `every`) after the start, each next one `every` after the
last time it was met, until the milestone named in `until` is met. A milestone with neither
`within` nor `every` is an event without a deadline (e.g. "resolve") that others can chain on.

Comparisons run on UTC instants: Python compares two datetimes that share a tzinfo by wall
time, which is wrong inside the repeated hour when DST ends.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from mailintake.calendar import UTC, BusinessCalendar, require_aware
from mailintake.durations import Duration, DurationError, parse_duration

RECEIVED = "received"
SEVERITIES = ("low", "medium", "high", "critical")
MILESTONE_KEYS = ("after", "auto", "every", "severity", "until", "warn_at", "within")
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")

State = Literal["ok", "warning", "breached", "met", "waiting"]
SeverityWithin = tuple[tuple[str, Duration], ...]


class PolicyError(ValueError):
    """An SLA policy that cannot be enforced as written."""


@dataclass(frozen=True)
class Milestone:
    name: str
    within: Duration | None = None
    after: str = RECEIVED
    severity_within: Mapping[str, Duration] | SeverityWithin = ()
    warn_at: float | None = None
    every: Duration | None = None
    until: str | None = None
    auto: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.fullmatch(self.name) or self.name == RECEIVED:
            raise PolicyError(
                f"invalid milestone name {self.name!r}: expected letters, digits, '_' or '-', "
                f"starting with a letter, and not {RECEIVED!r}"
            )
        object.__setattr__(self, "severity_within", self._ordered_overrides())
        if self.severity_within and self.within is None:
            raise PolicyError(f"[sla.{self.name}] 'severity' overrides 'within', which is not set")
        if self.warn_at is not None and not 0 < self.warn_at < 1:
            raise PolicyError(f"[sla.{self.name}] warn_at must be between 0 and 1 (exclusive), got {self.warn_at}")
        if self.warn_at is not None and self.within is None and self.every is None:
            raise PolicyError(f"[sla.{self.name}] warn_at needs a deadline: set 'within' or 'every'")
        if self.until is not None and self.every is None:
            raise PolicyError(f"[sla.{self.name}] 'until' only ends a recurring duty: set 'every' or drop 'until'")
        if not isinstance(self.auto, bool):
            raise PolicyError(f"[sla.{self.name}] auto must be true or false, got {self.auto!r}")
        if self.auto and (self.recurring or self.after != RECEIVED):
            raise PolicyError(f"[sla.{self.name}] auto = true means the automatic acknowledgement meets it: only for a one-off milestone after \"received\"")

    def _ordered_overrides(self) -> SeverityWithin:
        overrides = dict(self.severity_within)
        for severity in overrides:
            if severity not in SEVERITIES:
                raise PolicyError(
                    f"[sla.{self.name}.severity] unknown severity {severity!r}: expected one of {', '.join(SEVERITIES)}"
                )
        return tuple((severity, overrides[severity]) for severity in SEVERITIES if severity in overrides)

    @property
    def recurring(self) -> bool:
        return self.every is not None

    def within_for(self, severity: str | None) -> Duration | None:
        return dict(self.severity_within).get(severity or "", self.within)


@dataclass(frozen=True)
class Policy:
    milestones: tuple[Milestone, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "milestones", tuple(self.milestones))
        names = [milestone.name for milestone in self.milestones]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise PolicyError(f"[sla.{duplicates[0]}] milestone defined twice")
        for milestone in self.milestones:
            _check_reference(milestone, "after", milestone.after, names)
            if milestone.until is not None:
                _check_reference(milestone, "until", milestone.until, names)
        cycle = _first_cycle({milestone.name: milestone.after for milestone in self.milestones})
        if cycle:
            raise PolicyError(f"[sla] milestones start after each other in a cycle: {' -> '.join(cycle)}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(milestone.name for milestone in self.milestones)

    def milestone(self, name: str) -> Milestone:
        for milestone in self.milestones:
            if milestone.name == name:
                return milestone
        raise KeyError(name)


def _check_reference(milestone: Milestone, key: str, target: str, names: list[str]) -> None:
    allowed = [RECEIVED, *names] if key == "after" else names
    if target not in allowed or (key == "until" and target == milestone.name):
        raise PolicyError(
            f"[sla.{milestone.name}] {key} = {target!r} names no milestone: expected one of {', '.join(allowed)}"
        )


def _first_cycle(after: Mapping[str, str]) -> list[str]:
    """The first chain of `after` links that returns to itself, as names, e.g. [a, b, a]."""
    for origin in after:
        path = [origin]
        while path[-1] in after and after[path[-1]] != RECEIVED:
            following = after[path[-1]]
            if following in path:
                return path[path.index(following):] + [following]
            path.append(following)
    return []


def policy_from_mapping(tables: Mapping[str, object]) -> Policy:
    """Build a Policy from the [sla.NAME] tables of a TOML file (the value of the `sla` key)."""
    if not isinstance(tables, Mapping):
        raise PolicyError(f"[sla] must be a table of milestone tables, got {type(tables).__name__}")
    return Policy(tuple(_milestone_from_table(name, table) for name, table in tables.items()))


def _milestone_from_table(name: str, table: object) -> Milestone:
    if not isinstance(table, Mapping):
        raise PolicyError(f"[sla.{name}] must be a table, got {type(table).__name__}")
    for key in table:
        if key not in MILESTONE_KEYS:
            raise PolicyError(f"[sla.{name}] unknown key {key!r} (expected one of: {', '.join(MILESTONE_KEYS)})")
    return Milestone(
        name=name,
        within=_optional_duration(name, "within", table.get("within")),
        after=_text(name, "after", table.get("after", RECEIVED)),
        severity_within=_severity_overrides(name, table.get("severity", {})),
        warn_at=_fraction(name, table.get("warn_at")),
        every=_optional_duration(name, "every", table.get("every")),
        until=None if table.get("until") is None else _text(name, "until", table["until"]),
        auto=table.get("auto", False),
    )


def _text(name: str, key: str, value: object) -> str:
    if not isinstance(value, str):
        raise PolicyError(f"[sla.{name}] {key} must be a milestone name in quotes, got {value!r}")
    return value


def _optional_duration(name: str, key: str, value: object) -> Duration | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise PolicyError(f"[sla.{name}] {key} must be a quoted duration such as \"3 business days\", got {value!r}")
    try:
        return parse_duration(value)
    except DurationError as exc:
        raise PolicyError(f"[sla.{name}] {key}: {exc}") from None


def _severity_overrides(name: str, value: object) -> dict[str, Duration]:
    if not isinstance(value, Mapping):
        raise PolicyError(f"[sla.{name}] severity must be a table such as {{ critical = \"1 business day\" }}, got {value!r}")
    overrides: dict[str, Duration] = {}
    for severity, text in value.items():
        duration = _optional_duration(f"{name}.severity", severity, text)
        if duration is None:
            raise PolicyError(f"[sla.{name}.severity] {severity} has no duration")
        overrides[severity] = duration
    return overrides


def _fraction(name: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PolicyError(f"[sla.{name}] warn_at must be a number between 0 and 1, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class MilestoneStatus:
    name: str
    state: State
    started_at: datetime | None
    due_at: datetime | None
    warn_at: datetime | None
    met_at: datetime | None

    @property
    def met_late(self) -> bool:
        if self.met_at is None or self.due_at is None:
            return False
        return self.met_at.astimezone(UTC) > self.due_at.astimezone(UTC)


def compute_schedule(
    policy: Policy,
    calendar: BusinessCalendar,
    received_at: datetime,
    now: datetime,
    met: Mapping[str, datetime] | None = None,
    severity: str | None = None,
) -> tuple[MilestoneStatus, ...]:
    """Status of every milestone at `now`, in policy order.

    `met` maps milestone names to when they were met (for a recurring duty: the last time);
    names the policy does not define are ignored, so old records survive a policy change.
    """
    if severity is not None and severity not in SEVERITIES:
        raise PolicyError(f"unknown severity {severity!r}: expected one of {', '.join(SEVERITIES)}")
    met_at = {name: require_aware(moment, f"met time of {name!r}") for name, moment in (met or {}).items()}
    starts = {**met_at, RECEIVED: require_aware(received_at, "received_at")}
    moment = require_aware(now, "now")
    return tuple(_status(milestone, calendar, starts, met_at, moment, severity) for milestone in policy.milestones)


def _status(
    milestone: Milestone,
    calendar: BusinessCalendar,
    starts: Mapping[str, datetime],
    met: Mapping[str, datetime],
    now: datetime,
    severity: str | None,
) -> MilestoneStatus:
    started_at = starts.get(milestone.after)
    if milestone.recurring:
        return _recurring_status(milestone, calendar, started_at, met, now, severity)
    met_at = met.get(milestone.name)
    if started_at is None:
        return MilestoneStatus(milestone.name, "met" if met_at else "waiting", None, None, None, met_at)
    allowed = milestone.within_for(severity)
    return _timed_status(milestone, calendar, started_at, allowed, met_at, now)


def _recurring_status(
    milestone: Milestone,
    calendar: BusinessCalendar,
    started_at: datetime | None,
    met: Mapping[str, datetime],
    now: datetime,
    severity: str | None,
) -> MilestoneStatus:
    last_met = met.get(milestone.name)
    if milestone.until is not None and milestone.until in met:
        return MilestoneStatus(milestone.name, "met", started_at, None, None, last_met)
    if started_at is None:
        return MilestoneStatus(milestone.name, "waiting", None, None, None, last_met)
    if last_met is not None and last_met.astimezone(UTC) >= started_at.astimezone(UTC):
        status = _timed_status(milestone, calendar, last_met, milestone.every, None, now)
    else:
        status = _timed_status(milestone, calendar, started_at, milestone.within_for(severity) or milestone.every, None, now)
    return MilestoneStatus(milestone.name, status.state, status.started_at, status.due_at, status.warn_at, last_met)


def _timed_status(
    milestone: Milestone,
    calendar: BusinessCalendar,
    started_at: datetime,
    allowed: Duration | None,
    met_at: datetime | None,
    now: datetime,
) -> MilestoneStatus:
    start = started_at.astimezone(calendar.zone)
    due_at = calendar.add(start, allowed) if allowed is not None else None
    warn_at = _warning_moment(calendar, start, due_at, allowed, milestone.warn_at)
    state: State = "met" if met_at is not None else state_at(now, due_at, warn_at)
    return MilestoneStatus(milestone.name, state, start, due_at, warn_at, met_at)


def _warning_moment(
    calendar: BusinessCalendar,
    start: datetime,
    due_at: datetime | None,
    allowed: Duration | None,
    fraction: float | None,
) -> datetime | None:
    """When `fraction` of the allowed time has passed, counted like the duration counts time."""
    if fraction is None or due_at is None or allowed is None:
        return None
    if not allowed.is_business:
        return (start.astimezone(UTC) + timedelta(hours=allowed.amount) * fraction).astimezone(calendar.zone)
    return calendar.add_business_time(start, calendar.business_time_between(start, due_at) * fraction)


def state_at(now: datetime, due_at: datetime | None, warn_at: datetime | None) -> State:
    instant = now.astimezone(UTC)
    if due_at is None:
        return "ok"
    if instant > due_at.astimezone(UTC):
        return "breached"
    if warn_at is not None and instant >= warn_at.astimezone(UTC):
        return "warning"
    return "ok"

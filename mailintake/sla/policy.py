"""SLA policy engine: milestones, chained deadlines, warnings and breaches. Pure: `now` is passed in.

A milestone's clock starts when the milestone named in `after` is actually met ("received"
is the report's arrival). `within` gives a one-off deadline. `every` makes a recurring duty:
the first one is due `within` (or `every`) after the start, each next one `every` after the
last time it was met, until the milestone named in `until` is met. A milestone with neither
`within` nor `every` is an event without a deadline (e.g. "resolve") that others can chain on.

`met_by` names the event that meets a milestone (see MET_BY_EVENTS); `auto = true` is the same
as met_by = "acknowledgement". A `pausable` milestone's clock stands still while staff wait on
the reporter (#wait ... #resume): while a wait is open it is "paused" with no deadline, and a
finished wait moves its deadline and warning later by the time paused after the clock started
(business time for business durations, elapsed time for plain hours). A wait that begins at or
after the deadline cannot rescue it.

Comparisons run on UTC instants: Python compares two datetimes that share a tzinfo by wall
time, which is wrong inside the repeated hour when DST ends.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from mailintake.calendar.business import UTC, BusinessCalendar, require_aware
from mailintake.calendar.durations import Duration, DurationError, parse_duration
from mailintake.core.vocabulary import SEVERITIES

RECEIVED = "received"
MILESTONE_KEYS = ("after", "auto", "every", "met_by", "pausable", "severity", "until", "warn_at", "within")
ACKNOWLEDGEMENT = "acknowledgement"
REPLY = "reply"
MET_BY_EVENTS = (ACKNOWLEDGEMENT, REPLY, "assessment", "resolved", "resolution_notice")
DEFAULT_MET_BY: Mapping[str, str] = {
    "acknowledge": REPLY,
    "confirm": REPLY,
    "assess": "assessment",
    "update": REPLY,
    "resolve": "resolved",
    "notify_resolved": "resolution_notice",
}
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")

State = Literal["ok", "warning", "breached", "met", "waiting", "paused"]
SeverityWithin = tuple[tuple[str, Duration], ...]
PauseSpan = tuple[datetime, datetime | None]


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
    met_by: str | None = None
    pausable: bool = False

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
        self._check_met_by()
        if not isinstance(self.pausable, bool):
            raise PolicyError(f"[sla.{self.name}] pausable must be true or false, got {self.pausable!r}")
        if self.pausable and self.within is None and self.every is None:
            raise PolicyError(f"[sla.{self.name}] pausable needs a deadline: set 'within' or 'every'")

    def _check_met_by(self) -> None:
        """Validate `auto` and `met_by`, then make them agree: auto = true is met_by = "acknowledgement"."""
        if not isinstance(self.auto, bool):
            raise PolicyError(f"[sla.{self.name}] auto must be true or false, got {self.auto!r}")
        if self.met_by is not None and self.met_by not in MET_BY_EVENTS:
            raise PolicyError(f"[sla.{self.name}] unknown met_by {self.met_by!r}: expected one of {', '.join(MET_BY_EVENTS)}")
        if self.auto and self.met_by not in (None, ACKNOWLEDGEMENT):
            raise PolicyError(
                f"[sla.{self.name}] auto = true means the automatic acknowledgement meets it, "
                f"but met_by = {self.met_by!r}: drop one of them"
            )
        if not (self.auto or self.met_by == ACKNOWLEDGEMENT):
            return
        if self.recurring or self.after != RECEIVED:
            setting = "auto = true" if self.auto else f"met_by = {ACKNOWLEDGEMENT!r}"
            raise PolicyError(
                f"[sla.{self.name}] {setting} means the automatic acknowledgement meets it: "
                f"only for a one-off milestone after \"{RECEIVED}\""
            )
        object.__setattr__(self, "auto", True)
        object.__setattr__(self, "met_by", ACKNOWLEDGEMENT)

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

    @property
    def meeting_event(self) -> str | None:
        """The event that meets this milestone; None: only an explicit staff action does."""
        if self.auto:
            return ACKNOWLEDGEMENT
        return self.met_by or DEFAULT_MET_BY.get(self.name)


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

    def milestones_met_by(self, event: str) -> tuple[str, ...]:
        """Names of the milestones `event` meets, in policy order. A staff reply also meets what the
        automatic acknowledgement would have (it may not have been delivered)."""
        if event not in MET_BY_EVENTS:
            raise ValueError(f"unknown event {event!r}: expected one of {', '.join(MET_BY_EVENTS)}")
        events = {event, ACKNOWLEDGEMENT} if event == REPLY else {event}
        return tuple(milestone.name for milestone in self.milestones if milestone.meeting_event in events)


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
        met_by=table.get("met_by"),
        pausable=table.get("pausable", False),
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
    pauses: Sequence[PauseSpan] = (),
) -> tuple[MilestoneStatus, ...]:
    """Status of every milestone at `now`, in policy order.

    `met` maps milestone names to when they were met (for a recurring duty: the last time);
    names the policy does not define are ignored, so old records survive a policy change.
    `pauses` are the report's waits on the reporter as (start, end) in order, not overlapping;
    end None: still waiting. Only pausable milestones that are not met take them into account.
    """
    if severity is not None and severity not in SEVERITIES:
        raise PolicyError(f"unknown severity {severity!r}: expected one of {', '.join(SEVERITIES)}")
    met_at = {name: require_aware(moment, f"met time of {name!r}") for name, moment in (met or {}).items()}
    starts = {**met_at, RECEIVED: require_aware(received_at, "received_at")}
    clock = _Clock(calendar, require_aware(now, "now"), _checked_pauses(pauses))
    return tuple(_status(milestone, clock, starts, met_at, severity) for milestone in policy.milestones)


@dataclass(frozen=True)
class _Clock:
    """What every milestone's status is computed against: the calendar, `now` and the pauses (UTC)."""

    calendar: BusinessCalendar
    now: datetime
    pauses: tuple[PauseSpan, ...]


def _checked_pauses(pauses: Sequence[PauseSpan]) -> tuple[PauseSpan, ...]:
    checked: list[PauseSpan] = []
    for number, (start, end) in enumerate(pauses, 1):
        begin = require_aware(start, f"start of pause {number}").astimezone(UTC)
        finish = None if end is None else require_aware(end, f"end of pause {number}").astimezone(UTC)
        if finish is not None and finish < begin:
            raise ValueError(f"pause {number} ends at {end.isoformat()}, before it starts at {start.isoformat()}")
        if checked and (checked[-1][1] is None or begin < checked[-1][1]):
            raise ValueError(f"pause {number} starts at {start.isoformat()}, before pause {number - 1} ends: pauses must be in order and not overlap")
        checked.append((begin, finish))
    return tuple(checked)


def _status(
    milestone: Milestone,
    clock: _Clock,
    starts: Mapping[str, datetime],
    met: Mapping[str, datetime],
    severity: str | None,
) -> MilestoneStatus:
    started_at = starts.get(milestone.after)
    if milestone.recurring:
        return _recurring_status(milestone, clock, started_at, met, severity)
    met_at = met.get(milestone.name)
    if started_at is None:
        return MilestoneStatus(milestone.name, "met" if met_at else "waiting", None, None, None, met_at)
    allowed = milestone.within_for(severity)
    return _timed_status(milestone, clock, started_at, allowed, met_at)


def _recurring_status(
    milestone: Milestone,
    clock: _Clock,
    started_at: datetime | None,
    met: Mapping[str, datetime],
    severity: str | None,
) -> MilestoneStatus:
    last_met = met.get(milestone.name)
    if milestone.until is not None and milestone.until in met:
        return MilestoneStatus(milestone.name, "met", started_at, None, None, last_met)
    if started_at is None:
        return MilestoneStatus(milestone.name, "waiting", None, None, None, last_met)
    if last_met is not None and last_met.astimezone(UTC) >= started_at.astimezone(UTC):
        status = _timed_status(milestone, clock, last_met, milestone.every, None)
    else:
        status = _timed_status(milestone, clock, started_at, milestone.within_for(severity) or milestone.every, None)
    return MilestoneStatus(milestone.name, status.state, status.started_at, status.due_at, status.warn_at, last_met)


def _timed_status(
    milestone: Milestone,
    clock: _Clock,
    started_at: datetime,
    allowed: Duration | None,
    met_at: datetime | None,
) -> MilestoneStatus:
    calendar = clock.calendar
    start = started_at.astimezone(calendar.zone)
    due_at = calendar.add(start, allowed) if allowed is not None else None
    warn_at = _warning_moment(calendar, start, due_at, allowed, milestone.warn_at)
    if met_at is not None:
        return MilestoneStatus(milestone.name, "met", start, due_at, warn_at, met_at)
    if milestone.pausable and due_at is not None and allowed is not None:
        shift = _pause_shift(clock, start, due_at, allowed)
        if shift is None:
            return MilestoneStatus(milestone.name, "paused", start, None, None, None)
        due_at = _moved_later(calendar, allowed, due_at, shift)
        warn_at = None if warn_at is None else _moved_later(calendar, allowed, warn_at, shift)
    return MilestoneStatus(milestone.name, state_at(clock.now, due_at, warn_at), start, due_at, warn_at, None)


def _pause_shift(clock: _Clock, start: datetime, due_at: datetime, allowed: Duration) -> timedelta | None:
    """How much paused time moves the deadline (and the warning) later; None while a pause stops the clock.

    Pauses are walked in order against the deadline as the earlier ones moved it: one that begins
    at or after it cannot rescue a breached deadline. Only paused time after `start` counts.
    """
    shift = timedelta(0)
    for pause_start, pause_end in clock.pauses:
        if pause_start >= _moved_later(clock.calendar, allowed, due_at, shift).astimezone(UTC):
            break
        if pause_end is None:
            return None if pause_start <= clock.now.astimezone(UTC) else shift
        shift += _paused_time(clock.calendar, allowed, start, pause_start, pause_end)
    return shift


def _paused_time(calendar: BusinessCalendar, allowed: Duration, start: datetime, pause_start: datetime, pause_end: datetime) -> timedelta:
    begin = max(start.astimezone(UTC), pause_start)
    if allowed.is_business:
        return calendar.business_time_between(begin, pause_end)
    return max(pause_end - begin, timedelta(0))


def _moved_later(calendar: BusinessCalendar, allowed: Duration, moment: datetime, amount: timedelta) -> datetime:
    """`moment` moved later by `amount` of paused time, counted like `allowed` counts time."""
    if allowed.is_business:
        return calendar.add_business_time(moment, amount)
    return (moment.astimezone(UTC) + amount).astimezone(calendar.zone)


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

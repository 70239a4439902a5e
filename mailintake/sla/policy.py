"""SLA policy: the [sla.NAME] tables of config.toml parsed and checked into a Policy. Pure.

A milestone's clock starts when the milestone named in `after` is actually met ("received"
is the report's arrival). `within` gives a one-off deadline. `every` makes a recurring duty:
the first one is due `within` (or `every`) after the start, each next one `every` after the
last time it was met, until the milestone named in `until` is met. A milestone with neither
`within` nor `every` is an event without a deadline (e.g. "resolve") that others can chain on.

`met_by` names the event that meets a milestone (see MET_BY_EVENTS); `auto = true` is the same
as met_by = "acknowledgement". A `pausable` milestone's clock stands still while staff wait on
the reporter (#wait ... #resume); schedule.py says how.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

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
    met_by: str | None = None
    pausable: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.fullmatch(self.name) or self.name == RECEIVED:
            raise PolicyError(f"invalid milestone name {self.name!r}: expected letters, digits, '_' or '-', starting with a letter, and not {RECEIVED!r}")
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
            raise PolicyError(f"[sla.{self.name}] auto = true means the automatic acknowledgement meets it, but met_by = {self.met_by!r}: drop one of them")
        if not (self.auto or self.met_by == ACKNOWLEDGEMENT):
            return
        if self.recurring or self.after != RECEIVED:
            setting = "auto = true" if self.auto else f"met_by = {ACKNOWLEDGEMENT!r}"
            raise PolicyError(f'[sla.{self.name}] {setting} means the automatic acknowledgement meets it: only for a one-off milestone after "{RECEIVED}"')
        object.__setattr__(self, "auto", True)
        object.__setattr__(self, "met_by", ACKNOWLEDGEMENT)

    def _ordered_overrides(self) -> SeverityWithin:
        overrides = dict(self.severity_within)
        for severity in overrides:
            if severity not in SEVERITIES:
                raise PolicyError(f"[sla.{self.name}.severity] unknown severity {severity!r}: expected one of {', '.join(SEVERITIES)}")
        return tuple((severity, overrides[severity]) for severity in SEVERITIES if severity in overrides)

    @property
    def recurring(self) -> bool:
        return self.every is not None

    def within_for(self, severity: str | None) -> Duration | None:
        return dict(self.severity_within).get(severity or "", self.within)

    def allowed_for(self, severity: str | None, again: bool = False) -> Duration | None:
        """The time one round allows: a recurring duty's first round `within` (or `every`), each
        round after it was met (`again`) `every`; a one-off milestone `within`."""
        if self.recurring and again:
            return self.every
        return self.within_for(severity) or self.every

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
        raise PolicyError(f"[sla.{milestone.name}] {key} = {target!r} names no milestone: expected one of {', '.join(allowed)}")


def _first_cycle(after: Mapping[str, str]) -> list[str]:
    """The first chain of `after` links that returns to itself, as names, e.g. [a, b, a]."""
    for origin in after:
        path = [origin]
        while path[-1] in after and after[path[-1]] != RECEIVED:
            following = after[path[-1]]
            if following in path:
                return path[path.index(following) :] + [following]
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
        raise PolicyError(f'[sla.{name}] {key} must be a quoted duration such as "3 business days", got {value!r}')
    try:
        return parse_duration(value)
    except DurationError as exc:
        raise PolicyError(f"[sla.{name}] {key}: {exc}") from None


def _severity_overrides(name: str, value: object) -> dict[str, Duration]:
    if not isinstance(value, Mapping):
        raise PolicyError(f'[sla.{name}] severity must be a table such as {{ critical = "1 business day" }}, got {value!r}')
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

"""SLA schedule: every milestone's deadline, warning and state at a given moment, from a
Policy, a business calendar and what has been met. Pure: `now` is passed in.

A chained milestone's clock starts when the milestone named in its `after` was actually met.
A `pausable` milestone's clock stands still while staff wait on the reporter (#wait ...
#resume): while a wait is open it is "paused" with no deadline, and a finished wait moves its
deadline and warning later by the time paused after the clock started (business time for
business durations, elapsed time for plain hours). A wait that begins at or after the
deadline cannot rescue it.

A warning comes before the deadline it warns of: at `warn_at` of the time from the start to
that deadline (its own, or an earlier promise), counted like the milestone's duration counts
time, and never on a closed day while the office is open at some moment between the start and
the deadline (see `warning_moment`).

Comparisons run on UTC instants: Python compares two datetimes that share a tzinfo by wall
time, which is wrong inside the repeated hour when DST ends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from mailintake.calendar.business import UTC, BusinessCalendar, require_aware
from mailintake.calendar.durations import Duration
from mailintake.core.vocabulary import SEVERITIES
from mailintake.sla.policy import RECEIVED, Milestone, Policy, PolicyError

State = Literal["ok", "warning", "breached", "met", "waiting", "paused"]
PauseSpan = tuple[datetime, datetime | None]


@dataclass(frozen=True)
class MilestoneStatus:
    name: str
    state: State
    started_at: datetime | None
    due_at: datetime | None
    warn_at: datetime | None
    met_at: datetime | None
    # The time the current deadline allows (its unit says how to show the time left).
    allowed: Duration | None = None

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
    return _timed_status(milestone, clock, started_at, milestone.allowed_for(severity), met_at)


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
    again = last_met is not None and last_met.astimezone(UTC) >= started_at.astimezone(UTC)
    round_start = last_met if again and last_met is not None else started_at
    status = _timed_status(milestone, clock, round_start, milestone.allowed_for(severity, again), None)
    return MilestoneStatus(milestone.name, status.state, status.started_at, status.due_at, status.warn_at, last_met, status.allowed)


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
    warn_at = warning_moment(calendar, start, due_at, allowed, milestone.warn_at)
    if met_at is not None:
        return MilestoneStatus(milestone.name, "met", start, due_at, warn_at, met_at, allowed)
    if milestone.pausable and due_at is not None and allowed is not None:
        shift = _pause_shift(clock, start, due_at, allowed)
        if shift is None:
            return MilestoneStatus(milestone.name, "paused", start, None, None, None, allowed)
        due_at = _moved_later(calendar, allowed, due_at, shift)
        warn_at = None if warn_at is None else _on_an_open_day(calendar, start, _moved_later(calendar, allowed, warn_at, shift), due_at)
    return MilestoneStatus(milestone.name, state_at(clock.now, due_at, warn_at), start, due_at, warn_at, None, allowed)


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


def warning_moment(
    calendar: BusinessCalendar,
    start: datetime,
    due_at: datetime | None,
    allowed: Duration | None,
    fraction: float | None,
) -> datetime | None:
    """When `fraction` of the time from `start` to `due_at` has passed, counted like `allowed`
    counts time (business time, or elapsed time for plain hours); None without a warning.

    `due_at` is the deadline that holds: the computed one, or an earlier promise after a
    calendar change moved the computed one later. So the warning always comes before it
    (`start` <= warning < `due_at` whenever `due_at` is after `start`; a deadline at or before
    its start has no time to warn in and is warned at itself), and:
    - if no business time is left between `start` and `due_at` (closures cover it all), a
      business deadline is warned at `start`: at once, there is nothing to wait for;
    - a warning that falls on a closed day moves to the next opening if that comes before the
      deadline, else back to the end of the last business time after `start`; only when the
      office is closed from `start` to `due_at` does it stay on a closed day.
    """
    if fraction is None or due_at is None or allowed is None:
        return None
    start_instant, due_instant = start.astimezone(UTC), due_at.astimezone(UTC)
    if due_instant <= start_instant:
        return due_at.astimezone(calendar.zone)
    if allowed.is_business:
        business = calendar.business_time_between(start_instant, due_instant)
        warning = calendar.add_business_time(start_instant, business * fraction) if business else start_instant
    else:
        warning = start_instant + (due_instant - start_instant) * fraction
    if warning >= due_instant:
        warning = start_instant
    return _on_an_open_day(calendar, start_instant, warning, due_instant)


def _on_an_open_day(calendar: BusinessCalendar, start: datetime, warning: datetime, due_at: datetime) -> datetime:
    """`warning`, or, if it falls on a closed day, the next opening before `due_at` or else the
    end of the last business time between `start` and it (see `warning_moment`)."""
    local = warning.astimezone(calendar.zone)
    if calendar.is_business_day(local.date()):
        return local
    if calendar.business_time_between(warning, due_at):
        return calendar.next_business_moment(warning)
    before = calendar.business_time_between(start, warning)
    return calendar.add_business_time(start, before) if before else local


def warning_held_to(status: MilestoneStatus, due_at: datetime | None, calendar: BusinessCalendar, fraction: float | None) -> datetime | None:
    """The warning of `status` when `due_at` holds instead of its computed deadline (an earlier
    promise): computed against `due_at`, so it comes before it."""
    if due_at is None or status.started_at is None:
        return None
    if status.due_at is not None and status.due_at.astimezone(UTC) == due_at.astimezone(UTC):
        return status.warn_at
    return warning_moment(calendar, status.started_at, due_at, status.allowed, fraction)


def state_at(now: datetime, due_at: datetime | None, warn_at: datetime | None) -> State:
    instant = now.astimezone(UTC)
    if due_at is None:
        return "ok"
    if instant > due_at.astimezone(UTC):
        return "breached"
    if warn_at is not None and instant >= warn_at.astimezone(UTC):
        return "warning"
    return "ok"

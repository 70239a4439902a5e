"""SLA policy engine: parsing, validation, chained deadlines, severities, states, presets.

Calendar: Europe/Amsterdam, NL holidays, Mon-Fri 09:00-17:00. November 2026 has no NL
holidays; Mon 16 Nov, Fri 20 Nov, Mon 23 Nov, Tue 1 Dec, Mon 14 Dec 2026.
"""

from __future__ import annotations

import tomllib
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mailintake.calendar import BusinessCalendar
from mailintake.durations import Duration, parse_duration
from mailintake.sla import (
    Milestone,
    MilestoneStatus,
    Policy,
    PolicyError,
    compute_schedule,
    policy_from_mapping,
)

PRESETS = Path(__file__).resolve().parents[2] / "presets"
AMSTERDAM = ZoneInfo("Europe/Amsterdam")
NL = BusinessCalendar("Europe/Amsterdam", country="NL")

EXAMPLE = {
    "acknowledge": {"within": "24 hours", "after": "received", "warn_at": 0.75},
    "assess": {"within": "3 business days", "after": "received", "warn_at": 0.75, "severity": {"critical": "1 business day"}},
    "update": {"every": "10 business days", "after": "acknowledge", "until": "resolve"},
    "resolve": {},
}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="minutes")


def by_name(statuses: tuple[MilestoneStatus, ...]) -> dict[str, MilestoneStatus]:
    return {status.name: status for status in statuses}


def schedule(
    now: str, met: dict[str, str] | None = None, severity: str | None = None, received: str = "2026-11-16T10:00+01:00"
) -> dict[str, MilestoneStatus]:
    met_at = {name: at(moment) for name, moment in (met or {}).items()}
    policy = policy_from_mapping(EXAMPLE)
    return by_name(compute_schedule(policy, NL, at(received), at(now), met_at, severity))


def test_policy_from_mapping_builds_ordered_milestones() -> None:
    policy = policy_from_mapping(EXAMPLE)
    assert policy.names == ("acknowledge", "assess", "update", "resolve")
    assess = policy.milestone("assess")
    assert assess.within == Duration(3, "business_days")
    assert assess.within_for("critical") == Duration(1, "business_days")
    assert assess.within_for("low") == Duration(3, "business_days")
    assert assess.within_for(None) == Duration(3, "business_days")
    assert policy.milestone("update") == Milestone(
        "update", after="acknowledge", every=Duration(10, "business_days"), until="resolve"
    )
    assert policy.milestone("resolve") == Milestone("resolve")


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ({"assess": {"withn": "3 business days"}},
         "[sla.assess] unknown key 'withn' (expected one of: after, auto, every, severity, until, warn_at, within)"),
        ({"assess": {"within": "3 fortnights"}}, "[sla.assess] within: invalid duration '3 fortnights': expected"),
        ({"assess": {"within": 3}}, "[sla.assess] within must be a quoted duration"),
        ({"assess": {"within": "3 business days", "after": "acknowledged"}},
         "[sla.assess] after = 'acknowledged' names no milestone: expected one of received, assess"),
        ({"a": {"within": "1 hour", "after": "b"}, "b": {"within": "1 hour", "after": "a"}},
         "[sla] milestones start after each other in a cycle: a -> b -> a"),
        ({"a": {"within": "1 hour", "after": "a"}}, "[sla] milestones start after each other in a cycle: a -> a"),
        ({"x": {"within": "1 hour"}, "a": {"within": "1 hour", "after": "c"}, "b": {"within": "1 hour", "after": "a"},
          "c": {"within": "1 hour", "after": "b"}},
         "[sla] milestones start after each other in a cycle: a -> c -> b -> a"),
        ({"assess": {"within": "3 business days", "severity": {"urgent": "1 business day"}}},
         "[sla.assess.severity] unknown severity 'urgent': expected one of low, medium, high, critical"),
        ({"assess": {"within": "3 business days", "severity": {"critical": "soon"}}},
         "[sla.assess.severity] critical: invalid duration 'soon'"),
        ({"assess": {"severity": {"critical": "1 business day"}}}, "[sla.assess] 'severity' overrides 'within', which is not set"),
        ({"ack": {"within": "24 hours", "warn_at": 0}}, "[sla.ack] warn_at must be between 0 and 1 (exclusive), got 0"),
        ({"ack": {"within": "24 hours", "warn_at": 1}}, "[sla.ack] warn_at must be between 0 and 1 (exclusive), got 1"),
        ({"ack": {"within": "24 hours", "warn_at": 1.5}}, "[sla.ack] warn_at must be between 0 and 1 (exclusive), got 1.5"),
        ({"ack": {"within": "24 hours", "warn_at": "75%"}}, "[sla.ack] warn_at must be a number between 0 and 1"),
        ({"ack": {"warn_at": 0.5}}, "[sla.ack] warn_at needs a deadline"),
        ({"ack": {"within": "24 hours", "until": "ack"}}, "[sla.ack] 'until' only ends a recurring duty"),
        ({"update": {"every": "10 business days", "until": "resolved"}},
         "[sla.update] until = 'resolved' names no milestone: expected one of update"),
        ({"received": {"within": "1 hour"}}, "invalid milestone name 'received'"),
        ({"ack": "24 hours"}, "[sla.ack] must be a table, got str"),
    ],
)
def test_policy_errors_are_one_line_and_say_where(tables: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        policy_from_mapping(tables)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_duplicate_milestones_are_rejected() -> None:
    with pytest.raises(PolicyError, match=r"\[sla.ack\] milestone defined twice"):
        Policy((Milestone("ack", within=parse_duration("1 hour")), Milestone("ack", within=parse_duration("2 hours"))))


def test_unknown_severity_in_a_report_is_rejected() -> None:
    with pytest.raises(PolicyError, match="unknown severity 'urgent'"):
        schedule("2026-11-16T11:00+01:00", severity="urgent")


def test_naive_now_is_rejected() -> None:
    with pytest.raises(ValueError, match="is naive"):
        compute_schedule(policy_from_mapping(EXAMPLE), NL, at("2026-11-16T10:00+01:00"), datetime(2026, 11, 16, 11))


def test_fresh_report() -> None:
    statuses = schedule("2026-11-16T11:00+01:00")
    acknowledge = statuses["acknowledge"]
    assert (acknowledge.state, iso(acknowledge.due_at), iso(acknowledge.warn_at)) == (
        "ok", "2026-11-17T10:00+01:00", "2026-11-17T04:00+01:00"
    ), "24 hours from Mon 10:00; warn after 18 elapsed hours"
    assess = statuses["assess"]
    assert (assess.state, iso(assess.due_at), iso(assess.warn_at)) == (
        "ok", "2026-11-19T17:00+01:00", "2026-11-19T09:15+01:00"
    ), "3 business days: Tue, Wed, Thu; 31 business hours allowed (Mon 7 + 3 x 8), 75% = 23h15 -> Thu 09:15"
    update = statuses["update"]
    assert (update.state, update.due_at, update.started_at) == ("waiting", None, None), "acknowledge not met yet"
    assert (statuses["resolve"].state, statuses["resolve"].due_at) == ("ok", None), "an event without a deadline"


@pytest.mark.parametrize(
    ("now", "state", "why"),
    [
        ("2026-11-17T03:59+01:00", "ok", "just before 75% of 24 hours"),
        ("2026-11-17T04:00+01:00", "warning", "exactly at the warning moment"),
        ("2026-11-17T10:00+01:00", "warning", "exactly at the deadline: not yet breached"),
        ("2026-11-17T10:01+01:00", "breached", "after the deadline"),
        ("2026-11-17T09:01+00:00", "breached", "same instant rule in another zone: 10:01 CET"),
    ],
)
def test_acknowledge_states(now: str, state: str, why: str) -> None:
    assert schedule(now)["acknowledge"].state == state, why


def test_met_milestones_report_met_and_lateness() -> None:
    statuses = schedule(
        "2026-11-20T12:00+01:00", met={"acknowledge": "2026-11-16T12:00+01:00", "assess": "2026-11-20T09:00+01:00"}
    )
    assert statuses["acknowledge"].state == "met"
    assert statuses["acknowledge"].met_late is False
    assert statuses["assess"].state == "met"
    assert statuses["assess"].met_late is True, "due Thu 19 17:00, met Fri 20 09:00"


def test_critical_severity_shortens_assessment() -> None:
    assess = schedule("2026-11-16T11:00+01:00", severity="critical")["assess"]
    assert iso(assess.due_at) == "2026-11-17T17:00+01:00", "1 business day: Tue 17"
    assert iso(assess.warn_at) == "2026-11-17T13:15+01:00", "15 h allowed (Mon 7 + Tue 8), 75% = 11h15: Mon 7 h + Tue 09:00-13:15"
    low = schedule("2026-11-16T11:00+01:00", severity="low")["assess"]
    assert iso(low.due_at) == "2026-11-19T17:00+01:00", "no override for low: 3 business days"


def test_recurring_update_restarts_from_the_last_update() -> None:
    first = schedule("2026-11-18T10:00+01:00", met={"acknowledge": "2026-11-17T11:00+01:00"})["update"]
    assert (first.state, iso(first.started_at), iso(first.due_at)) == (
        "ok", "2026-11-17T11:00+01:00", "2026-12-01T17:00+01:00"
    ), "10 business days after Tue 17: Wed 18 ... Tue 1 Dec"
    second = schedule(
        "2026-12-10T10:00+01:00",
        met={"acknowledge": "2026-11-17T11:00+01:00", "update": "2026-11-30T15:00+01:00"},
    )["update"]
    assert (second.state, iso(second.due_at), iso(second.met_at)) == (
        "ok", "2026-12-14T17:00+01:00", "2026-11-30T15:00+01:00"
    ), "10 business days after Mon 30 Nov: Tue 1 ... Mon 14 Dec"
    overdue = schedule("2026-12-02T09:00+01:00", met={"acknowledge": "2026-11-17T11:00+01:00"})["update"]
    assert overdue.state == "breached", "no update since acknowledgement; due Tue 1 Dec 17:00"


def test_recurring_update_ends_when_resolved() -> None:
    update = schedule(
        "2027-03-01T10:00+01:00", met={"acknowledge": "2026-11-17T11:00+01:00", "resolve": "2026-11-25T10:00+01:00"}
    )["update"]
    assert (update.state, update.due_at) == ("met", None)


def test_chained_deadline_starts_when_the_first_is_met_not_when_due() -> None:
    policy = policy_from_mapping(
        {"confirm": {"within": "3 business days"}, "assess": {"within": "3 business days", "after": "confirm"}}
    )
    received = at("2026-11-16T10:00+01:00")
    waiting = by_name(compute_schedule(policy, NL, received, at("2026-11-16T11:00+01:00")))["assess"]
    assert (waiting.state, waiting.due_at) == ("waiting", None)
    early = by_name(compute_schedule(policy, NL, received, at("2026-11-16T11:00+01:00"), {"confirm": at("2026-11-16T10:30+01:00")}))
    assert iso(early["assess"].due_at) == "2026-11-19T17:00+01:00", "confirmed Mon: Tue, Wed, Thu"
    late = by_name(compute_schedule(policy, NL, received, at("2026-11-20T11:00+01:00"), {"confirm": at("2026-11-20T10:30+01:00")}))
    assert iso(late["assess"].due_at) == "2026-11-25T17:00+01:00", "confirmed Fri (a day late): Mon, Tue, Wed"


def test_comparisons_use_instants_in_the_repeated_hour() -> None:
    policy = policy_from_mapping({"acknowledge": {"within": "24 hours", "warn_at": 0.75}})
    received = datetime(2026, 10, 24, 3, 40, tzinfo=AMSTERDAM)
    now = datetime(2026, 10, 25, 2, 50, tzinfo=AMSTERDAM)
    status = compute_schedule(policy, NL, received, now)[0]
    assert iso(status.due_at) == "2026-10-25T02:40+01:00", "24 h after Sat 03:40 CEST (01:40 UTC) is Sun 01:40 UTC, the second 02:40 (CET)"
    assert iso(now) == "2026-10-25T02:50+02:00", "fold=0: the first 02:50, 00:50 UTC"
    assert status.state == "warning", "00:50 UTC is before the 01:40 UTC deadline, though its wall time 02:50 is later"


def load_preset(name: str) -> Policy:
    with (PRESETS / name).open("rb") as handle:
        document = tomllib.load(handle)
    assert set(document) == {"sla"}
    return policy_from_mapping(document["sla"])


def test_preset_a() -> None:
    policy = load_preset("policy-a.toml")
    assert policy.names == ("acknowledge", "assess", "update", "resolve", "notify_resolved")
    statuses = by_name(compute_schedule(policy, NL, at("2026-11-20T16:00+01:00"), at("2026-11-20T16:05+01:00")))
    assert iso(statuses["acknowledge"].due_at) == "2026-11-21T16:00+01:00", "24 elapsed hours, Saturday included"
    assert iso(statuses["assess"].due_at) == "2026-11-25T17:00+01:00", "received Fri: Mon, Tue, Wed"
    assert statuses["notify_resolved"].state == "waiting"
    resolved = by_name(
        compute_schedule(
            policy, NL, at("2026-11-20T16:00+01:00"), at("2026-12-04T18:00+01:00"),
            {"acknowledge": at("2026-11-20T17:00+01:00"), "resolve": at("2026-12-04T16:00+01:00")},
        )
    )
    assert iso(resolved["notify_resolved"].due_at) == "2026-12-07T17:00+01:00", "resolved Fri 4 Dec: Mon 7 Dec"
    assert resolved["update"].state == "met"


def test_preset_b_chains_the_assessment_on_the_confirmation() -> None:
    policy = load_preset("policy-b.toml")
    assert policy.milestone("assess").after == "confirm"
    received = at("2026-11-20T16:00+01:00")
    before = by_name(compute_schedule(policy, NL, received, at("2026-11-23T10:00+01:00")))
    assert iso(before["confirm"].due_at) == "2026-11-25T17:00+01:00", "received Fri: Mon 23, Tue 24, Wed 25"
    assert before["assess"].state == "waiting"
    after = by_name(compute_schedule(policy, NL, received, at("2026-11-26T12:00+01:00"), {"confirm": at("2026-11-24T10:00+01:00")}))
    assess = after["assess"]
    assert iso(assess.due_at) == "2026-11-27T17:00+01:00", "confirmed Tue 24: Wed 25, Thu 26, Fri 27"
    assert iso(assess.warn_at) == "2026-11-26T09:30+01:00", "31 h allowed (Tue 7 + 3 x 8), half = 15h30: Tue 7, Wed 8, Thu 0h30"
    assert assess.state == "warning"


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ({"update": {"every": "10 business days", "auto": True}}, "[sla.update] auto = true means the automatic acknowledgement meets it"),
        ({"confirm": {"within": "3 business days"}, "assess": {"within": "3 business days", "after": "confirm", "auto": True}}, "[sla.assess] auto = true"),
        ({"acknowledge": {"within": "24 hours", "auto": "yes"}}, "[sla.acknowledge] auto must be true or false"),
    ],
)
def test_auto_is_only_for_a_one_off_milestone_after_receipt(tables: dict, message: str) -> None:
    with pytest.raises(PolicyError) as raised:
        policy_from_mapping(tables)
    assert str(raised.value).startswith(message)


def test_auto_marks_the_milestone_the_acknowledgement_meets() -> None:
    policy = policy_from_mapping({"acknowledge": {"within": "24 hours", "auto": True}, "assess": {"within": "3 business days"}})
    assert [milestone.auto for milestone in policy.milestones] == [True, False]

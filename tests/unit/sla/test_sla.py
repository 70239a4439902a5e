"""SLA policy engine: parsing, validation, chained deadlines, severities, states, presets.

Calendar: Europe/Amsterdam, NL holidays, Mon-Fri 09:00-17:00. November 2026 has no NL
holidays; Mon 16 Nov, Fri 20 Nov, Mon 23 Nov, Tue 1 Dec, Mon 14 Dec 2026.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailintake.calendar.business import BusinessCalendar
from mailintake.calendar.durations import Duration, parse_duration
from mailintake.sla.policy import MET_BY_EVENTS, Milestone, Policy, PolicyError, policy_from_mapping
from mailintake.sla.schedule import MilestoneStatus, PauseSpan, compute_schedule

PRESETS = Path(__file__).resolve().parents[3] / "presets"
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


def schedule(now: str, met: dict[str, str] | None = None, severity: str | None = None, received: str = "2026-11-16T10:00+01:00") -> dict[str, MilestoneStatus]:
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
    assert policy.milestone("update") == Milestone("update", after="acknowledge", every=Duration(10, "business_days"), until="resolve")
    assert policy.milestone("resolve") == Milestone("resolve")


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ({"assess": {"withn": "3 business days"}}, "[sla.assess] unknown key 'withn' (expected one of: after, auto, every, met_by, pausable, severity, until, warn_at, within)"),
        ({"assess": {"within": "3 fortnights"}}, "[sla.assess] within: invalid duration '3 fortnights': expected"),
        ({"assess": {"within": 3}}, "[sla.assess] within must be a quoted duration"),
        ({"assess": {"within": "3 business days", "after": "acknowledged"}}, "[sla.assess] after = 'acknowledged' names no milestone: expected one of received, assess"),
        ({"a": {"within": "1 hour", "after": "b"}, "b": {"within": "1 hour", "after": "a"}}, "[sla] milestones start after each other in a cycle: a -> b -> a"),
        ({"a": {"within": "1 hour", "after": "a"}}, "[sla] milestones start after each other in a cycle: a -> a"),
        ({"x": {"within": "1 hour"}, "a": {"within": "1 hour", "after": "c"}, "b": {"within": "1 hour", "after": "a"}, "c": {"within": "1 hour", "after": "b"}}, "[sla] milestones start after each other in a cycle: a -> c -> b -> a"),
        ({"assess": {"within": "3 business days", "severity": {"urgent": "1 business day"}}}, "[sla.assess.severity] unknown severity 'urgent': expected one of low, medium, high, critical"),
        ({"assess": {"within": "3 business days", "severity": {"critical": "soon"}}}, "[sla.assess.severity] critical: invalid duration 'soon'"),
        ({"assess": {"severity": {"critical": "1 business day"}}}, "[sla.assess] 'severity' overrides 'within', which is not set"),
        ({"ack": {"within": "24 hours", "warn_at": 0}}, "[sla.ack] warn_at must be between 0 and 1 (exclusive), got 0"),
        ({"ack": {"within": "24 hours", "warn_at": 1}}, "[sla.ack] warn_at must be between 0 and 1 (exclusive), got 1"),
        ({"ack": {"within": "24 hours", "warn_at": 1.5}}, "[sla.ack] warn_at must be between 0 and 1 (exclusive), got 1.5"),
        ({"ack": {"within": "24 hours", "warn_at": "75%"}}, "[sla.ack] warn_at must be a number between 0 and 1"),
        ({"ack": {"warn_at": 0.5}}, "[sla.ack] warn_at needs a deadline"),
        ({"ack": {"within": "24 hours", "until": "ack"}}, "[sla.ack] 'until' only ends a recurring duty"),
        ({"update": {"every": "10 business days", "until": "resolved"}}, "[sla.update] until = 'resolved' names no milestone: expected one of update"),
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
    assert (acknowledge.state, iso(acknowledge.due_at), iso(acknowledge.warn_at)) == ("ok", "2026-11-17T10:00+01:00", "2026-11-17T04:00+01:00"), "24 hours from Mon 10:00; warn after 18 elapsed hours"
    assess = statuses["assess"]
    assert (assess.state, iso(assess.due_at), iso(assess.warn_at)) == ("ok", "2026-11-19T17:00+01:00", "2026-11-19T09:15+01:00"), "3 business days: Tue, Wed, Thu; 31 business hours allowed (Mon 7 + 3 x 8), 75% = 23h15 -> Thu 09:15"
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
    statuses = schedule("2026-11-20T12:00+01:00", met={"acknowledge": "2026-11-16T12:00+01:00", "assess": "2026-11-20T09:00+01:00"})
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
    assert (first.state, iso(first.started_at), iso(first.due_at)) == ("ok", "2026-11-17T11:00+01:00", "2026-12-01T17:00+01:00"), "10 business days after Tue 17: Wed 18 ... Tue 1 Dec"
    second = schedule(
        "2026-12-10T10:00+01:00",
        met={"acknowledge": "2026-11-17T11:00+01:00", "update": "2026-11-30T15:00+01:00"},
    )["update"]
    assert (second.state, iso(second.due_at), iso(second.met_at)) == ("ok", "2026-12-14T17:00+01:00", "2026-11-30T15:00+01:00"), "10 business days after Mon 30 Nov: Tue 1 ... Mon 14 Dec"
    overdue = schedule("2026-12-02T09:00+01:00", met={"acknowledge": "2026-11-17T11:00+01:00"})["update"]
    assert overdue.state == "breached", "no update since acknowledgement; due Tue 1 Dec 17:00"


def test_recurring_update_ends_when_resolved() -> None:
    update = schedule("2027-03-01T10:00+01:00", met={"acknowledge": "2026-11-17T11:00+01:00", "resolve": "2026-11-25T10:00+01:00"})["update"]
    assert (update.state, update.due_at) == ("met", None)


def test_chained_deadline_starts_when_the_first_is_met_not_when_due() -> None:
    policy = policy_from_mapping({"confirm": {"within": "3 business days"}, "assess": {"within": "3 business days", "after": "confirm"}})
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
            policy,
            NL,
            at("2026-11-20T16:00+01:00"),
            at("2026-12-04T18:00+01:00"),
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


# met_by: which event meets a milestone.


@pytest.mark.parametrize("event", MET_BY_EVENTS)
def test_met_by_is_read_from_the_table(event: str) -> None:
    milestone = policy_from_mapping({"triage": {"within": "24 hours", "met_by": event}}).milestone("triage")
    assert (milestone.met_by, milestone.meeting_event) == (event, event)


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ({"assess": {"within": "3 business days", "met_by": "replied"}}, "[sla.assess] unknown met_by 'replied': expected one of acknowledgement, reply, assessment, resolved, resolution_notice"),
        ({"assess": {"within": "3 business days", "met_by": 1}}, "[sla.assess] unknown met_by 1: expected one of acknowledgement, reply, assessment, resolved, resolution_notice"),
        ({"acknowledge": {"within": "24 hours", "auto": True, "met_by": "reply"}}, "[sla.acknowledge] auto = true means the automatic acknowledgement meets it, but met_by = 'reply': drop one of them"),
        ({"update": {"every": "10 business days", "met_by": "acknowledgement"}}, "[sla.update] met_by = 'acknowledgement' means the automatic acknowledgement meets it: only for a one-off milestone after \"received\""),
        (
            {"confirm": {"within": "3 business days"}, "assess": {"within": "1 hour", "after": "confirm", "met_by": "acknowledgement"}},
            "[sla.assess] met_by = 'acknowledgement' means the automatic acknowledgement meets it: only for a one-off milestone",
        ),
        ({"assess": {"within": "3 business days", "pausable": "yes"}}, "[sla.assess] pausable must be true or false, got 'yes'"),
        ({"resolve": {"pausable": True}}, "[sla.resolve] pausable needs a deadline: set 'within' or 'every'"),
    ],
)
def test_met_by_and_pausable_errors_say_where(tables: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        policy_from_mapping(tables)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_auto_is_met_by_the_acknowledgement() -> None:
    within = Duration(24, "hours")
    automatic = Milestone("acknowledge", within=within, auto=True)
    explicit = Milestone("acknowledge", within=within, met_by="acknowledgement")
    both = Milestone("acknowledge", within=within, auto=True, met_by="acknowledgement")
    assert automatic == explicit == both
    assert (explicit.auto, explicit.met_by, explicit.meeting_event) == (True, "acknowledgement", "acknowledgement")


@pytest.mark.parametrize(
    ("name", "table", "event"),
    [
        ("acknowledge", {"within": "24 hours"}, "reply"),
        ("acknowledge", {"within": "24 hours", "auto": True}, "acknowledgement"),
        ("confirm", {"within": "3 business days"}, "reply"),
        ("assess", {"within": "3 business days"}, "assessment"),
        ("update", {"every": "10 business days"}, "reply"),
        ("resolve", {}, "resolved"),
        ("notify_resolved", {"within": "1 business day"}, "resolution_notice"),
        ("assess", {"within": "3 business days", "met_by": "reply"}, "reply"),
        ("triage", {"within": "1 business day"}, None),
        ("triage", {"within": "1 business day", "met_by": "resolved"}, "resolved"),
    ],
)
def test_meeting_event_defaults_by_well_known_name(name: str, table: dict[str, object], event: str | None) -> None:
    assert policy_from_mapping({name: table}).milestone(name).meeting_event == event


@pytest.mark.parametrize(
    ("preset", "event", "names"),
    [
        ("policy-a.toml", "acknowledgement", ("acknowledge",)),
        ("policy-a.toml", "reply", ("acknowledge", "update")),
        ("policy-a.toml", "assessment", ("assess",)),
        ("policy-a.toml", "resolved", ("resolve",)),
        ("policy-a.toml", "resolution_notice", ("notify_resolved",)),
        ("policy-b.toml", "acknowledgement", ("confirm",)),
        ("policy-b.toml", "reply", ("confirm", "update")),
        ("policy-b.toml", "assessment", ("assess",)),
        ("policy-b.toml", "resolved", ("resolve",)),
        ("policy-b.toml", "resolution_notice", ()),
    ],
)
def test_milestones_met_by_an_event(preset: str, event: str, names: tuple[str, ...]) -> None:
    assert load_preset(preset).milestones_met_by(event) == names


def test_milestones_met_by_rejects_an_unknown_event() -> None:
    with pytest.raises(ValueError, match="unknown event 'replied': expected one of acknowledgement, reply"):
        load_preset("policy-a.toml").milestones_met_by("replied")


@pytest.mark.parametrize("preset", ["policy-a.toml", "policy-b.toml"])
def test_presets_state_met_by_and_pause_only_the_assessment(preset: str) -> None:
    policy = load_preset(preset)
    assert all(milestone.met_by is not None and milestone.meeting_event == milestone.met_by for milestone in policy.milestones)
    assert [milestone.name for milestone in policy.milestones if milestone.pausable] == ["assess"]
    assert policy.milestone(policy.names[0]).auto is True


# Pauses: #wait ... #resume. Received Mon 16 Nov 2026 10:00 unless said otherwise.

RECEIVED_AT = "2026-11-16T10:00+01:00"


def paused_status(
    table: dict[str, object],
    now: str,
    pauses: list[tuple[str, str | None]],
    received: str = RECEIVED_AT,
    met: dict[str, str] | None = None,
) -> MilestoneStatus:
    policy = policy_from_mapping({"acknowledge": {"within": "24 hours"}, "task": table})
    spans = [(at(start), None if end is None else at(end)) for start, end in pauses]
    met_at = {name: at(moment) for name, moment in (met or {}).items()}
    return by_name(compute_schedule(policy, NL, at(received), at(now), met_at, pauses=spans))["task"]


ASSESS = {"within": "3 business days", "warn_at": 0.75, "pausable": True}
ACK_24H = {"within": "24 hours", "warn_at": 0.75, "pausable": True}


@pytest.mark.parametrize(
    ("table", "pauses", "due", "warn", "why"),
    [
        (ASSESS, [], "2026-11-19T17:00+01:00", "2026-11-19T09:15+01:00", "no pause: Tue, Wed, Thu; warn after 23h15 of 31 business hours"),
        (ASSESS, [("2026-11-17T09:00+01:00", "2026-11-18T13:00+01:00")], "2026-11-23T13:00+01:00", "2026-11-20T13:15+01:00", "12 business hours paused (Tue 8 + Wed 4): Thu 17:00 + Fri 8 h + Mon 4 h; the warning moves by the same 12 h"),
        (ASSESS, [("2026-11-18T16:00+01:00", "2026-11-19T10:00+01:00")], "2026-11-20T11:00+01:00", "2026-11-19T11:15+01:00", "overnight pause: only Wed 16-17 and Thu 09-10 are business time, 2 h"),
        (ASSESS, [("2026-11-16T18:00+01:00", "2026-11-17T08:00+01:00")], "2026-11-19T17:00+01:00", "2026-11-19T09:15+01:00", "a pause outside business hours moves nothing"),
        (ASSESS, [("2026-11-19T17:00+01:00", "2026-11-20T12:00+01:00")], "2026-11-19T17:00+01:00", "2026-11-19T09:15+01:00", "begins exactly at the deadline: too late"),
        (ASSESS, [("2026-11-20T09:00+01:00", "2026-11-20T12:00+01:00")], "2026-11-19T17:00+01:00", "2026-11-19T09:15+01:00", "begins after the deadline: #wait cannot rescue a breach"),
        (ASSESS, [("2026-11-19T16:00+01:00", "2026-11-23T10:00+01:00")], "2026-11-23T11:00+01:00", "2026-11-20T11:15+01:00", "Thu 16:00 to Mon 10:00 over the weekend: Thu 1 h + Fri 8 h + Mon 1 h = 10 business hours"),
        (ACK_24H, [("2026-11-16T20:00+01:00", "2026-11-17T01:00+01:00")], "2026-11-17T15:00+01:00", "2026-11-17T09:00+01:00", "24 elapsed hours paused 5 h: +5 h, also at night; the warning too"),
        (ACK_24H, [("2026-11-17T10:00+01:00", "2026-11-17T12:00+01:00")], "2026-11-17T10:00+01:00", "2026-11-17T04:00+01:00", "begins at the deadline: no change"),
        (
            ACK_24H,
            [("2026-11-16T12:00+01:00", "2026-11-16T17:00+01:00"), ("2026-11-17T12:00+01:00", "2026-11-17T14:00+01:00"), ("2026-11-17T18:00+01:00", "2026-11-17T19:00+01:00")],
            "2026-11-17T17:00+01:00",
            "2026-11-17T11:00+01:00",
            "the first pause moves the deadline to Tue 15:00, so the second (after the original Tue 10:00) still counts; the third is too late",
        ),
        (ACK_24H, [("2026-11-16T08:00+01:00", "2026-11-16T11:00+01:00")], "2026-11-17T11:00+01:00", "2026-11-17T05:00+01:00", "only paused time after the clock started counts: 1 h"),
    ],
)
def test_closed_pauses_move_a_pausable_deadline(table: dict[str, object], pauses: list[tuple[str, str | None]], due: str, warn: str, why: str) -> None:
    status = paused_status(table, "2026-11-16T11:00+01:00", pauses)
    assert (status.state, iso(status.started_at), iso(status.due_at), iso(status.warn_at)) == ("ok", RECEIVED_AT, due, warn), why


def test_a_deadline_moved_by_a_pause_is_breached_only_after_the_moved_deadline() -> None:
    pause = [("2026-11-17T09:00+01:00", "2026-11-18T13:00+01:00")]
    assert paused_status(ASSESS, "2026-11-20T13:00+01:00", pause).state == "ok"
    assert paused_status(ASSESS, "2026-11-20T13:15+01:00", pause).state == "warning"
    assert paused_status(ASSESS, "2026-11-23T13:00+01:00", pause).state == "warning"
    assert paused_status(ASSESS, "2026-11-23T13:01+01:00", pause).state == "breached"


@pytest.mark.parametrize(
    ("now", "pauses", "state", "why"),
    [
        ("2026-11-17T12:00+01:00", [("2026-11-17T09:00+01:00", None)], "paused", "waiting since Tue 09:00"),
        ("2026-11-27T12:00+01:00", [("2026-11-17T09:00+01:00", None)], "paused", "long past the original deadline: paused, never breached"),
        ("2026-11-17T12:00+01:00", [("2026-11-16T12:00+01:00", "2026-11-16T13:00+01:00"), ("2026-11-17T09:00+01:00", None)], "paused", "a closed pause, then an open one"),
        ("2026-11-16T12:00+01:00", [("2026-11-17T09:00+01:00", None)], "ok", "the pause has not begun at `now`"),
        ("2026-11-20T12:00+01:00", [("2026-11-20T09:00+01:00", None)], "breached", "#wait after the deadline: still breached"),
        ("2026-11-16T10:00+01:00", [("2026-11-16T10:00+01:00", None)], "paused", "#wait at the very moment the clock starts"),
    ],
)
def test_an_open_pause_stops_a_pausable_clock(now: str, pauses: list[tuple[str, str | None]], state: str, why: str) -> None:
    status = paused_status(ASSESS, now, pauses)
    assert status.state == state, why
    if state == "paused":
        assert (iso(status.started_at), status.due_at, status.warn_at, status.met_at) == (RECEIVED_AT, None, None, None)


def test_a_clock_that_starts_during_an_open_pause_is_paused_too() -> None:
    table = {"within": "3 business days", "after": "acknowledge", "pausable": True}
    met = {"acknowledge": "2026-11-17T10:00+01:00"}
    paused = paused_status(table, "2026-11-18T10:00+01:00", [("2026-11-17T09:00+01:00", None)], met=met)
    assert (paused.state, iso(paused.started_at), paused.due_at) == ("paused", "2026-11-17T10:00+01:00", None)
    resumed = paused_status(table, "2026-11-18T10:00+01:00", [("2026-11-17T09:00+01:00", "2026-11-17T15:00+01:00")], met=met)
    assert iso(resumed.due_at) == "2026-11-23T14:00+01:00", "acknowledged Tue 10:00: Fri 17:00 + the 5 business hours after it"


def test_pauses_leave_non_pausable_and_met_milestones_alone() -> None:
    pauses = [("2026-11-17T09:00+01:00", "2026-11-18T13:00+01:00"), ("2026-11-19T09:00+01:00", None)]
    fixed = paused_status({**ASSESS, "pausable": False}, "2026-11-20T12:00+01:00", pauses)
    assert (fixed.state, iso(fixed.due_at), iso(fixed.warn_at)) == ("breached", "2026-11-19T17:00+01:00", "2026-11-19T09:15+01:00")
    met = paused_status(ASSESS, "2026-11-20T12:00+01:00", pauses, met={"task": "2026-11-18T10:00+01:00"})
    assert (met.state, iso(met.due_at), iso(met.met_at)) == ("met", "2026-11-19T17:00+01:00", "2026-11-18T10:00+01:00")


UPDATE = {"every": "10 business days", "after": "acknowledge", "warn_at": 0.8, "pausable": True}


@pytest.mark.parametrize(
    ("met", "pauses", "now", "state", "due"),
    [
        ({"acknowledge": "2026-11-17T11:00+01:00"}, [], "2026-11-18T10:00+01:00", "ok", "2026-12-01T17:00+01:00"),
        ({"acknowledge": "2026-11-17T11:00+01:00"}, [("2026-11-18T09:00+01:00", "2026-11-18T17:00+01:00")], "2026-11-19T10:00+01:00", "ok", "2026-12-02T17:00+01:00"),
        ({"acknowledge": "2026-11-17T11:00+01:00"}, [("2026-11-18T09:00+01:00", None)], "2026-12-03T10:00+01:00", "paused", None),
        ({"acknowledge": "2026-11-17T11:00+01:00", "task": "2026-11-30T15:00+01:00"}, [("2026-11-18T09:00+01:00", "2026-11-18T17:00+01:00")], "2026-12-02T10:00+01:00", "ok", "2026-12-14T17:00+01:00"),
        (
            {"acknowledge": "2026-11-17T11:00+01:00", "task": "2026-11-30T15:00+01:00"},
            [("2026-11-18T09:00+01:00", "2026-11-18T17:00+01:00"), ("2026-12-01T09:00+01:00", "2026-12-01T13:00+01:00")],
            "2026-12-02T10:00+01:00",
            "ok",
            "2026-12-15T13:00+01:00",
        ),
        ({"acknowledge": "2026-11-17T11:00+01:00", "task": "2026-11-30T15:00+01:00"}, [("2026-11-30T14:00+01:00", "2026-11-30T16:00+01:00")], "2026-12-02T10:00+01:00", "ok", "2026-12-15T10:00+01:00"),
    ],
    ids=["round 1", "round 1 paused 8 h", "round 1 paused now", "round 2 ignores round 1's pause", "round 2 paused 4 h", "round 2 counts from its start"],
)
def test_each_round_of_a_pausable_duty_is_moved_by_its_own_pauses(met: dict[str, str], pauses: list[tuple[str, str | None]], now: str, state: str, due: str | None) -> None:
    status = paused_status(UPDATE, now, pauses, met=met)
    assert (status.state, iso(status.due_at)) == (state, due)


@pytest.mark.parametrize(
    ("table", "received", "pause", "due", "why"),
    [
        (
            {"within": "24 hours", "pausable": True},
            "2026-10-24T10:00+02:00",
            ("2026-10-24T20:00+02:00", "2026-10-25T04:00+01:00"),
            "2026-10-25T18:00+01:00",
            "Sat 20:00 CEST to Sun 04:00 CET is 9 elapsed hours; 24 h from Sat 10:00 CEST is Sun 09:00 CET, + 9 h",
        ),
        (
            {"within": "8 business hours", "pausable": True},
            "2026-10-23T13:00+02:00",
            ("2026-10-23T16:00+02:00", "2026-10-26T10:00+01:00"),
            "2026-10-26T15:00+01:00",
            "Fri 13:00 CEST + 8 business hours is Mon 13:00 CET; paused Fri 16-17 and Mon 09-10: + 2 h",
        ),
        (
            {"within": "3 business days", "pausable": True},
            "2026-03-26T10:00+01:00",
            ("2026-03-27T16:00+01:00", "2026-03-30T11:00+02:00"),
            "2026-04-01T12:00+02:00",
            "Thu 26 Mar: due Tue 31 17:00 CEST; paused Fri 16-17 and Mon 09-11 (DST began Sun): + 3 h to Wed 12:00",
        ),
    ],
)
def test_pauses_across_the_dst_changes_in_amsterdam(table: dict[str, object], received: str, pause: tuple[str, str], due: str, why: str) -> None:
    status = paused_status(table, received, [pause], received=received)
    assert iso(status.due_at) == due, why


@pytest.mark.parametrize(
    ("pauses", "error"),
    [
        ([(datetime(2026, 11, 17, 9), None)], "start of pause 1 2026-11-17T09:00:00 is naive"),
        ([(at("2026-11-17T09:00+01:00"), datetime(2026, 11, 17, 10))], "end of pause 1 2026-11-17T10:00:00 is naive"),
        ([(at("2026-11-17T09:00+01:00"), at("2026-11-17T08:00+01:00"))], "pause 1 ends at 2026-11-17T08:00:00+01:00, before it starts"),
        ([(at("2026-11-17T09:00+01:00"), at("2026-11-17T12:00+01:00")), (at("2026-11-17T11:00+01:00"), None)], "pause 2 starts at 2026-11-17T11:00:00+01:00, before pause 1 ends"),
        ([(at("2026-11-17T09:00+01:00"), None), (at("2026-11-18T09:00+01:00"), None)], "pause 2 starts at 2026-11-18T09:00:00+01:00, before pause 1 ends"),
    ],
)
def test_pauses_must_be_aware_ordered_and_apart(pauses: list[PauseSpan], error: str) -> None:
    with pytest.raises(ValueError) as caught:
        compute_schedule(policy_from_mapping(EXAMPLE), NL, at(RECEIVED_AT), at("2026-11-20T10:00+01:00"), pauses=pauses)
    assert str(caught.value).startswith(error)


PAUSE_START = datetime(2026, 11, 16, 10, tzinfo=UTC)


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


pause_lists = st.lists(st.tuples(st.integers(0, 24 * 60), st.integers(0, 3 * 24 * 60)), max_size=5)


def closed_pauses(steps: list[tuple[int, int]]) -> list[PauseSpan]:
    """Pauses from (gap before, length) in minutes, laid end to end from Mon 16 Nov 2026 10:00 UTC."""
    pauses: list[PauseSpan] = []
    cursor = PAUSE_START - timedelta(hours=12)
    for gap, length in steps:
        start = cursor + timedelta(minutes=gap)
        cursor = start + timedelta(minutes=length)
        pauses.append((start, cursor))
    return pauses


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(["24 hours", "8 business hours", "3 business days"]),
    st.sampled_from([None, 0.5, 0.75]),
    st.integers(-2 * 24 * 60, 5 * 24 * 60),
    pause_lists,
)
def test_pauses_never_bring_a_deadline_earlier(within: str, warn_at: float | None, offset: int, steps: list[tuple[int, int]]) -> None:
    table: dict[str, object] = {"within": within} if warn_at is None else {"within": within, "warn_at": warn_at}
    policy = policy_from_mapping({"fixed": table, "pausable": {**table, "pausable": True}})
    received, now = PAUSE_START, PAUSE_START + timedelta(minutes=offset)
    plain = by_name(compute_schedule(policy, NL, received, now))
    paused = by_name(compute_schedule(policy, NL, received, now, pauses=closed_pauses(steps)))
    assert paused["fixed"] == plain["fixed"]
    moved, unmoved = paused["pausable"], plain["pausable"]
    assert moved.due_at is not None and unmoved.due_at is not None
    assert utc(moved.due_at) >= utc(unmoved.due_at)
    assert (moved.warn_at is None) == (unmoved.warn_at is None)
    if moved.warn_at is not None and unmoved.warn_at is not None:
        assert utc(unmoved.warn_at) <= utc(moved.warn_at) <= utc(moved.due_at)
    assert moved.state != "paused"

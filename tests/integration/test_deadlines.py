"""Deadlines in the database: computed on arrival, chained, recomputed on calendar changes,
promises kept; the holiday and calendar commands as an admin uses them. SQLite and PostgreSQL.

Calendar (config.example.toml): Europe/Amsterdam (UTC+1 in Nov–Jan), NL public holidays,
Mon–Fri 09:00–17:00, config closures 24 Dec (yearly) and 28–31 Dec 2026; policy A.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import icalendar
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from mailintake.config.loading import load_config
from mailintake.deadlines.closures import effective_calendar
from mailintake.deadlines.milestones import meet_milestone, milestones_due_before, refresh_open_reports
from mailintake.intake.store import Delivery, store_delivery
from mailintake.pipeline import Services, process_inbound
from mailintake.storage.db import transaction
from mailintake.storage.models import CalendarChange, MilestoneRecord, Report
from tests.daemon import REPO
from tests.integration.helpers import example_rules, report_mail, rules_for
from tests.integration.test_processing import DirectParser

UTC = UTC


def receive(sessions: sessionmaker[Session], rules: Services, received_at: datetime, number: int = 1) -> str:
    raw = report_mail(message_id=f"<deadline-{number}@example.org>", body=f"report {number}")
    inbound_id = store_delivery(sessions, Delivery(received_at, "smtp", "127.0.0.1", "client", "r@example.org", ("security@example.com",), raw))
    outcome = process_inbound(sessions, DirectParser(), rules, inbound_id, lambda: received_at)
    assert outcome.status == "processed"
    return outcome.tracking_id


def due_times(sessions: sessionmaker[Session], tracking_id: str) -> dict[str, tuple[str | None, str | None, str | None]]:
    with transaction(sessions) as session:
        records = session.scalars(select(MilestoneRecord).join(Report).where(Report.tracking_id == tracking_id)).all()
        return {record.name: tuple(iso(value) for value in (record.due_at, record.computed_due_at, record.promised_due_at)) for record in records}


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="minutes")


def config_file(tmp_path: Path, database_url: str, sla_preset: str | None = None) -> Path:
    text = (REPO / "config.example.toml").read_text()
    if sla_preset:
        text = text[: text.index("[sla.acknowledge]")] + (REPO / "presets" / sla_preset).read_text()
    path = tmp_path / "config.toml"
    path.write_text(text.replace('url = "sqlite:///var/mailintake.db"', f"url = {json.dumps(database_url)}"))
    return path


def run_cli(config: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "mailintake", "--config", str(config), *arguments], capture_output=True, text=True, cwd=REPO, env=environment, timeout=60)


def test_a_new_report_gets_its_policy_deadlines_on_arrival(sessions: sessionmaker[Session]) -> None:
    # Fri 18 Dec 2026 17:30 local (16:30 UTC), after hours.
    tracking_id = receive(sessions, example_rules(), datetime(2026, 12, 18, 16, 30, tzinfo=UTC))
    due = due_times(sessions, tracking_id)
    # acknowledge: 24 elapsed hours → Sat 19 Dec 16:30 UTC.
    assert due["acknowledge"][0] == "2026-12-19T16:30+00:00"
    # assess: business days after Fri 18: Mon 21, Tue 22, Wed 23 → 17:00 local = 16:00 UTC.
    assert due["assess"][0] == "2026-12-23T16:00+00:00"
    # update starts when acknowledge is met; notify_resolved when resolve is: not yet.
    assert due["update"][0] is None and due["notify_resolved"][0] is None


def test_a_chained_deadline_starts_when_the_first_milestone_is_actually_met(sessions: sessionmaker[Session], tmp_path: Path, database_url: str) -> None:
    config = load_config(config_file(tmp_path, database_url, "policy-b.toml"), environ={})
    rules = rules_for(config)
    # Policy B. Fri 20 Nov 2026 16:00 local = 15:00 UTC.
    tracking_id = receive(sessions, rules, datetime(2026, 11, 20, 15, 0, tzinfo=UTC))
    # confirm: Mon 23, Tue 24, Wed 25 Nov → Wed 25 Nov 17:00 local; assess waits for confirm.
    assert due_times(sessions, tracking_id)["confirm"][0] == "2026-11-25T16:00+00:00"
    assert due_times(sessions, tracking_id)["assess"][0] is None
    with transaction(sessions) as session:
        report = session.scalars(select(Report).where(Report.tracking_id == tracking_id).options(selectinload(Report.milestones))).one()
        # Confirmation actually sent Tue 24 Nov 10:00 local (09:00 UTC), a day early.
        meet_milestone(session, report, "confirm", datetime(2026, 11, 24, 9, 0, tzinfo=UTC), "alice@example.com", config.sla, effective_calendar(session, config.calendar))
    # assess: business days after Tue 24: Wed 25, Thu 26, Fri 27 → Fri 27 Nov 17:00 local,
    # not Mon 30 Nov as it would be from the confirmation's due date.
    assert due_times(sessions, tracking_id)["assess"][0] == "2026-11-27T16:00+00:00"


def test_holidays_add_recomputes_open_deadlines_but_a_promise_never_moves_later(sessions: sessionmaker[Session], tmp_path: Path, database_url: str) -> None:
    config = config_file(tmp_path, database_url)
    config.write_text(config.read_text().replace("auto_replies_per_hour = 5", "auto_replies_per_hour = 1"))
    rules = rules_for(load_config(config, environ={}))
    # The acknowledgement of the first report promises its deadlines; the second report, from
    # the same sender within the hour, gets no acknowledgement and so no promise.
    promised_id = receive(sessions, rules, datetime(2026, 12, 18, 16, 30, tzinfo=UTC), 1)
    open_id = receive(sessions, rules, datetime(2026, 12, 18, 16, 31, tzinfo=UTC), 2)

    added = run_cli(config, "holidays", "add", "2026-12-21..2026-12-23", "office move", "--by", "alice")
    assert added.returncode == 0, added.stderr
    assert added.stdout == "closed 2026-12-21..2026-12-23: office move; 1 open deadline(s) moved\n"
    # Without a promise: 21–23 closed, 24 Christmas Eve (config), 25 Christmas Day, 26–27
    # weekend, 28–31 year-end shutdown, 1 Jan New Year's Day, 2–3 weekend → Mon 4, Tue 5,
    # Wed 6 Jan 2027 17:00 local.
    assert due_times(sessions, open_id)["assess"] == ("2027-01-06T16:00+00:00", "2027-01-06T16:00+00:00", None)
    # The promised deadline stays; the recomputed one is kept beside it.
    assert due_times(sessions, promised_id)["assess"] == ("2026-12-23T16:00+00:00", "2027-01-06T16:00+00:00", "2026-12-23T16:00+00:00")

    status = json.loads(run_cli(config, "sla", "status", "--json", "--now", "2026-12-22T12:00+01:00").stdout)
    promised = next(item for item in status if item["tracking_id"] == promised_id and item["milestone"] == "assess")
    assert promised["promise_differs"] is True
    assert (promised["due_at"], promised["computed_due_at"]) == ("2026-12-23T17:00:00+01:00", "2027-01-06T17:00:00+01:00")
    text = run_cli(config, "sla", "status", "--now", "2026-12-22T12:00+01:00").stdout
    assert f"{promised_id}  assess" in text and "(promised 2026-12-23T17:00:00+01:00, recomputed 2027-01-06T17:00:00+01:00)" in text

    removed = run_cli(config, "holidays", "remove", "2026-12-22", "--by", "bob")
    assert removed.stdout == "removed closure 2026-12-21..2026-12-23 office move; 1 open deadline(s) moved\n"
    assert due_times(sessions, open_id)["assess"][0] == "2026-12-23T16:00+00:00"
    with transaction(sessions) as session:
        [change] = session.scalars(select(CalendarChange)).all()
        assert (change.created_by, change.removed_by) == ("alice", "bob") and change.removed_at is not None


def test_milestones_due_before_a_moment_come_from_one_indexed_query(sessions: sessionmaker[Session]) -> None:
    rules = example_rules()
    receive(sessions, rules, datetime(2026, 12, 18, 16, 30, tzinfo=UTC), 1)
    receive(sessions, rules, datetime(2026, 12, 21, 9, 0, tzinfo=UTC), 2)
    with transaction(sessions) as session:
        due = [(record.report.tracking_id, record.name) for record in milestones_due_before(session, datetime(2026, 12, 22, 12, 0, tzinfo=UTC))]
    assert due == [("SEC-2026-0001", "acknowledge"), ("SEC-2026-0002", "acknowledge")]


def test_holiday_administration_lists_who_and_when_and_refuses_bad_input(sessions: sessionmaker[Session], tmp_path: Path, database_url: str) -> None:
    config = config_file(tmp_path, database_url)
    assert run_cli(config, "holidays", "remove", "2026-04-03", "--by", "carol").stdout.startswith("2026-04-03 Good Friday (NL) is now a working day")
    listing = json.loads(run_cli(config, "holidays", "list", "--year", "2026", "--json").stdout)
    good_friday = [entry for entry in listing if entry["first_day"] == "2026-04-03"]
    assert [(entry["source"], entry["changed_by"]) for entry in good_friday] == [("worked holiday (admin)", "carol")]
    assert {"first_day": "2026-12-28", "last_day": "2026-12-31", "name": "year-end shutdown", "source": "closure (config)", "changed_by": None, "changed_at": None} in listing

    for arguments, message in [
        (("holidays", "add", "2026-02-30", "x"), "'2026-02-30' is not a real date"),
        (("holidays", "add", "2026-12-31..2026-12-01", "x"), "ends before it starts"),
        (("holidays", "add", "2026-12-01", "  "), "a closure needs a name"),
        (("holidays", "remove", "2026-06-10"), "2026-06-10 is neither an admin closure nor an official holiday"),
        (("calendar", "deadline", "--from", "2026-13-01T10:00", "--within", "3 business days"), "--from: '2026-13-01T10:00' is not an ISO 8601"),
        (("calendar", "deadline", "--from", "2026-12-01T10:00", "--within", "3 fortnights"), "invalid duration '3 fortnights'"),
    ]:
        result = run_cli(config, *arguments)
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr, (arguments, result.stderr)
    with transaction(sessions) as session:
        assert len(session.scalars(select(CalendarChange)).all()) == 1


def test_calendar_deadline_explains_itself_and_the_calendar_exports_as_ics(tmp_path: Path, database_url: str, sessions: sessionmaker[Session]) -> None:
    config = config_file(tmp_path, database_url)
    explained = run_cli(config, "calendar", "deadline", "--from", "2026-12-23T16:00", "--within", "3 business days", "--explain")
    assert explained.stdout.splitlines() == [
        "2027-01-06T17:00:00+01:00",
        "3 business days from 2026-12-23T16:00:00+01:00 (Europe/Amsterdam); days skipped:",
        "  2026-12-24 closure: Christmas Eve",
        "  2026-12-25 Christmas Day (NL)",
        "  2026-12-26..27 weekend",
        "  2026-12-28..31 closure: year-end shutdown",
        "  2027-01-01 New Year's Day (NL)",
        "  2027-01-02..03 weekend",
    ]
    as_json = json.loads(run_cli(config, "calendar", "deadline", "--from", "2026-03-28T18:00+01:00", "--within", "24 hours", "--json").stdout)
    # 24 elapsed hours across the switch to summer time (Sun 29 Mar 02:00): the wall clock shows 19:00.
    assert (as_json["deadline"], as_json["deadline_utc"]) == ("2026-03-29T19:00:00+02:00", "2026-03-29T17:00:00Z")

    exported = icalendar.Calendar.from_ical(run_cli(config, "calendar", "export", "--ics", "--year", "2026").stdout)
    events = {(str(event["summary"]), event.decoded("dtstart").isoformat(), event.decoded("dtend").isoformat()) for event in exported.walk("VEVENT")}
    assert ("config closure: year-end shutdown", "2026-12-28", "2027-01-01") in events
    assert ("public holiday: Christmas Day (NL)", "2026-12-25", "2026-12-26") in events
    shown = run_cli(config, "calendar", "show", "--year", "2026").stdout
    assert " 21  22  23  24C 25H 26· 27·\n 28C 29C 30C 31C\n" in shown


def test_recomputing_only_reports_due_after_the_change_misses_nothing(sessions: sessionmaker[Session], tmp_path: Path, database_url: str) -> None:
    config = config_file(tmp_path, database_url)
    rules = rules_for(load_config(config, environ={}))
    start = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    for number in range(12):
        receive(sessions, rules, start + timedelta(hours=37 * number), number)
    for arguments in (("holidays", "add", "2026-12-09..2026-12-10", "training"), ("holidays", "remove", "2026-12-25"), ("holidays", "remove", "2026-12-09")):
        assert run_cli(config, *arguments).returncode == 0
        with transaction(sessions) as session:
            loaded = load_config(config, environ={})
            assert refresh_open_reports(session, loaded.sla, effective_calendar(session, loaded.calendar), start) == 0, arguments


def test_sla_recompute_applies_an_edited_config_calendar_to_open_reports(sessions: sessionmaker[Session], tmp_path: Path, database_url: str) -> None:
    config = config_file(tmp_path, database_url)
    tracking_id = receive(sessions, rules_for(load_config(config, environ={})), datetime(2026, 12, 18, 16, 30, tzinfo=UTC))
    config.write_text(config.read_text().replace('hours = "09:00-17:00"', 'hours = "09:00-15:00"'))
    assert run_cli(config, "sla", "recompute").stdout == "1 open deadline(s) moved\n"
    # assess: still Wed 23 Dec, now at the new closing time 15:00 local = 14:00 UTC.
    assert due_times(sessions, tracking_id)["assess"][0] == "2026-12-23T14:00+00:00"


def test_tracking_numbers_start_again_each_year(sessions: sessionmaker[Session]) -> None:
    rules = example_rules()
    ids = [receive(sessions, rules, moment, number) for number, moment in enumerate([datetime(2026, 12, 31, 23, 59, tzinfo=UTC), datetime(2027, 1, 1, 0, 0, tzinfo=UTC), datetime(2027, 1, 1, 0, 1, tzinfo=UTC)])]
    assert ids == ["SEC-2026-0001", "SEC-2027-0001", "SEC-2027-0002"]

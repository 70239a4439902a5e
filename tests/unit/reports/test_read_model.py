"""One read model, two presentations: the CLI's and the mail templates' views of a report
share every field they have in common and differ only in how moments and the reporter read."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailintake.calendar.business import BusinessCalendar
from mailintake.reports.read_model import CLI_SUMMARY_FIELDS, MAIL_SUMMARY_FIELDS, mail_summary, report_summary
from mailintake.storage.models import Report, Reporter

NL = BusinessCalendar("Europe/Amsterdam", country="NL")
RECEIVED = datetime(2026, 11, 23, 9, 15, tzinfo=UTC)


def a_report(**changes: object) -> Report:
    values: dict[str, object] = {
        "tracking_id": "SEC-2026-0042",
        "subject": "Stored XSS",
        "status": "triaged",
        "severity": "high",
        "suggested_severity": "medium",
        "anonymous": False,
        "flag": None,
        "automated": None,
        "assignee": "alice@example.com",
        "credit_as": None,
        "urls": ["https://app.example.com/profile"],
        "received_at": RECEIVED,
        "envelope_sender": "bounce@mx.example.org",
        "reporter": Reporter(address="researcher@example.org", display_name="A Researcher"),
    }
    return Report(**(values | changes))


def test_the_cli_summary_lists_its_fields_in_order_with_moments_in_utc() -> None:
    summary = report_summary(a_report())
    assert tuple(summary) == CLI_SUMMARY_FIELDS
    assert summary["received_at"] == "2026-11-23T09:15:00Z"
    assert summary["reporter"] == "researcher@example.org"


def test_the_mail_summary_writes_moments_in_the_calendars_zone() -> None:
    summary = mail_summary(a_report(), NL, anonymous_alias=True)
    assert tuple(summary) == MAIL_SUMMARY_FIELDS
    assert summary["received_at"] == "Mon 23 Nov 2026 10:15 CET"
    assert (summary["attachments"], summary["more_attachments"], summary["left_out"], summary["next_deadline"]) == ([], 0, [], None)


def test_fields_both_presentations_show_read_the_same() -> None:
    report = a_report(flag="unauthenticated staff address")
    cli, mail = report_summary(report), mail_summary(report, NL, anonymous_alias=True)
    shared = (set(CLI_SUMMARY_FIELDS) & set(MAIL_SUMMARY_FIELDS)) - {"received_at", "reporter"}
    assert shared == {"tracking_id", "status", "suggested_severity", "subject", "flag"}
    assert {name: cli[name] for name in shared} == {name: mail[name] for name in shared}


@pytest.mark.parametrize(
    ("anonymous", "alias", "shown"),
    [(True, True, "anonymous-sec-2026-0042"), (True, False, "researcher@example.org"), (False, True, "researcher@example.org")],
)
def test_staff_see_an_anonymous_reporter_only_as_an_alias_when_so_configured(anonymous: bool, alias: bool, shown: str) -> None:
    report = a_report(anonymous=anonymous)
    assert mail_summary(report, NL, anonymous_alias=alias)["reporter"] == shown
    # The CLI is for admins: it shows the stored address (and whether the report is anonymous).
    assert (report_summary(report)["reporter"], report_summary(report)["anonymous"]) == ("researcher@example.org", anonymous)


def test_mail_shows_the_envelope_sender_when_no_reporter_is_known() -> None:
    report = a_report(reporter=None)
    assert mail_summary(report, NL, anonymous_alias=True)["reporter"] == "bounce@mx.example.org"
    assert report_summary(report)["reporter"] == ""

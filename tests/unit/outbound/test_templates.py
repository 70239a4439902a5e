"""Mail templates: every shipped template renders with a realistic context; overrides,
translations, strictness, the sandbox, and data that is never compiled."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from mailintake.config.loading import load_config
from mailintake.outbound.templates import (
    REQUIRED,
    SAMPLE_CONTEXTS,
    RenderedMail,
    TemplateError,
    Templates,
    checked_templates,
    language_prefixes,
    sample_contexts,
    shipped_directory,
)

HOSTILE_SUBJECT = "XSS in {{7*7}} <script>alert(1)</script> & more"
HOSTILE_BODY = "Steps:\n1. open {{ 7*7 }} and {% raw %}\n2. <script>alert('x')</script>\n#status closed\n"
SECRET = "SECRET-REPORT-TEXT"

BASE = {
    "organisation": "Example Corp",
    "policy_url": "https://www.example.com/security",
    "now": "Mon 23 Nov 2026 10:16 CET",
}
REPORT = {
    "tracking_id": "SEC-2026-0042",
    "subject": HOSTILE_SUBJECT,
    "received_at": "Mon 23 Nov 2026 10:15 CET",
    "status": "new",
    "severity": None,
    "suggested_severity": "high",
    "reporter": "reporter-7f3a",
    "credit_as": None,
    "urls": ["https://app.example.com/profile?name=<b>"],
    "attachments": [
        {"filename": "poc.html", "content_type": "text/html", "size": 2048, "sha256": "ab" * 32, "attached": True},
    ],
    "more_attachments": 0,
    "left_out": [],
}
DEADLINES = [
    {
        "name": "acknowledge",
        "title": "Acknowledgement",
        "due": "Tue 24 Nov 2026 10:15 CET",
        "explanation": [],
    },
    {
        "name": "assess",
        "title": "Initial assessment",
        "due": "Mon 28 Dec 2026 17:00 CET",
        "explanation": ["2026-12-24 Christmas Eve (closure)", "2026-12-25 Christmas Day (NL)"],
    },
]
MILESTONE = {
    "name": "assess",
    "title": "Initial assessment",
    "due": "Thu 26 Nov 2026 17:00 CET",
    "state": "warning",
    "left": "2h15m business time left",
}
FAILURE = {
    "kind": "acknowledgement",
    "recipients": ["researcher@example.org"],
    "reply": "550 5.1.1 user unknown",
    "attempts": 3,
    "tracking_id": "SEC-2026-0042",
}
COMMANDS = [
    {"usage": "#status triaged|accepted|rejected|resolved", "help": "set the report's status"},
    {"usage": "#severity low|medium|high|critical", "help": "set the severity"},
]


def build_contexts() -> dict[str, dict[str, object]]:
    return {
        "acknowledgement": {**BASE, "report": REPORT, "deadlines": DEADLINES, "reply_address": "security+r1@example.com"},
        "staff_notification": {
            **BASE,
            "report": REPORT,
            "deadlines": DEADLINES,
            "body": HOSTILE_BODY,
            "reply_address": "security+s1@example.com",
            "commands": COMMANDS,
        },
        "sla_warning": {**BASE, "report": REPORT, "milestone": MILESTONE, "deadlines": DEADLINES},
        "sla_breach": {**BASE, "report": REPORT, "milestone": {**MILESTONE, "state": "breached", "left": "overdue by 3h"}, "deadlines": DEADLINES},
        "sla_escalation": {**BASE, "report": REPORT, "milestone": {**MILESTONE, "state": "breached", "left": "overdue by 1 day 2 h"}, "deadlines": DEADLINES},
        "progress_reminder": {
            **BASE,
            "report": {**REPORT, "status": "accepted"},
            "milestone": {**MILESTONE, "name": "update", "title": "Progress update", "left": "1d business time left"},
        },
        "sla_alert_burst": {
            **BASE,
            "kind": "sla_breach",
            "count": 120,
            "by_milestone": [{"title": "Initial assessment", "count": 70}, {"title": "Acknowledgement", "count": 50}],
            "alerts": [
                {"tracking_id": "SEC-2026-0031", "subject": "Old SQLi", "milestone": "Acknowledgement", "due": "Fri 20 Nov 2026 17:00 CET", "left": "overdue by 3d"},
                {"tracking_id": "SEC-2026-0042", "subject": HOSTILE_SUBJECT, "milestone": "Initial assessment", "due": "Mon 23 Nov 2026 10:15 CET", "left": "overdue by 1h"},
            ],
        },
        "resolution": {**BASE, "report": {**REPORT, "status": "resolved"}, "reply_address": "security+r1@example.com", "subject": HOSTILE_SUBJECT, "text": ""},
        "staff_reply": {**BASE, "report": REPORT, "reply_address": "security+r1@example.com", "subject": HOSTILE_SUBJECT, "text": HOSTILE_BODY, "assessment": True, "eta": "2027-01-15"},
        "reporter_reply": {
            **BASE,
            "report": REPORT,
            "subject": HOSTILE_SUBJECT,
            "body": HOSTILE_BODY,
            "reply_address": "security+s1@example.com",
            "resumed": False,
            "verified": True,
            "attachments": REPORT["attachments"],
            "more_attachments": 0,
        },
        "command_error": {**BASE, "report": REPORT, "errors": ["line 1: unknown command #stauts (did you mean #status?)"], "carried_out": False},
        "flagged_report": {**BASE, "report": REPORT, "flag": "unauthenticated staff address", "related": "SEC-2026-0001"},
        "rejected": {**BASE, "report": REPORT, "reply_address": "security+r1@example.com", "subject": HOSTILE_SUBJECT, "text": ""},
        "duplicate": {**BASE, "report": REPORT, "reply_address": "security+r1@example.com", "subject": HOSTILE_SUBJECT, "text": ""},
        "out_of_scope": {**BASE, "report": REPORT, "reply_address": "security+r1@example.com", "subject": HOSTILE_SUBJECT, "text": ""},
        "daily_digest": {
            **BASE,
            "date": "Mon 23 Nov 2026",
            "counts": {"open_reports": 2, "overdue": 1, "warning": 0, "due_today": 1, "due_this_week": 0},
            "open_by_status": [{"status": "new", "count": 1}, {"status": "accepted", "count": 1}],
            "open_reports": [
                {**REPORT, "next_deadline": DEADLINES[1]},
                {**REPORT, "tracking_id": "SEC-2026-0040", "subject": "Open redirect", "status": "accepted", "severity": "low", "next_deadline": None},
            ],
            "overdue": [{"tracking_id": "SEC-2026-0031", "subject": "Old SQLi", "milestone": "Initial assessment", "due": "Fri 20 Nov 2026 17:00 CET"}],
            "due_today": [{"tracking_id": "SEC-2026-0042", "subject": HOSTILE_SUBJECT, "milestone": "Acknowledgement", "due": "Mon 23 Nov 2026 17:00 CET"}],
            "due_this_week": [],
        },
        "delivery_failure": {**BASE, "failure": FAILURE},
        "unprocessable_mail": {**BASE, "inbound": {"id": 7, "reason": "parse timed out after 30 s"}},
        "auto_reply_limit": {**BASE, "report": REPORT, "deadlines": DEADLINES, "limit": 5},
        "held_acknowledgement": {
            **BASE,
            "limit": 5,
            "reports": [
                {"tracking_id": "SEC-2026-0042", "subject": HOSTILE_SUBJECT, "received_at": "Mon 23 Nov 2026 10:15 CET", "reply_address": "security+r1@example.com", "deadlines": DEADLINES[1:]},
                {"tracking_id": "SEC-2026-0043", "subject": "Open redirect", "received_at": "Mon 23 Nov 2026 10:20 CET", "reply_address": "security+r2@example.com", "deadlines": []},
            ],
        },
    }


CONTEXTS = build_contexts()


def context(name: str, **changes: object) -> dict[str, object]:
    fresh = copy.deepcopy(CONTEXTS[name])
    fresh.update(changes)
    return fresh


def report(**changes: object) -> dict[str, object]:
    return {**copy.deepcopy(REPORT), **changes}


@pytest.fixture(scope="module")
def shipped() -> Templates:
    return Templates(None)


def write(directory: Path, relative: str, text: str) -> Path:
    path = directory / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- every shipped template ---------------------------------------------------------


def test_every_required_template_has_a_context_and_a_file() -> None:
    assert set(CONTEXTS) == set(REQUIRED) == set(RENDERED_PHRASES)
    for name in REQUIRED:
        assert (shipped_directory() / f"{name}.txt.j2").is_file()


def test_shipped_templates_pass_check(shipped: Templates) -> None:
    shipped.check(REQUIRED)


# What each shipped template says with the contexts above: a phrase of its subject and one
# of its body, so a template that renders but says the wrong thing (or nothing) fails.
RENDERED_PHRASES = {
    "acknowledgement": ("We received your security report", "Thank you for reporting a security issue to Example Corp."),
    "staff_notification": ("New security report: " + HOSTILE_SUBJECT, "New security report SEC-2026-0042, received Mon 23 Nov 2026 10:15 CET."),
    "sla_warning": ("Deadline approaching: Initial assessment, due Thu 26 Nov 2026 17:00 CET", 'The "Initial assessment" deadline of SEC-2026-0042 is approaching.'),
    "sla_breach": ("Deadline missed: Initial assessment", "overdue by 3h"),
    "sla_escalation": ("Escalation: Initial assessment overdue by 1 day 2 h", "Please make sure someone owns SEC-2026-0042 and answers the reporter."),
    "progress_reminder": ("Reminder: Progress update due Thu 26 Nov 2026 17:00 CET", 'The next "Progress update" is due.'),
    "sla_alert_burst": ("Security reports: 120 deadlines missed", "[SEC-2026-0031] Acknowledgement, was due Fri 20 Nov 2026 17:00 CET (overdue by 3d)"),
    "resolution": ("Your security report has been resolved", "The issue you reported to Example Corp has been resolved:"),
    "staff_reply": ("Re: [SEC-2026-0042] " + HOSTILE_SUBJECT, "Expected resolution date: 2027-01-15"),
    "reporter_reply": ("Reporter replied: " + HOSTILE_SUBJECT, "The reporter of SEC-2026-0042 (reporter-7f3a) replied."),
    "command_error": ("Your reply was not sent", "line 1: unknown command #stauts (did you mean #status?)"),
    "flagged_report": ("Security alert: unauthenticated staff address", "It pointed at SEC-2026-0001."),
    "rejected": ("Re: [SEC-2026-0042] " + HOSTILE_SUBJECT, "does not describe a security vulnerability we will act on"),
    "duplicate": ("Re: [SEC-2026-0042] " + HOSTILE_SUBJECT, "had already been reported to us"),
    "out_of_scope": ("Re: [SEC-2026-0042] " + HOSTILE_SUBJECT, "outside the scope of our disclosure policy"),
    "daily_digest": ("Security reports Mon 23 Nov 2026: 2 open, 1 overdue, 1 due today", "[SEC-2026-0031] Initial assessment, was due Fri 20 Nov 2026 17:00 CET"),
    "delivery_failure": ("Mail delivery failed: acknowledgement", "550 5.1.1 user unknown"),
    "unprocessable_mail": ("A stored mail could not become a report (inbound 7)", "`mailintake inbound retry 7` tries again"),
    "auto_reply_limit": ("Automatic replies stopped for one sender: possible mail loop", "reporter-7f3a sent more than 5 mails to the security address"),
    "held_acknowledgement": ("We received 2 more security reports from you", "SEC-2026-0042: " + HOSTILE_SUBJECT + "\n  Received:  Mon 23 Nov 2026 10:15 CET"),
}


@pytest.mark.parametrize("name", REQUIRED)
def test_every_shipped_template_renders(shipped: Templates, name: str) -> None:
    mail = shipped.render(name, context(name))
    subject_phrase, body_phrase = RENDERED_PHRASES[name]
    assert isinstance(mail, RenderedMail)
    assert mail.subject and "\n" not in mail.subject
    assert subject_phrase in mail.subject
    assert not mail.text.startswith("Subject:")
    assert mail.text.strip()
    assert body_phrase in mail.text
    if name != "unprocessable_mail":
        # Every mail about a report names it in its text, not only in the subject.
        assert "SEC-2026-0042" in mail.text
    assert "None" not in mail.subject + mail.text
    assert "{#" not in mail.text and "Context" not in mail.text


@pytest.mark.parametrize("name", [name for name in REQUIRED if name not in ("daily_digest", "unprocessable_mail", "sla_alert_burst")])
def test_tracking_id_is_in_every_report_subject(shipped: Templates, name: str) -> None:
    assert "[SEC-2026-0042]" in shipped.render(name, context(name)).subject


@pytest.mark.parametrize("name", REQUIRED)
def test_optional_values_missing_print_no_none(shipped: Templates, name: str) -> None:
    changes: dict[str, object] = {"policy_url": ""}
    if "report" in CONTEXTS[name]:
        changes["report"] = report(severity=None, suggested_severity=None, credit_as=None, urls=[], attachments=[])
    if "deadlines" in CONTEXTS[name]:
        changes["deadlines"] = []
    if name == "delivery_failure":
        changes["failure"] = {**FAILURE, "tracking_id": None}
    if name == "flagged_report":
        changes["related"] = None
    if name == "staff_reply":
        changes["eta"] = None
    mail = shipped.render(name, context(name, **changes))
    assert "None" not in mail.subject + mail.text
    assert "[]" not in mail.subject + mail.text
    assert mail.html is None or "None" not in mail.html


# --- the sample contexts `serve` renders every template with at start ----------------

SAMPLE_MAILS = {
    "acknowledgement": ("[SEC-2026-0042] We received your security report", "Your report: Stored XSS in profile page"),
    "staff_notification": ("[SEC-2026-0042] New security report: Stored XSS in profile page", "capture.pcap (application/octet-stream, 12.0 MB), not attached: too large for mail"),
    "sla_warning": ("[SEC-2026-0042] Deadline approaching: Initial assessment, due Thu 26 Nov 2026 17:00 CET", "Left:      2 h 15 min business time left"),
    "sla_breach": ("[SEC-2026-0042] Deadline missed: Initial assessment", "Now:       overdue by 3 h"),
    "sla_escalation": ("[SEC-2026-0042] Escalation: Initial assessment overdue by 1 day 2 h", "Reporter:  researcher@example.org"),
    "progress_reminder": ("[SEC-2026-0042] Reminder: Progress update due Thu 26 Nov 2026 17:00 CET", "short progress update"),
    "sla_alert_burst": ("Security reports: 100 deadlines missed", "... and 99 more"),
    "resolution": ("[SEC-2026-0042] Your security report has been resolved", "we will credit you as Jane Researcher"),
    "staff_reply": ("Re: [SEC-2026-0042] Stored XSS in profile page", "Expected resolution date: 2027-01-15"),
    "rejected": ("Re: [SEC-2026-0042] Stored XSS in profile page", "Thank you, we have reproduced the issue."),
    "duplicate": ("Re: [SEC-2026-0042] Stored XSS in profile page", "Thank you, we have reproduced the issue."),
    "out_of_scope": ("Re: [SEC-2026-0042] Stored XSS in profile page", "Thank you, we have reproduced the issue."),
    "daily_digest": ("Security reports 2026-11-23: 1,234 open, 57 overdue, 1 due today", "... and 56 more"),
    "delivery_failure": ("[SEC-2026-0042] Mail delivery failed: acknowledgement", "Last reply:  550 5.1.1 user unknown"),
    "reporter_reply": ("[SEC-2026-0042] Reporter replied: More details", "… and 3 more, not listed or attached here"),
    "command_error": ("[SEC-2026-0042] Your reply was not sent", "its commands were carried out"),
    "flagged_report": ("[SEC-2026-0042] Security alert: unauthenticated staff address", "It pointed at SEC-2026-0041."),
    "unprocessable_mail": ("A stored mail could not become a report (inbound 42)", "`mailintake inbound retry 42` tries again"),
    "auto_reply_limit": ("[SEC-2026-0042] Automatic replies stopped for one sender: possible mail loop", "sent more than 5 mails to the security address within an"),
    "held_acknowledgement": (
        "[SEC-2026-0042] We received 2 more security reports from you",
        "SEC-2026-0043: Open redirect in login\n  Received:  Mon 23 Nov 2026 10:20 CET\n  Replies:   security+r43-abcdefghijklmnop@example.com\n  We will look into it and get back to you.",
    ),
}


def test_every_template_has_a_sample_context() -> None:
    assert set(SAMPLE_CONTEXTS) == set(REQUIRED) == set(SAMPLE_MAILS)


@pytest.mark.parametrize("name", REQUIRED)
def test_every_shipped_template_renders_with_its_sample(shipped: Templates, name: str) -> None:
    subject, fragment = SAMPLE_MAILS[name]
    full, quiet = sample_contexts(name)
    mail = shipped.render(name, full)
    assert mail.subject == subject
    assert fragment in mail.text
    assert "None" not in mail.text
    quiet_mail = shipped.render(name, quiet)
    assert quiet_mail.text.strip() and "None" not in quiet_mail.subject + quiet_mail.text


def test_samples_are_fresh_copies() -> None:
    full, quiet = sample_contexts("acknowledgement")
    full["report"]["subject"] = "changed"  # type: ignore[index]
    assert SAMPLE_CONTEXTS["acknowledgement"]["report"]["subject"] == "Stored XSS in profile page"  # type: ignore[index]
    assert quiet["report"]["credit_as"] is None and quiet["deadlines"] == []  # type: ignore[index]


def test_the_shipped_templates_and_translations_pass_the_start_check() -> None:
    config = load_config(Path(__file__).resolve().parents[3] / "config.example.toml", environ={})
    templates = checked_templates(config.templates.dir)
    for language, greeting in (("de", "Guten Tag,"), ("nl", "Goedendag,"), (None, "Hello,")):
        assert templates.render("acknowledgement", sample_contexts("acknowledgement")[0], language).text.startswith(greeting)


@pytest.mark.parametrize(
    ("relative", "source", "expected"),
    [
        ("acknowledgement.txt.j2", "Subject: [{{ report.tracking_id }}] ok\n\n{{ no_such_name }}\n", "undefined value 'no_such_name'"),
        ("acknowledgement.txt.j2", "Subject: [{{ report.tracking_id }}] ok\n\n{{ report.__class__ }}\n", "blocked by the sandbox"),
        ("staff_notification.txt.j2", "Subject: x\n\n{{ ('{0.__class__}' | attr('format'))(report) }}\n", "blocked by the sandbox"),
        ("de/acknowledgement.txt.j2", "Subject: x\n\n{{ report.no_such_field }}\n", "undefined value"),
        ("nl/resolution.txt.j2", "Subject: x\n\n{% if report.credit_as %}{{ report.credit_as }}{% else %}{{ report.credit_nme }}{% endif %}\n", "undefined value"),
        ("sla_warning.txt.j2", "Subject: {{ milestone.title | oneline }}\n\n{% for a in report.attachments %}{{ a.file_name }}{% endfor %}\n", "undefined value"),
    ],
)
def test_check_renders_every_variant_with_the_samples_and_names_the_file(tmp_path: Path, relative: str, source: str, expected: str) -> None:
    path = write(tmp_path, relative, source)
    with pytest.raises(TemplateError) as raised:
        Templates(tmp_path).check(REQUIRED)
    message = str(raised.value)
    assert message.startswith(f"template {path}:") and expected in message
    assert message.endswith("(rendered with a sample report at start)") and "\n" not in message


def test_check_renders_the_html_alternative(tmp_path: Path) -> None:
    write(tmp_path, "acknowledgement.txt.j2", "Subject: ok\n\nok\n")
    path = write(tmp_path, "acknowledgement.html.j2", "<p>{{ reporter_name }}</p>\n")
    with pytest.raises(TemplateError, match=rf"^template {path}:1: undefined value 'reporter_name'"):
        Templates(tmp_path).check(REQUIRED)


def test_check_refuses_a_template_without_a_sample(tmp_path: Path) -> None:
    write(tmp_path, "ticket.txt.j2", "Subject: x\n\nok\n")
    with pytest.raises(TemplateError, match="no sample context for template ticket"):
        Templates(tmp_path).check(["ticket"])


def test_a_template_error_is_not_a_value_error() -> None:
    # Callers read ValueError as "this address cannot be written"; a broken template is not that.
    assert not issubclass(TemplateError, ValueError)


def test_a_variant_names_the_file_render_uses_and_changes_with_its_source(tmp_path: Path) -> None:
    shipped = Templates(tmp_path)
    german = shipped.variant("acknowledgement", "de-AT")
    assert (german.relative, german.path) == ("de/acknowledgement.txt.j2", shipped_directory() / "de" / "acknowledgement.txt.j2")
    path = write(tmp_path, "acknowledgement.txt.j2", "Subject: x\n\nfirst\n")
    first = Templates(tmp_path).variant("acknowledgement", "de")
    assert (first.relative, first.path) == ("acknowledgement.txt.j2", path)
    write(tmp_path, "acknowledgement.txt.j2", "Subject: x\n\nsecond\n")
    assert Templates(tmp_path).variant("acknowledgement").fingerprint != first.fingerprint


# --- what each template says -------------------------------------------------------


def test_acknowledgement_tells_the_reporter_what_happens_next(shipped: Templates) -> None:
    mail = shipped.render("acknowledgement", context("acknowledgement"))
    assert mail.subject == "[SEC-2026-0042] We received your security report"
    assert "SEC-2026-0042" in mail.text
    assert "received" in mail.text and "Mon 23 Nov 2026 10:15 CET" in mail.text
    assert "Initial assessment: by Mon 28 Dec 2026 17:00 CET" in mail.text
    assert "2026-12-25 Christmas Day (NL)" in mail.text
    assert "2026-12-24 Christmas Eve (closure)" in mail.text
    assert "Reply to this message" in mail.text
    assert "security+r1@example.com" in mail.text
    assert "keep [SEC-2026-0042] in the" in mail.text
    assert "https://www.example.com/security" in mail.text
    assert "ab" * 32 in mail.text
    assert "Example Corp" in mail.text


def test_acknowledgement_names_no_staff_and_no_internal_detail(shipped: Templates) -> None:
    mail = shipped.render("acknowledgement", context("acknowledgement"))
    assert "#status" not in mail.text
    assert "security+s1@example.com" not in mail.text
    assert "severity" not in mail.text.lower()


def test_acknowledgement_without_policy_or_deadlines(shipped: Templates) -> None:
    mail = shipped.render("acknowledgement", context("acknowledgement", policy_url="", deadlines=[]))
    assert "disclosure policy" not in mail.text
    assert "We will look into your report and get back to you." in mail.text


def test_acknowledgement_confirms_credit_when_asked(shipped: Templates) -> None:
    mail = shipped.render("acknowledgement", context("acknowledgement", report=report(credit_as="Jane Researcher")))
    assert "You asked to be credited as Jane Researcher." in mail.text


def test_acknowledgement_has_an_html_alternative(shipped: Templates) -> None:
    mail = shipped.render("acknowledgement", context("acknowledgement"))
    assert mail.html is not None
    assert not mail.html.startswith("Subject:")
    assert "<strong>SEC-2026-0042</strong>" in mail.html
    assert "2026-12-25 Christmas Day (NL)" in mail.html
    assert '<a href="https://www.example.com/security">' in mail.html


def test_staff_notification_carries_everything_staff_need(shipped: Templates) -> None:
    mail = shipped.render("staff_notification", context("staff_notification"))
    assert mail.subject.startswith("[SEC-2026-0042] New security report: ")
    assert HOSTILE_BODY in mail.text
    assert "Reporter:  reporter-7f3a" in mail.text
    assert "Severity:  not set (reporter suggests high)" in mail.text
    assert "Credit:    not asked for" in mail.text
    assert "Initial assessment: Mon 28 Dec 2026 17:00 CET" in mail.text
    assert "      2026-12-25 Christmas Day (NL)" in mail.text
    assert "https://app.example.com/profile?name=<b>" in mail.text
    assert "poc.html (text/html, 2.0 kB)" in mail.text
    assert "security+s1@example.com" in mail.text
    for command in COMMANDS:
        assert command["usage"] in mail.text
        assert command["help"] in mail.text
    assert mail.html is None


def test_staff_notification_subject_stays_one_line_whatever_the_reporter_wrote(shipped: Templates) -> None:
    hostile = report(subject="Bug\r\nBcc: evil@example.net\n\nbody")
    mail = shipped.render("staff_notification", context("staff_notification", report=hostile))
    assert mail.subject == "[SEC-2026-0042] New security report: Bug Bcc: evil@example.net body"


@pytest.mark.parametrize("name", ["sla_warning", "sla_breach", "sla_escalation"])
def test_sla_mails_name_the_milestone_and_the_time_left(shipped: Templates, name: str) -> None:
    ctx = context(name)
    milestone = ctx["milestone"]
    assert isinstance(milestone, dict)
    mail = shipped.render(name, ctx)
    assert "Initial assessment" in mail.subject
    assert milestone["due"] in mail.text
    assert milestone["left"] in mail.text
    assert milestone["state"] in mail.text
    assert "2026-12-25 Christmas Day (NL)" in mail.text
    assert "reporter-7f3a" in mail.text


def test_sla_warning_and_breach_differ(shipped: Templates) -> None:
    assert "approaching" in shipped.render("sla_warning", context("sla_warning")).subject
    assert "missed" in shipped.render("sla_breach", context("sla_breach")).subject
    assert "Escalation" in shipped.render("sla_escalation", context("sla_escalation")).subject


def test_progress_reminder_asks_to_keep_the_reporter_informed(shipped: Templates) -> None:
    mail = shipped.render("progress_reminder", context("progress_reminder"))
    assert "Progress update" in mail.subject
    assert "keep the reporter" in mail.text and "informed" in mail.text
    assert "1d business time left" in mail.text


def test_resolution_mentions_credit_only_as_asked(shipped: Templates) -> None:
    credited = shipped.render("resolution", context("resolution", report=report(credit_as="Jane Researcher")))
    assert "we will credit you as Jane Researcher" in credited.text
    uncredited = shipped.render("resolution", context("resolution"))
    assert "credit you as" not in uncredited.text
    assert "If you would like to be credited" in uncredited.text
    assert "resolved" in uncredited.subject
    assert "security+r1@example.com" in uncredited.text


def test_daily_digest_lists_every_section(shipped: Templates) -> None:
    mail = shipped.render("daily_digest", context("daily_digest"))
    assert mail.subject == "Security reports Mon 23 Nov 2026: 2 open, 1 overdue, 1 due today"
    assert "[SEC-2026-0031] Initial assessment, was due Fri 20 Nov 2026 17:00 CET" in mail.text
    assert "[SEC-2026-0042] Acknowledgement, due Mon 23 Nov 2026 17:00 CET" in mail.text
    assert "Nothing else is due this week." in mail.text
    assert "Next: Initial assessment, due Mon 28 Dec 2026 17:00 CET" in mail.text
    assert "No open deadline." in mail.text
    assert "severity low" in mail.text and "severity not set" in mail.text


def test_daily_digest_when_all_is_quiet(shipped: Templates) -> None:
    nothing = {"open_reports": 0, "overdue": 0, "warning": 0, "due_today": 0, "due_this_week": 0}
    mail = shipped.render("daily_digest", context("daily_digest", open_reports=[], overdue=[], due_today=[], counts=nothing, open_by_status=[]))
    assert mail.subject == "Security reports Mon 23 Nov 2026: 0 open, 0 overdue, 0 due today"
    assert "Nothing is overdue." in mail.text and "No open reports." in mail.text


@pytest.mark.parametrize(
    ("kind", "subject", "heading", "line", "closing"),
    [
        ("sla_breach", "Security reports: 120 deadlines missed", "Most overdue first", "was due", "Act on each by replying"),
        ("sla_escalation", "Security reports: escalation, 120 missed deadlines still not met", "Most overdue first", "was due", "Please make sure someone owns each"),
        ("sla_warning", "Security reports: 120 deadlines approaching", "Soonest due first", "due", "Act on each by replying"),
        ("progress_reminder", "Security reports: 120 progress updates due", "Soonest due first", "due", "Please send each reporter a short update"),
    ],
)
def test_a_combined_sla_alert_counts_every_deadline_and_lists_the_first(shipped: Templates, kind: str, subject: str, heading: str, line: str, closing: str) -> None:
    mail = shipped.render("sla_alert_burst", context("sla_alert_burst", kind=kind))
    assert mail.subject == subject
    assert "  - Initial assessment: 70\n  - Acknowledgement: 50\n" in mail.text
    assert f"{heading}\n  - [SEC-2026-0031] Acknowledgement, {line} Fri 20 Nov 2026 17:00 CET (overdue by 3d)\n      Old SQLi\n  - [SEC-2026-0042]" in mail.text
    assert "  ... and 118 more\n" in mail.text
    assert closing in mail.text


def test_a_combined_sla_alert_that_lists_every_deadline_says_no_more(shipped: Templates) -> None:
    mail = shipped.render("sla_alert_burst", context("sla_alert_burst", count=2))
    assert mail.subject == "Security reports: 2 deadlines missed"
    assert "... and" not in mail.text


def test_delivery_failure_quotes_the_relay(shipped: Templates) -> None:
    mail = shipped.render("delivery_failure", context("delivery_failure"))
    assert mail.subject == "[SEC-2026-0042] Mail delivery failed: acknowledgement"
    assert "550 5.1.1 user unknown" in mail.text
    assert "researcher@example.org" in mail.text
    assert "Attempts:    3" in mail.text


def test_delivery_failure_without_a_report(shipped: Templates) -> None:
    failure = {"kind": "daily digest", "recipients": ["a@example.com", "b@example.com"], "reply": "452 4.2.2 mailbox full", "attempts": 10, "tracking_id": None}
    mail = shipped.render("delivery_failure", context("delivery_failure", failure=failure))
    assert mail.subject == "Mail delivery failed: daily digest"
    assert "a@example.com, b@example.com" in mail.text


# --- data is never compiled, HTML is escaped -----------------------------------------


@pytest.mark.parametrize("name", REQUIRED)
def test_reporter_text_comes_out_literally(shipped: Templates, name: str) -> None:
    mail = shipped.render(name, context(name))
    rendered = mail.subject + mail.text
    if name not in ("delivery_failure", "unprocessable_mail"):
        assert "{{7*7}}" in rendered
        assert "<script>alert(1)</script>" in rendered
    assert "49" not in rendered


def test_reporter_body_comes_out_literally(shipped: Templates) -> None:
    text = shipped.render("staff_notification", context("staff_notification")).text
    assert "{{ 7*7 }} and {% raw %}" in text


def test_reporter_text_is_escaped_in_html(shipped: Templates) -> None:
    html = shipped.render("acknowledgement", context("acknowledgement")).html
    assert html is not None
    assert "{{7*7}}" in html and "49" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html
    assert "<script>" not in html


def test_autoescape_is_on_for_html_and_off_for_text(tmp_path: Path) -> None:
    write(tmp_path, "note.txt.j2", "Subject: {{ value | oneline }}\n\n{{ value }}\n")
    write(tmp_path, "note.html.j2", "<p>{{ value }}</p>\n")
    mail = Templates(tmp_path).render("note", {"value": "<b>&</b>"})
    assert mail.subject == "<b>&</b>"
    assert mail.text == "<b>&</b>\n"
    assert mail.html == "<p>&lt;b&gt;&amp;&lt;/b&gt;</p>\n"


# --- output convention -------------------------------------------------------------


def test_subject_line_then_empty_line_then_body(tmp_path: Path) -> None:
    write(tmp_path, "note.txt.j2", "Subject:   Hello there  \n\nLine one\nLine two\n")
    mail = Templates(tmp_path).render("note", {})
    assert mail == RenderedMail(subject="Hello there", text="Line one\nLine two\n", html=None)


@pytest.mark.parametrize(
    "source",
    ["Hello\n\nbody\n", "Subject:\n\nbody\n", "Subject: x\nbody\n", "\nSubject: x\n\nbody\n"],
)
def test_output_that_breaks_the_convention_is_refused(tmp_path: Path, source: str) -> None:
    write(tmp_path, "note.txt.j2", source)
    with pytest.raises(TemplateError, match=r"note\.txt\.j2"):
        Templates(tmp_path).render("note", {})


def test_a_line_break_in_the_subject_is_refused_without_quoting_it(tmp_path: Path) -> None:
    write(tmp_path, "note.txt.j2", "Subject: {{ value }}\n\nbody\n")
    with pytest.raises(TemplateError) as raised:
        Templates(tmp_path).render("note", {"value": f"a\n{SECRET}"})
    assert SECRET not in str(raised.value)
    assert "|oneline" in str(raised.value)


# --- overrides and translations ------------------------------------------------------


def test_override_dir_takes_precedence(tmp_path: Path) -> None:
    write(tmp_path, "acknowledgement.txt.j2", "Subject: [{{ report.tracking_id }}] Thanks from {{ organisation }}\n\nOurs.\n")
    templates = Templates(tmp_path)
    mail = templates.render("acknowledgement", context("acknowledgement"))
    assert mail == RenderedMail(subject="[SEC-2026-0042] Thanks from Example Corp", text="Ours.\n", html=None)
    assert "New security report" in templates.render("staff_notification", context("staff_notification")).subject


def test_override_is_never_mixed_with_a_shipped_translation_or_html_part(tmp_path: Path) -> None:
    write(tmp_path, "acknowledgement.txt.j2", "Subject: Ours\n\nOurs.\n")
    mail = Templates(tmp_path).render("acknowledgement", context("acknowledgement"), language="de")
    assert mail.subject == "Ours"
    assert mail.html is None


def test_override_html_alternative_beside_its_text(tmp_path: Path) -> None:
    write(tmp_path, "acknowledgement.txt.j2", "Subject: Ours\n\nOurs.\n")
    write(tmp_path, "acknowledgement.html.j2", "<p>Ours, {{ organisation }}</p>\n")
    mail = Templates(tmp_path).render("acknowledgement", context("acknowledgement"))
    assert mail.html == "<p>Ours, Example Corp</p>\n"


def test_override_translation_only_falls_back_to_shipped_default(tmp_path: Path) -> None:
    write(tmp_path, "fr/acknowledgement.txt.j2", "Subject: [{{ report.tracking_id }}] Bien reçu\n\nMerci.\n")
    templates = Templates(tmp_path)
    assert templates.render("acknowledgement", context("acknowledgement"), language="fr-CA").subject == "[SEC-2026-0042] Bien reçu"
    assert templates.render("acknowledgement", context("acknowledgement"), language="en").subject == "[SEC-2026-0042] We received your security report"


@pytest.mark.parametrize(
    ("language", "subject"),
    [
        ("de", "Wir haben Ihre Sicherheitsmeldung erhalten"),
        ("de-DE", "Wir haben Ihre Sicherheitsmeldung erhalten"),
        ("DE_at", "Wir haben Ihre Sicherheitsmeldung erhalten"),
        ("nl", "We hebben uw beveiligingsmelding ontvangen"),
        ("nl-BE", "We hebben uw beveiligingsmelding ontvangen"),
        ("fr", "We received your security report"),
        ("en-GB", "We received your security report"),
        (None, "We received your security report"),
        ("", "We received your security report"),
        ("../../etc/passwd", "We received your security report"),
        ("de/../nl", "We received your security report"),
    ],
)
def test_language_falls_back_from_full_tag_to_primary_to_default(shipped: Templates, language: str | None, subject: str) -> None:
    mail = shipped.render("acknowledgement", context("acknowledgement"), language=language)
    assert mail.subject == f"[SEC-2026-0042] {subject}"


def test_full_language_tag_wins_over_primary(tmp_path: Path) -> None:
    write(tmp_path, "de-ch/acknowledgement.txt.j2", "Subject: Grüezi\n\nSchweiz.\n")
    templates = Templates(tmp_path)
    assert templates.render("acknowledgement", context("acknowledgement"), language="de-CH").subject == "Grüezi"
    assert templates.render("acknowledgement", context("acknowledgement"), language="de-DE").subject.endswith("Sicherheitsmeldung erhalten")


def test_translations_are_complete_and_literal(shipped: Templates) -> None:
    for language in ("de", "nl"):
        mail = shipped.render("acknowledgement", context("acknowledgement"), language=language)
        assert "Mon 28 Dec 2026 17:00 CET" in mail.text
        assert "2026-12-25 Christmas Day (NL)" in mail.text
        assert "security+r1@example.com" in mail.text
        assert "[SEC-2026-0042]" in mail.text
        assert "https://www.example.com/security" in mail.text
        assert "{{7*7}}" in mail.text
        assert mail.html is None


def test_language_prefixes() -> None:
    assert language_prefixes("de-DE") == ("de-de/", "de/", "")
    assert language_prefixes("zh-Hant-TW") == ("zh-hant-tw/", "zh-hant/", "zh/", "")
    assert language_prefixes("nl") == ("nl/", "")
    assert language_prefixes(None) == ("",)
    assert language_prefixes("x" * 40) == ("",)


def test_missing_override_dir_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="does not exist"):
        Templates(tmp_path / "nope")


@pytest.mark.parametrize("name", ["../acknowledgement", "Acknowledgement", "ack.txt", ""])
def test_template_names_are_plain(shipped: Templates, name: str) -> None:
    with pytest.raises(TemplateError, match="invalid template name"):
        shipped.render(name, {})


def test_unknown_template(shipped: Templates) -> None:
    with pytest.raises(TemplateError, match=r"no template nope\.txt\.j2"):
        shipped.render("nope", {})


# --- strictness and the sandbox ------------------------------------------------------


def test_missing_variable_names_file_and_line_but_no_context_value(tmp_path: Path) -> None:
    path = write(tmp_path, "note.txt.j2", "Subject: {{ report.subject | oneline }}\n\n{{ report.body }}\n{{ not_given }}\n")
    with pytest.raises(TemplateError) as raised:
        Templates(tmp_path).render("note", {"report": {"subject": SECRET, "body": SECRET}})
    message = str(raised.value)
    assert message == f"template {path}:4: undefined value 'not_given'"
    assert SECRET not in message
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_missing_shipped_context_key_is_a_template_error(shipped: Templates) -> None:
    ctx = context("acknowledgement")
    del ctx["reply_address"]
    with pytest.raises(TemplateError, match=r"acknowledgement\.txt\.j2:\d+: undefined value 'reply_address'"):
        shipped.render("acknowledgement", ctx)


def test_a_data_derived_key_is_not_quoted(tmp_path: Path) -> None:
    write(tmp_path, "note.txt.j2", "Subject: x\n\n{{ report[report.subject] }}\n")
    with pytest.raises(TemplateError) as raised:
        Templates(tmp_path).render("note", {"report": {"subject": SECRET}})
    assert SECRET not in str(raised.value)
    assert str(raised.value).endswith("undefined value")


def test_runtime_errors_do_not_quote_values(tmp_path: Path) -> None:
    write(tmp_path, "note.txt.j2", "Subject: x\n\n{{ report.subject | int + 'x' }}{{ [] | first + report.subject }}\n")
    with pytest.raises(TemplateError) as raised:
        Templates(tmp_path).render("note", {"report": {"subject": SECRET}})
    assert SECRET not in str(raised.value)
    assert "note.txt.j2:3" in str(raised.value)


@pytest.mark.parametrize(
    "expression",
    [
        "''.__class__.__mro__",
        "report.__class__",
        "report.__class__.__subclasses__()",
        "report.items.__self__",
        "cycler.__init__.__globals__",
        "range(10**9) | list",
    ],
)
def test_sandbox_blocks_unsafe_templates(tmp_path: Path, expression: str) -> None:
    write(tmp_path, "note.txt.j2", f"Subject: x\n\n{{{{ {expression} }}}}\n")
    with pytest.raises(TemplateError, match=r"note\.txt\.j2:3"):
        Templates(tmp_path).render("note", {"report": {"subject": SECRET}})


def test_sandbox_names_the_cause(tmp_path: Path) -> None:
    write(tmp_path, "note.txt.j2", "Subject: x\n\n{{ report.__class__ }}\n")
    with pytest.raises(TemplateError, match="blocked by the sandbox"):
        Templates(tmp_path).render("note", {"report": {}})


# --- check() at startup ------------------------------------------------------------


def test_check_reports_a_broken_override_with_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "sla_warning.txt.j2", "Subject: x\n\nfine\n{% for x in y %}\nnever closed\n")
    with pytest.raises(TemplateError) as raised:
        Templates(tmp_path).check(REQUIRED)
    message = str(raised.value)
    assert message.startswith(f"template {path}:")
    assert "\n" not in message
    assert "endfor" in message


def test_check_compiles_translations_and_html_alternatives(tmp_path: Path) -> None:
    path = write(tmp_path, "de/resolution.html.j2", "<p>{{ report.tracking_id }</p>\n")
    write(tmp_path, "de/resolution.txt.j2", "Subject: x\n\nok\n")
    with pytest.raises(TemplateError, match=rf"template {path}:1"):
        Templates(tmp_path).check(["resolution"])


def test_check_refuses_an_html_alternative_without_its_text(tmp_path: Path) -> None:
    write(tmp_path, "resolution.html.j2", "<p>ours</p>\n")
    with pytest.raises(TemplateError, match=r"needs resolution\.txt\.j2 beside it"):
        Templates(tmp_path).check(["resolution"])


def test_render_refuses_an_html_alternative_without_its_text(tmp_path: Path) -> None:
    write(tmp_path, "acknowledgement.html.j2", "<p>ours</p>\n")
    with pytest.raises(TemplateError, match=r"needs acknowledgement\.txt\.j2 beside it"):
        Templates(tmp_path).render("acknowledgement", context("acknowledgement"))


def test_check_refuses_a_missing_template(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"no template ticket\.txt\.j2"):
        Templates(tmp_path).check([*REQUIRED, "ticket"])


def test_check_passes_a_good_override(tmp_path: Path) -> None:
    write(tmp_path, "acknowledgement.txt.j2", "Subject: [{{ report.tracking_id }}] ok\n\nok\n")
    Templates(tmp_path).check(REQUIRED)


def test_render_reports_a_syntax_error_with_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "note.txt.j2", "Subject: x\n\n{{ oops(\n")
    with pytest.raises(TemplateError, match=rf"^template {path}:\d+: "):
        Templates(tmp_path).render("note", {})


def test_check_refuses_a_language_directory_render_would_never_use(tmp_path: Path) -> None:
    write(tmp_path, "de-DE/acknowledgement.txt.j2", "Subject: x\n\nok\n")
    with pytest.raises(TemplateError, match="not a lowercase language tag"):
        Templates(tmp_path).check(REQUIRED)


def test_a_template_cannot_change_the_callers_data(tmp_path: Path) -> None:
    write(tmp_path, "note.txt.j2", "Subject: x\n\n{{ report.urls.append('https://evil.test') }}{{ report.update(subject='x') }}\n")
    data = report()
    with pytest.raises(TemplateError, match="blocked by the sandbox"):
        Templates(tmp_path).render("note", {"report": data})
    assert data == REPORT

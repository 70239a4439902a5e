"""The notices against a real database (SQLite and PostgreSQL), with the real templates and
compose: the contexts they pass have exactly the keys of the start-up samples, a template
that fails on real data costs one alert and mislabels nothing, and what they tell staff and
reporters stays within bounds."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from mailintake.config.loading import load_config
from mailintake.config.schema import Config
from mailintake.deadlines.closures import effective_calendar
from mailintake.intake.store import Delivery, store_delivery
from mailintake.jobs.digest import daily_digest_pass
from mailintake.outbound.notices import Notices
from mailintake.outbound.templates import REQUIRED, SAMPLE_CONTEXTS, RenderedMail, Templates
from mailintake.parse.message import parse_message
from mailintake.pipeline import Services, process_inbound
from mailintake.storage.db import transaction
from mailintake.storage.models import Message, OutboxMessage, Report
from tests.daemon import REPO, write_config
from tests.integration.helpers import BROKEN_ACK, LEADS, POLICY_A, TEAM, TRIGGER, outbox

MOMENT = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


class DirectParser:
    def parse(self, raw: bytes):
        return parse_message(raw)


class RecordingTemplates(Templates):
    """The real templates, remembering the last context each one was rendered with."""

    def __init__(self, override_dir: Path | None) -> None:
        super().__init__(override_dir)
        self.contexts: dict[str, Mapping[str, object]] = {}

    def render(self, name: str, context: Mapping[str, object], language: str | None = None) -> RenderedMail:
        self.contexts[name] = context
        return super().render(name, context, language)


def config_for(tmp_path: Path, database_url: str, **overrides: object) -> Config:
    staff = {"notify": [TEAM], "alerts": [LEADS]} | dict(overrides.pop("staff", {}))  # type: ignore[arg-type]
    path = write_config(tmp_path / "config.toml", database_url, staff=staff, calendar={"timezone": "Europe/Amsterdam", "country": "NL"}, extra=POLICY_A, **overrides)
    return load_config(path, environ={})


def report_with_attachment(subject: str = "Stored XSS in profile page", sender: str = "researcher@example.org", message_id: str = "<r1@reporter.example.org>", body: str = "Steps.\nSuggested severity: high\n") -> bytes:
    message = EmailMessage()
    message["From"] = f"A Researcher <{sender}>"
    message["To"] = "security@example.com"
    message["Subject"] = subject
    message["Date"] = "Mon, 23 Nov 2026 10:00:00 +0100"
    message["Message-ID"] = message_id
    message.set_content(body)
    message.add_attachment(b"<script>1</script>", maintype="text", subtype="html", filename="poc.html")
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


def process(sessions: sessionmaker[Session], services: Services, raw: bytes, sender: str = "researcher@example.org") -> None:
    inbound_id = store_delivery(sessions, Delivery(MOMENT, "smtp", "127.0.0.1", "client", sender, ("security@example.com",), raw))
    assert process_inbound(sessions, DirectParser(), services, inbound_id, lambda: MOMENT).status == "processed"


def loaded_report(session: Session, tracking_id: str | None = None) -> Report:
    query = select(Report).options(selectinload(Report.messages).selectinload(Message.attachments), selectinload(Report.milestones), selectinload(Report.reporter))
    if tracking_id is not None:
        query = query.where(Report.tracking_id == tracking_id)
    return session.scalars(query.order_by(Report.id.desc()).limit(1)).one()


def sent_message(row: OutboxMessage) -> EmailMessage:
    return message_from_bytes(row.content, policy=policy.default)  # type: ignore[return-value]


def key_differences(sample: object, actual: object, path: str = "") -> list[str]:
    """Keys one side has and the other lacks, recursively; an empty list or a None on
    either side says nothing about the keys."""
    if isinstance(sample, Mapping) and isinstance(actual, Mapping):
        differences = [f"{path}.{key}: not in the sample" for key in actual.keys() - sample.keys()]
        differences += [f"{path}.{key}: not passed by the notices" for key in sample.keys() - actual.keys()]
        for key in sample.keys() & actual.keys():
            differences += key_differences(sample[key], actual[key], f"{path}.{key}")
        return differences
    if isinstance(sample, (list, tuple)) and isinstance(actual, (list, tuple)) and sample and actual:
        return key_differences(sample[0], actual[0], f"{path}[]")
    return []


def test_the_notices_pass_every_template_exactly_the_keys_of_its_sample(tmp_path: Path, sessions: sessionmaker[Session], database_url: str) -> None:
    config = config_for(tmp_path, database_url)
    templates = RecordingTemplates(None)
    notices = Notices(config, templates, config.secrets.reply_key())
    process(sessions, Services.from_config(config, notices), report_with_attachment())
    now = MOMENT + timedelta(days=30)
    with transaction(sessions) as session:
        report = loaded_report(session)
        calendar = effective_calendar(session, config.calendar)
        first = report.messages[0]
        record = next(record for record in report.milestones if record.due_at is not None and record.awaiting)
        for kind in ("sla_warning", "sla_breach", "sla_escalation", "progress_reminder"):
            assert notices.sla_alert(session, kind, record, calendar, now)
        assert notices.sla_alert_burst(session, "sla_breach", [record], 50, calendar, now)
        assert daily_digest_pass(session, time(8, 30), calendar, notices, now) == 1
        assert notices.delivery_failure(session, 1, "acknowledgement", ["researcher@example.org"], "550 5.1.1 unknown", 3, report, now)
        for number, template in enumerate(("staff_reply", "resolution", "rejected", "duplicate", "out_of_scope")):
            # The context conversation.answer_reporter passes.
            assert notices.to_reporter(session, f"relay:test-{number}", template, report, {"text": "We fixed it.", "assessment": True, "eta": "2027-01-15"}, calendar, now)
        notices.reporter_reply_forwarded(session, report, first, True, True, calendar, now)
        notices.command_error(session, report, "alice@example.com", first, ["line 1: unknown command #stauts"], calendar, now)
        notices.flagged_report(session, report, calendar, now)
        assert notices.unprocessable_mail(session, 1, "parse timed out after 30 s", now)
        notices.auto_reply_limit_reached(session, report, "researcher@example.org", calendar, now)
        assert notices.held_acknowledgement(session, [report], "researcher@example.org", calendar, now) == {report.id: ("assess",)}
    assert set(templates.contexts) == set(REQUIRED)
    for name in REQUIRED:
        assert key_differences(SAMPLE_CONTEXTS[name], templates.contexts[name], name) == []


def test_a_template_failing_on_real_data_alerts_once_and_mislabels_nothing(tmp_path: Path, sessions: sessionmaker[Session], database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    override = tmp_path / "templates"
    override.mkdir()
    (override / "acknowledgement.txt.j2").write_text(BROKEN_ACK)
    config = config_for(tmp_path, database_url, templates={"dir": str(override)})
    templates = Templates(config.templates.dir)
    templates.check(REQUIRED)
    services = Services.from_config(config, Notices(config, templates, config.secrets.reply_key()))
    with caplog.at_level(logging.ERROR, logger="mailintake.outbound.rendering"):
        for number in range(2):
            process(sessions, services, report_with_attachment(subject=TRIGGER, sender=f"r{number}@reporter.example.org", message_id=f"<t{number}@reporter.example.org>"), sender=f"r{number}@reporter.example.org")
        process(sessions, services, report_with_attachment(message_id="<fine@reporter.example.org>"))
    rows = outbox(sessions)
    assert sorted(row.kind for row in rows) == ["acknowledgement", "staff_notification", "staff_notification", "staff_notification", "template_failure"]
    [alert] = [row for row in rows if row.kind == "template_failure"]
    assert alert.recipients == [LEADS] and alert.report_id is None
    message = sent_message(alert)
    assert message["Subject"] == "Mail template failed: acknowledgement.txt.j2"
    text = message.get_body(("plain",)).get_content()
    assert f"Template:  {override / 'acknowledgement.txt.j2'}" in text and "undefined value 'no_such_name'" in text
    assert "Mail:      acknowledgement for SEC-2026-0001" in text
    with transaction(sessions) as session:
        broken = [loaded_report(session, f"SEC-2026-000{number}") for number in (1, 2)]
        assert [report.automated for report in broken] == [None, None]
        assert all(record.promised_due_at is None for report in broken for record in report.milestones)
    errors = [record.getMessage() for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 2 and all("acknowledgement mail for SEC-2026-000" in line and "undefined value 'no_such_name'" in line for line in errors)
    for secret in (TRIGGER, "reporter.example.org", "Steps."):
        assert all(secret not in line for line in errors)
        assert secret not in text


def test_an_edited_template_that_fails_again_alerts_again(tmp_path: Path, sessions: sessionmaker[Session], database_url: str) -> None:
    override = tmp_path / "templates"
    override.mkdir()
    path = override / "acknowledgement.txt.j2"
    path.write_text(BROKEN_ACK)
    config = config_for(tmp_path, database_url, templates={"dir": str(override)})
    process(sessions, Services.from_config(config, Notices(config, Templates(config.templates.dir), config.secrets.reply_key())), report_with_attachment(subject=TRIGGER, message_id="<a@x.example>"))
    path.write_text(BROKEN_ACK.replace("Hello,", "Hi,"))
    process(sessions, Services.from_config(config, Notices(config, Templates(config.templates.dir), config.secrets.reply_key())), report_with_attachment(subject=TRIGGER, message_id="<b@x.example>"))
    assert [row.kind for row in outbox(sessions)].count("template_failure") == 2


def test_a_failing_staff_template_still_lets_the_reporter_be_acknowledged(tmp_path: Path, sessions: sessionmaker[Session], database_url: str) -> None:
    override = tmp_path / "templates"
    override.mkdir()
    shipped = (REPO / "templates" / "staff_notification.txt.j2").read_text()
    (override / "staff_notification.txt.j2").write_text(shipped.replace("----- Report text -----\n", "----- Report text -----\n{{ report.urls[5] }}\n"))
    config = config_for(tmp_path, database_url, templates={"dir": str(override)})
    process(sessions, Services.from_config(config, Notices(config, Templates(config.templates.dir), config.secrets.reply_key())), report_with_attachment())
    assert sorted(row.kind for row in outbox(sessions)) == ["acknowledgement", "template_failure"]


def test_mail_to_the_reporter_echoes_at_most_a_hundred_characters_of_the_subject(tmp_path: Path, sessions: sessionmaker[Session], database_url: str) -> None:
    config = config_for(tmp_path, database_url)
    notices = Notices(config, Templates(None), config.secrets.reply_key())
    subject = "Buy cheap watches at shop.example.net today " * 8
    process(sessions, Services.from_config(config, notices), report_with_attachment(subject=subject))
    with transaction(sessions) as session:
        report = loaded_report(session)
        relayed = notices.to_reporter(session, "relay:test", "staff_reply", report, {"text": "Thanks.", "assessment": False, "eta": None}, effective_calendar(session, config.calendar), MOMENT)
        assert relayed is not None
    by_kind = {row.kind: sent_message(row) for row in outbox(sessions)}
    ack_text = by_kind["acknowledgement"].get_body(("plain",)).get_content()
    [echoed] = [line for line in ack_text.splitlines() if line.startswith("Your report: ")]
    assert echoed.endswith("…") and len(echoed) <= len("Your report: ") + 100
    relayed_subject = by_kind["staff_reply"]["Subject"]
    assert relayed_subject.endswith("…") and len(relayed_subject) <= len("Re: [SEC-2026-0001] ") + 100
    assert subject.strip() in " ".join(by_kind["staff_notification"].get_body(("plain",)).get_content().split())


def test_a_failed_mail_to_an_anonymous_reporter_shows_staff_only_the_alias(tmp_path: Path, sessions: sessionmaker[Session], database_url: str) -> None:
    config = config_for(tmp_path, database_url)
    notices = Notices(config, Templates(None), config.secrets.reply_key())
    process(sessions, Services.from_config(config, notices), report_with_attachment(sender="whistle@anon.example", body="Please keep me anonymous.\nIDOR\n"), sender="whistle@anon.example")
    with transaction(sessions) as session:
        report = loaded_report(session)
        assert report.anonymous
        assert notices.delivery_failure(session, 1, "acknowledgement", ["Whistle@anon.example"], "550 5.1.1 <whistle@anon.example>: unknown", 3, report, MOMENT)
    [alert] = [row for row in outbox(sessions) if row.kind == "delivery_failure"]
    content = alert.content.decode("utf-8", "replace")
    assert "anon.example" not in content.lower()
    assert "550 5.1.1 <anonymous-sec-2026-0001>: unknown" in sent_message(alert).get_body(("plain",)).get_content()

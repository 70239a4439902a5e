"""A researcher who sends more reports in an hour than `[outbox] auto_replies_per_hour`:
the reports over the limit are held back (not machine mail: staff are notified, deadlines
run) and, once the hour has passed, acknowledged in one combined mail that meets their
`acknowledge` milestones, exactly once. Machine mail is still never answered. Real
databases, the real pipeline with an in-process parse, the scheduler's pass."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from mailintake.config.loading import load_config
from mailintake.config.schema import Config
from mailintake.deadlines.closures import effective_calendar
from mailintake.intake.store import Delivery, store_delivery
from mailintake.jobs.held_acknowledgements import MET_BY, acknowledged_together, held_acknowledgements_pass, held_by_sender
from mailintake.outbound.notices import HELD_BY_LIMIT, Notices, held_acknowledgement_key
from mailintake.outbound.templates import Templates
from mailintake.parse.message import ParsedMessage, parse_message
from mailintake.pipeline import Services, process_inbound
from mailintake.service.scheduler import scheduled_pass
from mailintake.storage.db import transaction
from mailintake.storage.models import OutboxMessage, Report
from tests.daemon import REPO
from tests.unit.jobs.queues import mail_of, outbox_rows, text_of

# Monday 23 November 2026, 10:00 in Amsterdam.
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
RESEARCHER = "researcher@example.org"
LIMIT = 5
OVER = 3


class DirectParser:
    def parse(self, raw: bytes) -> ParsedMessage:
        return parse_message(raw)


class Crash(Exception):
    pass


@pytest.fixture
def config() -> Config:
    config = load_config(REPO / "config.example.toml", environ={})
    assert config.outbox.auto_replies_per_hour == LIMIT
    return config


@pytest.fixture
def notices(config: Config) -> Notices:
    return Notices(config, Templates(None), config.secrets.reply_key())


@pytest.fixture
def services(config: Config, notices: Notices) -> Services:
    return Services.from_config(config, notices, dnsfunc=lambda *query, **options: None)


def report_raw(number: int, sender: str = RESEARCHER, extra: str = "") -> bytes:
    return (f"From: Researcher <{sender}>\r\nTo: security@example.com\r\nSubject: Finding {number}: XSS in search\r\nMessage-ID: <finding-{number}-{sender}>\r\n{extra}\r\nThe search box reflects input ({number}).\r\n").encode()


def delivered(sessions: sessionmaker[Session], services: Services, raw: bytes, at: datetime, sender: str = RESEARCHER) -> str:
    inbound_id = store_delivery(sessions, Delivery(at, "smtp", "127.0.0.1", "localhost", sender, ("security@example.com",), raw))
    outcome = process_inbound(sessions, DirectParser(), services, inbound_id, lambda: at)
    assert outcome.status == "processed" and outcome.tracking_id
    return outcome.tracking_id


def reports_by_id(sessions: sessionmaker[Session]) -> dict[str, Report]:
    with transaction(sessions) as session:
        return {report.tracking_id: report for report in session.scalars(select(Report).options(selectinload(Report.milestones)))}


def acknowledged_ids(sessions: sessionmaker[Session]) -> list[str]:
    """The tracking ids each single acknowledgement went out for."""
    with transaction(sessions) as session:
        rows = session.execute(select(Report.tracking_id).join(OutboxMessage, OutboxMessage.report_id == Report.id).where(OutboxMessage.kind == "acknowledgement"))
        return sorted(rows.scalars())


def kinds(sessions: sessionmaker[Session]) -> list[str]:
    return sorted(row.kind for row in outbox_rows(sessions))


def researcher_over_the_limit(sessions: sessionmaker[Session], services: Services) -> tuple[list[str], list[str], str]:
    """LIMIT + OVER reports a minute apart from T0, an out-of-office of the same address
    among them and one after them; the ids acknowledged one by one, held back, and of the
    machine mail."""
    ids = [delivered(sessions, services, report_raw(number), T0 + timedelta(minutes=number)) for number in range(LIMIT + OVER)]
    delivered(sessions, services, report_raw(90, extra="Auto-Submitted: auto-replied\r\n"), T0 + timedelta(minutes=2, seconds=30))
    machine = delivered(sessions, services, report_raw(91, extra="Auto-Submitted: auto-replied\r\n"), T0 + timedelta(minutes=30))
    return ids[:LIMIT], ids[LIMIT:], machine


def test_reports_over_the_limit_are_held_not_machine_mail_and_acknowledged_together_once_the_hour_has_passed(sessions: sessionmaker[Session], config: Config, notices: Notices, services: Services) -> None:
    single, held, machine = researcher_over_the_limit(sessions, services)
    other = delivered(sessions, services, report_raw(1, sender="other@example.org"), T0 + timedelta(minutes=10), sender="other@example.org")

    assert acknowledged_ids(sessions) == sorted([*single, other])
    assert kinds(sessions).count("staff_notification") == LIMIT + OVER + 1
    assert kinds(sessions).count("auto_reply_limit") == 1
    reports = reports_by_id(sessions)
    for tracking_id in held:
        report = reports[tracking_id]
        assert report.automated == HELD_BY_LIMIT
        [acknowledge] = [record for record in report.milestones if record.name == "acknowledge"]
        assert acknowledge.awaiting and acknowledge.met_at is None and acknowledge.due_at == report.received_at + timedelta(hours=24)
    assert reports[machine].automated is not None and reports[machine].automated != HELD_BY_LIMIT and not reports[machine].milestones

    # The last single acknowledgement went out at T0 + 4 min: until T0 + 1 h the sender is at the limit.
    for moment in (T0 + timedelta(minutes=8), T0 + timedelta(minutes=59, seconds=59)):
        scheduled_pass(sessions, config, notices, moment)
        assert "held_acknowledgement" not in kinds(sessions)
        assert all(report.automated == HELD_BY_LIMIT for tracking_id, report in reports_by_id(sessions).items() if tracking_id in held)

    after = T0 + timedelta(hours=1, minutes=1)
    scheduled_pass(sessions, config, notices, after)
    [combined] = outbox_rows(sessions, "held_acknowledgement")
    assert combined.recipients == [RESEARCHER] and combined.auto_reply_to == RESEARCHER
    assert combined.key == held_acknowledgement_key(reports_by_id(sessions)[tracking_id] for tracking_id in held)
    message, text = mail_of(combined), text_of(combined)
    assert message["Subject"] == f"[{held[0]}] We received {OVER} more security reports from you"
    assert message["Auto-Submitted"] == "auto-replied" and message["In-Reply-To"] == f"<finding-{LIMIT}-{RESEARCHER}>"
    listed = [line.split(":")[0] for line in text.splitlines() if line.startswith("SEC-")]
    assert listed == held
    assert text.count("Finding ") == OVER and f"Finding {LIMIT}: XSS in search" in text
    # The deadlines a single acknowledgement lists: the assessment, not the acknowledgement it is.
    assert text.count("  - Initial assessment: by ") == OVER and "Acknowledgement:" not in text
    assert machine not in text and all(tracking_id not in text for tracking_id in single)

    reports = reports_by_id(sessions)
    for tracking_id in held:
        report = reports[tracking_id]
        assert report.automated is None
        records = {record.name: record for record in report.milestones}
        assert (records["acknowledge"].met_at, records["acknowledge"].met_by, records["acknowledge"].awaiting) == (after, MET_BY, False)
        assert records["assess"].promised_due_at == records["assess"].due_at is not None
        assert records["update"].started_at == after
    assert reports[machine].automated not in (None, HELD_BY_LIMIT)

    rows = len(outbox_rows(sessions))
    for moment in (after + timedelta(minutes=1), after + timedelta(hours=3)):
        scheduled_pass(sessions, config, notices, moment)
    assert len(outbox_rows(sessions, "held_acknowledgement")) == 1
    assert [row.kind for row in outbox_rows(sessions)[rows:]] == []


def test_machine_mail_over_the_limit_is_never_answered(sessions: sessionmaker[Session], config: Config, notices: Notices, services: Services) -> None:
    """An auto-responder's mails are machine mail before and after the limit: stored, never
    held for a combined acknowledgement, never answered."""
    sender = "autoresponder@example.net"
    for number in range(LIMIT + OVER):
        delivered(sessions, services, report_raw(number, sender=sender, extra="Auto-Submitted: auto-replied\r\n"), T0 + timedelta(minutes=number), sender=sender)
    assert kinds(sessions) == []
    with transaction(sessions) as session:
        assert held_by_sender(session) == {}
    assert held_acknowledgements_pass(sessions, config, notices, calendar_of(sessions, config), T0 + timedelta(hours=2)) == 0
    assert kinds(sessions) == []


def test_a_crash_before_the_commit_leaves_nothing_and_the_next_pass_sends_the_same_mail_once(sessions: sessionmaker[Session], config: Config, notices: Notices, services: Services) -> None:
    _, held, _ = researcher_over_the_limit(sessions, services)
    after = T0 + timedelta(hours=1, minutes=1)
    calendar = calendar_of(sessions, config)
    with transaction(sessions) as session:
        [report_ids] = held_by_sender(session).values()
    with pytest.raises(Crash), transaction(sessions) as session:
        assert acknowledged_together(session, config, notices, RESEARCHER, report_ids, calendar, after) == 1
        key = session.scalars(select(OutboxMessage.key).where(OutboxMessage.kind == "held_acknowledgement")).one()
        raise Crash
    assert outbox_rows(sessions, "held_acknowledgement") == []
    assert all(report.automated == HELD_BY_LIMIT for tracking_id, report in reports_by_id(sessions).items() if tracking_id in held)

    assert held_acknowledgements_pass(sessions, config, notices, calendar, after + timedelta(minutes=1)) == 1
    assert [row.key for row in outbox_rows(sessions, "held_acknowledgement")] == [key]
    # A second daemon that read the same held reports before the commit finds none left.
    with transaction(sessions) as session:
        assert acknowledged_together(session, config, notices, RESEARCHER, report_ids, calendar, after + timedelta(minutes=2)) == 0
    assert len(outbox_rows(sessions, "held_acknowledgement")) == 1


def calendar_of(sessions: sessionmaker[Session], config: Config):  # type: ignore[no-untyped-def]
    with transaction(sessions) as session:
        return effective_calendar(session, config.calendar)

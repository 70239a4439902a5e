"""The pipeline as data (its stages and tables), and the outcome of one delivery against a
real database, without a daemon: the real parse function runs in-process."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailintake.config.loading import load_config
from mailintake.intake.store import Delivery, store_delivery
from mailintake.outbound.notices import Notices
from mailintake.outbound.templates import Templates
from mailintake.parse.message import ParsedMessage, parse_message
from mailintake.parse.pool import ParseFailure
from mailintake.pipeline import ACTIONS, DECIDE, PREPARE, Mail, PrepareStage, RetryLater, Services, disposition_of, prepare, process_inbound
from mailintake.route import decision
from mailintake.route.decision import FLAG_EFFECTS, Route
from mailintake.storage.db import transaction
from mailintake.storage.inbound_queue import Snapshot
from mailintake.storage.models import InboundMessage, OutboxMessage, Report

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
FLAGS = [value for name, value in vars(decision).items() if name.isupper() and isinstance(value, str)]


class DirectParser:
    def parse(self, raw: bytes) -> ParsedMessage:
        return parse_message(raw)


class FailingParser:
    def parse(self, raw: bytes) -> ParsedMessage:
        raise ParseFailure("parse timed out after 30 s")


def test_the_stages_run_in_the_documented_order() -> None:
    assert [stage.name for stage in PREPARE] == ["parse", "authenticate", "decrypt", "classify"]
    assert [stage.name for stage in DECIDE] == ["deduplicate report", "route", "deduplicate reply"]


def test_every_flag_has_its_effects() -> None:
    assert len(FLAGS) >= 7
    assert set(FLAG_EFFECTS) == set(FLAGS) | {None}


@pytest.mark.parametrize(
    ("route", "machine_mail", "existing", "repeated", "disposition"),
    [
        (Route("new_report"), None, False, False, "new_report"),
        (Route("new_report", flag=decision.REPLY_ADDRESS_MISUSED), None, False, False, "flagged"),
        (Route("new_report", flag=decision.REPLY_ADDRESS_MISUSED), "auto-submitted", False, False, "machine_mail"),
        (Route("new_report"), "auto-submitted", False, False, "machine_mail"),
        (Route("reporter_reply", 1), None, False, False, "reporter_reply"),
        (Route("reporter_reply", 1), "auto-submitted", False, False, "reporter_reply"),
        (Route("staff_reply", 1), None, False, False, "staff_reply"),
        (Route("staff_reply", 1), None, False, True, "duplicate"),
        (None, None, True, False, "duplicate"),
    ],
)
def test_each_kind_of_mail_has_one_action(route: Route | None, machine_mail: str | None, existing: bool, repeated: bool, disposition: str) -> None:
    mail = Mail(1, Snapshot("received", 1, b"", "a@example.org", ("security@example.com",)), route=route, machine_mail=machine_mail, repeated=repeated)
    mail.existing = Report() if existing else None
    assert disposition_of(mail) == disposition
    assert disposition in ACTIONS


@pytest.fixture
def services() -> Services:
    config = load_config(REPO / "config.example.toml", environ={})
    notices = Notices(config, Templates(config.templates.dir), config.secrets.reply_key())
    return Services.from_config(config, notices, dnsfunc=lambda *query, **options: None)


def delivered(sessions: sessionmaker[Session], raw: bytes, sender: str = "researcher@example.org") -> int:
    return store_delivery(sessions, Delivery(NOW, "smtp", "127.0.0.1", "localhost", sender, ("security@example.com",), raw))


def report_raw(subject: str = "XSS in search", extra: str = "") -> bytes:
    return (f"From: Researcher <researcher@example.org>\r\nTo: security@example.com\r\nSubject: {subject}\r\nMessage-ID: <{abs(hash(subject + extra))}@example.org>\r\n{extra}\r\nThe search box reflects input.\r\n").encode()


def outbox_kinds(sessions: sessionmaker[Session]) -> list[str]:
    with transaction(sessions) as session:
        return sorted(session.scalars(select(OutboxMessage.kind)))


def test_a_new_report_gets_deadlines_a_notification_and_an_acknowledgement(sessions: sessionmaker[Session], services: Services) -> None:
    outcome = process_inbound(sessions, DirectParser(), services, delivered(sessions, report_raw()), lambda: NOW)
    assert outcome.status == "processed" and outcome.tracking_id
    assert outbox_kinds(sessions) == ["acknowledgement", "staff_notification"]
    with transaction(sessions) as session:
        report = session.scalars(select(Report)).one()
        assert report.milestones and report.automated is None


def test_the_same_mail_stored_twice_is_one_report(sessions: sessionmaker[Session], services: Services) -> None:
    first = process_inbound(sessions, DirectParser(), services, delivered(sessions, report_raw()), lambda: NOW)
    second = process_inbound(sessions, DirectParser(), services, delivered(sessions, report_raw()), lambda: NOW)
    assert (first.status, second.status) == ("processed", "duplicate")
    assert first.tracking_id == second.tracking_id


def test_machine_mail_is_stored_and_never_answered(sessions: sessionmaker[Session], services: Services) -> None:
    raw = report_raw("Out of office", "Auto-Submitted: auto-replied\r\n")
    outcome = process_inbound(sessions, DirectParser(), services, delivered(sessions, raw), lambda: NOW)
    assert outcome.status == "processed"
    assert outbox_kinds(sessions) == []
    with transaction(sessions) as session:
        report = session.scalars(select(Report)).one()
        assert report.automated and not report.milestones


def test_a_failed_parse_is_retried_and_when_attempts_are_spent_a_report_is_made_from_the_raw_bytes(sessions: sessionmaker[Session], services: Services) -> None:
    inbound_id = delivered(sessions, report_raw())
    for attempt in range(1, services.max_attempts):
        assert process_inbound(sessions, FailingParser(), services, inbound_id, lambda: NOW).status == "failed"
        with transaction(sessions) as session:
            row = session.get(InboundMessage, inbound_id)
            assert row is not None and (row.attempts, row.status) == (attempt, "failed")
    outcome = process_inbound(sessions, FailingParser(), services, inbound_id, lambda: NOW)
    assert outcome.status == "processed" and outcome.tracking_id
    with transaction(sessions) as session:
        report = session.scalars(select(Report)).one()
        assert report.subject == "XSS in search"
        assert any(defect.startswith("NotParsed:") for defect in report.messages[0].parse_defects)
    assert outbox_kinds(sessions) == ["acknowledgement", "staff_notification"]


def test_a_delivery_already_done_is_skipped(sessions: sessionmaker[Session], services: Services) -> None:
    inbound_id = delivered(sessions, report_raw())
    process_inbound(sessions, DirectParser(), services, inbound_id, lambda: NOW)
    assert process_inbound(sessions, DirectParser(), services, inbound_id, lambda: NOW).status == "skipped"


def test_a_stage_that_breaks_on_a_mail_ends_the_attempt_as_a_retry(services: Services) -> None:
    def broken(services: Services, parser: object, mail: Mail) -> None:
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    mail = Mail(1, Snapshot("received", 1, report_raw(), "a@example.org", ("security@example.com",)))
    with pytest.raises(RetryLater, match="^classify failed: UnicodeDecodeError$"):
        prepare(services, DirectParser(), mail, (PREPARE[0], PrepareStage("classify", broken)))
    assert mail.parsed is not None

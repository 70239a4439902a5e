"""Deliveries recorded in batches (pipeline.process_batch): one transaction for the batch,
a mail that cannot be recorded costs only itself, a mail tried before goes alone."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session, sessionmaker

from mailintake.config.loading import load_config
from mailintake.intake.store import Delivery, store_deliveries
from mailintake.outbound.notices import Notices
from mailintake.outbound.templates import Templates
from mailintake.parse.message import ParsedMessage, parse_message
from mailintake.pipeline import Services, process_batch
from mailintake.storage.db import transaction
from mailintake.storage.models import InboundMessage, OutboxMessage, Report
from tests.unit.pipeline.test_pipeline import NOW, DirectParser

REPO = Path(__file__).resolve().parents[3]
BATCH = 8


@pytest.fixture
def services() -> Services:
    config = load_config(REPO / "config.example.toml", environ={})
    notices = Notices(config, Templates(config.templates.dir), config.secrets.reply_key())
    return Services.from_config(config, notices, dnsfunc=lambda *query, **options: None)


@pytest.fixture
def commits(engine: Engine) -> Iterator[list[int]]:
    counted: list[int] = []

    def count(connection: object) -> None:
        counted.append(1)

    event.listen(engine, "commit", count)
    yield counted
    event.remove(engine, "commit", count)


def report_raw(number: int) -> bytes:
    return (f"From: Researcher {number} <r{number}@example.org>\r\nTo: security@example.com\r\nSubject: Finding {number}\r\nMessage-ID: <finding-{number}@example.org>\r\n\r\nDetails of finding {number}.\r\n").encode()


def stored(sessions: sessionmaker[Session], count: int) -> list[int]:
    deliveries = [Delivery(NOW, "smtp", "127.0.0.1", "localhost", f"r{number}@example.org", ("security@example.com",), report_raw(number)) for number in range(count)]
    return [item.inbound_id for item in store_deliveries(sessions, deliveries)]


class UnrecordableParser:
    """Parses like the real parser, but one mail comes out with no origin key: the report
    cannot be written (NOT NULL), on SQLite and PostgreSQL alike."""

    def __init__(self, broken_subject: str) -> None:
        self.broken_subject = broken_subject

    def parse(self, raw: bytes) -> ParsedMessage:
        parsed = parse_message(raw)
        return replace(parsed, origin_key=None) if parsed.subject == self.broken_subject else parsed  # type: ignore[arg-type]


def test_a_batch_is_recorded_in_one_transaction(sessions: sessionmaker[Session], services: Services, commits: list[int]) -> None:
    ids = stored(sessions, BATCH)
    commits.clear()
    outcomes = process_batch(sessions, DirectParser(), services, ids, lambda: NOW)
    assert [outcome.inbound_id for outcome in outcomes] == ids
    assert {outcome.status for outcome in outcomes} == {"processed"}
    assert len({outcome.tracking_id for outcome in outcomes}) == BATCH
    # One read of the batch, each attempt counted before its parse, one recording transaction
    # (one delivery at a time would take three commits each).
    assert len(commits) == 1 + BATCH + 1
    with transaction(sessions) as session:
        assert session.scalar(select(func.count()).select_from(Report)) == BATCH
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 2 * BATCH


def test_a_mail_that_cannot_be_recorded_costs_only_itself(sessions: sessionmaker[Session], services: Services) -> None:
    ids = stored(sessions, BATCH)
    outcomes = process_batch(sessions, UnrecordableParser("Finding 3"), services, ids, lambda: NOW)
    assert [outcome.status for outcome in outcomes] == ["processed"] * 3 + ["failed"] + ["processed"] * 4
    with transaction(sessions) as session:
        assert session.scalar(select(func.count()).select_from(Report)) == BATCH - 1
        failed = session.get(InboundMessage, ids[3])
        assert failed is not None and failed.status == "failed" and failed.last_error == "storing the report failed: IntegrityError"
        assert failed.attempts == 1, "the batch's rollback is not another attempt"


def test_a_delivery_tried_before_is_recorded_alone_before_the_next_is_parsed(sessions: sessionmaker[Session], services: Services) -> None:
    ids = stored(sessions, 3)
    with transaction(sessions) as session:
        retried = session.get(InboundMessage, ids[1])
        assert retried is not None
        retried.attempts = 1  # an earlier attempt ended with its process

    class Watching(DirectParser):
        status_of_retried_when_the_last_was_parsed = ""

        def parse(self, raw: bytes) -> ParsedMessage:
            if b"Finding 2" in raw:
                with transaction(sessions) as session:
                    Watching.status_of_retried_when_the_last_was_parsed = session.scalar(select(InboundMessage.status).where(InboundMessage.id == ids[1])) or ""
            return super().parse(raw)

    outcomes = process_batch(sessions, Watching(), services, ids, lambda: NOW)
    assert [outcome.status for outcome in outcomes] == ["processed"] * 3
    assert Watching.status_of_retried_when_the_last_was_parsed == "processed"
    with transaction(sessions) as session:
        assert [row.attempts for row in session.scalars(select(InboundMessage).order_by(InboundMessage.id))] == [1, 2, 1]

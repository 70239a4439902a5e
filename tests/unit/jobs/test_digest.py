"""The daily digest: due on a business day of the calendar once its local time has come;
what it counts and lists (against a real database), the same few statements and a mail
of bounded size however long the queue."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest
from sqlalchemy import Engine, delete
from sqlalchemy.orm import Session, sessionmaker

from mailintake.calendar.business import BusinessCalendar
from mailintake.config.loading import load_config
from mailintake.deadlines.closures import effective_calendar
from mailintake.jobs.digest import DIGEST_ITEMS, daily_digest_pass, digest_day
from mailintake.outbound.notices import Notices
from mailintake.outbound.templates import Templates
from mailintake.storage.db import transaction
from mailintake.storage.models import OutboxMessage
from tests.daemon import REPO
from tests.unit.jobs.queues import Deadline, counted, mail_of, outbox_rows, queued, text_of

NL = BusinessCalendar("Europe/Amsterdam", country="NL")
AT_0830 = time(8, 30)


@pytest.mark.parametrize(
    ("now", "day"),
    [
        ("2026-11-24T08:31+01:00", date(2026, 11, 24)),
        ("2026-11-24T07:31+00:00", date(2026, 11, 24)),  # the same moment in UTC
        ("2026-11-24T08:30+01:00", date(2026, 11, 24)),
        ("2026-11-24T23:59+01:00", date(2026, 11, 24)),
        ("2026-11-24T08:29+01:00", None),
        ("2026-11-23T23:30+00:00", None),  # already Tuesday in Amsterdam, 00:30
        ("2026-11-28T09:00+01:00", None),  # a Saturday
        ("2026-12-25T09:00+01:00", None),  # Christmas Day, a public holiday in NL
    ],
)
def test_the_digest_is_due_from_its_local_time_on_business_days(now: str, day: date | None) -> None:
    assert digest_day(NL, AT_0830, datetime.fromisoformat(now)) == day


def test_without_a_digest_time_there_is_no_digest() -> None:
    assert digest_day(NL, None, datetime.fromisoformat("2026-11-24T12:00+01:00")) is None


# --- what the digest says, against a real database ---------------------------------------

# Tuesday 24 November 2026, 10:00 in Amsterdam: the digest covers today and the week up to
# the end of Sunday the 29th.
NOW = datetime.fromisoformat("2026-11-24T10:00+01:00")
AMSTERDAM = NOW.tzinfo
RECEIVED = datetime.fromisoformat("2026-11-02T09:00+01:00")


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=AMSTERDAM)


# Each report of a hand-built queue with one deadline, and the section of the digest it is
# counted and listed in (None: neither).
QUEUE: list[tuple[Deadline, str | None]] = [
    (Deadline(NOW - timedelta(days=20)), "overdue"),
    (Deadline(NOW - timedelta(minutes=1), status="triaged"), "overdue"),
    (Deadline(NOW + timedelta(hours=2), warn_at=NOW - timedelta(hours=1)), "due_today"),
    (Deadline(local("2026-11-24T23:59")), "due_today"),
    (Deadline(NOW), "due_today"),
    (Deadline(local("2026-11-25T00:00"), status="accepted"), "due_this_week"),
    (Deadline(local("2026-11-29T23:59"), status="fixing"), "due_this_week"),
    (Deadline(local("2026-11-30T00:00")), None),
    (Deadline(local("2026-12-10T17:00"), warn_at=NOW - timedelta(hours=3)), None),
    (Deadline(NOW - timedelta(days=3), status="resolved"), None),
    (Deadline(NOW - timedelta(days=3), status="rejected"), None),
    (Deadline(NOW - timedelta(days=3), awaiting=False), None),
    (Deadline(None, awaiting=False), None),
]
SECTIONS = ("overdue", "due_today", "due_this_week")
HEADINGS = {"overdue": "Overdue", "due_today": "Due today", "due_this_week": "Due this week", "open_reports": "Open reports ("}


@pytest.fixture
def notices() -> Notices:
    config = load_config(REPO / "config.example.toml", environ={})
    return Notices(config, Templates(None), config.secrets.reply_key())


def digest_sections(text: str) -> dict[str, str]:
    """The digest's text by section: from each heading to the next."""
    starts = {name: text.index(f"\n{heading}") for name, heading in HEADINGS.items()}
    ends = sorted(starts.values()) + [len(text)]
    return {name: text[start : ends[ends.index(start) + 1]] for name, start in starts.items()}


def digest_sent(sessions: sessionmaker[Session], notices: Notices, now: datetime = NOW) -> OutboxMessage:
    with transaction(sessions) as session:
        calendar = effective_calendar(session, notices.config.calendar)
        assert daily_digest_pass(session, AT_0830, calendar, notices, now) == 1
    [row] = outbox_rows(sessions, "daily_digest")
    return row


def test_the_digest_counts_every_open_deadline_in_its_section(sessions: sessionmaker[Session], notices: Notices) -> None:
    tracking_ids = queued(sessions, [deadline for deadline, _ in QUEUE], RECEIVED)
    row = digest_sent(sessions, notices)
    text = text_of(row)
    sections = digest_sections(text)
    expected = {section: [tracking_id for tracking_id, (_, where) in zip(tracking_ids, QUEUE, strict=True) if where == section] for section in SECTIONS}
    for section in SECTIONS:
        listed = [tracking_id for tracking_id in tracking_ids if f"[{tracking_id}]" in sections[section]]
        assert listed == expected[section], section
    # Open: every report but the resolved and the rejected one; warning: the one due today and the one due in December.
    assert mail_of(row)["Subject"] == "Security reports 2026-11-24: 11 open, 2 overdue, 3 due today"
    assert "Open reports: 11 (new 8, triaged 1, accepted 1, fixing 1)" in text
    assert "Deadlines:    2 overdue, 2 in their warning period, 3 due today, 2 due later this week" in text
    assert "more" not in text and "Every one is listed" not in text


def test_a_long_queue_lists_the_first_of_each_section_and_says_how_many_more(engine: Engine, sessions: sessionmaker[Session], notices: Notices) -> None:
    more = 30
    long_subject = "Stored XSS in the profile page of the customer portal " * 6
    overdue = [Deadline(NOW - timedelta(days=1, minutes=number), subject=long_subject) for number in range(DIGEST_ITEMS + more)]
    tracking_ids = queued(sessions, overdue, RECEIVED)
    row = digest_sent(sessions, notices)
    text = text_of(row)
    sections = digest_sections(text)
    assert mail_of(row)["Subject"] == f"Security reports 2026-11-24: {DIGEST_ITEMS + more} open, {DIGEST_ITEMS + more} overdue, 0 due today"
    # The most overdue first (the last one queued was due earliest), the oldest reports first.
    assert [tracking_id for tracking_id in reversed(tracking_ids) if f"[{tracking_id}]" in sections["overdue"]] == list(reversed(tracking_ids))[:DIGEST_ITEMS]
    assert [tracking_id for tracking_id in tracking_ids if f"[{tracking_id}]" in sections["open_reports"]] == tracking_ids[:DIGEST_ITEMS]
    assert f"  ... and {more} more\n" in sections["overdue"] and f"  ... and {more} more\n" in sections["open_reports"]
    assert f"Open reports ({DIGEST_ITEMS + more}, the {DIGEST_ITEMS} oldest listed)" in text
    assert long_subject not in text and long_subject[:60] in text
    assert "reporter.example.org" not in row.content.decode("ascii")
    assert len(row.content) < 100_000


def test_the_digest_reads_as_many_statements_for_five_reports_as_for_five_hundred(engine: Engine, sessions: sessionmaker[Session], notices: Notices) -> None:
    def statements_for(count: int, prefix: str) -> int:
        deadlines = [Deadline(NOW + timedelta(hours=number - count // 2), warn_at=NOW - timedelta(hours=1)) for number in range(count)]
        queued(sessions, deadlines, RECEIVED, prefix)
        with counted(engine) as seen, transaction(sessions) as session:
            calendar = effective_calendar(session, notices.config.calendar)
            day = digest_day(calendar, AT_0830, NOW)
            assert day is not None and daily_digest_pass(session, AT_0830, calendar, notices, NOW) == 1
            # Tomorrow's digest, for the second queue.
            session.execute(delete(OutboxMessage).where(OutboxMessage.kind == "daily_digest"))
        return len(seen.statements)

    few = statements_for(5, "SEC-2026-1")
    many = statements_for(500, "SEC-2026-2")
    assert few == many <= 20

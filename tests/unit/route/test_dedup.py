"""The key one reply is recorded under: a staff reply by its Message-ID, a reporter reply
by its content."""

from __future__ import annotations

from dataclasses import dataclass

from mailintake.route.decision import Route
from mailintake.route.dedup import dedup_key_of


@dataclass(frozen=True)
class Parsed:
    message_id: str | None
    origin_key: str


def test_a_staff_reply_acts_once_per_report_by_message_id() -> None:
    assert dedup_key_of(Route("staff_reply", 4), Parsed("a@example.com", "sha:1")) == "staff:4:a@example.com"
    assert dedup_key_of(Route("staff_reply", 5), Parsed("a@example.com", "sha:2")) == "staff:5:a@example.com"


def test_without_a_message_id_and_for_reporters_the_content_counts() -> None:
    assert dedup_key_of(Route("staff_reply", 4), Parsed(None, "sha:1")) == "staff_reply:4:sha:1"
    assert dedup_key_of(Route("reporter_reply", 4), Parsed("a@example.com", "sha:1")) == "reporter_reply:4:sha:1"

"""A report's thread: what the pipeline hands conversation for one mail in it, what
conversation needs of the pipeline's services and of the notices outbound sends, and the
thread records both kinds of reply share.

Replies run inside the processing transaction, so every record and every outbox row of one
reply commits together, or not at all. Conversation never imports outbound (a later
stage): the notices come in through ConversationServices (ARCHITECTURE.md: the order).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailintake.calendar.business import BusinessCalendar
from mailintake.config.schema import StaffConfig
from mailintake.parse.message import ParsedMessage
from mailintake.reports.records import inbound_message_row
from mailintake.route.decision import Route
from mailintake.route.dedup import dedup_key_of
from mailintake.sla.policy import Policy
from mailintake.storage.models import InboundMessage, Message, Pause, Report


@dataclass(frozen=True)
class ThreadMail:
    """One mail inside a report's thread, as the pipeline hands it over. `machine_mail`:
    why it is machine mail (a bounce, an auto-reply, a list), None for a person's.
    `replayable`: a staff reply whose authentication does not cover its Message-ID."""

    report: Report
    route: Route
    parsed: ParsedMessage
    inbound: InboundMessage
    calendar: BusinessCalendar
    now: datetime
    machine_mail: str | None
    replayable: bool = False


class SentMail(Protocol):
    """What conversation reads of a mail once it is enqueued."""

    @property
    def envelope_from(self) -> str: ...

    @property
    def recipients(self) -> tuple[str, ...]: ...

    @property
    def message_id(self) -> str: ...

    @property
    def content(self) -> bytes: ...


class ConversationNotices(Protocol):
    """The mail conversation causes, each enqueued in the caller's transaction."""

    def command_error(
        self,
        session: Session,
        report: Report,
        author: str,
        message: Message,
        errors: Sequence[str],
        calendar: BusinessCalendar,
        now: datetime,
        carried_out: bool = False,
    ) -> None: ...

    def to_reporter(
        self,
        session: Session,
        key: str,
        template: str,
        report: Report,
        context: dict[str, Any],
        calendar: BusinessCalendar,
        now: datetime,
        attachments: Sequence[tuple[str, str, bytes]] = (),
    ) -> SentMail | None:
        """A human answer to the reporter; None if there is nobody to send it to or its
        template failed. Raises ValueError when the reporter's address cannot be written."""
        ...

    def reporter_reply_forwarded(self, session: Session, report: Report, message: Message, resumed: bool, verified: bool, calendar: BusinessCalendar, now: datetime) -> None: ...


class ConversationServices(Protocol):
    """What conversation reads of the services the pipeline builds."""

    @property
    def policy(self) -> Policy: ...

    @property
    def staff(self) -> StaffConfig: ...

    @property
    def public_address(self) -> str:
        """The security address mail to the reporter comes from."""
        ...

    @property
    def team_name(self) -> str:
        """The name staff sign with in mail to the reporter ("Example Corp Security")."""
        ...

    @property
    def notices(self) -> ConversationNotices: ...


def thread_message(mail: ThreadMail, kind: str) -> Message:
    message = inbound_message_row(mail.parsed, mail.inbound)
    message.kind = kind
    message.author = mail.parsed.from_address
    message.dedup_key = dedup_key_of(mail.route, mail.parsed)
    mail.report.messages.append(message)
    return message


def open_pause(report: Report) -> Pause | None:
    return next((pause for pause in report.pauses if pause.ended_at is None), None)


def end_pause(report: Report, now: datetime, by: str) -> bool:
    pause = open_pause(report)
    if pause is None:
        return False
    pause.ended_at = max(now, pause.started_at)
    pause.ended_by = by[:255]
    return True


def report_by_tracking_id(session: Session, tracking_id: str) -> Report | None:
    return session.scalars(select(Report).where(Report.tracking_id == tracking_id.upper())).one_or_none()

"""SQLAlchemy 2 models: the database is the single source of truth."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes only; stored as UTC, read back as aware UTC on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; pass an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class InboundMessage(Base):
    """One SMTP/LMTP delivery, committed before the 250 reply; never deleted by processing."""

    __tablename__ = "inbound_messages"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    protocol: Mapped[str] = mapped_column(String(8))
    peer: Mapped[str] = mapped_column(String(255))
    helo: Mapped[str] = mapped_column(String(255))
    envelope_from: Mapped[str] = mapped_column(String(512))
    envelope_to: Mapped[list[str]] = mapped_column(JSON)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), default="received")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    report_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id"))
    # A worker's claim (storage/inbound_queue.py): until this moment no other worker takes the delivery.
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    claimed_by: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_inbound_messages_status_next_attempt", "status", "next_attempt_at"),)


class Reporter(Base):
    __tablename__ = "reporters"

    id: Mapped[int] = mapped_column(primary_key=True)
    address: Mapped[str] = mapped_column(String(512), unique=True)
    display_name: Mapped[str] = mapped_column(String(512), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TrackingCounter(Base):
    """Last tracking number handed out per year; incremented under a row lock."""

    __tablename__ = "tracking_counters"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_number: Mapped[int] = mapped_column(Integer, default=0)


class Report(Base):
    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    tracking_id: Mapped[str] = mapped_column(String(32), unique=True)
    origin_key: Mapped[str] = mapped_column(String(80), unique=True)
    status: Mapped[str] = mapped_column(String(24), default="new")
    subject: Mapped[str] = mapped_column(Text, default="")
    reporter_id: Mapped[int | None] = mapped_column(ForeignKey("reporters.id"), index=True)
    envelope_sender: Mapped[str] = mapped_column(String(512), default="")
    suggested_severity: Mapped[str | None] = mapped_column(String(16))
    severity: Mapped[str | None] = mapped_column(String(16))
    automated: Mapped[str | None] = mapped_column(String(64), index=True)
    language: Mapped[str | None] = mapped_column(String(35))
    credit_as: Mapped[str | None] = mapped_column(String(255))
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    urls: Mapped[list[str]] = mapped_column(JSON, default=list)
    endpoints: Mapped[list[str]] = mapped_column(JSON, default=list)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    flag: Mapped[str | None] = mapped_column(String(64))
    related_report_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id"))
    assignee: Mapped[str | None] = mapped_column(String(255))
    bounty: Mapped[str | None] = mapped_column(String(64))
    eta: Mapped[date | None] = mapped_column(Date)
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id"))

    reporter: Mapped[Reporter | None] = relationship()
    messages: Mapped[list[Message]] = relationship(back_populates="report", order_by="Message.id")
    milestones: Mapped[list[MilestoneRecord]] = relationship(back_populates="report", order_by="MilestoneRecord.id")
    pauses: Mapped[list[Pause]] = relationship(back_populates="report", order_by="Pause.id")
    related_report: Mapped[Report | None] = relationship(foreign_keys=[related_report_id], remote_side="Report.id")
    duplicate_of: Mapped[Report | None] = relationship(foreign_keys=[duplicate_of_id], remote_side="Report.id")


class Message(Base):
    """A message of a report's thread, inbound or outbound. `kind`: report (the first),
    reporter_reply, staff_reply (as received), internal_note, relayed (a staff reply as the
    reporter got it), notice (resolution and other status mail), automatic (machine mail).
    `dedup_key` makes one staff reply (by Message-ID) act once per report."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id"), index=True)
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"), unique=True)
    direction: Mapped[str] = mapped_column(String(8))
    from_address: Mapped[str] = mapped_column(String(512), default="")
    from_name: Mapped[str] = mapped_column(String(512), default="")
    to_addresses: Mapped[list[str]] = mapped_column(JSON, default=list)
    subject: Mapped[str] = mapped_column(Text, default="")
    message_id: Mapped[str | None] = mapped_column(String(512), index=True)
    in_reply_to: Mapped[str | None] = mapped_column(String(512))
    date_header: Mapped[datetime | None] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    body_text: Mapped[str] = mapped_column(Text, default="")
    body_from_html: Mapped[bool] = mapped_column(Boolean, default=False)
    raw_sha256: Mapped[str] = mapped_column(String(64))
    parse_defects: Mapped[list[str]] = mapped_column(JSON, default=list)
    kind: Mapped[str] = mapped_column(String(24), default="report")
    author: Mapped[str] = mapped_column(String(512), default="")
    dedup_key: Mapped[str | None] = mapped_column(String(600), unique=True)

    report: Mapped[Report] = relationship(back_populates="messages")
    attachments: Mapped[list[Attachment]] = relationship(back_populates="message", order_by="Attachment.id")


class Attachment(Base):
    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    filename: Mapped[str] = mapped_column(String(1024))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)

    message: Mapped[Message] = relationship(back_populates="attachments")


class MilestoneRecord(Base):
    """One SLA milestone of one report. `awaiting` marks a deadline still to be met (for a
    recurring duty: in its current round), so "due before T" is one indexed range scan."""

    __tablename__ = "milestones"

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id"))
    name: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    computed_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    promised_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    warn_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    met_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    met_by: Mapped[str | None] = mapped_column(String(255))
    awaiting: Mapped[bool] = mapped_column(Boolean, default=False)
    # When the SLA pass must look at this milestone next (its warning, then its breach);
    # None once every alert of the current deadline is in the outbox, or nothing is awaited.
    next_alert_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)

    report: Mapped[Report] = relationship(back_populates="milestones")

    __table_args__ = (
        UniqueConstraint("report_id", "name"),
        Index("ix_milestones_awaiting_due_at", "awaiting", "due_at"),
        Index("ix_milestones_awaiting_warn_at", "awaiting", "warn_at"),
    )


class Pause(Base):
    """A span in which pausable SLA clocks stood still (`#wait` … `#resume`)."""

    __tablename__ = "pauses"

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id"), index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_by: Mapped[str] = mapped_column(String(255))
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_by: Mapped[str | None] = mapped_column(String(255))

    report: Mapped[Report] = relationship(back_populates="pauses")


class CalendarChange(Base):
    """Holiday administration: a closure, or an official holiday the office works. Removal is
    recorded (who/when), never deleted, so every past deadline can still be explained."""

    __tablename__ = "calendar_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    first_day: Mapped[date] = mapped_column(Date, index=True)
    last_day: Mapped[date] = mapped_column(Date)
    name: Mapped[str] = mapped_column(String(255))
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    removed_by: Mapped[str | None] = mapped_column(String(255))
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class OutboxMessage(Base):
    """One outbound mail, written in the transaction of the state change that caused it.
    `key` is unique (one acknowledgement per report, one alert per deadline), so whatever
    runs twice enqueues once; `content` is the finished message, so a retry sends the same
    bytes with the same Message-ID."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    report_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id"), index=True)
    envelope_from: Mapped[str] = mapped_column(String(512))
    recipients: Mapped[list[str]] = mapped_column(JSON)
    auto_reply_to: Mapped[str | None] = mapped_column(String(512), index=True)
    message_id: Mapped[str] = mapped_column(String(255), index=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_reply: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_outbox_status_next_attempt", "status", "next_attempt_at"),)

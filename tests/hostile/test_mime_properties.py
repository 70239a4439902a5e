"""Hypothesis-built hostile MIME against a real `serve`: every accepted mail becomes a report,
a recorded duplicate or a thread message within a bound; the daemon keeps answering; its
memory stays bounded; nothing from the mail reaches its log; outbound mail goes only to
the envelope sender and staff, never to an address smuggled in through a header.

MAILINTAKE_HOSTILE_LONG=1 runs the long variant (many more and larger messages) and
prints a one-line summary; run it with `pytest -s` to see it.
"""

from __future__ import annotations

import hashlib
import os
import smtplib
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mailintake.storage.db import transaction
from mailintake.storage.models import InboundMessage, OutboxMessage
from tests.daemon import DaemonProcess
from tests.hostile.helpers import LEADS, TEAM, Stack
from tests.hostile.mime_strategies import CANARY, ENVELOPE_SENDER, INJECTED_RECIPIENT, HostileMail, Limits, hostile_mail
from tests.integration.relay import Received

pytestmark = pytest.mark.slow

LONG_SWITCH = "MAILINTAKE_HOSTILE_LONG"
EXPECTED_OUTBOUND_RECIPIENTS = frozenset({ENVELOPE_SENDER, TEAM, LEADS})
MIB = 1024 * 1024


@dataclass(frozen=True)
class Variant:
    name: str
    examples: int
    limits: Limits
    processing_bound: float
    parse_timeout: float
    rss_bound: int
    test_timeout: int


def hostile_variant(environ: Mapping[str, str] = os.environ) -> Variant:
    """The fast variant by default; the long one (more, larger mail) behind an environment switch."""
    if environ.get(LONG_SWITCH) == "1":
        return Variant("long", 1000, Limits(max_bytes=1_000_000, max_depth=8, max_children=8, max_leaf_bytes=200_000, max_flat_parts=30_000), 60.0, 45.0, 600 * MIB, 4 * 3600)
    return Variant("fast", 40, Limits(max_bytes=60_000, max_depth=4, max_children=4, max_leaf_bytes=8_000, max_flat_parts=3_000), 20.0, 15.0, 400 * MIB, 300)


VARIANT = hostile_variant()
STACK_OVERRIDES = {
    # One parse attempt: a failure is the finding, and automatic retries would only hold up
    # the mail behind it.
    "intake": {"max_message_size": 2 * VARIANT.limits.max_bytes, "parse_timeout": VARIANT.parse_timeout, "max_parse_attempts": 1},
}


@dataclass
class Observed:
    mails: int = 0
    max_parts: int = 0
    max_bytes: int = 0
    max_rss: int = 0
    max_seconds: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)

    def summary(self, examples: int, elapsed: float) -> str:
        return (
            f"hostile MIME ({VARIANT.name}): {examples} examples, {self.mails} mails in {elapsed:.0f} s, "
            f"max {self.max_parts} parts and {self.max_bytes} bytes per mail, slowest {self.max_seconds:.1f} s to a report, "
            f"max serve RSS {self.max_rss / MIB:.0f} MiB (bound {VARIANT.rss_bound / MIB:.0f}), statuses {dict(self.statuses)}"
        )


@dataclass
class Harness:
    stack: Stack
    observed: Observed = field(default_factory=Observed)
    log_offset: int = 0
    relay_checked: int = 0

    def check(self, mail: HostileMail) -> None:
        self.wait_for_idle_worker()
        started = time.monotonic()
        inbound_id = self.deliver(mail.raw)
        status = self.wait_for_outcome(inbound_id)
        self.observed.max_seconds = max(self.observed.max_seconds, time.monotonic() - started)
        self.assert_still_answering()
        rss = peak_rss(self.pid)
        assert rss < VARIANT.rss_bound, f"serve's peak RSS {rss / MIB:.0f} MiB exceeds {VARIANT.rss_bound / MIB:.0f} MiB after inbound {inbound_id}"
        self.assert_log_keeps_mail_out()
        self.assert_new_outbound_only_to_expected()
        self.observed.mails += 1
        self.observed.max_parts = max(self.observed.max_parts, mail.parts)
        self.observed.max_bytes = max(self.observed.max_bytes, len(mail.raw))
        self.observed.max_rss = max(self.observed.max_rss, rss)
        self.observed.statuses[status] += 1

    @property
    def daemon(self) -> DaemonProcess:
        return self.stack.daemon

    @property
    def sessions(self) -> sessionmaker[Session]:
        return self.stack.sessions

    @property
    def pid(self) -> int:
        assert self.daemon.process is not None
        return self.daemon.process.pid

    def deliver(self, raw: bytes) -> int:
        """Send over SMTP; the listener must answer 250 with the sha256 of exactly these bytes."""
        previous = last_inbound_id(self.sessions)
        code, reply = self.stack.send(raw, ENVELOPE_SENDER)
        assert (code, reply) == (250, b"2.0.0 Stored, sha256 " + hashlib.sha256(raw).hexdigest()[:16].encode())
        stored = last_inbound_id(self.sessions)
        assert stored == previous + 1, f"expected one new inbound row after {previous}, the last is {stored}"
        return stored

    def wait_for_idle_worker(self) -> None:
        """An earlier example that failed by timing out may still hold the worker; each
        example's bound starts only when nothing is queued before it."""
        deadline = time.monotonic() + VARIANT.parse_timeout + 10
        while pending_inbound(self.sessions):
            assert time.monotonic() < deadline, f"earlier mail still unprocessed after {VARIANT.parse_timeout + 10:g} s: {pending_inbound(self.sessions)}"
            time.sleep(0.05)

    def wait_for_outcome(self, inbound_id: int) -> str:
        """Processed or duplicate and linked to a report within the bound; failed is a failure at once."""
        deadline = time.monotonic() + VARIANT.processing_bound
        while True:
            with transaction(self.sessions) as session:
                row = session.get(InboundMessage, inbound_id)
                assert row is not None
                status, report_id, last_error = row.status, row.report_id, row.last_error
            if status in ("processed", "duplicate") and report_id is not None:
                return status
            assert status != "failed", f"inbound {inbound_id} failed: {last_error}\n{self.new_log()}"
            assert status == "received", f"inbound {inbound_id} is {status} with report {report_id}"
            assert time.monotonic() < deadline, f"inbound {inbound_id} still {status} after {VARIANT.processing_bound:g} s\n{self.new_log()}"
            time.sleep(0.05)

    def assert_still_answering(self) -> None:
        assert self.daemon.process is not None and self.daemon.process.poll() is None, f"serve exited\n{self.new_log()}"
        with smtplib.SMTP("127.0.0.1", self.daemon.port, timeout=10) as client:
            assert client.noop()[0] == 250

    def assert_log_keeps_mail_out(self) -> None:
        added = self.new_log()
        self.log_offset += len(added)
        assert CANARY.decode() not in added, f"mail content reached the daemon log:\n{added}"

    def new_log(self) -> str:
        return self.daemon.log()[self.log_offset :]

    def assert_new_outbound_only_to_expected(self) -> None:
        received = self.stack.relay.received
        assert_only_to_expected(received[self.relay_checked :])
        self.relay_checked = len(received)


def assert_only_to_expected(received: list[Received]) -> None:
    """Outbound mail goes to the envelope sender and staff only, never to an address from a header."""
    for item in received:
        assert set(item.rcpt_tos) <= EXPECTED_OUTBOUND_RECIPIENTS, f"relay got mail for {item.rcpt_tos}"
        message = message_from_bytes(item.content, policy=policy.compat32)
        assert message.get_all("Bcc") is None
        assert INJECTED_RECIPIENT not in " ".join(str(message.get(name, "")) for name in ("To", "Cc", "Reply-To"))


def peak_rss(pid: int) -> int:
    """VmHWM: the highest resident set size the process has had, so a spike between two
    examples is not missed."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"/proc/{pid}/status has no VmHWM")


def last_inbound_id(sessions: sessionmaker[Session]) -> int:
    with transaction(sessions) as session:
        return session.scalar(select(func.max(InboundMessage.id))) or 0


def pending_inbound(sessions: sessionmaker[Session]) -> list[int]:
    with transaction(sessions) as session:
        return list(session.scalars(select(InboundMessage.id).where(InboundMessage.status == "received")))


def settled_outbox(stack: Stack, timeout: float) -> Counter[str]:
    """The outbox's statuses once nothing is waiting to be sent and every sent mail has
    reached the relay."""
    deadline = time.monotonic() + timeout
    while True:
        with transaction(stack.sessions) as session:
            rows = list(session.execute(select(OutboxMessage.status, OutboxMessage.message_id)))
        statuses = Counter(status for status, _ in rows)
        relayed = {str(message_from_bytes(item.content, policy=policy.compat32)["Message-ID"]).strip() for item in stack.relay.received}
        if not statuses["pending"] and not statuses["sending"] and {f"<{message_id}>" for status, message_id in rows if status == "sent"} <= relayed:
            return statuses
        assert time.monotonic() < deadline, f"outbox not settled within {timeout:g} s: {dict(statuses)}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def harness(stack: Stack) -> Harness:
    return Harness(stack)


@pytest.mark.timeout(VARIANT.test_timeout)
def test_hostile_mime_always_becomes_a_report_and_serve_stays_healthy(harness: Harness) -> None:
    examples = 0
    started = time.monotonic()

    @settings(
        max_examples=VARIANT.examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example, HealthCheck.filter_too_much],
    )
    @given(mail=hostile_mail(VARIANT.limits))
    def every_mail_becomes_a_report(mail: HostileMail) -> None:
        nonlocal examples
        examples += 1
        harness.check(mail)

    try:
        every_mail_becomes_a_report()
        outbox = settled_outbox(harness.stack, timeout=60)
        assert set(outbox) == {"sent"}, f"outbound mail not delivered: {dict(outbox)}"
        harness.assert_new_outbound_only_to_expected()
    finally:
        print(harness.observed.summary(examples, time.monotonic() - started))

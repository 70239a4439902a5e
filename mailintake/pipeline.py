"""After commit: turn stored deliveries into reports, or mark them duplicate or failed.

Each delivery is parsed outside any transaction, then written in one transaction that
first re-checks the row is still as it was read (status and attempts). Whoever loses
that race (a second daemon, a concurrent `inbound retry`) writes nothing, so a delivery
becomes at most one report, and a crash anywhere leaves it pending to be done again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from mailintake.route.authentication import DnsFunc, StaffVerdict, dns_txt_lookup, envelope_sender_forgery, is_member, staff_verdict
from mailintake.deadlines.closures import effective_calendar
from mailintake.config.schema import CalendarConfig, Config, ConfigError
from mailintake.conversation.replies import ConversationRules, arrival_of, record_reporter_reply, record_staff_reply, reply_already_recorded
from mailintake.outbound.mailer import Mailer
from mailintake.storage.db import transaction
from mailintake.deadlines.milestones import refresh_milestones
from mailintake.storage.models import InboundMessage, Report
from mailintake.parse.pool import ParseFailure
from mailintake.parse.message import ParsedMessage, normalized_line_endings, raw_only_message
from mailintake.reports.records import create_report, report_with_origin
from mailintake.route.decision import REPLY_ADDRESS_MISUSED, STAFF_ADDRESS_MISUSED, STAFF_TO_PUBLIC_ADDRESS, UNAUTHENTICATED_STAFF, Route, route_of
from mailintake.sla.policy import Policy

log = logging.getLogger(__name__)

MAX_RETRY_DELAY = timedelta(hours=6)
IDLE_LANE_POLL = 0.2
# Flags that alert [staff] alerts: someone used an address or identity that was not theirs.
ALERTING_FLAGS = frozenset({UNAUTHENTICATED_STAFF, STAFF_ADDRESS_MISUSED, REPLY_ADDRESS_MISUSED})
# Flags whose mail is not from a researcher: no acknowledgement, no deadlines.
UNANSWERED_FLAGS = frozenset({UNAUTHENTICATED_STAFF, STAFF_ADDRESS_MISUSED, STAFF_TO_PUBLIC_ADDRESS})


class Parser(Protocol):
    def parse(self, raw: bytes) -> ParsedMessage: ...


Authenticator = Callable[[bytes, str], StaffVerdict]
SenderForgery = Callable[[bytes, str], str | None]
FORGED_SENDER = "envelope sender forged according to our MX"


@dataclass(frozen=True)
class ProcessingRules:
    tracking_prefix: str
    max_attempts: int
    retry_interval: float
    policy: Policy
    calendar: CalendarConfig
    mailer: Mailer
    conversation: ConversationRules
    authenticate: Authenticator
    sender_forgery: SenderForgery

    @classmethod
    def from_config(cls, config: Config, mailer: Mailer, dnsfunc: DnsFunc | None = None) -> ProcessingRules:
        intake = config.intake
        conversation = ConversationRules(intake.tracking_prefix, config.sla, config.staff, mailer)
        try:
            lookup = dnsfunc or dns_txt_lookup(config.staff.dns_server or None)
        except ValueError as error:
            raise ConfigError(f"[staff] dns_server: {error}") from None
        staff_policy = config.staff.policy()

        ours = frozenset(intake.addresses) | {intake.reply_address}

        def authenticate(raw: bytes, from_address: str) -> StaffVerdict:
            # Our own mail coming back is never staff, whatever a member domain covers.
            sender = "" if from_address.lower() in ours else from_address
            # Only a member's mail is worth the normalising copy DKIM needs (the hot path).
            return staff_verdict(normalized_line_endings(raw) if is_member(sender, staff_policy.members) else b"", sender, staff_policy, lookup)

        def sender_forgery(raw: bytes, envelope_from: str) -> str | None:
            if not staff_policy.trusted_authserv_id:
                return None
            domain = envelope_from.rpartition("@")[2].lower()
            try:
                return envelope_sender_forgery(normalized_line_endings(raw), domain, staff_policy.trusted_authserv_id, staff_policy.max_received_above_results)
            except Exception as error:
                # An unreadable header is no verdict: the report is acknowledged as usual.
                log.warning("sender check failed unexpectedly (%s)", type(error).__name__)
                return None

        return cls(intake.tracking_prefix, intake.max_parse_attempts, intake.retry_interval, config.sla, config.calendar, mailer, conversation, authenticate, sender_forgery)


@dataclass(frozen=True)
class Outcome:
    inbound_id: int
    status: str
    tracking_id: str | None = None


@dataclass(frozen=True)
class Snapshot:
    status: str
    attempts: int
    raw: bytes
    last_error: str | None = None


def due_inbound_ids(sessions: sessionmaker[Session], now: datetime, limit: int = 100) -> list[tuple[int, str]]:
    """(id, envelope sender) of new deliveries first, then of failed ones whose retry is
    due: retries never starve new mail."""
    with transaction(sessions) as session:
        columns = (InboundMessage.id, InboundMessage.envelope_from)
        new = select(*columns).where(InboundMessage.status == "received").order_by(InboundMessage.id).limit(limit)
        retries = (
            select(*columns)
            .where(InboundMessage.status == "failed", InboundMessage.next_attempt_at <= now)
            .order_by(InboundMessage.next_attempt_at, InboundMessage.id)
            .limit(limit)
        )
        return [(row.id, row.envelope_from) for row in session.execute(new)] + [(row.id, row.envelope_from) for row in session.execute(retries)]


def failed_inbound_ids(sessions: sessionmaker[Session]) -> list[int]:
    with transaction(sessions) as session:
        return list(session.scalars(select(InboundMessage.id).where(InboundMessage.status == "failed").order_by(InboundMessage.id)))


def process_due(sessions: sessionmaker[Session], parsers: Sequence[Parser], rules: ProcessingRules, clock: Callable[[], datetime], should_stop: Callable[[], bool] = lambda: False) -> list[Outcome]:
    """Every due delivery, one lane per parser: a mail that takes its parser the whole
    parse_timeout holds up only its own lane, while the others go on with new mail."""
    due = DueDeliveries(sessions, clock)
    if len(parsers) == 1:
        return lane_outcomes(sessions, parsers[0], rules, clock, due, should_stop)
    with ThreadPoolExecutor(len(parsers), thread_name_prefix="inbound-lane") as lanes:
        rounds = [lanes.submit(lane_outcomes, sessions, parser, rules, clock, due, should_stop) for parser in parsers]
        return [outcome for lane in rounds for outcome in lane.result()]


class DueDeliveries:
    """Hands each due delivery to one lane, at most once per round, and one sender's mail
    one at a time in arrival order: a staff member's `#status fixing` and then `#status
    resolved`, or two copies of one message, are recorded in the order they came. An idle
    lane keeps looking while another is busy, so mail arriving during a slow parse is
    taken up at once."""

    def __init__(self, sessions: sessionmaker[Session], clock: Callable[[], datetime]) -> None:
        self.sessions = sessions
        self.clock = clock
        self.pending: list[tuple[int, str]] = []
        self.taken: set[int] = set()
        self.busy: dict[int, str] = {}
        self.closed = False
        self.lock = threading.Lock()

    def next(self, should_stop: Callable[[], bool]) -> int | None:
        while not should_stop():
            with self.lock:
                if self.closed:
                    return None
                inbound_id = self.first_free()
                if inbound_id is None:
                    self.refill()
                    inbound_id = self.first_free()
                if inbound_id is not None:
                    return inbound_id
                if not self.busy:
                    # Nothing due and nothing in flight: the round is over for every lane, so
                    # none goes on alone with new work while the others have left.
                    self.closed = True
                    return None
            time.sleep(IDLE_LANE_POLL)
        return None

    def refill(self) -> None:
        known = self.taken | {inbound_id for inbound_id, _ in self.pending}
        self.pending += [item for item in due_inbound_ids(self.sessions, self.clock()) if item[0] not in known]

    def first_free(self) -> int | None:
        """The first pending delivery whose sender has nothing in flight or waiting before it."""
        held = set(self.busy.values())
        for index, (inbound_id, sender) in enumerate(self.pending):
            if sender not in held:
                del self.pending[index]
                self.taken.add(inbound_id)
                self.busy[inbound_id] = sender
                return inbound_id
        return None

    def finished(self, inbound_id: int) -> None:
        with self.lock:
            self.busy.pop(inbound_id, None)


def lane_outcomes(sessions: sessionmaker[Session], parser: Parser, rules: ProcessingRules, clock: Callable[[], datetime], due: DueDeliveries, should_stop: Callable[[], bool]) -> list[Outcome]:
    outcomes = []
    while (inbound_id := due.next(should_stop)) is not None:
        try:
            outcomes.append(process_inbound(sessions, parser, rules, inbound_id, clock))
        except Exception as error:
            # Storage trouble: leave the row as it is and go on; it is due again next pass.
            log.error("inbound %d could not be processed (%s); will retry", inbound_id, type(error).__name__)
            outcomes.append(Outcome(inbound_id, "deferred"))
        finally:
            due.finished(inbound_id)
    return outcomes


def process_inbound(sessions: sessionmaker[Session], parser: Parser, rules: ProcessingRules, inbound_id: int, clock: Callable[[], datetime], manual: bool = False) -> Outcome:
    """One delivery into a report, a thread message or a duplicate. The attempt is counted
    before the parse, so a mail that kills the daemon is not taken up again at every start:
    once its attempts are spent it becomes a report from its raw bytes. `manual` (an
    admin's `inbound retry`) grants one more real attempt."""
    snapshot = read_snapshot(sessions, inbound_id)
    if snapshot is None or snapshot.status not in ("received", "failed"):
        return Outcome(inbound_id, "skipped")
    if snapshot.attempts >= rules.max_attempts and not manual:
        return record_raw_only(sessions, rules, inbound_id, snapshot, snapshot.last_error or "earlier attempts did not finish", clock())
    snapshot = attempt_started(sessions, inbound_id, snapshot)
    if snapshot is None:
        return Outcome(inbound_id, "skipped")
    try:
        parsed = parser.parse(snapshot.raw)
    except ParseFailure as failure:
        return record_failure(sessions, rules, inbound_id, snapshot, str(failure), clock())
    verdict = rules.authenticate(snapshot.raw, parsed.from_address)
    if verdict.temporary and snapshot.attempts < rules.max_attempts:
        # A staff member's mail while DNS is down: try again rather than flag it as forged.
        return record_failure(sessions, rules, inbound_id, snapshot, "staff authentication: DNS did not answer", clock())
    try:
        return record_parsed_once_more_on_conflict(sessions, rules, inbound_id, snapshot, parsed, verdict, clock)
    except (OperationalError, InterfaceError):
        raise
    except Exception as error:
        # This message cannot be written as a report; mark it so the others are not held up.
        return record_failure(sessions, rules, inbound_id, snapshot, f"storing the report failed: {type(error).__name__}", clock())


def attempt_started(sessions: sessionmaker[Session], inbound_id: int, snapshot: Snapshot) -> Snapshot | None:
    """The attempt counted and committed before any work: None if another process took it."""
    with transaction(sessions) as session:
        if not claimed(session, inbound_id, snapshot, attempts=snapshot.attempts + 1):
            session.rollback()
            return None
    return replace(snapshot, attempts=snapshot.attempts + 1)


def record_parsed_once_more_on_conflict(sessions: sessionmaker[Session], rules: ProcessingRules, inbound_id: int, snapshot: Snapshot, parsed: ParsedMessage, verdict: StaffVerdict, clock: Callable[[], datetime]) -> Outcome:
    try:
        return record_parsed(sessions, rules, inbound_id, snapshot, parsed, verdict, clock())
    except IntegrityError:
        # Another process recorded the same report or reply first; now it is a duplicate.
        return record_parsed(sessions, rules, inbound_id, snapshot, parsed, verdict, clock())


def read_snapshot(sessions: sessionmaker[Session], inbound_id: int) -> Snapshot | None:
    with transaction(sessions) as session:
        row = session.get(InboundMessage, inbound_id)
        return None if row is None else Snapshot(row.status, row.attempts, row.raw, row.last_error)


def claimed(session: Session, inbound_id: int, snapshot: Snapshot, **changes: object) -> bool:
    result = session.execute(
        update(InboundMessage)
        .where(InboundMessage.id == inbound_id, InboundMessage.status == snapshot.status, InboundMessage.attempts == snapshot.attempts)
        .values(**changes)
    )
    return result.rowcount == 1


def record_parsed(sessions: sessionmaker[Session], rules: ProcessingRules, inbound_id: int, snapshot: Snapshot, parsed: ParsedMessage, verdict: StaffVerdict, now: datetime) -> Outcome:
    with transaction(sessions) as session:
        inbound = session.get(InboundMessage, inbound_id)
        assert inbound is not None
        existing = report_with_origin(session, parsed.origin_key)
        route = None if existing else route_of(arrival_of(session, rules.conversation, parsed, inbound.envelope_to, verdict.member, verdict.authenticated))
        repeated = route is not None and route.kind != "new_report" and reply_already_recorded(session, route, parsed)
        status = "duplicate" if existing or repeated else "processed"
        if not claimed(session, inbound_id, snapshot, status=status, processed_at=now, last_error=None, next_attempt_at=None):
            session.rollback()
            return Outcome(inbound_id, "skipped")
        report = existing or recorded_route(session, rules, route, repeated, parsed, inbound, now, verdict.signs_message_id)
        inbound.report_id = report.id
        log.info("inbound %d %s %s", inbound_id, what_happened(existing is not None, route, repeated), report.tracking_id)
        return Outcome(inbound_id, status, report.tracking_id)


def recorded_route(session: Session, rules: ProcessingRules, route: Route | None, repeated: bool, parsed: ParsedMessage, inbound: InboundMessage, now: datetime, signs_message_id: bool = True) -> Report:
    assert route is not None
    if route.kind == "new_report":
        return new_report_with_mail(session, rules, parsed, inbound, now, route)
    # The report row is locked: two replies to one report (two daemons) apply one after the other.
    report = session.scalars(select(Report).where(Report.id == route.report_id).with_for_update()).one()
    if repeated:
        return report
    calendar = effective_calendar(session, rules.calendar)
    if route.kind == "staff_reply":
        record_staff_reply(session, rules.conversation, report, route, parsed, inbound, calendar, now, replayable=not signs_message_id)
    else:
        record_reporter_reply(session, rules.conversation, report, route, parsed, inbound, calendar, now)
    return report


def what_happened(duplicate: bool, route: Route | None, repeated: bool) -> str:
    if duplicate or repeated:
        return "recorded as duplicate of"
    if route is not None and route.kind != "new_report":
        return f"recorded as {route.kind.replace('_', ' ')} on"
    if route is not None and route.flag:
        return f"flagged ({route.flag}) as new report"
    return "became report"


def new_report_with_mail(session: Session, rules: ProcessingRules, parsed: ParsedMessage, inbound: InboundMessage, now: datetime, route: Route | None = None) -> Report:
    """A new report, its deadlines and the mail it causes, in one transaction.

    Machine mail (a bounce, an out-of-office, a list, our own mail coming back) is stored
    as a report marked `automated`, with no deadlines and no mail: answering or notifying
    about it is how mail loops start. Deadlines are computed in a savepoint: if they cannot
    be, the report and the staff notification still are. A flagged report (someone writing
    into a report that is not theirs) is kept apart from that report; staff are alerted,
    and if it claims to be staff it is neither answered nor given deadlines."""
    report = create_report(session, parsed, inbound, rules.tracking_prefix, now)
    if route is not None and route.flag is not None:
        flag_report(session, report, route)
    signal = rules.mailer.loop_signal(parsed, inbound.envelope_from)
    if signal is not None:
        report.automated = signal[:64]
        log.info("report %s is machine mail (%s): stored, not answered", report.tracking_id, signal.split(":")[0])
        return report
    calendar = effective_calendar(session, rules.calendar)
    if route is not None and route.flag is not None:
        if route.flag in ALERTING_FLAGS:
            rules.mailer.flagged_report(session, report, calendar, now)
        if route.flag in UNANSWERED_FLAGS:
            rules.mailer.notify_staff(session, report, calendar, now)
            return report
    try:
        with session.begin_nested():
            refresh_milestones(session, report, rules.policy, calendar, now)
    except (ValueError, ArithmeticError) as error:
        log.error("report %s: deadlines could not be computed (%s)", report.tracking_id, type(error).__name__)
    forgery = rules.sender_forgery(inbound.raw, inbound.envelope_from)
    if forgery is not None:
        # Our MX says the envelope sender is forged: an acknowledgement would be backscatter.
        report.automated = f"{FORGED_SENDER} ({forgery})"
        log.info("report %s: no acknowledgement (%s)", report.tracking_id, FORGED_SENDER)
        rules.mailer.notify_staff(session, report, calendar, now)
        return report
    rules.mailer.report_received(session, report, inbound, calendar, now)
    return report


def flag_report(session: Session, report: Report, route: Route) -> None:
    report.flag = (route.flag or "")[:64]
    if route.related_report_id is not None and session.get(Report, route.related_report_id) is not None:
        report.related_report_id = route.related_report_id
        session.flush()


def record_failure(sessions: sessionmaker[Session], rules: ProcessingRules, inbound_id: int, snapshot: Snapshot, reason: str, now: datetime) -> Outcome:
    """A failed attempt (already counted): retried later, or, the attempts spent, the mail
    becomes a report from its raw bytes: stored but never a report is not an outcome."""
    if snapshot.attempts >= rules.max_attempts:
        return record_raw_only(sessions, rules, inbound_id, snapshot, reason, now)
    with transaction(sessions) as session:
        if not claimed(session, inbound_id, snapshot, status="failed", last_error=reason[:500], next_attempt_at=now + retry_delay(rules.retry_interval, snapshot.attempts)):
            session.rollback()
            return Outcome(inbound_id, "skipped")
    log.warning("inbound %d failed processing (attempt %d): %s", inbound_id, snapshot.attempts, reason)
    return Outcome(inbound_id, "failed")


def record_raw_only(sessions: sessionmaker[Session], rules: ProcessingRules, inbound_id: int, snapshot: Snapshot, reason: str, now: datetime) -> Outcome:
    """The last resort: a new report from the raw bytes, with why in its defects and at the
    top of its text, so staff see it like any other. Only if even that cannot be written is
    the delivery left failed, and then staff are alerted once."""
    parsed = raw_only_message(snapshot.raw, f"NotParsed:{reason}"[:200])
    parsed = replace(parsed, body_text=f"[mailintake: this mail could not be processed ({reason}); this report was made from its headers and the start of its raw text, and the whole mail is stored.]\n\n{parsed.body_text}")
    try:
        with transaction(sessions) as session:
            inbound = session.get(InboundMessage, inbound_id)
            assert inbound is not None
            if not claimed(session, inbound_id, snapshot, status="processed", processed_at=now, last_error=reason[:500], next_attempt_at=None):
                session.rollback()
                return Outcome(inbound_id, "skipped")
            report = report_with_origin(session, parsed.origin_key) or new_report_with_mail(session, rules, parsed, inbound, now)
            inbound.report_id = report.id
        log.error("inbound %d could not be processed after %d attempt(s) (%s); report %s made from its raw bytes", inbound_id, snapshot.attempts, reason, report.tracking_id)
        return Outcome(inbound_id, "processed", report.tracking_id)
    except (OperationalError, InterfaceError):
        raise
    except Exception as error:
        return record_unprocessable(sessions, rules, inbound_id, snapshot, f"{reason}; no report could be made from its raw bytes either ({type(error).__name__})", now)


def record_unprocessable(sessions: sessionmaker[Session], rules: ProcessingRules, inbound_id: int, snapshot: Snapshot, reason: str, now: datetime) -> Outcome:
    with transaction(sessions) as session:
        if not claimed(session, inbound_id, snapshot, status="failed", last_error=reason[:500], next_attempt_at=None):
            session.rollback()
            return Outcome(inbound_id, "skipped")
        rules.mailer.unprocessable_mail(session, inbound_id, reason, now)
    log.error("inbound %d is stored but could not become a report: %s", inbound_id, reason)
    return Outcome(inbound_id, "failed")


def retry_delay(retry_interval: float, attempts: int) -> timedelta:
    doublings = min(attempts - 1, 32)
    return min(timedelta(seconds=min(retry_interval * 2**doublings, MAX_RETRY_DELAY.total_seconds())), MAX_RETRY_DELAY)

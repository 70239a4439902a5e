"""The pipeline: what becomes of a stored delivery after its 250 (ARCHITECTURE.md draws it).

A delivery goes through PREPARE outside any transaction (the parse runs in a bounded
process, the staff check may ask DNS), then through DECIDE and one ACTIONS entry inside
the transaction that records its outcome (one for a batch of deliveries, see
process_batch): the report or thread message, its deadlines and every outbox row it
causes commit together, or not at all. The transaction
first re-checks that the delivery is still as it was read (storage/inbound_queue.py), so a
delivery becomes at most one report, and a crash anywhere leaves it to be done again.

The attempt is counted before the parse, so a mail that kills the daemon is not taken up
again at every start: once its attempts are spent it becomes a report from its raw bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from mailintake.calendar.business import BusinessCalendar
from mailintake.config.schema import CalendarConfig, Config, ConfigError, StaffConfig
from mailintake.conversation.reporter import record_reporter_reply
from mailintake.conversation.staff import record_staff_reply
from mailintake.conversation.thread import ThreadMail
from mailintake.deadlines.closures import effective_calendar
from mailintake.deadlines.milestones import record_promise, refresh_milestones
from mailintake.outbound.notices import Notices
from mailintake.parse.message import ParsedMessage, raw_only_message
from mailintake.parse.pool import ParseFailure
from mailintake.reports.records import create_report, report_with_origin
from mailintake.route.authentication import DnsFunc, StaffVerdict, dns_txt_lookup
from mailintake.route.decision import FLAG_EFFECTS, Route, route_of
from mailintake.route.dedup import reply_already_recorded
from mailintake.route.facts import arrival_of
from mailintake.route.identity import SenderChecks
from mailintake.route.machine_mail import no_auto_reply_reason
from mailintake.sla.policy import Policy
from mailintake.storage.db import transaction
from mailintake.storage.inbound_queue import Snapshot, attempt_started, claimed_as_done, marked_for_retry, marked_unprocessable, read_snapshots, retry_delay
from mailintake.storage.models import InboundMessage, Report

log = logging.getLogger(__name__)

FORGED_SENDER = "envelope sender forged according to our MX"


class Parser(Protocol):
    def parse(self, raw: bytes) -> ParsedMessage: ...


class RetryLater(Exception):
    """A stage cannot finish now (the parse failed, DNS did not answer): the attempt ends
    and the delivery is retried later, or, its attempts spent, made a report from its raw bytes."""


@dataclass(frozen=True)
class Services:
    """Settings and collaborators every stage may use; built once by `serve` (or a CLI
    command) and shared by all lanes. Conversation reads it through its own Protocol."""

    tracking_prefix: str
    max_attempts: int
    retry_interval: float
    policy: Policy
    calendar: CalendarConfig
    staff: StaffConfig
    own_addresses: tuple[str, ...]
    public_address: str
    team_name: str
    reply_key: bytes
    notices: Notices
    senders: SenderChecks

    @classmethod
    def from_config(cls, config: Config, notices: Notices, dnsfunc: DnsFunc | None = None) -> Services:
        try:
            lookup = dnsfunc or dns_txt_lookup(config.staff.dns_server or None)
        except ValueError as error:
            raise ConfigError(f"[staff] dns_server: {error}") from None
        intake = config.intake
        own_addresses = tuple(intake.addresses) + (intake.reply_address,)
        return cls(
            tracking_prefix=intake.tracking_prefix,
            max_attempts=intake.max_parse_attempts,
            retry_interval=intake.retry_interval,
            policy=config.sla,
            calendar=config.calendar,
            staff=config.staff,
            own_addresses=own_addresses,
            public_address=notices.sender,
            team_name=notices.sender_name,
            reply_key=notices.reply_key,
            notices=notices,
            senders=SenderChecks(config.staff, own_addresses, lookup),
        )


@dataclass
class Mail:
    """One delivery on its way through the stages (Mailman's msgdata): each stage reads
    what earlier ones found and adds its own part."""

    inbound_id: int
    snapshot: Snapshot
    parsed: ParsedMessage | None = None
    verdict: StaffVerdict | None = None
    machine_mail: str | None = None
    existing: Report | None = None
    route: Route | None = None
    repeated: bool = False

    def parsed_message(self) -> ParsedMessage:
        assert self.parsed is not None, "the parse stage runs first"
        return self.parsed

    def staff_verdict(self) -> StaffVerdict:
        assert self.verdict is not None, "the authenticate stage runs first"
        return self.verdict

    def decided_route(self) -> Route:
        assert self.route is not None, "the route stage runs first"
        return self.route


@dataclass(frozen=True)
class Outcome:
    inbound_id: int
    status: str
    tracking_id: str | None = None


@dataclass(frozen=True)
class PrepareStage:
    name: str
    run: Callable[[Services, Parser, Mail], None]


@dataclass(frozen=True)
class DecideStage:
    name: str
    run: Callable[[Session, Services, Mail], None]


# --- PREPARE: outside any transaction -------------------------------------------------


def parse_raw(services: Services, parser: Parser, mail: Mail) -> None:
    """The outer headers and the MIME tree, in a time- and memory-bounded process."""
    try:
        mail.parsed = parser.parse(mail.snapshot.raw)
    except ParseFailure as failure:
        raise RetryLater(str(failure)) from None


def authenticate(services: Services, parser: Parser, mail: Mail) -> None:
    """Staff or not, from the raw signed bytes: before anything could change them."""
    mail.verdict = services.senders.staff_verdict(mail.snapshot.raw, mail.parsed_message().from_address)
    if mail.verdict.temporary and mail.snapshot.attempts < services.max_attempts:
        # A staff member's mail while DNS is down: try again rather than flag it as forged.
        raise RetryLater("staff authentication: DNS did not answer")


def decrypt(services: Services, parser: Parser, mail: Mail) -> None:
    """The place for OpenPGP: the encrypted parts replaced by what they decrypt to. Comes
    after `authenticate`, which must see the outer, signed bytes. Nothing is encrypted
    to us yet, so there is nothing to do."""


def classify(services: Services, parser: Parser, mail: Mail) -> None:
    """Machine mail (a bounce, an out-of-office, a list, our own mail coming back) is
    never answered: answering it is how mail loops start."""
    mail.machine_mail = no_auto_reply_reason(mail.parsed_message(), mail.snapshot.envelope_from, services.own_addresses)


PREPARE: tuple[PrepareStage, ...] = (
    PrepareStage("parse", parse_raw),
    PrepareStage("authenticate", authenticate),
    PrepareStage("decrypt", decrypt),
    PrepareStage("classify", classify),
)


# --- DECIDE: inside the recording transaction -----------------------------------------


def deduplicate_report(session: Session, services: Services, mail: Mail) -> None:
    """The same mail stored twice (an MTA that retried after a lost 250) is one report."""
    mail.existing = report_with_origin(session, mail.parsed_message().origin_key)


def route_mail(session: Session, services: Services, mail: Mail) -> None:
    """Routing facts read from storage, then the pure decision."""
    if mail.existing is not None:
        return
    verdict = mail.staff_verdict()
    arrival = arrival_of(
        session,
        mail.parsed_message(),
        mail.snapshot.envelope_to,
        verdict.member,
        verdict.authenticated,
        public_address=services.public_address,
        reply_key=services.reply_key,
        tracking_prefix=services.tracking_prefix,
    )
    mail.route = route_of(arrival)


def deduplicate_reply(session: Session, services: Services, mail: Mail) -> None:
    """One reply acts once, whichever way and however often it arrives."""
    if mail.route is not None and mail.route.kind != "new_report":
        mail.repeated = reply_already_recorded(session, mail.route, mail.parsed_message())


DECIDE: tuple[DecideStage, ...] = (
    DecideStage("deduplicate report", deduplicate_report),
    DecideStage("route", route_mail),
    DecideStage("deduplicate reply", deduplicate_reply),
)


# --- ACTIONS: what each kind of mail becomes --------------------------------------------


def disposition_of(mail: Mail) -> str:
    if mail.existing is not None or mail.repeated:
        return "duplicate"
    kind = mail.decided_route().kind
    if kind != "new_report":
        return kind
    if mail.machine_mail is not None:
        return "machine_mail"
    return "flagged" if mail.decided_route().flag is not None else "new_report"


def duplicate(session: Session, services: Services, mail: Mail, now: datetime) -> Report:
    return mail.existing or locked_report(session, mail.decided_route())


def new_report(session: Session, services: Services, mail: Mail, now: datetime) -> Report:
    """A new report, its deadlines and the mail it causes, as its flag's effects say.
    Deadlines are computed in a savepoint: if they cannot be, the report and the staff
    notification still are."""
    report = created_report(session, services, mail, now)
    effects = FLAG_EFFECTS[mail.route.flag if mail.route is not None else None]
    calendar = transaction_calendar(session, services)
    if effects.alert:
        services.notices.flagged_report(session, report, calendar, now)
    if not effects.answered:
        # Not a researcher's mail (it claims to be staff): neither answered nor given deadlines.
        services.notices.notify_staff(session, report, calendar, now)
        return report
    try:
        with session.begin_nested():
            refresh_milestones(session, report, services.policy, calendar, now)
    except (ValueError, ArithmeticError) as error:
        log.error("report %s: deadlines could not be computed (%s)", report.tracking_id, type(error).__name__)
    inbound = inbound_row(session, mail)
    forgery = services.senders.sender_forgery(inbound.raw, inbound.envelope_from)
    if forgery is not None:
        # Our MX says the envelope sender is forged: an acknowledgement would be backscatter.
        report.automated = f"{FORGED_SENDER} ({forgery})"
        log.info("report %s: no acknowledgement (%s)", report.tracking_id, FORGED_SENDER)
        services.notices.notify_staff(session, report, calendar, now)
        return report
    promised = services.notices.report_received(session, report, inbound, calendar, now)
    if promised is not None:
        record_promise(report, promised)
    return report


def machine_mail(session: Session, services: Services, mail: Mail, now: datetime) -> Report:
    """Stored as a report marked `automated`, with no deadlines and no mail."""
    report = created_report(session, services, mail, now)
    report.automated = (mail.machine_mail or "")[:64]
    log.info("report %s is machine mail (%s): stored, not answered", report.tracking_id, (mail.machine_mail or "").split(":")[0])
    return report


def reporter_reply(session: Session, services: Services, mail: Mail, now: datetime) -> Report:
    report = locked_report(session, mail.decided_route())
    record_reporter_reply(session, services, thread_mail(session, services, mail, report, now))
    return report


def staff_reply(session: Session, services: Services, mail: Mail, now: datetime) -> Report:
    report = locked_report(session, mail.decided_route())
    # Authentication that does not cover Message-ID could be replayed under a new one.
    replayable = mail.verdict is not None and not mail.verdict.signs_message_id
    record_staff_reply(session, services, thread_mail(session, services, mail, report, now, replayable))
    return report


Action = Callable[[Session, Services, Mail, datetime], Report]

ACTIONS: Mapping[str, Action] = {
    "duplicate": duplicate,
    "new_report": new_report,
    "flagged": new_report,
    "machine_mail": machine_mail,
    "reporter_reply": reporter_reply,
    "staff_reply": staff_reply,
}


def created_report(session: Session, services: Services, mail: Mail, now: datetime) -> Report:
    """A flagged report (someone writing into a report that is not theirs) is kept apart
    from that report, related to it only for staff."""
    report = create_report(session, mail.parsed_message(), inbound_row(session, mail), services.tracking_prefix, now)
    flag = mail.route.flag if mail.route is not None else None
    if flag is not None:
        report.flag = flag[:64]
        related = mail.decided_route().related_report_id
        if related is not None and session.get(Report, related) is not None:
            report.related_report_id = related
            session.flush()
    return report


def locked_report(session: Session, route: Route) -> Report:
    # The report row is locked: two replies to one report (two daemons) apply one after the other.
    return session.scalars(select(Report).where(Report.id == route.report_id).with_for_update()).one()


def thread_mail(session: Session, services: Services, mail: Mail, report: Report, now: datetime, replayable: bool = False) -> ThreadMail:
    return ThreadMail(
        report=report,
        route=mail.decided_route(),
        parsed=mail.parsed_message(),
        inbound=inbound_row(session, mail),
        calendar=transaction_calendar(session, services),
        now=now,
        machine_mail=mail.machine_mail,
        replayable=replayable,
    )


def inbound_row(session: Session, mail: Mail) -> InboundMessage:
    """Held for the transaction: the identity map keeps rows only while something refers to
    them, and this one carries the raw mail, which is not read twice."""
    rows: dict[int, InboundMessage] = session.info.setdefault("inbound rows", {})
    if mail.inbound_id not in rows:
        row = session.get(InboundMessage, mail.inbound_id)
        assert row is not None
        rows[mail.inbound_id] = row
    return rows[mail.inbound_id]


def transaction_calendar(session: Session, services: Services) -> BusinessCalendar:
    """The effective calendar, read once per transaction: nothing in a recording
    transaction changes the admin's closures."""
    if "calendar" not in session.info:
        session.info["calendar"] = effective_calendar(session, services.calendar)
    calendar: BusinessCalendar = session.info["calendar"]
    return calendar


# --- deliveries, one or a batch at a time ----------------------------------------------------


def process_inbound(sessions: sessionmaker[Session], parser: Parser, services: Services, inbound_id: int, clock: Callable[[], datetime], manual: bool = False) -> Outcome:
    """One delivery into a report, a thread message or a duplicate. `manual` (an admin's
    `inbound retry`) grants one more real attempt."""
    return process_batch(sessions, parser, services, [inbound_id], clock, manual)[0]


def process_batch(sessions: sessionmaker[Session], parser: Parser, services: Services, inbound_ids: Sequence[int], clock: Callable[[], datetime], manual: bool = False) -> list[Outcome]:
    """Deliveries of different senders, their outcomes in the order given. Those on their
    first attempt are prepared one by one and then recorded in one transaction, so a batch
    pays once for what each delivery would pay alone (the commit, the calendar, the checks).
    A delivery tried before goes alone and at once: if an earlier attempt ended with the
    process (a mail that kills it), the mails batched beside it would otherwise spend their
    attempts with it."""
    outcomes: dict[int, Outcome] = {}
    batched: list[Mail] = []
    for inbound_id, snapshot in read_snapshots(sessions, inbound_ids).items():
        if snapshot is None or snapshot.status not in ("received", "failed"):
            outcomes[inbound_id] = Outcome(inbound_id, "skipped")
        elif snapshot.attempts >= services.max_attempts and not manual:
            outcomes[inbound_id] = record_raw_only(sessions, services, inbound_id, snapshot, snapshot.last_error or "earlier attempts did not finish", clock())
        elif (started := attempt_started(sessions, inbound_id, snapshot)) is None:
            outcomes[inbound_id] = Outcome(inbound_id, "skipped")
        elif (mail := prepared_mail(sessions, services, parser, Mail(inbound_id, started), outcomes, clock)) is not None:
            if snapshot.attempts == 0 and len(inbound_ids) > 1 and services.max_attempts > 1:
                batched.append(mail)
            else:
                outcomes[inbound_id] = recorded_alone(sessions, services, mail, clock)
    outcomes |= {outcome.inbound_id: outcome for outcome in recorded_together(sessions, services, batched, clock)}
    return [outcomes[inbound_id] for inbound_id in inbound_ids]


def prepared_mail(sessions: sessionmaker[Session], services: Services, parser: Parser, mail: Mail, outcomes: dict[int, Outcome], clock: Callable[[], datetime]) -> Mail | None:
    """The mail through PREPARE, or None with its failed attempt in `outcomes`."""
    try:
        prepare(services, parser, mail)
    except RetryLater as later:
        outcomes[mail.inbound_id] = record_failure(sessions, services, mail, str(later), clock())
        return None
    return mail


def recorded_together(sessions: sessionmaker[Session], services: Services, mails: Sequence[Mail], clock: Callable[[], datetime]) -> list[Outcome]:
    """All in one transaction; if it fails, rolled back and each recorded alone, so that a
    mail that cannot be recorded costs only itself. A database that fails (locked, gone)
    is raised: the batch is due again."""
    if not mails:
        return []
    try:
        with transaction(sessions) as session:
            now = clock()
            return [recorded_in(session, services, mail, now) for mail in mails]
    except (OperationalError, InterfaceError):
        raise
    except Exception as error:
        log.warning("a batch of %d deliveries failed (%s); recording them one at a time", len(mails), type(error).__name__)
        return [recorded_alone(sessions, services, undecided(mail), clock) for mail in mails]


def recorded_alone(sessions: sessionmaker[Session], services: Services, mail: Mail, clock: Callable[[], datetime]) -> Outcome:
    try:
        return recorded_once_more_on_conflict(sessions, services, mail, clock)
    except (OperationalError, InterfaceError):
        raise
    except Exception as error:
        # This message cannot be written as a report; mark it so the others are not held up.
        return record_failure(sessions, services, mail, f"storing the report failed: {type(error).__name__}", clock())


def undecided(mail: Mail) -> Mail:
    """The mail as PREPARE left it: what DECIDE found in a rolled-back transaction is found again."""
    return replace(mail, existing=None, route=None, repeated=False)


def prepare(services: Services, parser: Parser, mail: Mail, stages: Sequence[PrepareStage] = PREPARE) -> None:
    for stage in stages:
        try:
            stage.run(services, parser, mail)
        except RetryLater:
            raise
        except Exception as error:
            # A stage that breaks on this mail ends the attempt like any failed one: the
            # delivery is retried, and once its attempts are spent made a report from its bytes.
            raise RetryLater(f"{stage.name} failed: {type(error).__name__}") from None


def recorded_once_more_on_conflict(sessions: sessionmaker[Session], services: Services, mail: Mail, clock: Callable[[], datetime]) -> Outcome:
    try:
        return recorded(sessions, services, mail, clock())
    except IntegrityError:
        # Another process recorded the same report or reply first; now it is a duplicate.
        return recorded(sessions, services, undecided(mail), clock())


def recorded(sessions: sessionmaker[Session], services: Services, mail: Mail, now: datetime) -> Outcome:
    with transaction(sessions) as session:
        return recorded_in(session, services, mail, now)


def recorded_in(session: Session, services: Services, mail: Mail, now: datetime) -> Outcome:
    """DECIDE and the action for one mail in the caller's transaction. A delivery another
    process has taken meanwhile is left alone: nothing was written for it yet."""
    for stage in DECIDE:
        stage.run(session, services, mail)
    disposition = disposition_of(mail)
    status = "duplicate" if disposition == "duplicate" else "processed"
    if not claimed_as_done(session, mail.inbound_id, mail.snapshot, status, now):
        return Outcome(mail.inbound_id, "skipped")
    report = ACTIONS[disposition](session, services, mail, now)
    inbound_row(session, mail).report_id = report.id
    log.info("inbound %d %s %s", mail.inbound_id, what_happened(disposition, mail.route), report.tracking_id)
    return Outcome(mail.inbound_id, status, report.tracking_id)


def what_happened(disposition: str, route: Route | None) -> str:
    if disposition == "duplicate":
        return "recorded as duplicate of"
    if route is not None and route.kind != "new_report":
        return f"recorded as {route.kind.replace('_', ' ')} on"
    if route is not None and route.flag:
        return f"flagged ({route.flag}) as new report"
    return "became report"


def record_failure(sessions: sessionmaker[Session], services: Services, mail: Mail, reason: str, now: datetime) -> Outcome:
    """A failed attempt (already counted): retried later, or, the attempts spent, the mail
    becomes a report from its raw bytes: stored but never a report is not an outcome."""
    snapshot = mail.snapshot
    if snapshot.attempts >= services.max_attempts:
        return record_raw_only(sessions, services, mail.inbound_id, snapshot, reason, now)
    if not marked_for_retry(sessions, mail.inbound_id, snapshot, reason, now + retry_delay(services.retry_interval, snapshot.attempts)):
        return Outcome(mail.inbound_id, "skipped")
    log.warning("inbound %d failed processing (attempt %d): %s", mail.inbound_id, snapshot.attempts, reason)
    return Outcome(mail.inbound_id, "failed")


def record_raw_only(sessions: sessionmaker[Session], services: Services, inbound_id: int, snapshot: Snapshot, reason: str, now: datetime) -> Outcome:
    """The last resort: a new report from the raw bytes, with why in its defects and at the
    top of its text, so staff see it like any other. Only if even that cannot be written is
    the delivery left failed, and then staff are alerted once."""
    parsed = raw_only_message(snapshot.raw, f"NotParsed:{reason}"[:200])
    parsed = replace(parsed, body_text=f"[mailintake: this mail could not be processed ({reason}); this report was made from its headers and the start of its raw text, and the whole mail is stored.]\n\n{parsed.body_text}")
    mail = Mail(inbound_id, snapshot, parsed=parsed, route=Route("new_report"))
    try:
        classify(services, NO_PARSER, mail)
        with transaction(sessions) as session:
            deduplicate_report(session, services, mail)
            if not claimed_as_done(session, inbound_id, snapshot, "processed", now, reason):
                session.rollback()
                return Outcome(inbound_id, "skipped")
            report = ACTIONS[disposition_of(mail)](session, services, mail, now)
            inbound_row(session, mail).report_id = report.id
        log.error("inbound %d could not be processed after %d attempt(s) (%s); report %s made from its raw bytes", inbound_id, snapshot.attempts, reason, report.tracking_id)
        return Outcome(inbound_id, "processed", report.tracking_id)
    except (OperationalError, InterfaceError):
        raise
    except Exception as error:
        return record_unprocessable(sessions, services, inbound_id, snapshot, f"{reason}; no report could be made from its raw bytes either ({type(error).__name__})", now)


def record_unprocessable(sessions: sessionmaker[Session], services: Services, inbound_id: int, snapshot: Snapshot, reason: str, now: datetime) -> Outcome:
    with transaction(sessions) as session:
        if not marked_unprocessable(session, inbound_id, snapshot, reason):
            session.rollback()
            return Outcome(inbound_id, "skipped")
        services.notices.unprocessable_mail(session, inbound_id, reason, now)
    log.error("inbound %d is stored but could not become a report: %s", inbound_id, reason)
    return Outcome(inbound_id, "failed")


class NoParser:
    """For a mail made from its raw bytes: no stage after the parse needs a parser."""

    def parse(self, raw: bytes) -> ParsedMessage:
        raise ParseFailure("no parser: this mail is not parsed again")


NO_PARSER = NoParser()

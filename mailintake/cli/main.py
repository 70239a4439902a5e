"""Command line: `mailintake --config PATH <command>`. Bad input: one line on stderr, exit 2."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import date, datetime, timezone
from typing import Any, NoReturn

from dateutil.parser import isoparse
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from mailintake import __version__
from mailintake.calendar.business import BusinessCalendar, CalendarError, format_skipped_days
from mailintake.deadlines.closures import CalendarAdminError, CalendarEntry, add_closure, calendar_entries, effective_calendar, format_range, recompute_after_change, remove_day
from mailintake.calendar.views import ics_export, year_view
from mailintake.core.clock import utc_now
from mailintake.config.schema import Config, ConfigError, config_path_from, load_config
from mailintake.storage.db import DatabaseUrlError, create_database_engine, session_factory, transaction, upgrade_database
from mailintake.outbound.send import deliver_due
from mailintake.calendar.durations import DurationError, duration_text, parse_duration
from mailintake.outbound.mailer import Mailer
from mailintake.deadlines.milestones import MilestoneView, milestone_views, refresh_open_reports
from mailintake.storage.models import InboundMessage, OutboxMessage
from mailintake.outbound.outbox import OutboxRetryRefused, outbox_rows, release_waiting, retry_now
from mailintake.parse.pool import parser_pool_for
from mailintake.pipeline import ProcessingRules, failed_inbound_ids, process_inbound
from mailintake.reports.read_model import ReportNotFound, iso_utc, report_detail, report_summaries
from mailintake.service.scheduler import scheduled_pass
from mailintake.outbound.templates import REQUIRED, TemplateError, Templates

EXIT_USAGE = 2
FLUSH_LIMIT = 10_000
EXIT_FAILURE = 1
QUIET_LIBRARY_LOGGERS = {"mail.log": logging.ERROR, "mailparser": logging.CRITICAL + 1, "alembic": logging.WARNING}


class UsageError(Exception):
    """Bad input from the command line: exit status 2."""


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="mailintake", description="Runs a security@ mailbox: stores every report, tracks it, answers on time.")
    parser.add_argument("--config", metavar="PATH", help="config file (default: $MAILINTAKE_CONFIG)")
    parser.add_argument("--version", action="version", version=f"mailintake {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser)

    commands.add_parser("serve", help="run the SMTP/LMTP listener and the inbound worker until SIGTERM/SIGINT")

    db = commands.add_parser("db", help="database administration").add_subparsers(dest="db_command", required=True, metavar="SUBCOMMAND")
    db.add_parser("upgrade", help="create or migrate the database schema to the current version")

    reports = commands.add_parser("reports", help="list and show reports").add_subparsers(dest="reports_command", required=True, metavar="SUBCOMMAND")
    listing = reports.add_parser("list", help="all reports, oldest first")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    show = reports.add_parser("show", help="one report: its whole thread in order, its milestones and who met them")
    show.add_argument("tracking_id", metavar="ID", help="tracking id, e.g. SEC-2026-0001")
    show.add_argument("--json", action="store_true", help="machine-readable output")

    inbound = commands.add_parser("inbound", help="stored deliveries that failed processing").add_subparsers(dest="inbound_command", required=True, metavar="SUBCOMMAND")
    failed = inbound.add_parser("failed", help="list deliveries whose processing failed (their raw bytes are kept)")
    failed.add_argument("--json", action="store_true", help="machine-readable output")
    retry = inbound.add_parser("retry", help="process failed deliveries again now")
    retry.add_argument("ids", metavar="ID", nargs="*", type=int, help="inbound ids (default: every failed one)")

    holiday_commands = commands.add_parser("holidays", help="public holidays and closures (admin data, kept in the database)").add_subparsers(dest="holidays_command", required=True, metavar="SUBCOMMAND")
    holiday_list = holiday_commands.add_parser("list", help="holidays and closures of a year, with their source and who added them")
    holiday_list.add_argument("--year", type=int, help="default: this year")
    holiday_list.add_argument("--json", action="store_true", help="machine-readable output")
    holiday_add = holiday_commands.add_parser("add", help="close the office on a day or a range; open reports' deadlines are recomputed")
    holiday_add.add_argument("days", metavar="DATE[..DATE]", help="e.g. 2026-12-28 or 2026-12-28..2026-12-31")
    holiday_add.add_argument("name", metavar="NAME", help='e.g. "year-end shutdown"')
    holiday_add.add_argument("--by", help="who makes the change (default: the login name)")
    holiday_remove = holiday_commands.add_parser("remove", help="reopen a day: drop an admin closure, or work an official holiday")
    holiday_remove.add_argument("day", metavar="DATE", help="e.g. 2026-04-03")
    holiday_remove.add_argument("--by", help="who makes the change (default: the login name)")

    calendar_commands = commands.add_parser("calendar", help="the business calendar deadlines are computed on").add_subparsers(dest="calendar_command", required=True, metavar="SUBCOMMAND")
    calendar_show = calendar_commands.add_parser("show", help="a month-by-month view marking weekends, holidays and closures")
    calendar_show.add_argument("--year", type=int, help="default: this year")
    deadline = calendar_commands.add_parser("deadline", help="the deadline for a duration from a moment, in the calendar's zone")
    deadline.add_argument("--from", dest="start", required=True, metavar="ISO", help="e.g. 2026-12-23T16:00+01:00 (without an offset: the calendar's zone)")
    deadline.add_argument("--within", required=True, metavar="DURATION", help='"24 hours", "8 business hours" or "3 business days"')
    deadline.add_argument("--explain", action="store_true", help="list the days skipped and why")
    deadline.add_argument("--json", action="store_true", help="machine-readable output")
    export = calendar_commands.add_parser("export", help="holidays and closures as an iCalendar file on standard output")
    export.add_argument("--ics", action="store_true", required=True, help="iCalendar format (RFC 5545)")
    export.add_argument("--year", type=int, action="append", help="a year to include (repeatable; default: this year and next)")

    sla = commands.add_parser("sla", help="SLA milestones of open reports").add_subparsers(dest="sla_command", required=True, metavar="SUBCOMMAND")
    status = sla.add_parser("status", help="open milestones: due time, business time left, state (ok/warning/breached/met/waiting/paused)")
    status.add_argument("--now", metavar="ISO", help="evaluate at this moment instead of the clock")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    sla.add_parser("recompute", help="recompute every open report's deadlines (after editing [calendar] or [sla.*] in the config)")
    check = sla.add_parser("check", help="run one SLA pass (warnings, breaches, escalations, reminders, digest) at a moment")
    check.add_argument("--now", metavar="ISO", help="the moment of the pass (default: the clock)")

    outbox = commands.add_parser("outbox", help="outbound mail").add_subparsers(dest="outbox_command", required=True, metavar="SUBCOMMAND")
    outbox_list = outbox.add_parser("list", help="every outbound mail with its state")
    outbox_list.add_argument("--json", action="store_true", help="machine-readable output")
    outbox.add_parser("flush", help="send everything pending now, from this process")
    outbox_retry = outbox.add_parser("retry", help="make a failed or waiting mail due again now")
    outbox_retry.add_argument("row", metavar="ID", type=int, help="outbox id (see outbox list)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    try:
        config = load_config(config_path_from(arguments.config))
        configure_logging(config)
        return run_command(arguments, config)
    except (ConfigError, DatabaseUrlError, UsageError) as error:
        print(f"mailintake: {error}", file=sys.stderr)
        return EXIT_USAGE
    except SQLAlchemyError as error:
        # Only the class: SQLAlchemy's message carries the statement's parameters.
        cause = getattr(error, "orig", None) or error
        print(f"mailintake: database error ({type(cause).__name__}); is it reachable and upgraded (`mailintake db upgrade`)?", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_FAILURE
    except BrokenPipeError:
        sys.stderr.close()
        return EXIT_FAILURE


def configure_logging(config: Config) -> None:
    logging.basicConfig(level=config.logging.level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for name, level in QUIET_LIBRARY_LOGGERS.items():
        # aiosmtpd logs envelope addresses and command lines below ERROR; mail-parser logs
        # subjects and file names at every level, so it is silenced.
        logging.getLogger(name).setLevel(level)


def run_command(arguments: argparse.Namespace, config: Config) -> int:
    handlers: dict[tuple[str, str | None], Callable[[argparse.Namespace, Config], int]] = {
        ("serve", None): command_serve,
        ("db", "upgrade"): command_db_upgrade,
        ("reports", "list"): command_reports_list,
        ("reports", "show"): command_reports_show,
        ("inbound", "failed"): command_inbound_failed,
        ("inbound", "retry"): command_inbound_retry,
        ("holidays", "list"): command_holidays_list,
        ("holidays", "add"): command_holidays_add,
        ("holidays", "remove"): command_holidays_remove,
        ("calendar", "show"): command_calendar_show,
        ("calendar", "deadline"): command_calendar_deadline,
        ("calendar", "export"): command_calendar_export,
        ("sla", "status"): command_sla_status,
        ("sla", "recompute"): command_sla_recompute,
        ("sla", "check"): command_sla_check,
        ("outbox", "list"): command_outbox_list,
        ("outbox", "flush"): command_outbox_flush,
        ("outbox", "retry"): command_outbox_retry,
    }
    subcommand = getattr(arguments, f"{arguments.command}_command", None)
    return handlers[(arguments.command, subcommand)](arguments, config)


def command_serve(arguments: argparse.Namespace, config: Config) -> int:
    from mailintake.service.daemon import SchemaNotCurrent, run_serve

    try:
        run_serve(config)
    except (SchemaNotCurrent, TemplateError) as error:
        raise UsageError(str(error)) from None
    except OSError as error:
        raise UsageError(f"cannot listen on {config.listener.host}:{config.listener.port}: {error.strerror}") from None
    return 0


def command_db_upgrade(arguments: argparse.Namespace, config: Config) -> int:
    engine = create_database_engine(config.database.url)
    upgrade_database(engine)
    engine.dispose()
    print("database is at the current schema version")
    return 0


def command_reports_list(arguments: argparse.Namespace, config: Config) -> int:
    with transaction(sessions_for(config)) as session:
        summaries = report_summaries(session)
    return print_listing(summaries, arguments.json, report_line, "no reports")


def report_line(item: dict[str, Any]) -> str:
    severity = item["suggested_severity"] or "-"
    marks = "".join(f"  [{label}: {item[key]}]" for key, label in (("flag", "FLAGGED"), ("automated", "machine mail")) if item[key])
    return f"{item['tracking_id']}  {item['received_at']}  {item['status']:<10} {severity:<8} {item['reporter'] or '-'}  {item['subject']}{marks}"


def command_reports_show(arguments: argparse.Namespace, config: Config) -> int:
    try:
        with transaction(sessions_for(config)) as session:
            detail = report_detail(session, arguments.tracking_id)
    except ReportNotFound:
        raise UsageError(f"no report with tracking id {arguments.tracking_id!r}") from None
    if arguments.json:
        print_json(detail)
    else:
        print_report(detail)
    return 0


def print_report(detail: dict[str, Any]) -> None:
    show(f"{detail['tracking_id']}  {detail['status']}  received {detail['received_at']}")
    show(f"Subject:   {detail['subject']}")
    show(f"Reporter:  {detail['reporter'] or '-'}{'  (anonymous)' if detail['anonymous'] else ''}")
    show(f"Severity:  {detail['severity'] or '-'} (reporter suggested {detail['suggested_severity'] or '-'})")
    show(f"Assignee:  {detail['assignee'] or '-'}    ETA: {detail['eta'] or '-'}    Bounty: {detail['bounty'] or '-'}")
    show(f"Credit as: {detail['credit_as'] or '-'}")
    if detail["flag"]:
        show(f"FLAGGED:   {detail['flag']}{'  (pointed at ' + detail['related'] + ', not added to it)' if detail['related'] else ''}")
    if detail["duplicate_of"]:
        show(f"Duplicate of {detail['duplicate_of']}")
    for url in detail["urls"] + detail["endpoints"]:
        show(f"Mentions:  {url}")
    if detail["duplicate_deliveries"]:
        show(f"Duplicate deliveries: inbound {', '.join(str(item) for item in detail['duplicate_deliveries'])}")
    show()
    show("Milestones")
    for milestone in detail["milestones"]:
        met = f"met {milestone['met_at']} by {milestone['met_by']}" if milestone["met_at"] else ("open" if milestone["awaiting"] else "-")
        show(f"  {milestone['name']:<18} due {milestone['due_at'] or '-':<22} {met}")
    for pause in detail["pauses"]:
        show(f"  paused {pause['started_at']} by {pause['started_by']} until {pause['ended_at'] or 'now'}{' by ' + pause['ended_by'] if pause['ended_by'] else ''}")
    for message in detail["messages"]:
        show()
        author = f" by {message['author']}" if message["author"] and message["direction"] == "out" else ""
        show(f"--- {message['kind']} ({message['direction']})  {message['received_at']}  from {message['from'] or '-'}{author}  sha256 {message['sha256']}")
        for attachment in message["attachments"]:
            show(f"    attachment {attachment['filename']} ({attachment['content_type']}, {attachment['size']} bytes, sha256 {attachment['sha256']})")
        show(message["body"])


def command_inbound_failed(arguments: argparse.Namespace, config: Config) -> int:
    with transaction(sessions_for(config)) as session:
        columns = (InboundMessage.id, InboundMessage.received_at, InboundMessage.size, InboundMessage.sha256, InboundMessage.attempts, InboundMessage.last_error, InboundMessage.next_attempt_at)
        rows = session.execute(select(*columns).where(InboundMessage.status == "failed").order_by(InboundMessage.id)).all()
        items = [
            {
                "id": row.id,
                "received_at": iso_utc(row.received_at),
                "size": row.size,
                "sha256": row.sha256,
                "attempts": row.attempts,
                "last_error": row.last_error,
                "next_attempt_at": iso_utc(row.next_attempt_at) if row.next_attempt_at else None,
            }
            for row in rows
        ]
    return print_listing(items, arguments.json, failed_line, "no failed deliveries")


def failed_line(item: dict[str, Any]) -> str:
    retry = f"next try {item['next_attempt_at']}" if item["next_attempt_at"] else "no automatic retry left"
    return f"{item['id']}  {item['received_at']}  {item['size']} bytes  attempts {item['attempts']}  {item['last_error']}  ({retry})"


def command_inbound_retry(arguments: argparse.Namespace, config: Config) -> int:
    sessions = sessions_for(config)
    failed = failed_inbound_ids(sessions)
    not_failed = sorted(set(arguments.ids) - set(failed))
    if not_failed:
        raise UsageError(f"inbound {not_failed[0]} is not a failed delivery (see `mailintake inbound failed`)")
    ids = arguments.ids or failed
    parser = parser_pool_for(config.intake)
    rules = ProcessingRules.from_config(config, mailer_for(config))
    still_failed = 0
    try:
        for inbound_id in ids:
            outcome = process_inbound(sessions, parser, rules, inbound_id, utc_now, manual=True)
            print(f"inbound {inbound_id}: {outcome.status}{' ' + outcome.tracking_id if outcome.tracking_id else ''}")
            still_failed += outcome.status == "failed"
    finally:
        parser.close()
    if not ids:
        print("no failed deliveries")
    return EXIT_FAILURE if still_failed else 0


def command_holidays_list(arguments: argparse.Namespace, config: Config) -> int:
    year = arguments.year or utc_now().year
    with transaction(sessions_for(config)) as session:
        entries = calendar_entries(session, config.calendar, year)
    return print_listing([entry_view(entry) for entry in entries], arguments.json, entry_line, f"no holidays or closures in {year}")


def entry_line(item: dict[str, Any]) -> str:
    changed = f"  (by {item['changed_by']}, {item['changed_at']})" if item["changed_by"] else ""
    days = item["first_day"] if item["first_day"] == item["last_day"] else f"{item['first_day']}..{item['last_day']}"
    return f"{days:<22}  {item['source']:<22}  {item['name']}{changed}"


def entry_view(entry: CalendarEntry) -> dict[str, Any]:
    return {
        "first_day": entry.first_day.isoformat(),
        "last_day": entry.last_day.isoformat(),
        "name": entry.name,
        "source": entry.source,
        "changed_by": entry.changed_by,
        "changed_at": iso_utc(entry.changed_at) if entry.changed_at else None,
    }


def command_holidays_add(arguments: argparse.Namespace, config: Config) -> int:
    first_day, last_day = day_range(arguments.days)
    now = utc_now()
    with transaction(sessions_for(config)) as session:
        try:
            change = add_closure(session, first_day, last_day, arguments.name, arguments.by or login_name(), now)
        except CalendarAdminError as error:
            raise UsageError(str(error)) from None
        moved = recompute_after_change(session, config.calendar, config.sla, now, change.first_day)
        print(f"closed {format_range(change.first_day, change.last_day)}: {change.name}; {moved} open deadline(s) moved")
    return 0


def command_holidays_remove(arguments: argparse.Namespace, config: Config) -> int:
    day = one_day(arguments.day)
    now = utc_now()
    with transaction(sessions_for(config)) as session:
        try:
            changed_from, done = remove_day(session, config.calendar, day, arguments.by or login_name(), now)
        except CalendarAdminError as error:
            raise UsageError(str(error)) from None
        moved = recompute_after_change(session, config.calendar, config.sla, now, changed_from)
        print(f"{done}; {moved} open deadline(s) moved")
    return 0


def command_calendar_show(arguments: argparse.Namespace, config: Config) -> int:
    year = arguments.year or utc_now().year
    with transaction(sessions_for(config)) as session:
        calendar = effective_calendar(session, config.calendar)
        entries = calendar_entries(session, config.calendar, year)
    sys.stdout.write(year_view(calendar, year, entries))
    return 0


def command_calendar_deadline(arguments: argparse.Namespace, config: Config) -> int:
    with transaction(sessions_for(config)) as session:
        calendar = effective_calendar(session, config.calendar)
    start = moment_in(calendar, arguments.start, "--from")
    try:
        explanation = calendar.explain(start, parse_duration(arguments.within))
    except (DurationError, CalendarError) as error:
        raise UsageError(f"--within: {error}") from None
    skipped = format_skipped_days(explanation.skipped)
    if arguments.json:
        print_json({"from": start.isoformat(), "within": str(explanation.duration), "deadline": explanation.deadline.isoformat(), "deadline_utc": iso_utc(explanation.deadline.astimezone(timezone.utc)), "skipped": skipped})
        return 0
    print(explanation.deadline.isoformat())
    if arguments.explain:
        print(f"{explanation.duration} from {start.isoformat()} ({calendar.timezone}); days skipped:")
        for line in skipped or ["none"]:
            print(f"  {line}")
    return 0


def command_calendar_export(arguments: argparse.Namespace, config: Config) -> int:
    now = utc_now()
    years = arguments.year or [now.year, now.year + 1]
    with transaction(sessions_for(config)) as session:
        calendar = effective_calendar(session, config.calendar)
        entries = [entry for year in sorted(set(years)) for entry in calendar_entries(session, config.calendar, year)]
    unique = list(dict.fromkeys(entries))
    sys.stdout.buffer.write(ics_export(calendar, unique, now))
    sys.stdout.flush()
    return 0


def command_sla_status(arguments: argparse.Namespace, config: Config) -> int:
    with transaction(sessions_for(config)) as session:
        calendar = effective_calendar(session, config.calendar)
        now = moment_in(calendar, arguments.now, "--now") if arguments.now else utc_now()
        views = milestone_views(session, config.sla, calendar, now)
    items = [milestone_item(view, calendar, now) for view in views]
    return print_listing(items, arguments.json, milestone_line, "no open milestones")


def milestone_line(item: dict[str, Any]) -> str:
    promise = f"  (promised {item['promised_due_at']}, recomputed {item['computed_due_at']})" if item["promise_differs"] else ""
    return f"{item['tracking_id']}  {item['milestone']:<16} {item['state']:<9} due {item['due_at'] or '-'}  {item['left']}{promise}"


def command_sla_recompute(arguments: argparse.Namespace, config: Config) -> int:
    with transaction(sessions_for(config)) as session:
        moved = refresh_open_reports(session, config.sla, effective_calendar(session, config.calendar), utc_now())
    print(f"{moved} open deadline(s) moved")
    return 0


def command_sla_check(arguments: argparse.Namespace, config: Config) -> int:
    sessions = sessions_for(config)
    with transaction(sessions) as session:
        calendar = effective_calendar(session, config.calendar)
    now = moment_in(calendar, arguments.now, "--now") if arguments.now else utc_now()
    enqueued = scheduled_pass(sessions, config, mailer_for(config), now)
    print(f"SLA pass at {now.astimezone(calendar.zone).isoformat()}: {enqueued} mail(s) enqueued")
    return 0


def command_outbox_list(arguments: argparse.Namespace, config: Config) -> int:
    with transaction(sessions_for(config)) as session:
        items = [outbox_view(row) for row in outbox_rows(session)]
    return print_listing(items, arguments.json, outbox_line, "the outbox is empty")


def outbox_view(row: OutboxMessage) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "status": row.status,
        "report_id": row.report_id,
        "recipients": row.recipients,
        "message_id": row.message_id,
        "attempts": row.attempts,
        "created_at": iso_utc(row.created_at),
        "next_attempt_at": iso_utc(row.next_attempt_at) if row.next_attempt_at else None,
        "sent_at": iso_utc(row.sent_at) if row.sent_at else None,
        "last_reply": row.last_reply,
    }


def outbox_line(item: dict[str, Any]) -> str:
    when = item["sent_at"] or item["next_attempt_at"] or item["created_at"]
    return f"{item['id']:>5}  {item['status']:<8} {item['kind']:<20} attempts {item['attempts']}  {when}  to {', '.join(item['recipients'])}  {item['last_reply'] or ''}"


def command_outbox_flush(arguments: argparse.Namespace, config: Config) -> int:
    sessions = sessions_for(config)
    with transaction(sessions) as session:
        release_waiting(session)
    mailer = mailer_for(config)
    attempted = 0
    while (batch := asyncio.run(deliver_due(sessions, config, mailer, utc_now))) > 0 and attempted < FLUSH_LIMIT:
        attempted += batch
    with transaction(sessions) as session:
        counts = Counter(row.status for row in outbox_rows(session))
    print(f"attempted {attempted}; outbox now: " + ", ".join(f"{count} {status}" for status, count in sorted(counts.items())))
    return 0


def command_outbox_retry(arguments: argparse.Namespace, config: Config) -> int:
    with transaction(sessions_for(config)) as session:
        try:
            row = retry_now(session, arguments.row)
        except OutboxRetryRefused as error:
            raise UsageError(str(error)) from None
        print(f"outbox {row.id} ({row.kind}) is due now")
    return 0


def mailer_for(config: Config) -> Mailer:
    try:
        templates = Templates(config.templates.dir)
        templates.check(REQUIRED)
    except TemplateError as error:
        raise UsageError(str(error)) from None
    return Mailer(config, templates, config.secrets.reply_key())


def milestone_item(view: MilestoneView, calendar: BusinessCalendar, now: datetime) -> dict[str, Any]:
    status = view.status

    def local(moment: datetime | None) -> str | None:
        return moment.astimezone(calendar.zone).isoformat() if moment else None

    return {
        "tracking_id": view.tracking_id,
        "milestone": status.name,
        "state": status.state,
        "started_at": local(status.started_at),
        "due_at": local(view.due_at),
        "warn_at": local(status.warn_at),
        "met_at": local(status.met_at),
        "computed_due_at": local(view.computed_due_at),
        "promised_due_at": local(view.promised_due_at),
        "promise_differs": view.promised_due_at is not None and view.promised_due_at != view.computed_due_at,
        "business_seconds_left": int(calendar.business_time_between(now, view.due_at).total_seconds()) if view.due_at and status.state not in ("met",) else None,
        "left": time_left_text(calendar, now, view.due_at, status.state),
    }


def time_left_text(calendar: BusinessCalendar, now: datetime, due_at: datetime | None, state: str) -> str:
    if state in ("met", "waiting", "paused") or due_at is None:
        return ""
    if now > due_at:
        return f"overdue by {duration_text(now - due_at)}"
    return f"{duration_text(calendar.business_time_between(now, due_at))} business time left"


def day_range(text: str) -> tuple[date, date]:
    first, separator, last = text.partition("..")
    first_day = one_day(first)
    return first_day, one_day(last) if separator else first_day


def one_day(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{text!r} is not a real date (expected YYYY-MM-DD)") from None


def moment_in(calendar: BusinessCalendar, text: str, option: str) -> datetime:
    """An ISO 8601 moment; without an offset it is wall time in the calendar's zone."""
    try:
        moment = isoparse(text)
    except (ValueError, OverflowError):
        raise UsageError(f"{option}: {text!r} is not an ISO 8601 date and time (e.g. 2026-12-23T16:00+01:00)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=calendar.zone)


def login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def sessions_for(config: Config) -> Any:
    return session_factory(create_database_engine(config.database.url))


def print_listing(items: list[dict[str, Any]], as_json: bool, line: Callable[[dict[str, Any]], str], empty: str) -> int:
    if as_json:
        print_json(items)
        return 0
    for item in items:
        show(line(item))
    if not items:
        print(empty)
    return 0


def show(text: str = "") -> None:
    """Print text from outside (subjects, bodies, names) with control characters made
    visible, so a report cannot drive the admin's terminal (escape sequences)."""
    print(terminal_safe(text))


def terminal_safe(text: str) -> str:
    return "".join(character if character in "\n\t" or unicodedata.category(character) not in ("Cc", "Cf") else f"\\u{ord(character):04x}" for character in text)


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")

"""Command line: `mailintake --config PATH <command>`. Bad input: one line on stderr, exit 2."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from sqlalchemy import select
from sqlalchemy.exc import OperationalError, ProgrammingError

from mailintake import __version__
from mailintake.clock import utc_now
from mailintake.config import Config, ConfigError, config_path_from, load_config
from mailintake.db import DatabaseUrlError, create_database_engine, session_factory, transaction, upgrade_database
from mailintake.models import InboundMessage
from mailintake.parser_pool import ParserPool
from mailintake.processing import ProcessingRules, failed_inbound_ids, process_inbound
from mailintake.reports import ReportNotFound, iso_utc, report_detail, report_summaries

EXIT_USAGE = 2
EXIT_FAILURE = 1
QUIET_LIBRARY_LOGGERS = {"mail.log": logging.ERROR, "mailparser": logging.ERROR, "alembic": logging.WARNING}


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
    show = reports.add_parser("show", help="one report with its messages and attachments")
    show.add_argument("tracking_id", metavar="ID", help="tracking id, e.g. SEC-2026-0001")
    show.add_argument("--json", action="store_true", help="machine-readable output")

    inbound = commands.add_parser("inbound", help="stored deliveries that failed processing").add_subparsers(dest="inbound_command", required=True, metavar="SUBCOMMAND")
    failed = inbound.add_parser("failed", help="list deliveries whose processing failed (their raw bytes are kept)")
    failed.add_argument("--json", action="store_true", help="machine-readable output")
    retry = inbound.add_parser("retry", help="process failed deliveries again now")
    retry.add_argument("ids", metavar="ID", nargs="*", type=int, help="inbound ids (default: every failed one)")
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
    except (OperationalError, ProgrammingError) as error:
        print(f"mailintake: database error ({type(error.orig).__name__ if error.orig else type(error).__name__}); is it reachable and upgraded (`mailintake db upgrade`)?", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_FAILURE
    except BrokenPipeError:
        sys.stderr.close()
        return EXIT_FAILURE


def configure_logging(config: Config) -> None:
    logging.basicConfig(level=config.logging.level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for name, level in QUIET_LIBRARY_LOGGERS.items():
        # aiosmtpd and mail-parser log envelope addresses, filenames and message lines below ERROR.
        logging.getLogger(name).setLevel(level)


def run_command(arguments: argparse.Namespace, config: Config) -> int:
    handlers: dict[tuple[str, str | None], Callable[[argparse.Namespace, Config], int]] = {
        ("serve", None): command_serve,
        ("db", "upgrade"): command_db_upgrade,
        ("reports", "list"): command_reports_list,
        ("reports", "show"): command_reports_show,
        ("inbound", "failed"): command_inbound_failed,
        ("inbound", "retry"): command_inbound_retry,
    }
    subcommand = getattr(arguments, f"{arguments.command}_command", None)
    return handlers[(arguments.command, subcommand)](arguments, config)


def command_serve(arguments: argparse.Namespace, config: Config) -> int:
    from mailintake.daemon import SchemaNotCurrent, run_serve

    try:
        run_serve(config)
    except SchemaNotCurrent as error:
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
    if arguments.json:
        print_json(summaries)
        return 0
    for item in summaries:
        severity = item["suggested_severity"] or "-"
        print(f"{item['tracking_id']}  {item['received_at']}  {item['status']:<10} {severity:<8} {item['reporter'] or '-'}  {item['subject']}")
    if not summaries:
        print("no reports")
    return 0


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
    print(f"{detail['tracking_id']}  {detail['status']}  received {detail['received_at']}")
    print(f"Subject:   {detail['subject']}")
    print(f"Reporter:  {detail['reporter'] or '-'}{'  (anonymous)' if detail['anonymous'] else ''}")
    print(f"Severity:  {detail['suggested_severity'] or '-'} (suggested by the reporter)")
    print(f"Credit as: {detail['credit_as'] or '-'}")
    for url in detail["urls"] + detail["endpoints"]:
        print(f"Mentions:  {url}")
    if detail["duplicate_deliveries"]:
        print(f"Duplicate deliveries: inbound {', '.join(str(item) for item in detail['duplicate_deliveries'])}")
    for message in detail["messages"]:
        print()
        print(f"--- {message['direction']}  {message['received_at']}  from {message['from'] or '-'}  sha256 {message['sha256']}")
        for attachment in message["attachments"]:
            print(f"    attachment {attachment['filename']} ({attachment['content_type']}, {attachment['size']} bytes, sha256 {attachment['sha256']})")
        print(message["body"])


def command_inbound_failed(arguments: argparse.Namespace, config: Config) -> int:
    with transaction(sessions_for(config)) as session:
        rows = session.scalars(select(InboundMessage).where(InboundMessage.status == "failed").order_by(InboundMessage.id)).all()
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
    if arguments.json:
        print_json(items)
        return 0
    for item in items:
        retry = f"next try {item['next_attempt_at']}" if item["next_attempt_at"] else "no automatic retry left"
        print(f"{item['id']}  {item['received_at']}  {item['size']} bytes  attempts {item['attempts']}  {item['last_error']}  ({retry})")
    if not items:
        print("no failed deliveries")
    return 0


def command_inbound_retry(arguments: argparse.Namespace, config: Config) -> int:
    sessions = sessions_for(config)
    ids = arguments.ids or failed_inbound_ids(sessions)
    parser = ParserPool(timeout=config.intake.parse_timeout)
    rules = ProcessingRules.from_config(config)
    still_failed = 0
    try:
        for inbound_id in ids:
            outcome = process_inbound(sessions, parser, rules, inbound_id, utc_now)
            print(f"inbound {inbound_id}: {outcome.status}{' ' + outcome.tracking_id if outcome.tracking_id else ''}")
            still_failed += outcome.status == "failed"
    finally:
        parser.close()
    if not ids:
        print("no failed deliveries")
    return EXIT_FAILURE if still_failed else 0


def sessions_for(config: Config) -> Any:
    return session_factory(create_database_engine(config.database.url))


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")

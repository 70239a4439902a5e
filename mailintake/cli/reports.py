"""reports: list the reports, show one with its whole thread, take out a message's raw
bytes and the attachments (written with safe names, checked against their sha256)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from mailintake.cli.context import AppContext
from mailintake.cli.output import DEFAULT_PAGE, FileRefused, Listed, add_paging_options, print_json, print_listing, print_paged_listing, saved_attachment, show, write_bytes_out
from mailintake.cli.parser import EXIT_FAILURE, Subcommands, UsageError, add_command, add_group, add_json_option, shown
from mailintake.core.vocabulary import STATUSES
from mailintake.reports.read_model import MessageNotFound, RawNotStored, ReportNotFound, attachment_content, report_attachments, report_detail, report_message_raw, report_summaries


def add_to(commands: Subcommands) -> None:
    reports = add_group(commands, "reports", "list and show reports")
    listing = add_command(reports, "list", f"reports, oldest first ({DEFAULT_PAGE} unless --limit)", list_reports)
    listing.add_argument("--status", action="append", choices=STATUSES, help="only reports with this status (repeatable)")
    add_paging_options(listing, "ID", "continue after the report with this tracking id, e.g. SEC-2026-0042 (as a full page's last line says)")
    add_json_option(listing)
    detail = add_command(reports, "show", "one report: its whole thread in order, its milestones and who met them", show_report)
    detail.add_argument("tracking_id", metavar="ID", help="tracking id, e.g. SEC-2026-0001")
    add_json_option(detail)
    raw = add_command(reports, "raw", "the raw bytes of a message of the thread, exactly as received (the sha256 of the 250 reply)", write_raw)
    raw.add_argument("tracking_id", metavar="ID", help="tracking id, e.g. SEC-2026-0001")
    raw.add_argument("--message", metavar="N", type=message_number, default=1, help="the Nth message of the thread as `reports show` numbers it (default 1: the report itself)")
    raw.add_argument("-o", "--output", metavar="FILE", help="write to FILE, a new file readable by its owner only (default: stdout, when it is not a terminal)")
    raw.add_argument("--force", action="store_true", help="with -o: replace FILE if it exists")
    attachments = add_command(reports, "attachments", "the attachments of a report's thread; --save DIR writes them there, each checked against its sha256", list_attachments)
    attachments.add_argument("tracking_id", metavar="ID", help="tracking id, e.g. SEC-2026-0001")
    attachments.add_argument("--save", metavar="DIR", help="write each attachment into the existing directory DIR under a safe name (numbered when taken), readable by its owner only")
    add_json_option(attachments)


def list_reports(arguments: argparse.Namespace, context: AppContext) -> int:
    statuses = arguments.status or ()

    def fetch(after: str | None, size: int) -> list[Listed]:
        try:
            with context.transaction() as session:
                return [Listed(summary, summary["tracking_id"]) for summary in report_summaries(session, statuses, after, size)]
        except ReportNotFound:
            raise UsageError(f"--after: no report with tracking id {after!r}") from None

    return print_paged_listing(fetch, arguments, report_line, "no reports")


def report_line(item: dict[str, Any]) -> str:
    severity = item["suggested_severity"] or "-"
    marks = (f"  [FLAGGED: {item['flag']}]" if item["flag"] else "") + (f"  [{not_answered(item['automated'])}]" if item["automated"] else "")
    return f"{item['tracking_id']}  {item['received_at']}  {item['status']:<10} {severity:<8} {item['reporter'] or '-'}  {item['subject']}{marks}"


def not_answered(reason: str) -> str:
    """Why a report got no acknowledgement: machine mail, a forged sender, or held back by
    the hourly limit (which says so itself, and is acknowledged later)."""
    return reason if reason.startswith("no acknowledgement") else f"not answered: {reason}"


def show_report(arguments: argparse.Namespace, context: AppContext) -> int:
    try:
        with context.transaction() as session:
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
    for number, message in enumerate(detail["messages"], start=1):
        show()
        author = f" by {message['author']}" if message["author"] and message["direction"] == "out" else ""
        show(f"--- {message['kind']} ({message['direction']})  message {number}  {message['received_at']}  from {message['from'] or '-'}{author}  sha256 {message['sha256']}")
        for attachment in message["attachments"]:
            show(f"    attachment {attachment['filename']} ({attachment['content_type']}, {attachment['size']} bytes, sha256 {attachment['sha256']})")
        show(message["body"])


def message_number(text: str) -> int:
    """argparse type of --message: a position in the thread, from 1."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{shown(text)} is not a message number (1 is the report itself)") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{shown(text)}: messages are numbered from 1 (the report itself)")
    return number


def write_raw(arguments: argparse.Namespace, context: AppContext) -> int:
    if arguments.force and arguments.output is None:
        raise UsageError("--force only applies to -o FILE")
    try:
        with context.transaction() as session:
            data = report_message_raw(session, arguments.tracking_id, arguments.message)
    except ReportNotFound:
        raise UsageError(f"no report with tracking id {shown(arguments.tracking_id)}") from None
    except MessageNotFound as error:
        raise UsageError(f"{arguments.tracking_id.upper()}: {error}") from None
    except RawNotStored as error:
        print(f"mailintake: {arguments.tracking_id.upper()}: {error}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        write_bytes_out(data, arguments.output, arguments.force)
    except FileRefused as refused:
        raise UsageError(str(refused)) from None
    return 0


def list_attachments(arguments: argparse.Namespace, context: AppContext) -> int:
    directory = None if arguments.save is None else existing_directory(arguments.save)
    try:
        with context.transaction() as session:
            items = report_attachments(session, arguments.tracking_id)
    except ReportNotFound:
        raise UsageError(f"no report with tracking id {shown(arguments.tracking_id)}") from None
    if directory is not None:
        failure = save_attachments(items, directory, context)
        if failure:
            print(f"mailintake: {failure}", file=sys.stderr)
            return EXIT_FAILURE
    return print_listing(items, arguments.json, attachment_line, "no attachments")


def existing_directory(text: str) -> Path:
    directory = Path(text)
    if not text or not is_directory(directory):
        raise UsageError(f"--save: {shown(text)} is not an existing directory")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UsageError(f"--save: cannot write in {shown(text)}")
    return directory


def is_directory(path: Path) -> bool:
    """False, not an error, for a name the system cannot look up (too long, a NUL byte)."""
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def save_attachments(items: list[dict[str, Any]], directory: Path, context: AppContext) -> str | None:
    """Write each attachment (read one at a time) and set its "saved_as"; a file whose bytes
    read back do not match the stored sha256 is removed, and the first failure, as one
    line without the file's name, ends the saving."""
    for position, item in enumerate(items, start=1):
        with context.transaction() as session:
            content = attachment_content(session, item["attachment_id"])
        where = f"attachment {position} (message {item['message']})"
        try:
            path, digest = saved_attachment(directory, item["filename"], content)
        except FileRefused as refused:
            return f"{where}: {refused}"
        if digest != item["sha256"]:
            path.unlink()
            return f"{where}: the bytes written do not match the stored sha256 {item['sha256']}; the file was removed"
        item["saved_as"] = str(path)
    return None


def attachment_line(item: dict[str, Any]) -> str:
    saved = f"  saved as {item['saved_as']} (sha256 checked)" if "saved_as" in item else ""
    return f"message {item['message']}  {item['filename']}  {item['content_type']}  {item['size']} bytes  sha256 {item['sha256']}{saved}"

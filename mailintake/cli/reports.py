"""reports: list the reports and show one with its whole thread."""

from __future__ import annotations

import argparse
from typing import Any

from mailintake.cli.context import AppContext
from mailintake.cli.output import DEFAULT_PAGE, Listed, add_paging_options, print_json, print_paged_listing, show
from mailintake.cli.parser import Subcommands, UsageError, add_command, add_group, add_json_option
from mailintake.core.vocabulary import STATUSES
from mailintake.reports.read_model import ReportNotFound, report_detail, report_summaries


def add_to(commands: Subcommands) -> None:
    reports = add_group(commands, "reports", "list and show reports")
    listing = add_command(reports, "list", f"reports, oldest first ({DEFAULT_PAGE} unless --limit)", list_reports)
    listing.add_argument("--status", action="append", choices=STATUSES, help="only reports with this status (repeatable)")
    add_paging_options(listing, "ID", "continue after the report with this tracking id, e.g. SEC-2026-0042 (as a full page's last line says)")
    add_json_option(listing)
    detail = add_command(reports, "show", "one report: its whole thread in order, its milestones and who met them", show_report)
    detail.add_argument("tracking_id", metavar="ID", help="tracking id, e.g. SEC-2026-0001")
    add_json_option(detail)


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
    marks = "".join(f"  [{label}: {item[key]}]" for key, label in (("flag", "FLAGGED"), ("automated", "machine mail")) if item[key])
    return f"{item['tracking_id']}  {item['received_at']}  {item['status']:<10} {severity:<8} {item['reporter'] or '-'}  {item['subject']}{marks}"


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
    for message in detail["messages"]:
        show()
        author = f" by {message['author']}" if message["author"] and message["direction"] == "out" else ""
        show(f"--- {message['kind']} ({message['direction']})  {message['received_at']}  from {message['from'] or '-'}{author}  sha256 {message['sha256']}")
        for attachment in message["attachments"]:
            show(f"    attachment {attachment['filename']} ({attachment['content_type']}, {attachment['size']} bytes, sha256 {attachment['sha256']})")
        show(message["body"])

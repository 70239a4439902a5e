"""outbox: outbound mail: its state, sending what is pending now, making a mail due again."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from mailintake.cli.context import AppContext
from mailintake.cli.output import DEFAULT_PAGE, Listed, add_paging_options, print_paged_listing
from mailintake.cli.parser import Subcommands, UsageError, add_command, add_group, add_json_option, row_id
from mailintake.outbound.outbox import OutboxRetryRefused, outbox_rows, release_waiting, retry_now, status_counts
from mailintake.reports.read_model import iso_utc
from mailintake.storage.models import OutboxMessage

FLUSH_LIMIT = 10_000
OUTBOX_STATUSES = ("pending", "sending", "sent", "failed")


def add_to(commands: Subcommands) -> None:
    outbox = add_group(commands, "outbox", "outbound mail")
    listing = add_command(outbox, "list", f"outbound mail with its state, oldest first ({DEFAULT_PAGE} unless --limit), never reading the messages", list_outbox)
    listing.add_argument("--status", action="append", choices=OUTBOX_STATUSES, help="only mail in this state (repeatable)")
    listing.add_argument("--kind", action="append", metavar="KIND", help="only mail of this kind, e.g. acknowledgement, staff_notification, sla_breach, daily_digest (repeatable)")
    add_paging_options(listing, "ID", "continue after this outbox id (as a full page's last line says)")
    add_json_option(listing)
    add_command(outbox, "flush", "send everything pending now, from this process", flush_outbox)
    retry = add_command(outbox, "retry", "make a failed or waiting mail due again now", retry_row)
    retry.add_argument("row", metavar="ID", type=row_id, help="outbox id (see outbox list)")


def list_outbox(arguments: argparse.Namespace, context: AppContext) -> int:
    statuses, kinds = arguments.status or (), arguments.kind or ()

    def fetch(after: str | None, size: int) -> list[Listed]:
        with context.transaction() as session:
            return [Listed(outbox_view(row), str(row.id)) for row in outbox_rows(session, statuses, kinds, outbox_id(after), size)]

    return print_paged_listing(fetch, arguments, outbox_line, "the outbox is empty")


def outbox_id(after: str | None) -> int | None:
    if after is None:
        return None
    try:
        return row_id(after)
    except argparse.ArgumentTypeError as error:
        raise UsageError(f"--after: {error} (see outbox list)") from None


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


def flush_outbox(arguments: argparse.Namespace, context: AppContext) -> int:
    from mailintake.outbound.send import deliver_due  # the SMTP client, only for the command that sends

    with context.transaction() as session:
        release_waiting(session)
    notices = context.notices
    attempted = 0
    while (batch := asyncio.run(deliver_due(context.sessions, context.config, notices, context.clock))) > 0 and attempted < FLUSH_LIMIT:
        attempted += batch
    with context.transaction() as session:
        counts = status_counts(session)
    print(f"attempted {attempted}; outbox now: " + ", ".join(f"{count} {status}" for status, count in sorted(counts.items())))
    return 0


def retry_row(arguments: argparse.Namespace, context: AppContext) -> int:
    with context.transaction() as session:
        try:
            row = retry_now(session, arguments.row)
        except OutboxRetryRefused as error:
            raise UsageError(str(error)) from None
        print(f"outbox {row.id} ({row.kind}) is due now")
    return 0

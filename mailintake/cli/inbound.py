"""inbound: stored deliveries whose processing failed, and processing them again now."""

from __future__ import annotations

import argparse
from contextlib import closing
from typing import Any

from sqlalchemy import select

from mailintake.cli.context import AppContext
from mailintake.cli.output import print_listing
from mailintake.cli.parser import EXIT_FAILURE, Subcommands, UsageError, add_command, add_group, add_json_option
from mailintake.reports.read_model import iso_utc
from mailintake.storage.inbound_queue import failed_inbound_ids
from mailintake.storage.models import InboundMessage


def add_to(commands: Subcommands) -> None:
    inbound = add_group(commands, "inbound", "stored deliveries that failed processing")
    add_json_option(add_command(inbound, "failed", "list deliveries whose processing failed (their raw bytes are kept)", list_failed))
    retry = add_command(inbound, "retry", "process failed deliveries again now", retry_failed)
    retry.add_argument("ids", metavar="ID", nargs="*", type=int, help="inbound ids (default: every failed one)")


def list_failed(arguments: argparse.Namespace, context: AppContext) -> int:
    with context.transaction() as session:
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


def retry_failed(arguments: argparse.Namespace, context: AppContext) -> int:
    failed = failed_inbound_ids(context.sessions)
    not_failed = sorted(set(arguments.ids) - set(failed))
    if not_failed:
        raise UsageError(f"inbound {not_failed[0]} is not a failed delivery (see `mailintake inbound failed`)")
    ids = arguments.ids or failed
    from mailintake.parse.pool import parser_pool_for
    from mailintake.pipeline import Services, process_inbound

    services = Services.from_config(context.config, context.notices)
    still_failed = 0
    with closing(parser_pool_for(context.config.intake)) as parser:
        for inbound_id in ids:
            outcome = process_inbound(context.sessions, parser, services, inbound_id, context.clock, manual=True)
            print(f"inbound {inbound_id}: {outcome.status}{' ' + outcome.tracking_id if outcome.tracking_id else ''}")
            still_failed += outcome.status == "failed"
    if not ids:
        print("no failed deliveries")
    return EXIT_FAILURE if still_failed else 0

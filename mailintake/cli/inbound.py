"""inbound: stored deliveries whose processing failed, one delivery as stored (its raw
bytes on request), and processing failed ones again now."""

from __future__ import annotations

import argparse
from contextlib import closing
from typing import Any

from sqlalchemy import select

from mailintake.cli.context import AppContext
from mailintake.cli.output import FileRefused, one_line, print_json, print_listing, show, write_bytes_out
from mailintake.cli.parser import EXIT_FAILURE, Subcommands, UsageError, add_command, add_group, add_json_option, row_id
from mailintake.reports.read_model import InboundNotFound, inbound_detail, inbound_raw, iso_utc
from mailintake.storage.inbound_queue import failed_inbound_ids
from mailintake.storage.models import InboundMessage

# Header lines `inbound show` prints, and the characters of a value it prints (--json: all).
SHOWN_HEADERS = 200
SHOWN_HEADER_VALUE = 200
# Ids of stored rows fit a signed 64-bit integer (BIGINT).


def add_to(commands: Subcommands) -> None:
    inbound = add_group(commands, "inbound", "stored deliveries that failed processing")
    add_json_option(add_command(inbound, "failed", "list deliveries whose processing failed (their raw bytes are kept)", list_failed))
    retry = add_command(inbound, "retry", "process failed deliveries again now", retry_failed)
    retry.add_argument("ids", metavar="ID", nargs="*", type=row_id, help="inbound ids (default: every failed one)")
    detail = add_command(inbound, "show", "one delivery as stored: envelope, state, last error, size and sha256, its headers; --raw: its bytes", show_inbound)
    detail.add_argument("inbound_id", metavar="ID", type=row_id, help="inbound id (as `inbound failed` lists it)")
    detail.add_argument("--raw", action="store_true", help="write the stored bytes exactly (to stdout when it is not a terminal, or to -o FILE)")
    detail.add_argument("-o", "--output", metavar="FILE", help="write the stored bytes to FILE, a new file readable by its owner only (implies --raw)")
    detail.add_argument("--force", action="store_true", help="with -o: replace FILE if it exists")
    add_json_option(detail)


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
    return f"{item['id']}  {item['received_at']}  {item['size']} bytes  attempts {item['attempts']}  {item['last_error']}  ({retry_text(item)})"


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


def show_inbound(arguments: argparse.Namespace, context: AppContext) -> int:
    raw = arguments.raw or arguments.output is not None
    if arguments.json and raw:
        raise UsageError("--json shows the delivery; --raw and -o write its bytes: give one of them")
    if arguments.force and arguments.output is None:
        raise UsageError("--force only applies to -o FILE")
    try:
        with context.transaction() as session:
            if raw:
                data = inbound_raw(session, arguments.inbound_id)
            else:
                detail = inbound_detail(session, arguments.inbound_id)
    except InboundNotFound:
        raise UsageError(f"no inbound delivery with id {arguments.inbound_id}") from None
    if raw:
        try:
            write_bytes_out(data, arguments.output, arguments.force)
        except FileRefused as refused:
            raise UsageError(str(refused)) from None
    elif arguments.json:
        print_json(detail)
    else:
        print_inbound(detail)
    return 0


def print_inbound(detail: dict[str, Any]) -> None:
    show(f"inbound {detail['id']}  {detail['status']}  received {detail['received_at']} over {detail['protocol']} from {detail['peer']} (HELO {one_line(detail['helo'])})")
    show(f"Envelope:  from <{one_line(detail['envelope_from'])}> to {', '.join('<' + one_line(address) + '>' for address in detail['envelope_to'])}")
    show(f"Attempts:  {detail['attempts']}{'  ' + retry_text(detail) if detail['status'] == 'failed' else ''}")
    if detail["last_error"]:
        show(f"Error:     {one_line(detail['last_error'])}")
    show(f"Report:    {detail['report'] or '-'}{'  processed ' + detail['processed_at'] if detail['processed_at'] else ''}")
    show(f"Stored:    {detail['size']} bytes  sha256 {detail['sha256']}")
    if detail["sha256"] != detail["sha256_at_intake"]:
        show(f"WARNING:   the stored bytes changed since intake, whose 250 reply gave sha256 {detail['sha256_at_intake']}")
    show()
    headers = detail["headers"]
    show(f"Headers ({len(headers)}; the bytes: --raw)")
    for header in headers[:SHOWN_HEADERS]:
        show(f"  {header_line(header)}")
    if len(headers) > SHOWN_HEADERS:
        show(f"  … {len(headers) - SHOWN_HEADERS} more")


def retry_text(detail: dict[str, Any]) -> str:
    return f"next try {detail['next_attempt_at']}" if detail["next_attempt_at"] else "no automatic retry left"


def header_line(header: dict[str, str]) -> str:
    """One header on one line, a long value cut with "…"."""
    value = header["value"]
    cut = value[:SHOWN_HEADER_VALUE] + "…" if len(value) > SHOWN_HEADER_VALUE else value
    return f"{one_line(header['name'])}: {one_line(cut)}" if header["name"] else one_line(cut)

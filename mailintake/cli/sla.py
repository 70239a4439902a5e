"""sla: the milestones of open reports: their state, recomputing their deadlines, one SLA pass."""

from __future__ import annotations

import argparse
from contextlib import closing
from datetime import datetime
from itertools import islice
from typing import Any, get_args

from mailintake.calendar.business import BusinessCalendar
from mailintake.cli.context import AppContext
from mailintake.cli.output import DEFAULT_PAGE, Listed, add_paging_options, print_paged_listing
from mailintake.cli.parser import Subcommands, UsageError, add_command, add_group, add_json_option
from mailintake.deadlines.milestones import MilestoneFilter, MilestoneKey, MilestoneView, milestone_views, refresh_open_reports
from mailintake.reports.read_model import iso_utc
from mailintake.sla.schedule import State
from mailintake.sla.time_left import time_left_text

STATES = get_args(State)
# The DUE of a --after value for a milestone without a deadline (listed last).
NO_DUE = "none"


def add_to(commands: Subcommands) -> None:
    sla = add_group(commands, "sla", "SLA milestones of open reports")
    status = add_command(sla, "status", f"open reports' milestones, soonest due first ({DEFAULT_PAGE} unless --limit): due time, time left in the deadline's unit, state (ok/warning/breached/met/waiting/paused)", show_status)
    status.add_argument("--now", metavar="ISO", help="evaluate at this moment instead of the clock")
    status.add_argument("--state", action="append", choices=STATES, help="only milestones in this state at that moment (repeatable)")
    status.add_argument("--report", metavar="ID", help="only the milestones of this report (tracking id)")
    add_paging_options(status, "CURSOR", "continue after this milestone: the DUE,TRACKING-ID,N a full page's last line gives")
    add_json_option(status)
    add_command(sla, "recompute", "recompute every open report's deadlines (after editing [calendar] or [sla.*] in the config)", recompute)
    check = add_command(sla, "check", "run one SLA pass (warnings, breaches, escalations, reminders, digest) at a moment", check_now)
    check.add_argument("--now", metavar="ISO", help="the moment of the pass (default: the clock)")


def show_status(arguments: argparse.Namespace, context: AppContext) -> int:
    calendar = context.calendar
    now = moment_of(arguments, context)
    wanted = MilestoneFilter(frozenset(arguments.state or ()), arguments.report)

    def fetch(after: str | None, size: int) -> list[Listed]:
        with context.transaction() as session, closing(milestone_views(session, context.config.sla, calendar, now, wanted, milestone_key(after), size)) as views:
            return [Listed(milestone_item(view, calendar, now), key_text(view.key)) for view in islice(views, size)]

    return print_paged_listing(fetch, arguments, milestone_line, "no open milestones")


def key_text(key: MilestoneKey) -> str:
    """A milestone's --after value: DUE,TRACKING-ID,N (DUE in UTC, or "none")."""
    return f"{iso_utc(key.due_at) if key.due_at else NO_DUE},{key.tracking_id},{key.id}"


def milestone_key(text: str | None) -> MilestoneKey | None:
    if text is None:
        return None
    due, _, rest = text.partition(",")
    tracking_id, _, number = rest.partition(",")
    try:
        return MilestoneKey(None if due == NO_DUE else with_offset(datetime.fromisoformat(due)), tracking_id, int(number))
    except ValueError:
        raise UsageError(f"--after: {text!r} is not DUE,TRACKING-ID,N as a full page of sla status ends with") from None


def with_offset(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("a cursor's moment has an offset")
    return moment


def moment_of(arguments: argparse.Namespace, context: AppContext) -> datetime:
    """--now, or the clock's time."""
    return context.moment(arguments.now, "--now") if arguments.now else context.clock()


def milestone_line(item: dict[str, Any]) -> str:
    promise = f"  (promised {item['promised_due_at']}, recomputed {item['computed_due_at']})" if item["promise_differs"] else ""
    return f"{item['tracking_id']}  {item['milestone']:<16} {item['state']:<9} due {item['due_at'] or '-'}  {item['left']}{promise}"


def milestone_item(view: MilestoneView, calendar: BusinessCalendar, now: datetime) -> dict[str, Any]:
    status = view.status

    def local(moment: datetime | None) -> str | None:
        return moment.astimezone(calendar.zone).isoformat(timespec="seconds") if moment else None

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
        "unit": status.allowed.unit if status.allowed else None,
        "left": left_text(view, calendar, now),
    }


def left_text(view: MilestoneView, calendar: BusinessCalendar, now: datetime) -> str:
    """The time left in the deadline's unit (sla/time_left.py, as the alert mails say it); "" when nothing runs."""
    if view.status.state in ("met", "waiting", "paused") or view.due_at is None:
        return ""
    return time_left_text(calendar, now, view.due_at, view.status.allowed.unit if view.status.allowed else None)


def recompute(arguments: argparse.Namespace, context: AppContext) -> int:
    calendar = context.calendar
    with context.transaction() as session:
        moved = refresh_open_reports(session, context.config.sla, calendar, context.clock())
    print(f"{moved} open deadline(s) moved")
    return 0


def check_now(arguments: argparse.Namespace, context: AppContext) -> int:
    from mailintake.service.scheduler import scheduled_pass  # the scheduler library, only for the command that runs a pass

    calendar = context.calendar
    now = moment_of(arguments, context)
    enqueued = scheduled_pass(context.sessions, context.config, context.notices, now)
    print(f"SLA pass at {now.astimezone(calendar.zone).isoformat()}: {enqueued} mail(s) enqueued")
    return 0

"""work: only the work behind a listener (stored mail into reports, the outbox, the
scheduler), in a process of its own. `serve` starts these itself; more can run on other
machines that share the PostgreSQL database."""

from __future__ import annotations

import argparse

from mailintake.cli.context import AppContext
from mailintake.cli.parser import Subcommands, UsageError, add_command
from mailintake.outbound.templates import TemplateError


def add_to(commands: Subcommands) -> None:
    command = add_command(commands, "work", "without a listener: turn stored mail into reports, deliver the outbox, run the scheduler (serve starts these itself; run more beside a shared PostgreSQL)", work_only)
    command.add_argument("--no-scheduler", action="store_true", help="leave the SLA pass and the digest to another process")
    command.add_argument("--supervised", action="store_true", help=argparse.SUPPRESS)


def work_only(arguments: argparse.Namespace, context: AppContext) -> int:
    # Imported here so that only `work` and `serve` load the daemon's modules.
    from mailintake.service.processing import SchemaNotCurrent
    from mailintake.service.worker_process import run_work

    try:
        run_work(context.config, supervised=arguments.supervised, with_scheduler=not arguments.no_scheduler)
    except (SchemaNotCurrent, TemplateError) as error:
        raise UsageError(str(error)) from None
    return 0

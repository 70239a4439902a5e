"""serve: run the daemon (listener, worker processes, scheduler) until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
from pathlib import Path

from mailintake.cli.context import AppContext
from mailintake.cli.parser import Subcommands, UsageError, add_command
from mailintake.outbound.templates import TemplateError


def add_to(commands: Subcommands) -> None:
    add_command(commands, "serve", "run the SMTP/LMTP listener, its worker processes ([workers] processes) and the scheduler until SIGTERM/SIGINT", serve)


def serve(arguments: argparse.Namespace, context: AppContext) -> int:
    # Imported here so that only `serve` loads the daemon's modules (aiosmtpd, the workers).
    from mailintake.service.daemon import SchemaNotCurrent, run_serve

    config = context.config
    try:
        run_serve(config, context.config_path or Path(arguments.config))
    except (SchemaNotCurrent, TemplateError) as error:
        raise UsageError(str(error)) from None
    except OSError as error:
        raise UsageError(f"cannot listen on {config.listener.host}:{config.listener.port}: {error.strerror}") from None
    return 0

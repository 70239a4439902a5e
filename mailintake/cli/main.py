"""Command line: `mailintake --config PATH <command>`. Bad input: one line on stderr, exit 2."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from sqlalchemy.exc import SQLAlchemyError

from mailintake.cli import calendar, db, holidays, inbound, outbox, reports, serve, sla, work
from mailintake.cli.context import AppContext
from mailintake.cli.parser import EXIT_FAILURE, EXIT_USAGE, CommandGroup, Handler, UsageError, build_parser
from mailintake.config.loading import config_path_from, load_config
from mailintake.config.schema import Config, ConfigError
from mailintake.storage.db import DatabaseUrlError

# In the order `mailintake --help` lists them.
GROUPS: tuple[CommandGroup, ...] = (serve, work, db, reports, inbound, holidays, calendar, sla, outbox)
INTERNAL_ERROR = "mailintake: internal error"
QUIET_LIBRARY_LOGGERS = {"mail.log": logging.ERROR, "mailparser": logging.CRITICAL + 1, "alembic": logging.WARNING}


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser(GROUPS).parse_args(argv)
    handler: Handler = arguments.handler
    try:
        config_path = config_path_from(arguments.config)
        config = load_config(config_path)
        configure_logging(config)
        with AppContext(config, config_path=config_path) as context:
            return handler(arguments, context)
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
    except Exception as error:
        # A defect, not bad input (tests/unit/cli/test_hostile_arguments.py fails on it). Only
        # the class: a message or traceback can carry report content.
        print(f"{INTERNAL_ERROR} ({type(error).__name__}); please report it with the command you ran", file=sys.stderr)
        return EXIT_FAILURE


def configure_logging(config: Config) -> None:
    logging.basicConfig(level=config.logging.level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for name, level in QUIET_LIBRARY_LOGGERS.items():
        # aiosmtpd logs envelope addresses and command lines below ERROR; mail-parser logs
        # subjects and file names at every level, so it is silenced.
        logging.getLogger(name).setLevel(level)

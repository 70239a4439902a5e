"""The work behind the listener, as it runs in one process: stored deliveries into reports
(parse lanes), outbox delivery and, in one process per daemon, the scheduler.

`serve` runs it in worker processes (service/supervisor.py, `[workers] processes`) or, with
`processes = 0`, inside its own process; `mailintake work` runs it without a listener.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from mailintake.config.schema import Config
from mailintake.core.clock import Clock
from mailintake.outbound.notices import Notices
from mailintake.outbound.templates import checked_templates
from mailintake.parse.pool import parser_pool_for
from mailintake.pipeline import Services
from mailintake.service.scheduler import start_scheduler
from mailintake.service.workers import Claims, claimer_name, inbound_worker, outbox_worker
from mailintake.storage.db import create_database_engine, database_is_current
from mailintake.storage.inbound_queue import released_claims

log = logging.getLogger(__name__)

PARSER_CLOSE_WAIT = 1.0


class SchemaNotCurrent(Exception):
    pass


async def current_engine(config: Config) -> Engine:
    engine = create_database_engine(config.database.url)
    if not await asyncio.to_thread(database_is_current, engine):
        engine.dispose()
        raise SchemaNotCurrent("the database schema is not current: run `mailintake db upgrade` first")
    return engine


def processing_setup(config: Config, reply_key: bytes) -> tuple[Notices, Services]:
    """The checked templates and the stages' services; raises TemplateError or ConfigError."""
    notices = Notices(config, checked_templates(config.templates.dir), reply_key)
    return notices, Services.from_config(config, notices)


class Processing:
    def __init__(self, config: Config, sessions: sessionmaker[Session], clock: Clock, reply_key: bytes, with_scheduler: bool) -> None:
        self.config = config
        self.sessions = sessions
        self.clock = clock
        self.with_scheduler = with_scheduler
        self.notices, services = processing_setup(config, reply_key)
        self.parsers = [parser_pool_for(config.intake) for _ in range(config.intake.parse_workers)]
        self.claims = Claims(claimer_name(), timedelta(seconds=config.workers.claim_lease))
        self.outbox = outbox_worker(sessions, config, self.notices, clock)
        self.inbound = inbound_worker(sessions, self.parsers, services, clock, self.outbox.wake, self.claims)
        self.tasks: list[asyncio.Task[None]] = []
        self.scheduler: AsyncIOScheduler | None = None
        self.warming: list[asyncio.Future[None]] = []

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self.inbound.run()), asyncio.create_task(self.outbox.run())]
        if self.with_scheduler:
            self.scheduler = start_scheduler(self.sessions, self.config, self.notices, self.clock, self.outbox.wake)
        self.warming = [asyncio.create_task(asyncio.to_thread(parser.warm_up)) for parser in self.parsers]

    def wake(self) -> None:
        """New mail was committed."""
        self.inbound.wake()

    async def stop(self, grace: float) -> bool:
        """Stops taking work and waits up to `grace` for the work in hand (not for an SLA pass
        in its thread, whose transaction the database rolls back if the process ends);
        False if it did not finish."""
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        self.inbound.stop()
        self.outbox.stop()
        started = time.monotonic()
        try:
            await asyncio.wait_for(asyncio.gather(*self.tasks), grace)
            await asyncio.wait_for(asyncio.to_thread(released_claims, self.sessions, self.claims.claimer), max(grace - (time.monotonic() - started), 0.1))
        except TimeoutError:
            return False
        # A parser still warming up is not work in hand: it is not waited for.
        closing = asyncio.gather(*(asyncio.to_thread(parser.close) for parser in self.parsers))
        try:
            await asyncio.wait_for(asyncio.shield(closing), PARSER_CLOSE_WAIT)
        except TimeoutError:
            log.warning("parser processes still starting; leaving them to end with this process")
        return True

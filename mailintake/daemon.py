"""`mailintake serve`: the listener and the inbound worker in one asyncio process."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import NoReturn

from sqlalchemy.orm import Session, sessionmaker

from mailintake.clock import Clock, utc_now
from mailintake.config import Config
from mailintake.db import create_database_engine, database_is_current, session_factory
from mailintake.intake import GroupCommitStore
from mailintake.listener import IntakeHandler, protocol_factory
from mailintake.parser_pool import ParserPool, parser_memory_limit
from mailintake.processing import ProcessingRules, process_due

log = logging.getLogger(__name__)

EXIT_STORAGE_HUNG = 75
PROGRESS = frozenset({"processed", "duplicate", "failed"})


class SchemaNotCurrent(Exception):
    pass


class InboundWorker:
    """Processes stored deliveries: woken after each commit, and sweeps for retries."""

    def __init__(self, sessions: sessionmaker[Session], parser: ParserPool, rules: ProcessingRules, clock: Clock) -> None:
        self.sessions = sessions
        self.parser = parser
        self.rules = rules
        self.clock = clock
        self._wake = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                outcomes = await asyncio.to_thread(process_due, self.sessions, self.parser, self.rules, self.clock, lambda: self._stopping)
            except Exception as error:
                log.error("inbound processing pass failed (%s); retrying in %g s", type(error).__name__, self.rules.retry_interval)
                outcomes = []
            if any(outcome.status in PROGRESS for outcome in outcomes) and not self._stopping:
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), self.rules.retry_interval)
            except TimeoutError:
                pass


async def serve(config: Config, clock: Clock = utc_now) -> None:
    engine = create_database_engine(config.database.url)
    if not await asyncio.to_thread(database_is_current, engine):
        raise SchemaNotCurrent("the database schema is not current: run `mailintake db upgrade` first")
    sessions = session_factory(engine)
    parser = ParserPool(config.intake.parse_timeout, parser_memory_limit(config.intake.max_message_size))
    rules = ProcessingRules.from_config(config)
    worker = InboundWorker(sessions, parser, rules, clock)

    handler = IntakeHandler(config.intake.addresses, GroupCommitStore(sessions), worker.wake, clock, config.listener.protocol, config.intake.store_timeout)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        protocol_factory(handler, config.listener.protocol, config.listener.hostname, config.intake.max_message_size),
        host=config.listener.host,
        port=config.listener.port,
    )
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    worker_task = asyncio.create_task(worker.run())
    log.info("listening on %s:%d (%s)", config.listener.host, config.listener.port, config.listener.protocol)
    try:
        await stopping.wait()
    finally:
        log.info("shutting down: no new connections, finishing in-flight deliveries")
        server.close()
        handler.closing = True
        worker.stop()
        grace = config.listener.shutdown_grace
        finished = await handler.wait_idle(grace)
        try:
            await asyncio.wait_for(worker_task, grace)
        except TimeoutError:
            finished = False
        if not finished:
            exit_now_after_hung_storage(grace)
        await asyncio.to_thread(parser.close)
        engine.dispose()
        log.info("stopped")


def exit_now_after_hung_storage(grace: float) -> NoReturn:
    """The database did not answer within the grace period. Nothing pending was acknowledged
    (no 250 without a commit), so senders will retry; waiting longer would only keep a
    hung daemon alive, and Python would otherwise wait for the stuck threads forever."""
    log.error("storage did not answer within %g s; exiting without waiting for it", grace)
    logging.shutdown()
    os._exit(EXIT_STORAGE_HUNG)


def run_serve(config: Config, clock: Clock = utc_now) -> None:
    asyncio.run(serve(config, clock))

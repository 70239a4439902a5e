"""`mailintake serve`: listener, inbound worker, outbox worker and scheduler in one asyncio process."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import NoReturn

from mailintake.config.schema import Config
from mailintake.core.clock import Clock, utc_now
from mailintake.intake.handler import AcceptedRecipients, IntakeHandler
from mailintake.intake.listener import protocol_factory
from mailintake.intake.rules import session_rules
from mailintake.intake.store import GroupCommitStore
from mailintake.outbound.notices import Notices
from mailintake.outbound.templates import checked_templates
from mailintake.parse.pool import parser_pool_for
from mailintake.pipeline import Services
from mailintake.service.scheduler import start_scheduler
from mailintake.service.workers import inbound_worker, outbox_worker
from mailintake.storage.db import create_database_engine, database_is_current, session_factory

log = logging.getLogger(__name__)

EXIT_STORAGE_HUNG = 75


class SchemaNotCurrent(Exception):
    pass


async def serve(config: Config, clock: Clock = utc_now) -> None:
    listener_rules = session_rules(config.listener, config.intake.max_message_size)
    engine = create_database_engine(config.database.url)
    if not await asyncio.to_thread(database_is_current, engine):
        raise SchemaNotCurrent("the database schema is not current: run `mailintake db upgrade` first")
    sessions = session_factory(engine)
    reply_key = config.secrets.reply_key()
    if "allowlist" in config.staff.authentication:
        log.warning('[staff] authentication = "allowlist": anyone who writes a staff member\'s address in From: acts as staff; for development only')
    notices = Notices(config, checked_templates(config.templates.dir), reply_key)
    parsers = [parser_pool_for(config.intake) for _ in range(config.intake.parse_workers)]
    outbox = outbox_worker(sessions, config, notices, clock)
    worker = inbound_worker(sessions, parsers, Services.from_config(config, notices), clock, outbox.wake)

    recipients = AcceptedRecipients(config.intake.addresses, config.intake.reply_address, reply_key)
    handler = IntakeHandler(recipients, GroupCommitStore(sessions), worker.wake, clock, config.listener.protocol, config.intake.store_timeout, config.listener.require_starttls)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        protocol_factory(handler, config.listener.protocol, listener_rules),
        host=config.listener.host,
        port=config.listener.port,
    )
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    worker_task = asyncio.create_task(worker.run())
    outbox_task = asyncio.create_task(outbox.run())
    scheduler = start_scheduler(sessions, config, notices, clock, outbox.wake)
    log.info("listening on %s:%d (%s)", config.listener.host, config.listener.port, config.listener.protocol)
    warming = [asyncio.create_task(asyncio.to_thread(parser.warm_up)) for parser in parsers]
    if not config.listener.on_loopback and not config.listener.require_starttls:
        log.warning("[listener] host %s is not a loopback address and STARTTLS is not required: mail can cross the network unencrypted (set tls_cert and tls_key, and leave require_starttls on)", config.listener.host)
    try:
        await stopping.wait()
    finally:
        log.info("shutting down: no new connections, finishing in-flight deliveries")
        server.close()
        handler.closing = True
        scheduler.shutdown(wait=False)
        worker.stop()
        outbox.stop()
        grace = config.listener.shutdown_grace
        finished = await handler.wait_idle(grace)
        try:
            await asyncio.wait_for(asyncio.gather(worker_task, outbox_task), grace)
        except TimeoutError:
            finished = False
        if not finished:
            exit_now_after_hung_storage(grace)
        await asyncio.gather(*warming, return_exceptions=True)
        for parser in parsers:
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

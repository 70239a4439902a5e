"""`mailintake serve`: the listener in this process, the work behind it in worker processes
(service/supervisor.py) or, with `[workers] processes = 0`, in this one too."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import sys
from pathlib import Path
from typing import NoReturn, Protocol

from sqlalchemy.orm import Session, sessionmaker

from mailintake.config.schema import TOKEN_KEY_ENV, Config
from mailintake.core.clock import Clock, utc_now
from mailintake.core.tokens import key_from_text
from mailintake.intake.handler import AcceptedRecipients, IntakeHandler
from mailintake.intake.listener import protocol_factory
from mailintake.intake.rules import session_rules
from mailintake.intake.store import GroupCommitStore
from mailintake.service.processing import Processing, SchemaNotCurrent, current_engine, processing_setup
from mailintake.service.supervisor import Supervisor
from mailintake.storage.db import session_factory

log = logging.getLogger(__name__)

EXIT_STORAGE_HUNG = 75

__all__ = ["SchemaNotCurrent", "run_serve", "serve"]


class BehindTheListener(Protocol):
    def start(self) -> None: ...
    def wake(self) -> None: ...
    async def stop(self, grace: float) -> bool: ...


async def serve(config: Config, config_path: Path, clock: Clock = utc_now) -> None:
    listener_rules = session_rules(config.listener, config.intake.max_message_size)
    engine = await current_engine(config)
    sessions = session_factory(engine)
    token_key = shared_token_key(config)
    reply_key = key_from_text(token_key)
    if "allowlist" in config.staff.authentication:
        log.warning('[staff] authentication = "allowlist": anyone who writes a staff member\'s address in From: acts as staff; for development only')
    behind = work_behind_the_listener(config, config_path, sessions, clock, reply_key, token_key)

    recipients = AcceptedRecipients(config.intake.addresses, config.intake.reply_address, reply_key)
    store = GroupCommitStore(sessions)
    handler = IntakeHandler(recipients, store, behind.wake, clock, config.listener.protocol, config.intake.store_timeout, config.listener.require_starttls)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        protocol_factory(handler, config.listener.protocol, listener_rules),
        host=config.listener.host,
        port=config.listener.port,
    )
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    behind.start()
    log.info("listening on %s:%d (%s)", config.listener.host, config.listener.port, config.listener.protocol)
    if not config.listener.on_loopback and not config.listener.require_starttls:
        log.warning("[listener] host %s is not a loopback address and STARTTLS is not required: mail can cross the network unencrypted (set tls_cert and tls_key, and leave require_starttls on)", config.listener.host)
    try:
        await stopping.wait()
    finally:
        log.info("shutting down: no new connections, finishing in-flight deliveries")
        server.close()
        handler.closing = True
        grace = config.listener.shutdown_grace
        idle, stopped = await asyncio.gather(handler.wait_idle(grace), behind.stop(grace))
        # A commit whose sender already got 451 (store_timeout) may still hang in its thread.
        if not idle or not await store.wait_idle(0.1):
            exit_now_after_hung_storage(grace)
        if not stopped:
            exit_now_unfinished(grace)
        engine.dispose()
        log.info("stopped")


def work_behind_the_listener(config: Config, config_path: Path, sessions: sessionmaker[Session], clock: Clock, reply_key: bytes, token_key: str) -> BehindTheListener:
    count = config.workers.process_count(os.cpu_count())
    if count == 0:
        return Processing(config, sessions, clock, reply_key, with_scheduler=True)
    # What a worker would refuse to start with (a broken template, say) stops `serve` now.
    processing_setup(config, reply_key)
    command = [sys.executable, "-m", "mailintake", "--config", str(config_path), "work", "--supervised"]
    # The workers sign reply addresses with the listener's key, a random one in dev mode included.
    environment = dict(os.environ) | {TOKEN_KEY_ENV: token_key}
    return Supervisor(command, count, sessions, environment)


def shared_token_key(config: Config) -> str:
    """The reply-address key as text, so worker processes can be given the same one."""
    if config.secrets.token_key:
        return config.secrets.token_key
    config.secrets.reply_key()  # without dev_mode: the ConfigError that says a key is required
    return secrets.token_urlsafe(32)


def exit_now_after_hung_storage(grace: float) -> NoReturn:
    """The database did not answer within the grace period. Nothing pending was acknowledged
    (no 250 without a commit), so senders will retry; waiting longer would only keep a
    hung daemon alive, and Python would otherwise wait for the stuck threads forever."""
    log.error("storage did not answer within %g s; exiting without waiting for it", grace)
    logging.shutdown()
    os._exit(EXIT_STORAGE_HUNG)


def exit_now_unfinished(grace: float) -> NoReturn:
    """Work behind the listener (a parse, a pass) did not finish in time; it is left in the
    database as it was before, to be done again after the restart."""
    log.error("work in hand did not finish within %g s; exiting without waiting for it", grace)
    logging.shutdown()
    os._exit(EXIT_STORAGE_HUNG)


def run_serve(config: Config, config_path: Path, clock: Clock = utc_now) -> None:
    asyncio.run(serve_then_exit(config, config_path, clock))


async def serve_then_exit(config: Config, config_path: Path, clock: Clock) -> NoReturn:
    """Once stopped, the process ends at once: asyncio.run would wait for every worker
    thread, and an SLA pass still running in one (processes = 0) holds only a transaction,
    which the database rolls back."""
    await serve(config, config_path, clock)
    logging.shutdown()
    sys.stdout.flush()
    os._exit(0)

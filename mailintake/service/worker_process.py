"""`mailintake work`: the processing of service/processing.py in a process of its own.

`serve` starts these as its worker processes, with `--supervised`: standard input is then
the pipe its supervisor writes a byte to after each commit (wake up, there is new mail), and
its end means the supervisor is gone, so the worker stops too rather than live on as an
orphan. Run by hand (another machine sharing PostgreSQL), it finds new mail by sweeping
every [intake] retry_interval.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from typing import NoReturn

from mailintake.config.schema import Config
from mailintake.core.clock import Clock, utc_now
from mailintake.service.processing import Processing, current_engine
from mailintake.storage.db import session_factory

log = logging.getLogger(__name__)

EXIT_UNFINISHED = 75


async def work(config: Config, supervised: bool, with_scheduler: bool, clock: Clock = utc_now) -> bool:
    """Runs until SIGTERM/SIGINT (or, supervised, the end of standard input); True if the work
    in hand finished within shutdown_grace."""
    engine = await current_engine(config)
    processing = Processing(config, session_factory(engine), clock, config.secrets.reply_key(), with_scheduler)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    wakes = await listen_for_wakes(processing, stopping) if supervised else None
    processing.start()
    log.info("worker %d started%s", os.getpid(), " (with the scheduler)" if with_scheduler else "")
    await stopping.wait()
    finished = await processing.stop(config.listener.shutdown_grace)
    if wakes is not None:
        wakes.cancel()
    if finished:
        engine.dispose()
    return finished


async def listen_for_wakes(processing: Processing, stopping: asyncio.Event) -> asyncio.Task[None]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def wake_on_each_byte() -> None:
        while await reader.read(4096):
            processing.wake()
        log.info("worker %d: the supervisor is gone; stopping", os.getpid())
        stopping.set()

    return asyncio.create_task(wake_on_each_byte())


def run_work(config: Config, supervised: bool, with_scheduler: bool) -> None:
    asyncio.run(work_then_exit(config, supervised, with_scheduler))


async def work_then_exit(config: Config, supervised: bool, with_scheduler: bool) -> NoReturn:
    """Ends the process without waiting for threads (asyncio.run would): a pass still running
    in one after shutdown_grace holds only a transaction, which the database rolls back."""
    finished = await work(config, supervised, with_scheduler)
    if not finished:
        log.error("work in hand did not finish within %g s; exiting without waiting for it", config.listener.shutdown_grace)
    logging.shutdown()
    sys.stdout.flush()
    os._exit(0 if finished else EXIT_UNFINISHED)

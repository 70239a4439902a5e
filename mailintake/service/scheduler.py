"""The periodic jobs of `serve`, on APScheduler: the combined acknowledgements of reports
the hourly limit held back, the SLA pass and the daily digest.

No job keeps state of its own: what was already sent is in the outbox (unique keys), so
a restart runs the pass again at once and repeats nothing.

No job holds a long write transaction: the calendar, the held reports and the due
milestones are read in short transactions, each sender's combined acknowledgement and
each batch of alerts is enqueued in a transaction of its own (jobs/held_acknowledgements.py,
jobs/sla_pass.py), and the digest has its own, so intake stores new mail between them
(SQLite has one writer).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from datetime import datetime

from apscheduler.events import EVENT_SCHEDULER_SHUTDOWN
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.orm import Session, sessionmaker

from mailintake.config.schema import Config
from mailintake.core.clock import Clock
from mailintake.deadlines.closures import effective_calendar
from mailintake.jobs.digest import daily_digest_pass
from mailintake.jobs.held_acknowledgements import held_acknowledgements_pass
from mailintake.jobs.sla_pass import never, sla_pass_in_batches
from mailintake.outbound.notices import Notices
from mailintake.storage.db import transaction

log = logging.getLogger(__name__)


def scheduled_pass(sessions: sessionmaker[Session], config: Config, notices: Notices, now: datetime, stopping: Callable[[], bool] = never) -> int:
    """Combined acknowledgements of held reports, then SLA alerts at `now` (the first meet
    deadlines the second would alert), and the day's digest once its local time has come on
    a business day. `stopping` is asked between senders and batches: a pass cut short
    leaves the rest to the next."""
    with transaction(sessions) as session:
        calendar = effective_calendar(session, config.calendar)
    enqueued = held_acknowledgements_pass(sessions, config, notices, calendar, now, stopping)
    enqueued += len(sla_pass_in_batches(sessions, config.sla, calendar, notices, now, stopping=stopping))
    if stopping():
        return enqueued
    with transaction(sessions) as session:
        enqueued += daily_digest_pass(session, config.scheduler.digest_time, calendar, notices, now)
    return enqueued


def start_scheduler(sessions: sessionmaker[Session], config: Config, notices: Notices, clock: Clock, on_enqueued: Callable[[], None]) -> AsyncIOScheduler:
    # Set when the scheduler shuts down: a pass running in its thread stops after its
    # current batch, so shutdown does not wait for a backlog of alerts.
    shut_down = threading.Event()

    async def run_pass() -> None:
        try:
            enqueued = await asyncio.to_thread(scheduled_pass, sessions, config, notices, clock(), shut_down.is_set)
        except asyncio.CancelledError:
            # Shut down during a pass: its thread stops after the current batch, nothing to report.
            return
        except Exception as error:
            log.error("SLA pass failed (%s); next pass in %g s", type(error).__name__, config.scheduler.sla_interval)
            return
        if enqueued:
            log.info("SLA pass enqueued %d mail(s)", enqueued)
            on_enqueued()

    scheduler = AsyncIOScheduler(timezone=config.calendar.timezone)
    scheduler.add_listener(lambda event: shut_down.set(), EVENT_SCHEDULER_SHUTDOWN)
    scheduler.add_job(run_pass, "interval", seconds=config.scheduler.sla_interval, next_run_time=clock(), max_instances=1, coalesce=True, id="sla-pass")
    scheduler.start()
    return scheduler

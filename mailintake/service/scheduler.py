"""The periodic jobs of `serve`, on APScheduler: the SLA pass and the daily digest.

No job keeps state of its own: what was already sent is in the outbox (unique keys), so
a restart runs the pass again at once and repeats nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.orm import Session, sessionmaker

from mailintake.config.schema import Config
from mailintake.core.clock import Clock
from mailintake.deadlines.closures import effective_calendar
from mailintake.jobs.digest import daily_digest_pass
from mailintake.jobs.sla_pass import sla_pass
from mailintake.outbound.notices import Notices
from mailintake.storage.db import transaction

log = logging.getLogger(__name__)


def scheduled_pass(sessions: sessionmaker[Session], config: Config, notices: Notices, now: datetime) -> int:
    """SLA alerts at `now`, and the day's digest once its local time has come on a business day."""
    with transaction(sessions) as session:
        calendar = effective_calendar(session, config.calendar)
        enqueued = len(sla_pass(session, config.sla, calendar, notices, now))
        enqueued += daily_digest_pass(session, config.scheduler.digest_time, calendar, notices, now)
    return enqueued


def start_scheduler(sessions: sessionmaker[Session], config: Config, notices: Notices, clock: Clock, on_enqueued: Callable[[], None]) -> AsyncIOScheduler:
    async def run_pass() -> None:
        try:
            enqueued = await asyncio.to_thread(scheduled_pass, sessions, config, notices, clock())
        except Exception as error:
            log.error("SLA pass failed (%s); next pass in %g s", type(error).__name__, config.scheduler.sla_interval)
            return
        if enqueued:
            log.info("SLA pass enqueued %d mail(s)", enqueued)
            on_enqueued()

    scheduler = AsyncIOScheduler(timezone=config.calendar.timezone)
    scheduler.add_job(run_pass, "interval", seconds=config.scheduler.sla_interval, next_run_time=clock(), max_instances=1, coalesce=True, id="sla-pass")
    scheduler.start()
    return scheduler

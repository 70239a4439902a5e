"""The daemon's background workers: inbound processing in parse lanes, and outbox delivery.

Each worker runs rounds until one does nothing, then sleeps until woken (a commit, an
enqueued mail) or its interval passes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from mailintake.config.schema import Config
from mailintake.core.clock import Clock
from mailintake.outbound.notices import Notices
from mailintake.outbound.send import deliver_due
from mailintake.pipeline import Outcome, Parser, Services, process_inbound
from mailintake.storage.inbound_queue import due_inbound_ids

log = logging.getLogger(__name__)

IDLE_LANE_POLL = 0.2
PROGRESS = frozenset({"processed", "duplicate", "failed"})


class Worker:
    """Runs `work` until it reports nothing done, then sleeps until woken or `interval` passes."""

    def __init__(self, name: str, interval: float, work: Callable[[Worker], Awaitable[bool]]) -> None:
        self.name = name
        self.interval = interval
        self.work = work
        self._wake = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopping

    async def run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                progressed = await self.work(self)
            except Exception as error:
                log.error("%s round failed (%s); retrying in %g s", self.name, type(error).__name__, self.interval)
                progressed = False
            if progressed and not self._stopping:
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval)
            except TimeoutError:
                pass


def inbound_worker(sessions: sessionmaker[Session], parsers: list[Parser], services: Services, clock: Clock, on_progress: Callable[[], None]) -> Worker:
    """Turns stored deliveries into reports: woken after each commit, sweeps for retries."""

    async def process(worker: Worker) -> bool:
        outcomes = await asyncio.to_thread(process_due, sessions, parsers, services, clock, lambda: worker.stopping)
        progressed = any(outcome.status in PROGRESS for outcome in outcomes)
        if progressed:
            on_progress()
        return progressed

    return Worker("inbound processing", services.retry_interval, process)


def outbox_worker(sessions: sessionmaker[Session], config: Config, notices: Notices, clock: Clock) -> Worker:
    """Delivers outbox rows: woken when rows are enqueued, sweeps every outbox_interval."""

    async def deliver(worker: Worker) -> bool:
        return await deliver_due(sessions, config, notices, clock) > 0

    return Worker("outbox delivery", config.scheduler.outbox_interval, deliver)


def process_due(sessions: sessionmaker[Session], parsers: Sequence[Parser], services: Services, clock: Callable[[], datetime], should_stop: Callable[[], bool] = lambda: False) -> list[Outcome]:
    """Every due delivery, one lane per parser: a mail that takes its parser the whole
    parse_timeout holds up only its own lane, while the others go on with new mail."""
    due = DueDeliveries(sessions, clock)
    if len(parsers) == 1:
        return lane_outcomes(sessions, parsers[0], services, clock, due, should_stop)
    with ThreadPoolExecutor(len(parsers), thread_name_prefix="inbound-lane") as lanes:
        rounds = [lanes.submit(lane_outcomes, sessions, parser, services, clock, due, should_stop) for parser in parsers]
        return [outcome for lane in rounds for outcome in lane.result()]


class DueDeliveries:
    """Hands each due delivery to one lane, at most once per round, and one sender's mail
    one at a time in arrival order: a staff member's `#status fixing` and then `#status
    resolved`, or two copies of one message, are recorded in the order they came. An idle
    lane keeps looking while another is busy, so mail arriving during a slow parse is
    taken up at once."""

    def __init__(self, sessions: sessionmaker[Session], clock: Callable[[], datetime]) -> None:
        self.sessions = sessions
        self.clock = clock
        self.pending: list[tuple[int, str]] = []
        self.taken: set[int] = set()
        self.busy: dict[int, str] = {}
        self.closed = False
        self.lock = threading.Lock()

    def next(self, should_stop: Callable[[], bool]) -> int | None:
        while not should_stop():
            with self.lock:
                if self.closed:
                    return None
                inbound_id = self.first_free()
                if inbound_id is None:
                    self.refill()
                    inbound_id = self.first_free()
                if inbound_id is not None:
                    return inbound_id
                if not self.busy:
                    # Nothing due and nothing in flight: the round is over for every lane, so
                    # none goes on alone with new work while the others have left.
                    self.closed = True
                    return None
            time.sleep(IDLE_LANE_POLL)
        return None

    def refill(self) -> None:
        known = self.taken | {inbound_id for inbound_id, _ in self.pending}
        self.pending += [item for item in due_inbound_ids(self.sessions, self.clock()) if item[0] not in known]

    def first_free(self) -> int | None:
        """The first pending delivery whose sender has nothing in flight or waiting before it."""
        held = set(self.busy.values())
        for index, (inbound_id, sender) in enumerate(self.pending):
            if sender not in held:
                del self.pending[index]
                self.taken.add(inbound_id)
                self.busy[inbound_id] = sender
                return inbound_id
        return None

    def finished(self, inbound_id: int) -> None:
        with self.lock:
            self.busy.pop(inbound_id, None)


def lane_outcomes(sessions: sessionmaker[Session], parser: Parser, services: Services, clock: Callable[[], datetime], due: DueDeliveries, should_stop: Callable[[], bool]) -> list[Outcome]:
    outcomes = []
    while (inbound_id := due.next(should_stop)) is not None:
        try:
            outcomes.append(process_inbound(sessions, parser, services, inbound_id, clock))
        except Exception as error:
            # Storage trouble: leave the row as it is and go on; it is due again next pass.
            log.error("inbound %d could not be processed (%s); will retry", inbound_id, type(error).__name__)
            outcomes.append(Outcome(inbound_id, "deferred"))
        finally:
            due.finished(inbound_id)
    return outcomes

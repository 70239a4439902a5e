"""The background workers of one process: inbound processing in parse lanes, and outbox delivery.

Each worker runs rounds until one does nothing, then sleeps until woken (a commit, an
enqueued mail) or its interval passes. Inbound deliveries are claimed before they are
worked on (storage/inbound_queue.py), so any number of these processes, in one daemon or
several, share the queue without parsing a delivery twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from mailintake.config.schema import Config
from mailintake.core.clock import Clock
from mailintake.outbound.notices import Notices
from mailintake.outbound.send import deliver_due
from mailintake.pipeline import Outcome, Parser, Services, process_batch
from mailintake.storage.inbound_queue import claimed_deliveries, released_claims

log = logging.getLogger(__name__)

IDLE_LANE_POLL = 0.2
PROGRESS = frozenset({"processed", "duplicate", "failed"})
# Deliveries a lane records in one transaction (pipeline.process_batch): enough to pay a
# commit and the per-transaction reads once for several mails, few enough that the first
# acknowledgement of a batch is not held up long and that, on SQLite, the listener's
# commits do not wait long for the write lock.
BATCH_SIZE = 8
# Deliveries claimed at a time per parse lane: one batch, so that an idle worker elsewhere finds work.
CLAIMED_PER_LANE = BATCH_SIZE


@dataclass(frozen=True)
class Claims:
    """Who this process is to the inbound queue, and how long its claims hold."""

    claimer: str
    lease: timedelta


def claimer_name(pid: int | None = None) -> str:
    """host:pid, unique among the processes sharing one database."""
    return f"{socket.gethostname()[:50]}:{pid or os.getpid()}"


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


def inbound_worker(sessions: sessionmaker[Session], parsers: list[Parser], services: Services, clock: Clock, on_progress: Callable[[], None], claims: Claims) -> Worker:
    """Turns stored deliveries into reports: woken after each commit, sweeps for retries."""

    async def process(worker: Worker) -> bool:
        outcomes = await asyncio.to_thread(process_due, sessions, parsers, services, clock, claims, lambda: worker.stopping)
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


def process_due(sessions: sessionmaker[Session], parsers: Sequence[Parser], services: Services, clock: Callable[[], datetime], claims: Claims, should_stop: Callable[[], bool] = lambda: False) -> list[Outcome]:
    """Every due delivery this process can claim, one lane per parser: a mail that takes its
    parser the whole parse_timeout holds up only its own lane, while the others go on."""
    due = DueDeliveries(sessions, clock, claims, limit=CLAIMED_PER_LANE * len(parsers))
    try:
        if len(parsers) == 1:
            return lane_outcomes(sessions, parsers[0], services, clock, due, should_stop)
        with ThreadPoolExecutor(len(parsers), thread_name_prefix="inbound-lane") as lanes:
            rounds = [lanes.submit(lane_outcomes, sessions, parser, services, clock, due, should_stop) for parser in parsers]
            return [outcome for lane in rounds for outcome in lane.result()]
    finally:
        due.release_unstarted()


class DueDeliveries:
    """Hands each claimed delivery to one lane, at most once per round, in the order of the
    claim (one sender's mail one at a time, in arrival order: the claim sees to that across
    processes, `busy` within this one). An idle lane keeps looking while another is busy,
    so mail arriving during a slow parse is taken up at once."""

    def __init__(self, sessions: sessionmaker[Session], clock: Callable[[], datetime], claims: Claims, limit: int = CLAIMED_PER_LANE) -> None:
        self.sessions = sessions
        self.clock = clock
        self.claims = claims
        self.limit = limit
        self.pending: list[tuple[int, str]] = []
        self.taken: set[int] = set()
        self.busy: dict[int, str] = {}
        self.closed = False
        self.lock = threading.Lock()

    def next(self, should_stop: Callable[[], bool]) -> int | None:
        batch = self.next_batch(should_stop, 1)
        return batch[0] if batch else None

    def next_batch(self, should_stop: Callable[[], bool], size: int) -> list[int]:
        """Up to `size` deliveries of different senders, none of whom has one in flight."""
        while not should_stop():
            with self.lock:
                if self.closed:
                    return []
                batch = self.free_ones(size)
                if len(batch) < size:
                    self.refill()
                    batch += self.free_ones(size - len(batch))
                if batch:
                    return batch
                if not self.busy:
                    # Nothing due and nothing in flight: the round is over for every lane, so
                    # none goes on alone with new work while the others have left.
                    self.closed = True
                    return []
            time.sleep(IDLE_LANE_POLL)
        return []

    def free_ones(self, size: int) -> list[int]:
        batch = []
        while len(batch) < size and (inbound_id := self.first_free()) is not None:
            batch.append(inbound_id)
        return batch

    def refill(self) -> None:
        known = self.taken | {inbound_id for inbound_id, _ in self.pending}
        claimed = claimed_deliveries(self.sessions, self.clock(), self.claims.lease, self.claims.claimer, self.limit)
        self.pending += [item for item in claimed if item[0] not in known]
        again = [inbound_id for inbound_id, _ in claimed if inbound_id in known]
        if again:
            # Failed earlier in this round and due again already: the next round takes it.
            released_claims(self.sessions, self.claims.claimer, again)

    def give_back(self, inbound_id: int) -> None:
        """Unclaim one delivery now rather than after the lease; if storage is still down, the lease does it."""
        try:
            released_claims(self.sessions, self.claims.claimer, [inbound_id])
        except Exception as error:
            log.warning("inbound %d stays claimed until its lease ends (%s)", inbound_id, type(error).__name__)

    def release_unstarted(self) -> None:
        """Claimed but not begun (the worker is stopping): back to the queue at once."""
        with self.lock:
            unstarted, self.pending, self.closed = [inbound_id for inbound_id, _ in self.pending], [], True
        if unstarted:
            released_claims(self.sessions, self.claims.claimer, unstarted)

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
    while batch := due.next_batch(should_stop, BATCH_SIZE):
        try:
            outcomes += process_batch(sessions, parser, services, batch, clock)
        except Exception as error:
            # Storage trouble: leave the rows as they are and go on; they are due again next pass.
            log.error("inbound %s could not be processed (%s); will retry", ", ".join(map(str, batch)), type(error).__name__)
            outcomes += [Outcome(inbound_id, "deferred") for inbound_id in batch]
            for inbound_id in batch:
                due.give_back(inbound_id)
        finally:
            for inbound_id in batch:
                due.finished(inbound_id)
    return outcomes

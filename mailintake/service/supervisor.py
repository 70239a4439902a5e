"""`serve`'s worker processes: started, woken after each commit, restarted when one dies,
and stopped within shutdown_grace.

Each worker is `mailintake work --supervised` (service/worker_process.py) with a pipe on its
standard input: a byte down it means new mail; its end, that `serve` is gone. The first
worker also runs the scheduler. A worker that dies leaves its claimed deliveries to the
supervisor, which gives them back at once (storage/inbound_queue.py), and is started again
after a pause that doubles while it keeps dying.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Sequence

from sqlalchemy.orm import Session, sessionmaker

from mailintake.service.workers import claimer_name
from mailintake.storage.inbound_queue import released_claims

log = logging.getLogger(__name__)

FIRST_RESTART_DELAY = 1.0
MAX_RESTART_DELAY = 60.0
# A worker that ran this long before dying is restarted after the first delay again.
HEALTHY_RUN = 60.0
RELEASE_WAIT = 1.0


class Supervisor:
    def __init__(self, command: Sequence[str], count: int, sessions: sessionmaker[Session], environment: dict[str, str]) -> None:
        self.command = list(command)
        self.count = count
        self.sessions = sessions
        self.environment = environment
        self.workers: dict[int, asyncio.subprocess.Process] = {}
        self.slots: list[asyncio.Task[None]] = []
        self.stopping = False
        self.unclean_exits = 0

    def start(self) -> None:
        self.slots = [asyncio.create_task(self.keep_running(slot)) for slot in range(self.count)]

    def wake(self) -> None:
        for worker in self.workers.values():
            if worker.stdin is not None and not worker.stdin.is_closing():
                worker.stdin.write(b"\n")

    async def keep_running(self, slot: int) -> None:
        delay = FIRST_RESTART_DELAY
        while not self.stopping:
            started = time.monotonic()
            worker = await self.started_worker(slot)
            code = await worker.wait()
            self.workers.pop(slot, None)
            if self.stopping:
                # Stopped before it could handle the signal: it had no work in hand yet.
                if code not in (0, -signal.SIGTERM):
                    log.error("worker %d exited with %s while stopping", worker.pid, code)
                    self.unclean_exits += 1
                return
            released = await self.give_back_claims(worker.pid)
            log.error("worker %d exited with %s; %d claimed deliveries given back; restarting in %g s", worker.pid, code, released, delay)
            await asyncio.sleep(delay)
            delay = FIRST_RESTART_DELAY if time.monotonic() - started > HEALTHY_RUN else min(delay * 2, MAX_RESTART_DELAY)

    async def started_worker(self, slot: int) -> asyncio.subprocess.Process:
        arguments = self.command + ([] if slot == 0 else ["--no-scheduler"])
        worker = await asyncio.create_subprocess_exec(*arguments, stdin=asyncio.subprocess.PIPE, env=self.environment)
        self.workers[slot] = worker
        # Mail may have come in while it started.
        self.wake()
        return worker

    async def stop(self, grace: float) -> bool:
        """SIGTERM to every worker, SIGKILL to those still running after `grace`; True if all
        finished their work in hand."""
        self.stopping = True
        for worker in list(self.workers.values()):
            worker.terminate()
        try:
            await asyncio.wait_for(asyncio.gather(*self.slots, return_exceptions=True), grace)
        except TimeoutError:
            for worker in list(self.workers.values()):
                log.error("worker %d did not stop within %g s; killed", worker.pid, grace)
                worker.kill()
                await worker.wait()
                self.unclean_exits += 1
                await self.give_back_claims(worker.pid)
        return self.unclean_exits == 0

    async def give_back_claims(self, pid: int) -> int:
        """What a dead worker had claimed, back to the queue; if storage does not answer at
        once, its lease does it later."""
        try:
            return await asyncio.wait_for(asyncio.to_thread(released_claims, self.sessions, claimer_name(pid)), RELEASE_WAIT)
        except Exception as error:
            log.warning("claims of worker %d stay until their lease ends (%s)", pid, type(error).__name__)
            return 0

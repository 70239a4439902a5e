"""Run parse_message in child processes with a time limit.

A thread cannot be stopped, so a pathological message (huge headers, thousands of MIME
parts) is parsed in a pool process that is terminated when it runs out of time.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import resource
import threading
from multiprocessing.pool import Pool

from mailintake.config.schema import IntakeConfig
from mailintake.parse.limits import DEFAULT_LIMITS, ParseLimits
from mailintake.parse.message import ParsedMessage, parse_message

WARM_UP_MESSAGE = b"From: warm-up@mailintake.invalid\r\nSubject: warm-up\r\n\r\nwarm-up\r\n"


class ParseFailure(Exception):
    """Parsing did not produce a result; the message's raw bytes stay stored."""


class ParserPool:
    def __init__(self, timeout: float, memory_limit: int, processes: int = 1, limits: ParseLimits = DEFAULT_LIMITS) -> None:
        self.timeout = timeout
        self.limits = limits
        self.memory_limit = memory_limit
        self.processes = processes
        self._pool: Pool | None = None
        self._lock = threading.Lock()

    def parse(self, raw: bytes) -> ParsedMessage:
        with self._lock:
            pending = self._running_pool().apply_async(parse_message, (raw, self.limits))
            try:
                return pending.get(self.timeout)
            except multiprocessing.TimeoutError:
                self._terminate()
                raise ParseFailure(f"parse timed out after {self.timeout:g} s") from None
            except Exception as error:
                raise ParseFailure(f"parse failed: {type(error).__name__}") from None

    def warm_up(self) -> None:
        """Start the parser process and load the parsing code in it, so that the first mail
        after a start waits for neither (a cold start takes seconds on a busy machine)."""
        try:
            self.parse(WARM_UP_MESSAGE)
        except ParseFailure:
            pass

    def close(self) -> None:
        with self._lock:
            self._terminate()

    def _running_pool(self) -> Pool:
        if self._pool is None:
            self._pool = multiprocessing.get_context("spawn").Pool(self.processes, initializer=prepare_parser_process, initargs=(self.memory_limit,))
        return self._pool

    def _terminate(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None


def parser_pool_for(intake: IntakeConfig, processes: int = 1) -> ParserPool:
    return ParserPool(intake.parse_timeout, parser_memory_limit(intake.max_message_size), processes, ParseLimits(max_parts=intake.max_parts))


def parser_memory_limit(max_message_size: int) -> int:
    """Address space a parser process may use: ample for a maximal message, bounded for a bomb."""
    return max(2 * 1024**3, 40 * max_message_size)


def prepare_parser_process(memory_limit: int) -> None:
    """A parser process is capped in memory and says nothing: mail-parser logs subjects,
    header parts and file names (even at ERROR), and anything printed would land in the
    daemon's log."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    logging.disable(logging.CRITICAL)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)

"""Run every check on its own interval, with jitter, a deadline and bounded concurrency.

Each check is an asyncio task that sleeps until its next tick, waits for a slot
(the concurrency limit), runs under its own timeout, records the outcome and
schedules the next tick. A run that outlasts its interval skips the ticks it
missed (counted as overruns) instead of piling runs up. Scrapes never wait for a
check: they read the last recorded results.

First runs come within the first few seconds (results soon after a start); from the
second run on, each check keeps a phase in its interval taken from a hash of its name,
so thousands of checks with the same interval are spread evenly over it instead of
firing in bursts (which would make scrapes and CPU use spiky).

Two runs of a check never start closer than its interval (less its jitter): the second
run waits for the first phase point at least an interval after the first, and a reload
carries each check's last start over by name (``carry``), so the kept checks go on where
they were instead of all running again at once. That matters beyond load: a ``bruteforce``
check locks its canary account, and a run that follows the last one sooner than the
lockout lasts finds the account still locked and fails for nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import random
import time
from collections.abc import Callable
from typing import NamedTuple

from crmpulse.config import Check

from .checks import Outcome, TargetRunner

__all__ = ["LastRun", "Scheduler", "phase_of"]

log = logging.getLogger("crmpulse.probe")


class LastRun(NamedTuple):
    success: bool
    reason: str
    message: str
    finished_at: float


def phase_of(name: str) -> float:
    """A fraction of the interval in [0, 1) fixed by the check's name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") / 2**32


class Scheduler:
    def __init__(self, runner: TargetRunner, checks: list[Check], concurrency: int,
                 on_outcome: Callable[[Outcome], None], on_overrun: Callable[[Check, int], None],
                 spread: bool = True) -> None:
        self.runner = runner
        self.checks = checks
        self.on_outcome = on_outcome
        self.on_overrun = on_overrun
        self.slots = asyncio.Semaphore(concurrency)
        self.spread = spread
        # the last run of each check, for the landing page: a tuple of plain values, which
        # the collector does not track (thousands of Outcomes would make its walks long)
        self.last: dict[str, LastRun] = {}
        #: when each check's last run started (monotonic), kept across a reload by name
        self.started: dict[str, float] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.epoch = time.monotonic()

    def carry(self, previous: Scheduler, names: set[str]) -> None:
        """Take over the last starts and results of ``names`` from the schedule this one
        replaces (before :meth:`start`)."""
        self.started.update((name, at) for name, at in previous.started.items() if name in names)
        self.last.update((name, run) for name, run in previous.last.items() if name in names)

    def next_tick(self, check: Check, after: float) -> float:
        """The first point of the check's phase in its interval at or after ``after``."""
        phase = self.epoch + phase_of(check.name) * check.interval
        return phase + math.ceil((after - phase) / check.interval) * check.interval

    def start(self) -> None:
        self.epoch = time.monotonic()
        loop = asyncio.get_running_loop()
        self.tasks = [loop.create_task(self._loop(check), name=f"check:{check.name}")
                      for check in self.checks]

    def running(self) -> int:
        """How many checks' schedules are alive (a task that died is not running)."""
        return sum(1 for task in self.tasks if not task.done())

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.tasks = []

    async def _loop(self, check: Check) -> None:
        grid: float | None = None
        last = self.started.get(check.name)
        if last is not None:  # kept over a reload: on at its phase, an interval after the last
            grid = self.next_tick(check, last + check.interval)
            await asyncio.sleep(max(0.0, grid - time.monotonic()))
        elif self.spread:  # first runs over the first seconds: 2,000 checks do not fire at once
            await asyncio.sleep(random.uniform(0, min(check.interval, 5.0)))
        else:
            grid = time.monotonic()
        while True:
            async with self.slots:
                self.started[check.name] = time.monotonic()
                outcome = await self.runner.run(check)
            self.last[check.name] = LastRun(outcome.success, outcome.reason, outcome.message,
                                            outcome.finished_at)
            try:
                self.on_outcome(outcome)
            except Exception:  # recording must never stop the schedule
                log.exception("recording the outcome of check %s failed", check.name)
            if not outcome.success:
                log.info("check failed check=%s reason=%s message=%r", check.name,
                         outcome.reason, outcome.message)
            del outcome  # not held by thousands of sleeping schedules (the collector walks them)
            now = time.monotonic()
            if grid is None:  # from now on, keep this check's own phase in the interval
                grid = self.next_tick(check, self.started[check.name] + check.interval)
                await asyncio.sleep(max(0.0, grid - now))
                continue
            grid += check.interval
            if grid < now:
                missed = int((now - grid) // check.interval) + 1
                self.on_overrun(check, missed)
                grid += missed * check.interval
            # jitter around the grid, not added up over runs: the check keeps its phase, so
            # checks stay spread and the exposition can cache what did not run (exposition.py)
            jitter = check.interval * check.jitter / 100
            await asyncio.sleep(max(0.0, grid + random.uniform(-jitter, jitter) - now))

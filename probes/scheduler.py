"""Run every check on its own interval, with jitter, a deadline and bounded concurrency.

Each check is an asyncio task that sleeps until its next tick, waits for a slot
(the concurrency limit), runs under its own timeout, records the outcome and
schedules the next tick. A run that outlasts its interval skips the ticks it
missed (counted as overruns) instead of piling runs up. Scrapes never wait for a
check: they read the last recorded results.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable

from crmpulse.config import Check

from .checks import Outcome, TargetRunner

__all__ = ["Scheduler"]

log = logging.getLogger("crmpulse.probe")


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
        self.last: dict[str, Outcome] = {}
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.tasks = [loop.create_task(self._loop(check), name=f"check:{check.name}")
                      for check in self.checks]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.tasks = []

    async def _loop(self, check: Check) -> None:
        # Spread first runs over the first interval so 200 checks do not fire at once.
        if self.spread:
            await asyncio.sleep(random.uniform(0, min(check.interval, 5.0)))
        next_tick = time.monotonic()
        while True:
            async with self.slots:
                outcome = await self.runner.run(check)
            self.last[check.name] = outcome
            try:
                self.on_outcome(outcome)
            except Exception:  # recording must never stop the schedule
                log.exception("recording the outcome of check %s failed", check.name)
            if not outcome.success:
                log.info("check failed check=%s reason=%s message=%r", check.name,
                         outcome.reason, outcome.message)
            jitter = check.interval * check.jitter / 100
            next_tick += check.interval + random.uniform(-jitter, jitter)
            now = time.monotonic()
            if next_tick < now:
                missed = int((now - next_tick) // check.interval) + 1
                self.on_overrun(check, missed)
                next_tick += missed * check.interval
            await asyncio.sleep(max(0.0, next_tick - now))

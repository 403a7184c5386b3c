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

Two runs of a check never start closer than its interval less its jitter (and 10 ms of
timer slack): that floor is enforced where a run starts, whatever jitter or a wait for a
concurrency slot did to the ticks (a run a reload cut off aside: it counts for nothing and
runs again at once). It matters beyond load: a ``bruteforce`` check locks its canary
account, and a run that follows the last one sooner than the lockout lasts finds the
account still locked and fails for nothing; its cut-off attempts do count (they may have
locked it already).

A reload does not restart the pace of the checks it keeps. The ticks are points of one
grid for the exporter's whole life (``epoch``), and the new schedule takes over, for each
check whose definition is unchanged but for its interval, jitter or ``phase_series``
(``fingerprint``), its planned tick, when its last runs started and its last result
(``carry``): it runs next at the tick the old schedule had planned (with a new interval:
the first tick of the new one at least the floor after its last start). Checks the reload
adds or changes run within seconds, as after a start; so do all checks after a restart,
a change of target name, or a move to another shard.
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

__all__ = ["FLOOR_SLACK", "LastRun", "Scheduler", "phase_of"]

log = logging.getLogger("crmpulse.probe")


class LastRun(NamedTuple):
    success: bool
    reason: str
    message: str
    finished_at: float


def phase_of(name: str) -> float:
    """A fraction of the interval in [0, 1) fixed by the check's name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") / 2**32


#: how much sooner than its interval less its jitter a check may start again (timer slack)
FLOOR_SLACK = 0.01

#: what a reload may change without making a check a different one
PACE_FIELDS = {"interval", "jitter", "phase_series"}


def fingerprint(check: Check, context: object) -> object:
    """What makes a check the same one across a reload: its whole definition but its pace
    and series options, and ``context`` (the target's URL). Compared in memory, never shown."""
    return check.kind, context, check.model_dump(exclude=PACE_FIELDS)


class Scheduler:
    def __init__(self, runner: TargetRunner, checks: list[Check], concurrency: int,
                 on_outcome: Callable[[Outcome], None], on_overrun: Callable[[Check, int], None],
                 spread: bool = True, epoch: float | None = None, context: object = None) -> None:
        self.runner = runner
        self.checks = checks
        self.on_outcome = on_outcome
        self.on_overrun = on_overrun
        self.slots = asyncio.Semaphore(concurrency)
        self.spread = spread
        #: the origin of every check's ticks; the exporter keeps one for its whole life
        self.epoch = time.monotonic() if epoch is None else epoch
        self.context = context
        # the last run of each check, for the landing page: a tuple of plain values, which
        # the collector does not track (thousands of Outcomes would make its walks long)
        self.last: dict[str, LastRun] = {}
        #: when each check's last run started (monotonic), and its last completed run
        self.started: dict[str, float] = {}
        self.completed: dict[str, float] = {}
        #: each check's next tick and the interval it was planned with
        self.planned: dict[str, tuple[float, float]] = {}
        self.tasks: list[asyncio.Task[None]] = []

    def carry(self, previous: Scheduler) -> set[str]:
        """Take over the pace and last result of every check ``previous`` also ran with the
        same definition (before :meth:`start`); their names."""
        before = {check.name: check for check in previous.checks}
        same = {check.name for check in self.checks
                if (old := before.get(check.name)) is not None
                and fingerprint(old, previous.context) == fingerprint(check, self.context)}
        self.started.update((name, at) for name, at in previous.started.items() if name in same)
        self.completed.update((name, at) for name, at in previous.completed.items() if name in same)
        self.planned.update((name, tick) for name, tick in previous.planned.items() if name in same)
        self.last.update((name, run) for name, run in previous.last.items() if name in same)
        return same

    def next_tick(self, check: Check, after: float) -> float:
        """The first point of the check's phase in its interval at or after ``after``."""
        phase = self.epoch + phase_of(check.name) * check.interval
        return phase + math.ceil((after - phase) / check.interval) * check.interval

    def _carried_tick(self, check: Check, last: float, floor: float) -> float | None:
        """The next tick of a check a reload kept, or None when it is overdue (a run the
        reload cut off, or one waiting for a slot: it then runs at once)."""
        planned, interval = self.planned.get(check.name, (None, None))
        now = time.monotonic()
        # a new interval is a new grid; a bruteforce run's cut-off attempts count in full
        if planned is None or interval != check.interval or (planned <= now and check.kind == "bruteforce"):
            planned = self.next_tick(check, last + floor)
        return planned if planned > now else None

    def start(self) -> None:
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
        jitter = check.interval * check.jitter / 100
        # the least time between two starts; measured from each actual start, so a slack of
        # a few ms keeps a wake-up's lateness from adding up run after run (with jitter 0 it
        # would drift the check off its ticks and count overruns no run caused)
        floor = check.interval - jitter - FLOOR_SLACK
        # the pace a reload carried over: a cut-off bruteforce attempt counts (it may have
        # locked the canary), any other check's cut-off run is run again
        last = (self.started if check.kind == "bruteforce" else self.completed).get(check.name)
        tick: float | None = None
        if last is not None:  # kept by a reload: on at the tick the replaced schedule planned
            tick = self._carried_tick(check, last, floor)
            if tick is not None:
                at = max(tick + random.uniform(-jitter, jitter), last + floor)
                await asyncio.sleep(max(0.0, at - time.monotonic()))
            # else overdue (cut off, or waiting for a slot): it runs now, as it would have
        elif self.spread:  # first runs over the first seconds: 2,000 checks do not fire at once
            await asyncio.sleep(random.uniform(0, min(check.interval, 5.0)))
        else:
            tick = time.monotonic()
        while True:
            async with self.slots:
                start = self.started[check.name] = time.monotonic()
                outcome = await self.runner.run(check)
                self.completed[check.name] = start
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
            if tick is None:  # from now on, keep this check's own phase in the interval
                tick = self.next_tick(check, start + floor)
            else:
                tick += check.interval
                if tick < now:
                    missed = int((now - tick) // check.interval) + 1
                    self.on_overrun(check, missed)
                    tick += missed * check.interval
            self.planned[check.name] = (tick, check.interval)
            # jitter around the tick, not added up over runs: the check keeps its phase, so
            # checks stay spread and the exposition can cache what did not run (exposition.py);
            # never sooner than the floor after this start, whatever jitter or a slot wait did
            at = max(tick + random.uniform(-jitter, jitter), start + floor)
            await asyncio.sleep(max(0.0, at - now))

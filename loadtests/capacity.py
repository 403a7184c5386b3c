"""``crmpulse loadtest --find-capacity``: the highest arrival rate at which every gate holds.

The run paces requests (open model) at one rate per step and judges the configured gates
on that step's requests only. Rates grow geometrically (doubling) from ``start`` until a
step breaks a gate or the target's ``safety.max_rps`` is reached; then the finder bisects
between the highest rate that held and the first that broke, until they are within
``precision`` of each other. Every rate stays inside the safety caps.

A step that held while the generator reached less than 90 % of its rate proves only the
rate it reached: that is what counts as held. Two such steps in a row stop the search,
which then says the generator, not the CRM, was the limit (add users or workers).

    finder = CapacityFinder(start=10, cap=1000)
    rate = finder.rate                       # 10
    rate = finder.judge(held=True)           # 20, 40, ... then bisection; None when done
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from crmpulse import LoadedConfig

from .shapes import StagePlan

__all__ = ["CapacityFinder", "Step", "capacity_problem", "capacity_stages"]


@dataclass
class Step:
    rate: float
    achieved: float = 0.0
    requests: int = 0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    error_ratio: float = 0.0
    held: bool = False
    broken: list[str] = field(default_factory=list)  # the gates that broke, described


@dataclass
class CapacityFinder:
    start: float
    cap: float
    factor: float = 2.0
    precision: float = 0.05  # stop bisecting when the bracket is this narrow (relative)
    max_steps: int = 16
    steps: list[Step] = field(default_factory=list)
    highest_held: float | None = None
    lowest_broken: float | None = None
    stopped: str = ""  # why the search ended early (the generator, the cap, max steps)

    def __post_init__(self) -> None:
        self.rate: float | None = min(self.start, self.cap)
        self.short_steps = 0

    def judge(self, held: bool, achieved: float | None = None) -> float | None:
        """Record the current step's verdict; return the next rate, or None when done.

        ``achieved`` is the rate the generator really sent; a step that held short of its
        rate proves that rate only.
        """
        assert self.rate is not None
        reached = self.rate if achieved is None else min(self.rate, achieved)
        short = reached < 0.9 * self.rate
        self.short_steps = self.short_steps + 1 if short and held else 0
        if self.short_steps >= 2:
            self.abandon(f"the generator reached {reached:.1f} of {self.rate:g} req/s twice: add "
                         "users (target.safety.max_users) or workers")
            return None
        if held:
            self.highest_held = max(self.highest_held or 0.0, round(reached, 2))
        else:
            self.lowest_broken = min(self.lowest_broken or float("inf"), self.rate)
        self.rate = self._next()
        return self.rate

    def _next(self) -> float | None:
        if len(self.steps) >= self.max_steps:
            self.stopped = f"stopped after {self.max_steps} steps"
            return None
        low, high = self.highest_held, self.lowest_broken
        if high is None:  # still growing
            assert low is not None
            if low >= self.cap:
                self.stopped = f"every gate held up to the safety cap ({self.cap:g} req/s)"
                return None
            return min(low * self.factor, self.cap)
        if low is None:  # the very first rate broke: look lower
            if high <= 1.0:
                self.stopped = "even 1 req/s broke a gate"
                return None
            return max(high / self.factor, 1.0)
        if low >= high or (high - low) / low <= self.precision:
            return None
        return round((low + high) / 2, 2)

    def abandon(self, reason: str) -> None:
        self.stopped = reason
        self.rate = None

    def result(self) -> dict[str, Any]:
        # a rate can be tried twice (a step that held short of its rate, then the bisection
        # lands on it again): the step that broke is the latest one at that rate that broke
        breaking = next((s for s in reversed(self.steps) if s.rate == self.lowest_broken
                         and not s.held), None)
        return {"highest_held_rps": self.highest_held, "first_broken_rps": self.lowest_broken,
                "broken_by": breaking.broken if breaking else [], "stopped": self.stopped,
                "steps": [asdict(s) for s in self.steps]}


def capacity_problem(loaded: LoadedConfig) -> str:
    """Why a capacity search cannot judge anything: no latency or error gate to hold."""
    gates = loaded.config.loadtest.gates
    every = [gates.global_, *gates.operations.values(), *gates.journeys.values()]
    if any(g.p50 or g.p95 or g.p99 or g.error_ratio is not None for g in every):
        return ""
    return ("--find-capacity judges each rate by the gates, and loadtest.gates has no latency "
            "(p50/p95/p99) or error_ratio gate")


def capacity_stages(loaded: LoadedConfig, step: float, max_steps: int) -> list[StagePlan]:
    """Users for the search: the safety cap's worth, started fast, for as long as it may take."""
    users = loaded.target.safety.max_users
    return [StagePlan(end=round(step * max_steps * 2 + 30, 3), users=users,
                      spawn_rate=max(1.0, users / 2.0), rps=None)]

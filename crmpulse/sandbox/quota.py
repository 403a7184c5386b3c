"""API quota counters: the sliding and daily windows vendor dialects meter requests with.

    SlidingWindow   what was spent in the last ``window`` seconds (Salesforce's rolling
                    24 hours, HubSpot's ten seconds, Dataverse's five minutes)
    DailyWindow     what was spent since the last midnight UTC (HubSpot's daily limit)
    Meters          the counters of one dialect, keyed by tenant, app or user; limits are a
                    pydantic model the admin API reads and patches (GET/PUT /admin/quota)

A sliding window keeps ``buckets`` slots, so memory stays bounded however many
requests it counts; what it reports is exact to one slot (the oldest slot leaves the
window whole). Counters hold no request contents, only amounts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel

__all__ = ["DailyWindow", "Meters", "SlidingWindow"]


class SlidingWindow:
    """Amounts added over the last ``window`` seconds, in ``buckets`` equal slots."""

    def __init__(self, window: float, buckets: int = 300) -> None:
        self.window = window
        self.width = window / buckets
        self.slots: dict[int, float] = {}

    def _expire(self, now: float) -> None:
        oldest = math.floor((now - self.window) / self.width) + 1
        for slot in [s for s in self.slots if s < oldest]:
            del self.slots[slot]

    def add(self, amount: float = 1.0, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self._expire(now)
        slot = math.floor(now / self.width)
        self.slots[slot] = self.slots.get(slot, 0.0) + amount

    def total(self, now: float | None = None) -> float:
        now = time.time() if now is None else now
        self._expire(now)
        return sum(self.slots.values())

    def seconds_until_below(self, limit: float, now: float | None = None) -> float:
        """How long until what the window holds falls under ``limit`` (0: it is under already)."""
        now = time.time() if now is None else now
        total = self.total(now)
        for slot in sorted(self.slots):
            if total < limit:
                break
            total -= self.slots[slot]
            leaves = slot * self.width + self.window  # when _expire drops it
            if total < limit:
                return max(0.0, leaves - now)
        return 0.0 if total < limit else self.window


class DailyWindow:
    """Amounts added since the last midnight UTC (the sandbox's portals keep UTC time)."""

    def __init__(self) -> None:
        self.day = ""
        self.amount = 0.0

    @staticmethod
    def _today(now: float) -> str:
        return datetime.fromtimestamp(now, UTC).date().isoformat()

    def add(self, amount: float = 1.0, now: float | None = None) -> None:
        self.total(now)
        self.amount += amount

    def total(self, now: float | None = None) -> float:
        today = self._today(time.time() if now is None else now)
        if today != self.day:
            self.day, self.amount = today, 0.0
        return self.amount

    @staticmethod
    def resets_at(now: float | None = None) -> datetime:
        moment = datetime.fromtimestamp(time.time() if now is None else now, UTC)
        return datetime.combine(moment.date() + timedelta(days=1), datetime.min.time(), UTC)


class Meters:
    """One dialect's counters and limits; ``reset()`` brings both back to the start."""

    def __init__(self, limits: type[BaseModel] | None = None) -> None:
        self.model = limits
        self.limits: Any = limits() if limits is not None else None
        self.counters: dict[tuple[str, str], Any] = {}
        self.in_flight: dict[str, int] = {}

    def counter(self, name: str, key: str, make: Callable[[], Any]) -> Any:
        """The counter ``name`` for ``key`` (a tenant, app or user), made on first use."""
        found = self.counters.get((name, key))
        if found is None:
            if len(self.counters) > 10_000:  # keys come from a fixed set of users; this is a backstop
                self.counters.clear()
            found = self.counters[(name, key)] = make()
        return found

    def reset(self) -> None:
        self.limits = self.model() if self.model is not None else None
        self.counters.clear()
        self.in_flight.clear()

    def describe(self) -> dict[str, Any]:
        """What GET /admin/quota answers: the limits, and each counter's current amount."""
        usage: dict[str, dict[str, float]] = {}
        for (name, key), counter in sorted(self.counters.items()):
            amount = round(counter.total(), 3)  # requests are whole; Dataverse's seconds are not
            usage.setdefault(name, {})[key] = int(amount) if float(amount).is_integer() else amount
        return {"limits": self.limits.model_dump() if self.limits is not None else {},
                "usage": usage, "in_flight": dict(self.in_flight)}

"""Fault-injection knobs the admin API turns, and the two throttles behind them.

``Faults`` is the knob set (a pydantic model, so the admin API's patch model and its
OpenAPI schema derive from the same fields and ranges). ``TokenBucket`` is the rate
limiter behind ``rate_limit_rps``; ``CapacityQueue`` is the saturated server behind
``capacity_rps``.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CapacityQueue", "Faults", "TokenBucket"]


class Faults(BaseModel):
    """Everything the admin API can break. Defaults are a healthy CRM.

    Latency, errors, outage, rate limiting and capacity apply to API and token requests
    whose path starts with ``path_prefix`` (all of them when empty); sync and webhook
    knobs act on the sync worker and webhook deliverer; ``auth_enforced``,
    ``expose_sensitive``, ``exposed_fields``, ``unfiltered_reads``, ``widen_role``,
    ``ignore_revocation`` and ``login_throttle`` break the CRM's protections on purpose
    (access.py applies them).
    """

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False,
                              validate_assignment=False)

    latency_ms: float = Field(0.0, ge=0, le=600_000, description="added delay per request")
    jitter_ms: float = Field(0.0, ge=0, le=600_000, description="plus uniform random jitter")
    error_rate: float = Field(0.0, ge=0, le=1, description="fraction of requests that fail")
    error_status: int = Field(500, ge=400, le=599, description="status of injected errors")
    outage: bool = Field(False, description="answer every request with outage_status")
    outage_status: int = Field(503, ge=400, le=599)
    rate_limit_rps: float = Field(0.0, ge=0, le=1e6, description="token bucket; 0 = off")
    retry_after_s: int = Field(1, ge=0, le=3600, description="Retry-After of a 429")
    capacity_rps: float = Field(0.0, ge=0, le=1e6,
                                description="requests per second the CRM can serve; 0 = unlimited")
    capacity_queue: int = Field(0, ge=0, le=1_000_000,
                                description="most requests waiting for capacity; 0 = unbounded")
    path_prefix: str = Field("", max_length=200, description="limit request faults to this prefix")
    sync_lag_ms: float = Field(0.0, ge=0, le=3_600_000)
    sync_jitter_ms: float = Field(0.0, ge=0, le=3_600_000)
    sync_stall: bool = False
    sync_max_rate: float = Field(0.0, ge=0, le=1e6, description="changes per second; 0 = unlimited")
    webhook_delay_ms: float = Field(0.0, ge=0, le=600_000)
    auth_enforced: bool = True
    expose_sensitive: bool = False
    exposed_fields: list[Literal["tax_id", "card_number", "national_id", "iban"]] = Field(
        [], max_length=4, description="sensitive contact fields the API returns by mistake")
    unfiltered_reads: list[Literal["get", "list", "search", "export"]] = Field(
        [], max_length=4, description="read paths that forget the tenant and owner filter")
    widen_role: bool = Field(False, description="the restricted role acts as a full user")
    ignore_revocation: bool = Field(False, description="revoked tokens keep working")
    login_throttle: bool = Field(True, description="lock an account after failed logins")
    hsts: bool = True

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump()

    def apply(self, patch: dict[str, Any]) -> None:
        """Set already validated knobs (a partial update merges; lists are replaced whole)."""
        for key, value in patch.items():
            setattr(self, key, sorted(set(value)) if isinstance(value, list) else value)

    def applies_to(self, path: str) -> bool:
        return not self.path_prefix or path.startswith(self.path_prefix)


class TokenBucket:
    """Requests-per-second limiter with a burst of one second's worth."""

    def __init__(self) -> None:
        self.tokens = 0.0
        self.rate = 0.0
        self.stamp = time.monotonic()

    def allow(self, rate: float) -> bool:
        now = time.monotonic()
        if rate != self.rate:
            self.rate, self.tokens = rate, rate
        self.tokens = min(rate, self.tokens + (now - self.stamp) * rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class CapacityQueue:
    """A server that serves ``rate`` requests per second, first come first served.

    Each request takes the next free service slot (slots are ``1/rate`` seconds apart)
    and waits until its slot begins. Below capacity a request finds its slot free and
    does not wait; above it the slots run ahead of the clock, so the wait grows for as
    long as arrivals outpace the rate, the way a saturated server's latency does. The
    slots are reckoned on a virtual clock, so the served rate is exact however late the
    event loop wakes a waiter. With ``max_queue`` set, a request that would wait behind
    that many others is refused instead.

        queue = CapacityQueue()
        if not await queue.admit(rate=150, max_queue=0):
            ...  # the queue is full: answer 503
    """

    def __init__(self) -> None:
        self.rate = 0.0
        self.next_free = 0.0
        self.refused = 0
        self._waiters: set[asyncio.Future[None]] = set()

    def reserve(self, now: float, rate: float, max_queue: int = 0) -> float | None:
        """Take a slot for a request arriving at ``now``: seconds to wait, or None if full."""
        if rate <= 0:
            return 0.0
        if rate != self.rate:
            self.rate, self.next_free = rate, now
        start = max(now, self.next_free)
        if max_queue and self.waiting(now) >= max_queue:
            self.refused += 1
            return None
        self.next_free = start + 1 / rate
        return start - now

    def waiting(self, now: float | None = None) -> int:
        """Requests holding a slot that has not begun yet (slots are back to back)."""
        if now is None:
            now = asyncio.get_running_loop().time()
        if self.rate <= 0 or self.next_free <= now:
            return 0
        return max(0, math.ceil((self.next_free - now) * self.rate - 1e-9) - 1)

    async def admit(self, rate: float, max_queue: int = 0) -> bool:
        """Wait for this request's slot; False when the queue is full."""
        loop = asyncio.get_running_loop()
        wait = self.reserve(loop.time(), rate, max_queue)
        if wait is None:
            return False
        if wait <= 0:
            return True
        done: asyncio.Future[None] = loop.create_future()
        timer = loop.call_later(wait, _finish, done)
        self._waiters.add(done)
        try:
            await done
        finally:
            self._waiters.discard(done)
            timer.cancel()
        return True

    def release(self) -> None:
        """Let every waiting request through and start afresh (the knob changed)."""
        for done in list(self._waiters):
            _finish(done)
        self._waiters.clear()
        self.rate = 0.0


def _finish(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)

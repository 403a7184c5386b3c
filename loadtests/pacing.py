"""The pacer: a token bucket that holds the safety cap on rate and the open-model target rate."""

from __future__ import annotations

import time

import gevent

__all__ = ["Pacer"]


class Pacer:
    """A token bucket for requests: the safety cap on rate, and open-model pacing.

    ``rate`` is this process's share of the requests per second allowed (the master
    divides the run's rate among workers). Users wait for a token before each request,
    so no process ever exceeds the cap, and a target rate is held when users suffice.
    """

    # No lock: users are gevent greenlets, which never switch inside this pure-Python code.

    def __init__(self, rate: float) -> None:
        self.set_rate(rate)
        self.tokens = min(self.rate, 1.0)
        self.stamp = time.monotonic()

    def set_rate(self, rate: float) -> None:
        self.rate = max(0.001, rate)
        self.burst = max(1.0, self.rate / 10)  # the most tokens the bucket holds

    def acquire(self) -> None:
        # on every request: the refill below is all it costs while tokens last
        while True:
            now = time.monotonic()
            tokens = self.tokens + (now - self.stamp) * self.rate
            if tokens > self.burst:
                tokens = self.burst
            self.stamp = now
            if tokens >= 1:
                self.tokens = tokens - 1
                return
            self.tokens = tokens
            gevent.sleep((1 - tokens) / self.rate)

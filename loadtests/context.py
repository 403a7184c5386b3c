"""What every Locust process of a crmpulse load test shares: config, run id, pacing, ledgers.

Loaded once per process when the locustfile is imported: from ``--crmpulse-config``
(or ``CRMPULSE_CONFIG``, default ``crmpulse.yaml``). The run id comes from the
launcher (``CRMPULSE_RUN_ID``) so master and workers mark records alike.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass, field

import gevent

from crmpulse import LoadedConfig, load_config
from crmpulse.client import Session

__all__ = ["LoadContext", "Pacer", "context", "marker_for_run"]


def marker_for_run(target: str, run_id: str) -> str:
    """The tag every record of a run carries: crmpulse, the target, and the run."""
    return f"crmpulse-{target}-lt-{run_id}".replace("_", "-")


class Pacer:
    """A token bucket for requests: the safety cap on rate, and open-model pacing.

    ``rate`` is this process's share of the requests per second allowed (the master
    divides the run's rate among workers). Users wait for a token before each request,
    so no process ever exceeds the cap, and a target rate is held when users suffice.
    """

    # No lock: users are gevent greenlets, which never switch inside this pure-Python code.

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = min(rate, 1.0)
        self.stamp = time.monotonic()

    def set_rate(self, rate: float) -> None:
        self.rate = max(0.001, rate)

    def acquire(self) -> None:
        while True:
            now = time.monotonic()
            self.tokens = min(max(1.0, self.rate / 10), self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            gevent.sleep((1 - self.tokens) / self.rate)


@dataclass
class LoadContext:
    loaded: LoadedConfig
    run_id: str
    pacer: Pacer
    sessions: list[Session] = field(default_factory=list)  # every user's ledger, for cleanup

    @property
    def marker(self) -> str:
        return marker_for_run(self.loaded.target.name, self.run_id)


_context: LoadContext | None = None


def context(config_path: str | None = None) -> LoadContext:
    """The process's LoadContext, loading the config on first use."""
    global _context
    if _context is None:
        path = config_path or os.environ.get("CRMPULSE_CONFIG", "crmpulse.yaml")
        loaded = load_config(path)
        run_id = os.environ.get("CRMPULSE_RUN_ID") or time.strftime("%Y%m%d%H%M%S") + \
            secrets.token_hex(2)
        os.environ["CRMPULSE_RUN_ID"] = run_id  # worker processes forked later inherit it
        _context = LoadContext(loaded, run_id, Pacer(loaded.target.safety.max_rps))
    return _context

"""crmpulse's locustfile with HDR recording switched off: the peer that prices recording.

Everything else (journeys, operations engine, pacing, journey timing) is the same code.
"""

from crmpulse.loadtests.latency import LatencyBook
from crmpulse.loadtests.locustfile import *  # noqa: F403 - Locust collects the User classes here


def _no_record(self: LatencyBook, kind: str, name: str, seconds: float, ok: bool) -> None:
    return None


LatencyBook.record = _no_record  # type: ignore[method-assign]

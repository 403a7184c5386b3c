"""API-quota series on /metrics, and the bounded reads of a profile's limits operations.

The readings come from the target runner's :class:`crmpulse.quota.QuotaBook`, which every
reply of the probes and sync pairs feeds. :class:`QuotaCollector` turns the latest
reading of each quota into ``crmpulse_api_quota_*`` series when Prometheus scrapes: a
quota's series appear once the CRM has reported it (a quota it never reported has no
value worth a zero), and stay at the last reading. :func:`watch_limits` calls each limits
operation a spec names at start and then at most every ``every`` of the spec.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from crmpulse import contract as c
from crmpulse.quota import QuotaBook

from .checks import TargetRunner

__all__ = ["QuotaCollector", "watch_limits"]

log = logging.getLogger("crmpulse.probe")


class QuotaCollector(Collector):
    """Yields the quota families of whatever runner ``source`` returns at scrape time."""

    def __init__(self, source: Callable[[], tuple[str, QuotaBook] | None]) -> None:
        self.source = source

    def collect(self) -> Iterator[GaugeMetricFamily]:
        found = self.source()
        readings = found[1].readings() if found is not None else []
        families = {m.name: GaugeMetricFamily(m.name, m.help, labels=list(m.labels))
                    for m in c.API_QUOTA_METRICS}
        for quota in readings:
            labels = [found[0] if found else "", quota.name, quota.window]
            families[c.API_QUOTA_USED.name].add_metric(labels, quota.used)
            families[c.API_QUOTA_LIMIT.name].add_metric(labels, quota.limit)
            families[c.API_QUOTA_OBSERVED.name].add_metric(labels, quota.observed_at)
            if quota.resets_at is not None:
                families[c.API_QUOTA_RESET.name].add_metric(labels, quota.resets_at)
            if quota.window_seconds:
                families[c.API_QUOTA_WINDOW.name].add_metric(labels, quota.window_seconds)
        yield from (f for f in families.values() if f.samples)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())  # series come and go with readings: nothing to describe ahead


async def watch_limits(current: Callable[[], TargetRunner | None], tick: float = 5.0) -> None:
    """Call the limits operations the running runner's book says are due, until cancelled.

    ``current`` is asked at every tick, so the watch follows the exporter's running set
    across reloads; never raises.
    """
    while True:
        runner = current()
        for operation in runner.quota.due() if runner is not None else ():
            assert runner is not None
            with contextlib.suppress(Exception):  # a failing CRM never stops the exporter
                async with asyncio.timeout(runner.target.timeout):
                    result = await runner.client.run(runner.session().call(operation, {}))
                if not result.ok:
                    log.warning("quota read failed operation=%s status=%s", operation, result.status)
        await asyncio.sleep(tick)

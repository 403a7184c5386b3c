"""Prometheus metrics of the exporter, built from the core contract.

Two parts, rendered together on ``/metrics``:

- the scheduled checks' series, in a :class:`~.exposition.CheckStore` that renders
  incrementally (thousands of checks, tens of thousands of series);
- the exporter's own health and the sync-lag metrics, a few dozen series, as
  prometheus_client objects in ``registry`` (passed in: a fresh ``CollectorRegistry()``
  per test).

Every label child a check can produce is created when the check is configured, so
series such as ``crmpulse_check_failures_total{reason="timeout"}`` exist at 0 before
the first failure and ``rate()``/``increase()`` see the first one.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from crmpulse import __version__, contract
from crmpulse.config import Check
from crmpulse.contract import PROBE_REJECT_REASONS, Metric

from .access_metrics import AccessMetrics
from .checks import Outcome
from .exposition import CheckStore, deflate, gzip_join

__all__ = ["ProbeMetrics", "make"]

# `*_created` samples double the series count and no dashboard or alert reads them.
disable_created_metrics()


def make(metric: Metric, registry: CollectorRegistry, **kwargs: Any) -> Any:
    """Create the prometheus_client object for a contract entry."""
    cls = {"counter": Counter, "gauge": Gauge, "histogram": Histogram, "info": Info}[metric.kind]
    labels = [] if metric.kind == "info" else list(metric.labels)  # Info takes them from .info()
    return cls(metric.name, metric.help, labels, registry=registry, **kwargs)


class ProbeMetrics:
    """The exporter's metrics: checks' results and the exporter's own health."""

    def __init__(self, registry: CollectorRegistry, duration_buckets: Iterable[float]) -> None:
        self.registry = registry
        self.buckets = tuple(duration_buckets)
        self.checks = CheckStore(self.buckets)
        m = contract
        self.build = make(m.BUILD_INFO, registry)
        self.build.info({"version": __version__, "python": platform.python_version()})
        self.reload_ok = make(m.CONFIG_RELOAD_OK, registry)
        self.reload_time = make(m.CONFIG_RELOAD_TIME, registry)
        self.reloads = make(m.CONFIG_RELOADS, registry)
        for result in ("success", "failure"):
            self.reloads.labels(result)
        self.scrape = make(m.SCRAPE_DURATION, registry,
                           buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0))
        self.configured = make(m.CHECKS_CONFIGURED, registry)
        self.running = make(m.CHECKS_RUNNING, registry)
        self.pairs_configured = make(m.SYNC_PAIRS_CONFIGURED, registry)
        self.pairs_running = make(m.SYNC_PAIRS_RUNNING, registry)
        self.shard = make(m.SHARD_INFO, registry)
        self.shard.info({"index": "0", "count": "1"})
        self.probes_in_flight = make(m.PROBES_IN_FLIGHT, registry)
        self.probes_rejected = make(m.PROBES_REJECTED, registry)
        for reason in PROBE_REJECT_REASONS:
            self.probes_rejected.labels(reason)
        self.access = AccessMetrics(registry)

    def reloaded(self, ok: bool) -> None:
        self.reloads.labels("success" if ok else "failure").inc()
        self.reload_ok.set(1 if ok else 0)
        if ok:
            self.reload_time.set(time.time())

    def prepare(self, target: str, check: Check, phase_series: bool = True, same: bool = False,
                previous: CheckStore | None = None) -> None:
        """Create every series the check can produce, at zero; a check whose shape is
        unchanged keeps its series. ``same``: a reload kept the check itself (its schedule
        goes on), so series it had to rebuild (new SLO buckets, ``phase_series`` switched)
        take over its last results from ``previous`` (counters and histograms start afresh).
        Access series it already had always keep their values (a run changes them)."""
        key = (target, check.name)
        old = (previous or self.checks).series.get(key)
        series = self.checks.prepare(target, check, phase_series)
        if same and old is not None and series is not old:
            series.adopt(old)
        self.access.prepare(target, check)

    def keep(self, keys: set[tuple[str, str]]) -> None:
        """Drop the series of every check not in ``keys`` (it left the config or this shard)."""
        self.checks.keep(keys)
        self.access.keep(keys)

    def record(self, target: str, outcome: Outcome) -> None:
        self.checks.record(target, outcome)
        self.access.record(target, outcome)

    def overrun(self, target: str, check_name: str, missed: int) -> None:
        self.checks.overrun(target, check_name, missed)

    def render(self, accept: str = "", compress: bool = False) -> tuple[bytes, str]:
        """The exposition for an ``Accept`` header, gzipped when ``compress``, and its type.

        OpenMetrics 1.0 when the scraper asks for it (Prometheus does), else the classic
        text format; prometheus_client renders the exporter's own metrics in either. The
        checks' part is compressed block by block and cached (exposition.py); only the
        exporter's own few dozen series are compressed afresh.
        """
        start = time.perf_counter()
        openmetrics = wants_openmetrics(accept)
        own = (generate_openmetrics if openmetrics else generate_latest)(self.registry)
        if compress:
            body = gzip_join([*self.checks.deflated(openmetrics),
                              (own, deflate(own, self.checks.level))])
        else:
            body = b"".join([*self.checks.chunks(openmetrics), own])
        self.scrape.observe(time.perf_counter() - start)
        return body, OPENMETRICS if openmetrics else CONTENT_TYPE_PLAIN_0_0_4


def wants_openmetrics(accept: str) -> bool:
    """Whether an ``Accept`` header asks for OpenMetrics 1.0 (Prometheus's first choice).

    prometheus_client's ``choose_encoder`` raises on a version it cannot parse (a scraper's
    header must never turn into a 500) and offers versions this exporter does not write,
    so the choice is made here: OpenMetrics 1.0.0 when it is accepted (no version means
    1.0.0), otherwise the classic text format 0.0.4, which every scraper reads.
    """
    for entry in accept.split(",")[:32]:
        kind, *params = (part.strip() for part in entry.split(";"))
        if kind.lower() != "application/openmetrics-text":
            continue
        values = dict(p.partition("=")[::2] for p in params)
        if values.get("version", "1.0.0") in ("1.0.0", "") and values.get("q", "1") not in (
                "0", "0.0", "0.00", "0.000"):
            return True
    return False

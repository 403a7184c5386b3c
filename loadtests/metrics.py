"""Live Prometheus metrics of a running load test, read from Locust's stats at scrape time.

A collector, not counters incremented per request: on the master of a distributed run
the request events happen on the workers, but the master holds the merged statistics,
so reading them at scrape time covers both modes with one implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from crmpulse import contract
from crmpulse.contract import duration_buckets

from .gate import operation_entries

__all__ = ["LoadTestCollector"]


class LoadTestCollector:
    def __init__(self, environment: Any, target: str, run_id: str, thresholds: list[tuple[str, str, float]],
                 state: Callable[[], dict[str, Any]]) -> None:
        self.environment = environment
        self.target = target
        self.run_id = run_id
        self.thresholds = thresholds  # (operation, quantile, seconds) gate lines for dashboards
        self.state = state
        self.bounds = duration_buckets([t for _, _, t in thresholds])

    def register(self, registry: CollectorRegistry) -> None:
        registry.register(self)

    def collect(self) -> Iterator[Any]:
        c = contract
        stats = self.environment.stats
        operations, journeys, _ = operation_entries(stats)
        requests = CounterMetricFamily(c.LOADTEST_REQUESTS.name, c.LOADTEST_REQUESTS.help,
                                       labels=list(c.LOADTEST_REQUESTS.labels))
        durations = HistogramMetricFamily(c.LOADTEST_DURATION.name, c.LOADTEST_DURATION.help,
                                          labels=list(c.LOADTEST_DURATION.labels))
        for kind, entries in (("operation", operations), ("journey", journeys)):
            for name, entry in entries.items():
                requests.add_metric([self.target, kind, name, "success"],
                                    entry.num_requests - entry.num_failures)
                requests.add_metric([self.target, kind, name, "failure"], entry.num_failures)
                buckets, running = [], 0
                times = sorted(entry.response_times.items())
                i = 0
                for bound in self.bounds:
                    while i < len(times) and times[i][0] <= bound * 1000:
                        running += times[i][1]
                        i += 1
                    buckets.append((repr(float(bound)), running))
                buckets.append(("+Inf", entry.num_requests))
                durations.add_metric([self.target, kind, name], buckets,
                                     entry.total_response_time / 1000)
        yield requests
        yield durations
        throttled = CounterMetricFamily(c.LOADTEST_THROTTLED.name, c.LOADTEST_THROTTLED.help,
                                        labels=list(c.LOADTEST_THROTTLED.labels))
        counts: dict[str, int] = {}
        for error in stats.errors.values():
            if str(error.error).startswith("throttled"):
                counts[error.name] = counts.get(error.name, 0) + error.occurrences
        for name in operations:
            throttled.add_metric([self.target, name], counts.get(name, 0))
        yield throttled
        state = self.state()
        for metric, value in ((c.LOADTEST_USERS, state["users"]),
                              (c.LOADTEST_TARGET_RPS, state["target_rps"]),
                              (c.LOADTEST_ACHIEVED_RPS, state["achieved_rps"]),
                              (c.LOADTEST_RUNNING, state["running"])):
            family = GaugeMetricFamily(metric.name, metric.help, labels=["target"])
            family.add_metric([self.target], float(value))
            yield family
        info = GaugeMetricFamily(c.LOADTEST_INFO.series, c.LOADTEST_INFO.help,
                                 labels=list(c.LOADTEST_INFO.labels))
        info.add_metric([self.target, self.run_id], 1)
        yield info
        lines = GaugeMetricFamily(c.LOADTEST_GATE.name, c.LOADTEST_GATE.help,
                                  labels=list(c.LOADTEST_GATE.labels))
        for operation, quantile, seconds in self.thresholds:
            lines.add_metric([self.target, operation, quantile], seconds)
        yield lines
        passing = GaugeMetricFamily(c.LOADTEST_GATE_PASSING.name, c.LOADTEST_GATE_PASSING.help,
                                    labels=["target"])
        passing.add_metric([self.target], 1.0 if state["gates_passing"] else 0.0)
        yield passing

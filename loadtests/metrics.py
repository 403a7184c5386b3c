"""Live Prometheus metrics of a running load test, read from the run object at scrape time.

A collector, not counters incremented per request: on the master of a distributed run
the requests happen on the workers, and the master holds the merged HDR histograms, so
reading them at scrape time covers both modes with one implementation. Histogram
buckets are counted from the HDR histograms (exact to their 3 significant digits).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from crmpulse import contract
from crmpulse.contract import duration_buckets

from .latency import Entry

if TYPE_CHECKING:
    from .loadrun import LoadRun

__all__ = ["LoadTestCollector", "cumulative_buckets"]


def cumulative_buckets(entry: Entry, bounds: Sequence[float]) -> list[tuple[str, float]]:
    """(le, count of values <= le seconds) for each bound, then +Inf."""
    counts = [0] * len(bounds)
    for item in entry.histogram.get_recorded_iterator():
        seconds = entry.histogram.get_highest_equivalent_value(item.value_iterated_to) / 1e6
        for i, bound in enumerate(bounds):
            if seconds <= bound:
                counts[i] += item.count_at_value_iterated_to
                break
    running, buckets = 0, []
    for bound, count in zip(bounds, counts, strict=True):
        running += count
        buckets.append((repr(float(bound)), float(running)))
    buckets.append(("+Inf", float(entry.requests)))
    return buckets


class LoadTestCollector:
    def __init__(self, run: LoadRun, thresholds: list[tuple[str, str, float]]) -> None:
        self.run = run
        self.target = run.loaded.target.name
        self.thresholds = thresholds  # (operation, percentile, seconds) gate lines for dashboards
        self.bounds = duration_buckets([t for _, _, t in thresholds])

    def register(self, registry: CollectorRegistry) -> None:
        registry.register(self)

    def collect(self) -> Iterator[Any]:
        c = contract
        run = self.run
        book = run.merged
        requests = CounterMetricFamily(c.LOADTEST_REQUESTS.name, c.LOADTEST_REQUESTS.help,
                                       labels=list(c.LOADTEST_REQUESTS.labels))
        durations = HistogramMetricFamily(c.LOADTEST_DURATION.name, c.LOADTEST_DURATION.help,
                                          labels=list(c.LOADTEST_DURATION.labels))
        operations = book.of_kind("operation")
        for kind in ("operation", "journey"):
            for name, entry in sorted(book.of_kind(kind).items()):
                requests.add_metric([self.target, kind, name, "success"], entry.requests - entry.failures)
                requests.add_metric([self.target, kind, name, "failure"], entry.failures)
                durations.add_metric([self.target, kind, name], cumulative_buckets(entry, self.bounds),
                                     entry.total_us / 1e6)
        yield requests
        yield durations
        throttled = CounterMetricFamily(c.LOADTEST_THROTTLED.name, c.LOADTEST_THROTTLED.help,
                                        labels=list(c.LOADTEST_THROTTLED.labels))
        for name in sorted(operations):
            throttled.add_metric([self.target, name], run.throttled_total.get(name, 0))
        yield throttled
        state = run.state
        for metric, value in ((c.LOADTEST_USERS, state["users"]),
                              (c.LOADTEST_TARGET_RPS, state["target_rps"]),
                              (c.LOADTEST_ACHIEVED_RPS, state["achieved_rps"]),
                              (c.LOADTEST_RUNNING, state["running"])):
            family = GaugeMetricFamily(metric.name, metric.help, labels=["target"])
            family.add_metric([self.target], float(value))
            yield family
        info = GaugeMetricFamily(c.LOADTEST_INFO.series, c.LOADTEST_INFO.help,
                                 labels=list(c.LOADTEST_INFO.labels))
        info.add_metric([self.target, run.run_id], 1)
        yield info
        lines = GaugeMetricFamily(c.LOADTEST_GATE.name, c.LOADTEST_GATE.help,
                                  labels=list(c.LOADTEST_GATE.labels))
        for operation, percentile, seconds in self.thresholds:
            lines.add_metric([self.target, operation, percentile], seconds)
        yield lines
        passing = GaugeMetricFamily(c.LOADTEST_GATE_PASSING.name, c.LOADTEST_GATE_PASSING.help,
                                    labels=["target"])
        passing.add_metric([self.target], 1.0 if state["gates_passing"] else 0.0)
        yield passing

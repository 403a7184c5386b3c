"""The SLO gate: per-operation, per-journey and global thresholds, judged from Locust's stats.

Percentiles come from Locust's own response-time buckets (``StatsEntry.response_times``),
which round each time to the nearest 1 ms below 100 ms, 10 ms below 1 s, 100 ms below
10 s and 1 s above: a percentile is exact up to that rounding. In distributed mode the
master merges the workers' buckets, so the figures cover every request.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from locust.stats import RequestStats, StatsEntry

from crmpulse.config import Gate, Gates

__all__ = ["PERCENTILE_NOTE", "GateResult", "evaluate", "operation_entries", "percentile"]

PERCENTILE_NOTE = (
    "Percentiles are computed from Locust's response-time buckets, which round each "
    "response time to 1 ms below 100 ms, 10 ms below 1 s, 100 ms below 10 s and 1 s "
    "above; each percentile is exact up to that rounding. Journey rows time a whole "
    "journey iteration.")
JOURNEY = "journey"


@dataclass
class GateResult:
    scope: str  # global | operation | journey
    name: str
    metric: str  # p50 | p95 | p99 | error_ratio | min_rps
    threshold: float
    actual: float
    passed: bool
    requests: int

    def describe(self) -> str:
        unit = {"error_ratio": "%", "min_rps": " req/s"}.get(self.metric, " s")
        verdict = "ok" if self.passed else "FAILED"
        return (f"{verdict:6} {self.scope} {self.name} {self.metric}: {self.actual:.3f}{unit} "
                f"(threshold {self.threshold:g}{unit}, {self.requests} requests)")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(response_times: dict[int, int], q: float) -> float:
    """The q-quantile (0-1) in milliseconds of a Locust bucket dict, as Locust computes it."""
    total = sum(response_times.values())
    if not total:
        return 0.0
    rank = total * (1 - q)
    seen = 0
    for bucket in sorted(response_times, reverse=True):
        seen += response_times[bucket]
        if seen >= rank:
            return float(bucket)
    return float(min(response_times))


def operation_entries(stats: RequestStats) -> tuple[dict[str, StatsEntry], dict[str, StatsEntry], StatsEntry]:
    """(operations, journeys, the total over operations) from Locust's stats."""
    operations: dict[str, StatsEntry] = {}
    journeys: dict[str, StatsEntry] = {}
    total = StatsEntry(stats, "Aggregated (operations)", "", use_response_times_cache=False)
    for (name, method), entry in stats.entries.items():
        if method == JOURNEY:
            journeys[name] = entry
        else:
            if name in operations:
                operations[name] = _merged(stats, operations[name], entry)
            else:
                operations[name] = entry
            total.extend(entry)
    return operations, journeys, total


def _merged(stats: RequestStats, a: StatsEntry, b: StatsEntry) -> StatsEntry:
    merged = StatsEntry(stats, a.name, "", use_response_times_cache=False)
    merged.extend(a)
    merged.extend(b)
    return merged


def _judge(scope: str, name: str, gate: Gate, entry: StatsEntry | None) -> list[GateResult]:
    results = []
    requests = entry.num_requests if entry else 0
    for metric, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        threshold = getattr(gate, metric)
        if threshold is None:
            continue
        actual = entry.get_response_time_percentile(q) / 1000 if entry and requests else float("inf")
        results.append(GateResult(scope, name, metric, threshold, actual,
                                  requests > 0 and actual <= threshold, requests))
    if gate.error_ratio is not None:
        actual = entry.fail_ratio * 100 if entry and requests else 100.0
        results.append(GateResult(scope, name, "error_ratio", gate.error_ratio, actual,
                                  requests > 0 and actual <= gate.error_ratio, requests))
    if gate.min_rps is not None:
        actual = entry.total_rps if entry and requests else 0.0
        results.append(GateResult(scope, name, "min_rps", gate.min_rps, actual,
                                  actual >= gate.min_rps, requests))
    return results


def evaluate(gates: Gates, stats: RequestStats) -> list[GateResult]:
    """Judge every configured threshold; a gated name with no requests fails (it never ran)."""
    operations, journeys, total = operation_entries(stats)
    results = _judge("global", "all operations", gates.global_, total)
    for name, gate in gates.operations.items():
        results += _judge("operation", name, gate, operations.get(name))
    for name, gate in gates.journeys.items():
        results += _judge("journey", name, gate, journeys.get(name))
    return results

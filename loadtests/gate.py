"""The SLO gate: per-operation, per-journey and global thresholds, judged from HDR histograms.

Percentiles come from :mod:`.latency` (HDR histograms, 3 significant digits, merged
exactly across worker processes and machines); see ``PRECISION_NOTE``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from crmpulse.config import Gate, Gates

from .latency import PRECISION_NOTE, Entry, LatencyBook

__all__ = ["PRECISION_NOTE", "GateResult", "evaluate"]


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


def _judge(scope: str, name: str, gate: Gate, entry: Entry | None, duration: float) -> list[GateResult]:
    results = []
    requests = entry.requests if entry else 0
    for metric, q in (("p50", 50.0), ("p95", 95.0), ("p99", 99.0)):
        threshold = getattr(gate, metric)
        if threshold is None:
            continue
        actual = entry.percentile_ms(q) / 1000 if entry and requests else float("inf")
        results.append(GateResult(scope, name, metric, threshold, actual,
                                  requests > 0 and actual <= threshold, requests))
    if gate.error_ratio is not None:
        actual = entry.error_ratio if entry and requests else 100.0
        results.append(GateResult(scope, name, "error_ratio", gate.error_ratio, actual,
                                  requests > 0 and actual <= gate.error_ratio, requests))
    if gate.min_rps is not None:
        actual = requests / duration if duration > 0 else 0.0
        results.append(GateResult(scope, name, "min_rps", gate.min_rps, actual,
                                  actual >= gate.min_rps, requests))
    return results


def evaluate(gates: Gates, book: LatencyBook, duration: float) -> list[GateResult]:
    """Judge every configured threshold; a gated name with no requests fails (it never ran)."""
    operations, journeys = book.of_kind("operation"), book.of_kind("journey")
    results = _judge("global", "all operations", gates.global_, book.total("operation"), duration)
    for name, gate in gates.operations.items():
        results += _judge("operation", name, gate, operations.get(name), duration)
    for name, gate in gates.journeys.items():
        results += _judge("journey", name, gate, journeys.get(name), duration)
    return results

"""`crmpulse report compare` on histograms made here: what is flagged and what is noise."""

from __future__ import annotations

import random
from typing import Any

from crmpulse.loadtests.compare import Tolerances, compare_runs, markdown
from crmpulse.loadtests.latency import LatencyBook


def run(seed: int, slow: dict[str, float] | None = None, errors: dict[str, float] | None = None,
        n: int = 3000, duration: float = 60.0) -> dict[str, Any]:
    """A report.json-like run: operations with lognormal latencies around their medians (ms)."""
    rng = random.Random(seed)
    book = LatencyBook()
    for name, median in (("search_contacts", 120.0), ("get_contact", 40.0), ("create_contact", 90.0)):
        factor = (slow or {}).get(name, 1.0)
        failing = (errors or {}).get(name, 0.0)
        for _ in range(n):
            book.record("operation", name, median * factor * rng.lognormvariate(0, 0.35) / 1000,
                        rng.random() >= failing)
    return {"run_id": f"run{seed}", "duration_s": duration, "histograms": book.encode(),
            "shape": {"stages": [{"end": 60, "users": 10}]}}


def flagged(a: dict[str, Any], b: dict[str, Any], **tolerances: float) -> set[tuple[str, str]]:
    return {(f.operation, f.metric) for f in compare_runs(a, b, Tolerances(**tolerances)).regressions}


def test_two_runs_of_the_same_build_show_no_regression() -> None:
    for seed in range(5):
        assert flagged(run(seed), run(seed + 100)) == set()


def test_a_30_percent_slowdown_of_one_operation_is_flagged_on_that_operation_only() -> None:
    found = flagged(run(1), run(2, slow={"get_contact": 1.3}))
    assert ("get_contact", "p95") in found
    assert {op for op, _ in found} == {"get_contact"}


def test_a_slowdown_inside_the_tolerance_is_a_change_not_a_regression() -> None:
    comparison = compare_runs(run(1), run(2, slow={"search_contacts": 1.05}))
    assert not comparison.regressions
    p50 = next(f for f in comparison.findings if f.operation == "search_contacts" and f.metric == "p50")
    assert p50.verdict in ("changed, within tolerance", "within noise")


def test_a_small_absolute_change_under_the_floor_is_not_a_regression() -> None:
    # a p95 of 71 ms -> 92 ms is +30 %, but the floor says differences under 30 ms do not count
    assert ("get_contact", "p95") not in flagged(run(1), run(2, slow={"get_contact": 1.3}),
                                                 latency_floor_ms=30.0)


def test_more_errors_beyond_the_tolerance_are_flagged() -> None:
    found = flagged(run(1, errors={"create_contact": 0.002}), run(2, errors={"create_contact": 0.05}))
    assert ("create_contact", "error_ratio") in found
    assert flagged(run(1, errors={"create_contact": 0.002}), run(2, errors={"create_contact": 0.004})) == set()


def test_lower_throughput_is_flagged_only_beyond_the_tolerance() -> None:
    assert ("get_contact", "throughput") in flagged(run(1), run(2, n=2000))
    assert ("get_contact", "throughput") not in flagged(run(1), run(2, n=2900))


def test_the_markdown_states_the_method_and_the_regressions() -> None:
    text = markdown(compare_runs(run(1), run(2, slow={"get_contact": 1.3})))
    assert text.startswith("# Load test comparison: REGRESSED")
    assert "- get_contact p95:" in text and "Method: Percentiles: distribution-free" in text


def test_an_operation_with_a_handful_of_requests_is_never_a_regression() -> None:
    a, b = run(1, n=8), run(2, n=8, slow={"get_contact": 3.0})
    assert flagged(a, b, throughput=100.0) == set()

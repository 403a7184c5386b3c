"""Load-test logic without a server: shapes, the gate's percentiles, plots, the pacer."""

from __future__ import annotations

import random
import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from locust.stats import RequestStats

from crmpulse import ConfigError
from crmpulse.config import Gate, Gates, Shape
from crmpulse.loadtests.context import Pacer
from crmpulse.loadtests.gate import evaluate, percentile
from crmpulse.loadtests.plots import line_chart
from crmpulse.loadtests.shapes import plan_stages, stage_at


def stats_with(samples: dict[str, list[float]], failures: dict[str, int] | None = None) -> RequestStats:
    stats = RequestStats(use_response_times_cache=False)
    for name, times in samples.items():
        for t in times:
            stats.log_request("GET", name, t, 100)
        for _ in range((failures or {}).get(name, 0)):
            stats.log_error("GET", name, "boom")
    return stats


def test_our_window_percentile_matches_locusts_own() -> None:
    rng = random.Random(7)
    times = [rng.lognormvariate(4, 1) for _ in range(5000)]
    entry = stats_with({"op": times}).get("op", "GET")
    for q in (0.5, 0.95, 0.99):
        assert percentile(dict(entry.response_times), q) == entry.get_response_time_percentile(q)


def test_a_gate_passes_and_fails_on_the_named_operation() -> None:
    stats = stats_with({"fast": [10.0] * 100, "slow": [900.0] * 100})
    gates = Gates(operations={"fast": Gate(p95=0.1), "slow": Gate(p95=0.5)})
    results = {r.name: r for r in evaluate(gates, stats)}
    assert results["fast"].passed and results["fast"].actual == 0.01
    assert not results["slow"].passed and results["slow"].actual == 0.9


def test_error_ratio_and_min_rps_gates() -> None:
    stats = stats_with({"op": [5.0] * 98}, failures={"op": 2})
    results = evaluate(Gates(global_=Gate(error_ratio=1.0, min_rps=1e9)), stats)
    by_metric = {r.metric: r for r in results}
    assert not by_metric["error_ratio"].passed and by_metric["error_ratio"].actual == pytest.approx(200 / 98)
    assert not by_metric["min_rps"].passed


def test_a_gated_operation_that_never_ran_fails() -> None:
    results = evaluate(Gates(operations={"missing": Gate(p95=1.0)}), stats_with({"op": [1.0]}))
    [missing] = [r for r in results if r.name == "missing"]
    assert not missing.passed and missing.requests == 0


@pytest.mark.parametrize(("kind", "users"), [("ramp", [10]), ("step", [3, 5, 8, 10]),
                                             ("spike", [2, 10, 2]), ("soak", [10])])
def test_shapes_have_the_documented_stages(kind: str, users: list[int]) -> None:
    stages = plan_stages(Shape(kind=kind, users=10, duration=100))
    assert [s.users for s in stages] == users
    assert stages[-1].end == 100
    assert stage_at(stages, 100.5) is None


def test_peak_season_scales_the_busiest_hour_to_the_multiple(tmp_path: Path) -> None:
    (tmp_path / "traffic.csv").write_text("hour,requests\n0,100\n1,400\n2,200\n")
    stages = plan_stages(Shape(kind="peak_season", users=10, multiple=3, duration=30,
                               csv="traffic.csv", rps=90), tmp_path)
    assert [s.users for s in stages] == [8, 30, 15]
    assert [s.end for s in stages] == [10, 20, 30]
    assert stages[1].rps == 90  # the target rate follows the users


def test_a_bad_traffic_csv_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "traffic.csv").write_text("hour,requests\n0,100\n1,lots\n")
    with pytest.raises(ConfigError) as caught:
        plan_stages(Shape(kind="peak_season", csv="traffic.csv"), tmp_path)
    assert caught.value.problems[0].line == 3


def test_charts_are_well_formed_svg_with_threshold_lines() -> None:
    svg = line_chart("p95", {"p95": [(0, 10), (2, 30), (4, 20)]}, "ms", {"p95 gate": 25})
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    assert "p95 gate" in svg and 'stroke-dasharray="6 4"' in svg


def test_the_pacer_holds_a_rate() -> None:
    pacer = Pacer(200)
    start = time.monotonic()
    for _ in range(100):
        pacer.acquire()
    elapsed = time.monotonic() - start
    assert 0.35 <= elapsed <= 0.8  # 100 tokens at 200/s, after a small initial burst


def test_a_threshold_far_above_the_data_is_listed_not_drawn() -> None:
    svg = line_chart("p95", {"p95": [(0, 1), (10, 2)]}, "ms", {"p95 gate": 800})
    assert "p95 gate 800 (above)" in svg and "stroke-dasharray" not in svg


def test_the_x_axis_covers_every_point() -> None:
    svg = line_chart("users", {"users": [(0, 1), (24, 2)]}, "users")
    ticks = [float(t) for t in re.findall(r">([\d.]+)s</text>", svg)]
    assert max(ticks) >= 24

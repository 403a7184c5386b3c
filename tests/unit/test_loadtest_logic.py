"""Load-test logic without a server: shapes, HDR percentiles and the gate, plots, the pacer."""

from __future__ import annotations

import math
import random
import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from crmpulse import ConfigError
from crmpulse.config import Gate, Gates, Shape
from crmpulse.loadtests.gate import evaluate
from crmpulse.loadtests.latency import LatencyBook
from crmpulse.loadtests.pacing import Pacer
from crmpulse.loadtests.plots import line_chart
from crmpulse.loadtests.run import refused_options
from crmpulse.loadtests.shapes import plan_stages, scale_stages, stage_at


def book_with(samples: dict[str, list[float]], failures: dict[str, int] | None = None) -> LatencyBook:
    """A latency book with these response times (ms) per operation, and failures at 5 ms."""
    book = LatencyBook()
    for name, times in samples.items():
        for t in times:
            book.record("operation", name, t / 1000, True)
        for _ in range((failures or {}).get(name, 0)):
            book.record("operation", name, 0.005, False)
    return book


def exact_percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def test_hdr_percentiles_are_within_a_thousandth_of_the_exact_value() -> None:
    rng = random.Random(7)
    times = [rng.lognormvariate(4, 1) for _ in range(20000)]  # ms, from 1 ms to seconds
    entry = book_with({"op": times}).entry("operation", "op")
    for q in (50, 90, 95, 99, 99.9):
        assert entry.percentile_ms(q) == pytest.approx(exact_percentile(times, q), rel=1e-3, abs=0.001)


def test_histograms_merged_from_workers_equal_one_process_exactly() -> None:
    rng = random.Random(11)
    times = [rng.expovariate(1 / 80) + 0.5 for _ in range(9000)]
    whole = book_with({"op": times})
    parts = [book_with({"op": times[i::3]}) for i in range(3)]
    merged = LatencyBook()
    for part in parts:  # as workers send them: encoded, over the wire
        merged.add(LatencyBook.decode(part.take().encode()))
    a, b = whole.entry("operation", "op"), merged.entry("operation", "op")
    assert a.requests == b.requests == 9000
    for q in (50, 95, 99, 100):
        assert a.percentile_ms(q) == b.percentile_ms(q)
    assert list(a.histogram.counts) == list(b.histogram.counts)


def test_a_gate_passes_and_fails_on_the_named_operation() -> None:
    book = book_with({"fast": [10.0] * 100, "slow": [900.0] * 100})
    gates = Gates(operations={"fast": Gate(p95=0.1), "slow": Gate(p95=0.5)})
    results = {r.name: r for r in evaluate(gates, book, 10.0)}
    assert results["fast"].passed and results["fast"].actual == pytest.approx(0.01, rel=1e-3)
    assert not results["slow"].passed and results["slow"].actual == pytest.approx(0.9, rel=1e-3)


def test_error_ratio_and_min_rps_gates() -> None:
    book = book_with({"op": [5.0] * 98}, failures={"op": 2})
    results = evaluate(Gates(global_=Gate(error_ratio=1.0, min_rps=11)), book, 10.0)
    by_metric = {r.metric: r for r in results}
    assert not by_metric["error_ratio"].passed and by_metric["error_ratio"].actual == pytest.approx(2.0)
    assert not by_metric["min_rps"].passed and by_metric["min_rps"].actual == pytest.approx(10.0)


def test_a_gated_operation_that_never_ran_fails() -> None:
    results = evaluate(Gates(operations={"missing": Gate(p95=1.0)}), book_with({"op": [1.0]}), 1.0)
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


def test_duration_users_and_rate_scale_the_shape_and_keep_its_form() -> None:
    stages = plan_stages(Shape(kind="step", users=8, duration=100, rps=40))
    scaled = scale_stages(stages, duration=20, users=2, rate=0.5)
    assert [s.end for s in scaled] == [5, 10, 15, 20]
    assert [s.users for s in scaled] == [u * 2 for u in (2, 4, 6, 8)]
    assert [s.rps for s in scaled] == [s.rps * 0.5 for s in stages]


@pytest.mark.parametrize("arg", ["--run-time", "-t", "--run-time=5s", "-u", "--users", "--spawn-rate",
                                 "--processes", "--host", "--csv"])
def test_locust_options_that_would_be_ignored_are_refused(arg: str) -> None:
    [message] = refused_options([arg, "5"])
    assert message.startswith(f"crmpulse: refusing Locust option {arg.split('=')[0]}:")


def test_options_locust_honours_pass_through() -> None:
    assert refused_options(["--stop-timeout", "5", "--reset-stats", "--loglevel", "INFO"]) == []


def test_made_up_emails_fit_what_crms_accept_and_carry_the_marker_when_it_fits() -> None:
    from crmpulse.loadtests.data import Faker
    from crmpulse.markers import markers_in, run_marker

    for target in ("sf", "salesforce", "dynamics365", "a" * 40, "b" * 63):
        marker = run_marker(target)
        contacts = [Faker(str(marker), seed=seed).contact() for seed in range(50)]
        for contact in contacts:
            local, _, domain = contact["email"].partition("@")
            assert (len(contact["email"]) <= 80, len(local) <= 64, domain) == (True, True, "crmpulse.example")
            assert marker in markers_in(contact)  # the tags carry it whatever the email holds
        in_email = [marker in markers_in({"email": c["email"]}) for c in contacts]
        assert all(in_email) == (len(str(marker)) <= 55), target

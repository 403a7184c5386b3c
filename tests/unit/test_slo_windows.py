"""Burn-rate windows and thresholds for any SLO window: pure math, no Prometheus."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from crmpulse import load_config
from crmpulse.alerts.generate import explain
from crmpulse.alerts.slo import pairs_for, slo_specs
from crmpulse.units import format_duration, parse_duration
from tests.helpers import write_config

DAY = 86400.0


def table(window: str) -> list[str]:
    return [f"{p.label}@{p.factor}" for p in pairs_for(parse_duration(window))]


def test_at_30_days_the_pairs_are_the_workbooks_and_sloths() -> None:
    assert table("30d") == ["1h/5m@14.4", "6h/30m@6", "1d/2h@3", "3d/6h@1"]


@pytest.mark.parametrize(("window", "expected"), [
    ("1d", ["5m/5m@14.4", "12m/5m@6", "48m/5m@3", "2h24m/12m@1"]),
    ("7d", ["14m/5m@14.4", "1h24m/7m@6", "5h36m/28m@3", "16h48m/1h24m@1"]),
    ("28d", ["56m/5m@14.4", "5h36m/28m@6", "22h24m/1h52m@3", "2d19h12m/5h36m@1"]),
    ("90d", ["3h/15m@14.4", "18h/1h30m@6", "3d/6h@3", "9d/18h@1"]),
])
def test_windows_scale_with_the_slo_window_and_short_windows_have_a_floor(window: str,
                                                                           expected: list[str]) -> None:
    assert table(window) == expected


@pytest.mark.parametrize("days", [1, 2, 3, 5, 7, 10, 14, 21, 28, 30, 45, 60, 90])
def test_no_factor_is_ever_below_one_and_every_window_fits_the_slo_window(days: int) -> None:
    for pair in pairs_for(days * DAY):
        assert pair.factor >= 1
        assert 300 <= pair.short <= pair.long < days * DAY


def spec(tmp_path: Path, objective: str, window: str = "30d", interval: str = "30s"):  # type: ignore[no-untyped-def]
    path = write_config(tmp_path, f"""
        target: {{name: sandbox, base_url: "http://127.0.0.1:8085", auth: {{type: none}}}}
        slos:
          - {{name: availability, kind: availability, objective: {objective}, window: {window}}}
        probes:
          checks:
            - {{name: api_read, kind: http, operation: list_accounts, interval: {interval}}}
        """)
    return slo_specs(load_config(path))[0], load_config(path)


@pytest.mark.parametrize(("objective", "budget", "thresholds"), [
    ("99.9", "0.001", ["0.0144", "0.006", "0.003", "0.001"]),
    ("99.99", "0.0001", ["0.00144", "0.0006", "0.0003", "0.0001"]),
    ("99.95", "0.0005", ["0.0072", "0.003", "0.0015", "0.0005"]),
])
def test_budgets_and_thresholds_are_written_exactly(tmp_path: Path, objective: str, budget: str,
                                                    thresholds: list[str]) -> None:
    s, _ = spec(tmp_path, objective)
    assert s.budget_text == budget and s.budget_exact == Decimal(budget)
    assert [s.threshold(p) for p in s.pairs] == thresholds


@pytest.mark.parametrize(("objective", "window", "page"), [
    ("99.9", "30d", "52s"), ("99.9", "7d", "12s"), ("99", "90d", "25m55s"), ("99", "28d", "8m4s"),
])
def test_a_full_outage_pages_after_the_documented_time(tmp_path: Path, objective: str, window: str,
                                                       page: str) -> None:
    from crmpulse.alerts.slo import detection

    s, loaded = spec(tmp_path, objective, window)
    minutes = detection(s, 1.0)["critical"]
    assert minutes is not None and format_duration(round(minutes * 60)) == page
    assert f"100%  {page:>14}" in explain(loaded)


def test_the_explain_table_is_for_the_configured_window(tmp_path: Path) -> None:
    _, loaded = spec(tmp_path, "99.9", "7d")
    text = explain(loaded)
    assert "99.9 % over 7d" in text
    assert "14m/5m at 14.4x (critical, 2.0% with the 5m floor)" in text
    assert "16h48m/1h24m at 1x (warning, 10.0%)" in text


def test_a_slow_check_raises_the_short_window_floor(tmp_path: Path) -> None:
    s, _ = spec(tmp_path, "99.9", "30d", interval="5m")
    assert [format_duration(p.short) for p in s.pairs] == ["20m", "30m", "2h", "6h"]

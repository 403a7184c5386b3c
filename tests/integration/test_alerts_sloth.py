"""Head to head with Sloth at 30 days: crmpulse's burn-rate alerts start and stop at Sloth's minute.

Sloth's own rules for a 99.9 %/30d SLO (``sloth/sloth-availability-99.9-30d.rules.yml``,
from Sloth's test data) and crmpulse's rules for the same SLO run in one promtool test
over the same counters, for steady error ratios from 100 % to 0.2 %. promtool records
``ALERTS`` for both; the first and last minute each alert fired are read back with
``min_over_time``/``max_over_time`` of their timestamps and must be equal, page to
page and ticket to ticket; where the math says an alert cannot fire, neither does.

One edge is computed, not hidden: when a window's error ratio equals a threshold
exactly at a whole minute (at 0.5 % errors the 1 d ticket window holds exactly 0.3 %
after 864 minutes), Sloth's threshold, written from a float budget just under 0.001,
already fires, and crmpulse's exact one (``>``, as errors exactly at the budget must
never alert) fires one evaluation later; on recovery it stops one evaluation earlier.
crmpulse's rules before windows were scaled behaved the same at those minutes. The test
expects exactly that minute of difference there, and none anywhere else.
"""

from __future__ import annotations

import os
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml

from crmpulse import load_config
from crmpulse.alerts.generate import generate
from crmpulse.alerts.slo import slo_specs
from tests.helpers import PROMTOOL

REPO = Path(__file__).resolve().parents[2]
SLOTH = Path(__file__).parent / "sloth" / "sloth-availability-99.9-30d.rules.yml"
RATIOS = (1.0, 0.5, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002)
HISTORY = 3 * 24 * 60  # the longest window, healthy
SERIES = 'target="sandbox",check="api_read"'


def _values(fault: int, ratio: float, recovery: int) -> tuple[str, str]:
    """promtool notation for 1000 runs a minute, ``ratio`` of them failing during the fault."""
    bad = 1000 * ratio
    runs = f"0+1000x{HISTORY + fault + recovery}"
    failures = f"0x{HISTORY} 0+{bad:g}x{fault} {bad * fault:g}x{recovery}"
    return runs, failures


def _first_and_last(alert: str, span: int) -> tuple[str, str]:
    # Sloth's alerts carry the sloth_window of the branch that matched: one series per branch
    return tuple(f"{agg}({agg}_over_time(timestamp(ALERTS{{{alert},alertstate=\"firing\"}})[{span}m:1m]))"  # type: ignore[return-value]
                 for agg in ("min", "max"))


def _test_file(folder: Path, rules: Path, ratios: tuple[float, ...]) -> Path:
    spec = slo_specs(load_config(REPO / "crmpulse" / "starter.yaml"))[0]
    from crmpulse.alerts.slo import detection

    tests = []
    for ratio in ratios:
        times = detection(spec, ratio)
        fault = int(max(t for t in times.values() if t is not None)) + 60
        recovery = 7 * 60  # the ticket's 6 h short window empties
        runs, failures = _values(fault, ratio, recovery)
        end = HISTORY + fault + recovery
        span = fault + recovery
        checks = []
        for ours, theirs, severity in (('alertname="CrmAvailabilityBurnRateFast"',
                                        'alertname="SlothAvailabilityBurnRate",sloth_severity="page"',
                                        "critical"),
                                       ('alertname="CrmAvailabilityBurnRateSlow"',
                                        'alertname="SlothAvailabilityBurnRate",sloth_severity="ticket"',
                                        "warning")):
            if times[severity] is None:  # cannot fire: neither does
                for alert in (ours, theirs):
                    checks.append({"expr": f"absent_over_time(ALERTS{{{alert}}}[{span}m])",
                                   "eval_time": f"{end}m", "exp_samples": [
                                       {"labels": "{" + alert + "}", "value": 1}]})
                continue
            edges = _edges(spec, ratio, severity)
            for a, b, edge in zip(_first_and_last(ours, span), _first_and_last(theirs, span), edges,
                                  strict=True):
                checks.append({"expr": f"vector(scalar({a}) - scalar({b}))", "eval_time": f"{end}m",
                               "exp_samples": [{"labels": "{}", "value": edge}]})
        tests.append({"name": f"{ratio:.1%} errors for {fault} minutes", "interval": "1m",
                      "input_series": [
                          {"series": f"crmpulse_check_runs_total{{{SERIES}}}", "values": runs},
                          {"series": f'crmpulse_check_failures_total{{{SERIES},reason="status"}}',
                           "values": failures}],
                      "promql_expr_test": checks})
    doc = {"rule_files": [str(rules), str(SLOTH)], "evaluation_interval": "1m",
           "group_eval_order": ["crmpulse-slo-availability-sli", "crmpulse-slo-availability-alerts",
                                "sloth-slo-sli-recordings-crm-availability",
                                "sloth-slo-alerts-crm-availability"],
           "tests": tests}
    path = folder / "head-to-head.test.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, width=1000))
    return path


def _edges(spec: Any, ratio: float, severity: str) -> tuple[int, int]:
    """Seconds crmpulse starts later and stops earlier than Sloth: 60 where a ratio meets a
    threshold exactly at a whole minute, else 0 (exact arithmetic, 1-minute samples)."""
    e, b = Fraction(str(ratio)), spec.budget_exact
    pairs = [p for p in spec.pairs if p.severity == severity and e > Fraction(p.factor * b)]
    # fires at the first minute t with e * t / long > factor * budget (the first pair to get there)
    first = min(pairs, key=lambda p: Fraction(p.factor * b) * int(p.long // 60) / e)
    start = Fraction(first.factor * b) * int(first.long // 60) / e
    # stops once every firing pair's short window holds no more than factor * budget
    stops = [int(p.short // 60) * (1 - Fraction(p.factor * b) / e) for p in pairs]
    last = max(stops)
    return (60 if start.denominator == 1 else 0), (-60 if last.denominator == 1 else 0)


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    os.environ.setdefault("CRMPULSE_CLIENT_SECRET", "x")
    out = tmp_path_factory.mktemp("h2h")
    generate(load_config(REPO / "crmpulse" / "starter.yaml"), out)
    return out / "slo-availability.rules.yml"


def test_page_and_ticket_start_and_stop_at_sloths_minute_from_100_to_0_2_percent_errors(
        ours: Path, tmp_path: Path) -> None:
    run = subprocess.run([*PROMTOOL, "test", "rules", str(_test_file(tmp_path, ours, RATIOS))],
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]


def test_the_head_to_head_notices_a_threshold_off_by_a_little(ours: Path, tmp_path: Path) -> None:
    skewed = tmp_path / "skewed.rules.yml"
    skewed.write_text(ours.read_text().replace("> 0.0144", "> 0.015"))
    run = subprocess.run([*PROMTOOL, "test", "rules", str(_test_file(tmp_path, skewed, (0.05,)))],
                         capture_output=True, text=True, timeout=900)
    assert run.returncode != 0 and "FAILED" in run.stdout + run.stderr

"""Generated ``promtool test rules`` files: each SLO's alerts proven against scenarios.

Every scenario is seeded with 3 days of healthy history (the longest alert window),
then applies an error ratio, and asserts the alert is silent a little before the
time the SLO math predicts (``slo.detection``) and firing a little after it. The
scenarios are the ones on-call cares about: a full outage pages within minutes; 5 %
errors page; 1 % pages only through the slow pair, after hours; 0.5 % tickets and never
pages; 0.09 % (just under a 99.9 % budget) stays silent; no traffic fires the
companion; recovery resolves. Each check also evaluates the Grafana twin's query in
the same Prometheus engine, which must be true exactly when the Prometheus alert fires.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from crmpulse import contract
from crmpulse.config import Config
from crmpulse.units import parse_duration

from .rules import AlertRule, render_annotation
from .slo import PAIRS, SLOSpec, detection

__all__ = ["slo_tests"]

PER_MINUTE = 1000.0  # events per minute in the synthetic series: fine-grained ratios
#: Minutes of healthy history before each scenario: at least the longest window of the
#: alerts the scenario checks (3 d for tickets; 6 h for page-only scenarios, which keeps
#: their minute-by-minute evaluation short).
HISTORY = int(parse_duration(PAIRS[-1].long) // 60)
PAGE_HISTORY = int(max(parse_duration(p.long) for p in PAIRS if p.severity == "critical") // 60)


@dataclass
class Check:
    minute: int  # after the fault starts
    alert: str
    firing: bool


def _segments(values: list[float]) -> str:
    """Per-minute values -> promtool's 'a+bxn' notation, one segment per constant slope."""
    out, i = [], 0
    while i < len(values):
        if i + 1 == len(values):
            out.append(f"{values[i]:g}")
            break
        step = values[i + 1] - values[i]
        j = i + 1
        while j + 1 < len(values) and math.isclose(values[j + 1] - values[j], step, abs_tol=1e-9):
            j += 1
        out.append(f"{values[i]:g}+{step:g}x{j - i}")
        i = j + 1
    return " ".join(out)


def _series(phases: list[tuple[int, float, float]], history: int) -> tuple[list[float], list[float]]:
    """Cumulative (all events, bad events) per minute for (minutes, events/min, error ratio)."""
    total, bad, t, b = [0.0], [0.0], 0.0, 0.0
    for minutes, rate, ratio in [(history, PER_MINUTE, 0.0), *phases]:
        for _ in range(minutes):
            t += rate
            b += rate * ratio
            total.append(round(t, 6))
            bad.append(round(b, 6))
    return total, bad


def _input(spec: SLOSpec, phases: list[tuple[int, float, float]], history: int) -> list[dict[str, str]]:
    c = contract
    total, bad = _series(phases, history)
    good = [round(t - b, 6) for t, b in zip(total, bad, strict=True)]
    target = spec.target
    name = spec.members[0]
    if spec.slo.kind == "availability":
        labels = f'target="{target}",check="{name}"'
        return [{"series": f"{c.CHECK_RUNS.series}{{{labels}}}", "values": _segments(total)},
                {"series": f'{c.CHECK_FAILURES.series}{{{labels},reason="status"}}',
                 "values": _segments(bad)}]
    le = spec.le
    if spec.slo.kind == "latency":
        labels = f'target="{target}",check="{name}"'
        return [{"series": f"{c.CHECK_DURATION.count()}{{{labels}}}", "values": _segments(total)},
                {"series": f'{c.CHECK_DURATION.bucket()}{{{labels},le="{le}"}}',
                 "values": _segments(good)}]
    labels = f'target="{target}",pair="{name}"'
    return [{"series": f"{c.SYNC_LAG_OBSERVED.count()}{{{labels}}}", "values": _segments(total)},
            {"series": f'{c.SYNC_LAG_OBSERVED.bucket()}{{{labels},le="{le}"}}',
             "values": _segments(good)},
            {"series": f"{c.SYNC_LOST.series}{{{labels}}}", "values": _segments([0.0] * len(total))}]


def _window(t: float | None) -> tuple[int | None, int | None]:
    """(last minute it must be silent, first minute it must fire) around a predicted time."""
    if t is None:
        return None, None
    # one evaluation interval of slack each side, plus 5 % for rate()'s extrapolation
    silent = math.floor(t * 0.95) - 1
    return (silent if silent >= 1 else None), math.ceil(t * 1.05) + 1


Phases = list[tuple[int, float, float]]  # (minutes, events per minute, error ratio)


def _scenarios(spec: SLOSpec, config: Config) -> list[tuple[str, Phases, list[Check]]]:
    fast, slow = f"{spec.alert_prefix}BurnRateFast", f"{spec.alert_prefix}BurnRateSlow"
    budget = spec.budget
    scenarios = []
    # error ratios as multiples of the budget: for a 99.9 % SLO, 5 %, 1 %, 0.5 % and 0.09 %
    for label, ratio in (("full outage", 1.0), (f"{budget * 50:.2%} errors", min(1.0, budget * 50)),
                         (f"{budget * 10:.2%} errors", budget * 10)):
        page = detection(spec, ratio)["critical"]
        silent, firing = _window(page)
        assert firing is not None
        checks = [Check(firing, fast, True)]
        if ratio == 1.0:
            checks.append(Check(0, fast, False))  # silent when the outage begins
        if silent is not None:
            checks.append(Check(silent, fast, False))
        if ratio == budget * 10:  # the fast pair alone can never fire here: silent after 2 h
            checks.append(Check(min(120, firing - 1), fast, False))
        scenarios.append((f"{spec.name}: {label} pages", [(firing + 5, PER_MINUTE, ratio)], checks))
    half = budget * 5  # 0.5 % for a 99.9 % SLO
    ticket = detection(spec, half)["warning"]
    silent, firing = _window(ticket)
    if firing is not None:
        scenarios.append((f"{spec.name}: {half:.2%} errors ticket and never page",
                          [(firing + 5, PER_MINUTE, half)],
                          [Check(firing, slow, True), Check(firing, fast, False)]
                          + ([Check(silent, slow, False)] if silent else [])))
    under = budget * 0.9  # 0.09 % for 99.9 %
    end = HISTORY + 60
    scenarios.append((f"{spec.name}: {under:.3%} errors (under budget) stay silent",
                      [(end + 1, PER_MINUTE, under)],
                      [Check(end, slow, False), Check(end, fast, False)]))
    scenarios.append((f"{spec.name}: recovery resolves the page",
                      [(30, PER_MINUTE, 1.0), (90, PER_MINUTE, 0.0)],
                      [Check(10, fast, True), Check(30 + 40, fast, False)]))
    if spec.slo.kind == "availability" and config.probes.checks:
        absent_for = int(config.alerting.absent_for // 60)
        scenarios.append((f"{spec.name}: no traffic fires the companion, not the burn alerts",
                          [(3 * absent_for, 0.0, 0.0)],
                          [Check(2 * absent_for + 3, "CrmProbesAbsent", True),
                           Check(2 * absent_for + 3, fast, False),
                           Check(absent_for - 2, "CrmProbesAbsent", False)]))
    return scenarios


def slo_tests(spec: SLOSpec, alerts: list[AlertRule], rule_files: list[str], config: Config,
              grafana_queries: dict[str, str]) -> dict[str, dict[str, Any]]:
    """promtool test files for one SLO: {"fast": ..., "slow": ...}.

    Scenarios that decide within hours are evaluated every minute; those that take a day
    or more every 5 minutes (checks rounded outwards to the 5-minute grid), which keeps
    promtool's run short without changing what is asserted.
    """
    by_name = {a.name: a for a in alerts}
    files: dict[str, dict[str, Any]] = {}
    for title, phases, checks in _scenarios(spec, config):
        slow = max(c.minute for c in checks) > 6 * 60 or any(
            by_name[c.alert].severity == "warning" for c in checks)
        step = 5 if slow else 1
        history = HISTORY if slow else PAGE_HISTORY
        rule_tests, expr_tests = [], []
        for check in sorted(checks, key=lambda c: (c.minute, c.alert)):
            alert = by_name[check.alert]
            offset = (math.ceil(check.minute / step) if check.firing else check.minute // step) * step
            minute = history + offset
            expected = []
            if check.firing:
                labels = {"severity": alert.severity, **alert.labels}
                if alert.name == "CrmProbesAbsent":
                    labels = {"severity": alert.severity, "target": spec.target}
                expected.append({"exp_labels": labels, "exp_annotations": {
                    "summary": alert.summary,
                    "description": render_annotation(alert.description, labels),
                    "runbook_url": alert.runbook_url}})
            rule_tests.append({"eval_time": f"{minute}m", "alertname": alert.name,
                               "exp_alerts": expected})
            query = grafana_queries.get(alert.name)
            if query is not None:  # the Grafana twin, evaluated by the same engine
                expr_tests.append({"expr": f"count({query}) or vector(0)", "eval_time": f"{minute}m",
                                   "exp_samples": [{"labels": "{}", "value": 1 if check.firing else 0}]})
        extended = [(m + step, r, e) if i == len(phases) - 1 else (m, r, e)
                    for i, (m, r, e) in enumerate(phases)]
        doc = files.setdefault("slow" if slow else "fast", {
            "rule_files": rule_files, "evaluation_interval": f"{step}m", "tests": []})
        doc["tests"].append({"name": title, "interval": "1m",
                             "input_series": _input(spec, extended, history),
                             "alert_rule_test": rule_tests, "promql_expr_test": expr_tests})
    return files

"""Generated ``promtool test rules`` files: every alert proven against scenarios.

For each SLO, scenarios with healthy history at least as long as the longest window
of the alerts they check, then an error ratio, asserting the alert silent a little
before the time the SLO math predicts (``slo.detection``) and firing a little after
it: a full outage and 50x the budget page fast; 10x the budget pages only through
the slow page pair; 5x tickets and never pages; errors exactly at and just under the
budget never fire anything (checked over every evaluation of the scenario); recovery
resolves the page; no traffic fires the companion, not the burn alerts. Each
companion alert (``companions.py``) gets its own scenarios, silent one evaluation
before the delay its description states and firing at it.

Firing is asserted on Prometheus's own ``ALERTS`` series (exact labels); silence with
``alert_rule_test``. Every file sets ``group_eval_order`` (recording groups before
the alert groups that read them), so no test passes by the luck of evaluation order.

The same scenarios (:func:`scenarios`) drive the Grafana twin test, which loads them
into a real Prometheus.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from crmpulse import LoadedConfig
from crmpulse import contract as c

from .companions import COMPANIONS, Values
from .rules import AlertRule, Context, RuleSet
from .slo import SLOSpec, detection

__all__ = ["Check", "RuleScenario", "promtool_files", "scenarios"]

PER_MINUTE = 1000.0  # events per minute in the synthetic series: fine-grained ratios
SLOW_STEP = 5  # minutes between evaluations in scenarios that run for days


@dataclass
class Check:
    minute: int  # absolute minute of the scenario's series
    alert: str
    firing: bool
    labels: dict[str, str] = field(default_factory=dict)  # of the firing alert


@dataclass
class RuleScenario:
    """Input series (one value per minute), the checks, and how to evaluate them."""

    name: str
    file: str  # the test file it goes to, without ".test.yml"
    series: dict[str, Values]
    checks: list[Check]
    step: int  # evaluation interval, minutes
    rule_files: list[str]  # relative to the output folder
    groups: list[str]  # rule group names, in evaluation order
    start: int  # minute the fault begins
    never: list[str] = field(default_factory=list)  # alerts that must never fire, up to the end
    end: int = 0  # last minute evaluated
    times: tuple[str, ...] = ()  # series holding Unix times on promtool's clock (0 at minute 0)
    #: minutes between input samples: 5 when a window spans over 10 000 minutes (promtool's
    #: engine loads at most 10 000 samples per query)
    sample_every: int = 1

    def __post_init__(self) -> None:
        if not self.end:
            self.end = max(c.minute for c in self.checks)


def _num(value: float | int) -> str:
    return f"{value:.15g}"


def _segments(values: Values) -> str:
    """Per-minute values -> promtool's notation: 'a+bxn' runs, '_' for none, 'stale'."""
    out, i = [], 0
    while i < len(values):
        v = values[i]
        if v is None or isinstance(v, str):
            j = i
            while j + 1 < len(values) and values[j + 1] == v:
                j += 1
            token = "_" if v is None else str(v)
            out.append(token if j == i else f"{token}x{j - i + 1}" if v is None else
                       " ".join([token] * (j - i + 1)))
            i = j + 1
            continue
        nxt = values[i + 1] if i + 1 < len(values) else None
        if not isinstance(nxt, float | int) or isinstance(nxt, bool):
            out.append(_num(v))
            i += 1
            continue
        step = float(nxt) - float(v)
        j = i + 1
        while (j + 1 < len(values) and isinstance(values[j + 1], float | int)
               and math.isclose(float(values[j + 1]) - float(values[j]), step, abs_tol=1e-9)):  # type: ignore[arg-type]
            j += 1
        out.append(f"{_num(v)}{'+' if step >= 0 else '-'}{_num(abs(step))}x{j - i}")
        i = j + 1
    return " ".join(out)


Phases = list[tuple[int, float, float]]  # (minutes, events per minute, error ratio)


def _counters(phases: Phases, history: int) -> tuple[list[float], list[float]]:
    """Cumulative (all events, bad events) per minute for (minutes, events/min, error ratio)."""
    total, bad, t, b = [0.0], [0.0], 0.0, 0.0
    for minutes, rate, ratio in [(history, PER_MINUTE, 0.0), *phases]:
        for _ in range(minutes):
            t += rate
            b += rate * ratio
            total.append(round(t, 6))
            bad.append(round(b, 6))
    return total, bad


def _slo_series(spec: SLOSpec, phases: Phases, history: int) -> dict[str, Values]:
    total, bad = _counters(phases, history)
    good: Values = [round(t - b, 6) for t, b in zip(total, bad, strict=True)]
    target, name = spec.target, spec.members[0]
    if spec.slo.kind == "availability":
        labels = f'target="{target}",check="{name}"'
        return {f"{c.CHECK_RUNS.series}{{{labels}}}": list(total),
                f'{c.CHECK_FAILURES.series}{{{labels},reason="status"}}': list(bad)}
    le = spec.le
    if spec.slo.kind == "latency":
        labels = f'target="{target}",check="{name}"'
        return {f"{c.CHECK_DURATION.count()}{{{labels}}}": list(total),
                f'{c.CHECK_DURATION.bucket()}{{{labels},le="{le}"}}': good}
    labels = f'target="{target}",pair="{name}"'
    return {f"{c.SYNC_LAG_OBSERVED.count()}{{{labels}}}": list(total),
            f'{c.SYNC_LAG_OBSERVED.bucket()}{{{labels},le="{le}"}}': good,
            f"{c.SYNC_LOST.series}{{{labels}}}": [0.0] * len(total)}


def _around(t: float | None) -> tuple[int | None, int]:
    """(last minute it must be silent, first minute it must fire) around a predicted time."""
    assert t is not None
    # one evaluation interval of slack each side, plus 5 % for rate()'s extrapolation
    silent = math.floor(t * 0.95) - 1
    return (silent if silent >= 1 else None), math.ceil(t * 1.05) + 1


def _resolve(spec: SLOSpec) -> float:
    """Minutes after a full outage ends until every page pair is quiet.

    A pair stops once one of its windows holds at most ``factor x budget`` errors: the
    short window, after ``short x (1 - factor x budget)`` minutes of recovery.
    """
    return max(p.short / 60 * (1 - float(p.factor) * spec.budget)
               for p in spec.pairs if p.severity == "critical")


def _slo_scenarios(spec: SLOSpec, rules: RuleSet, loaded: LoadedConfig) -> list[RuleScenario]:
    by_name = {a.name: a for a in rules.alerts}
    fast, slow = f"{spec.alert_prefix}BurnRateFast", f"{spec.alert_prefix}BurnRateSlow"
    b = spec.budget
    page_history = max(p.long for p in spec.pairs if p.severity == "critical") // 60
    ticket_history = max(p.long for p in spec.pairs) // 60
    files = [f"slo-{spec.name}.rules.yml"]
    groups = [f"crmpulse-slo-{spec.name}-sli", f"crmpulse-slo-{spec.name}-alerts"]
    with_companions = "companions.rules.yml" in rules.files
    out: list[RuleScenario] = []

    def add(title: str, phases: Phases, checks: list[tuple[int, str, bool]], tickets: bool = False,
            never: list[str] | None = None, companions: bool = False) -> None:
        history = int(ticket_history if tickets else page_history)
        last = max(m for m, _, _ in checks)
        # days-long scenarios are evaluated every 5 minutes (15 for a 90-day window's 9-day
        # ticket window): checks are rounded outwards to that grid
        slow_step = SLOW_STEP * max(1, round(spec.window / (30 * 86400)))
        step = slow_step if tickets or last > 6 * 60 else 1
        placed = []
        for minute, alert, firing in sorted(checks):
            offset = (math.ceil(minute / step) if firing else minute // step) * step
            rule = by_name[alert]
            labels = {"severity": rule.severity, **rule.labels}
            if alert == "CrmProbesAbsent":
                labels = {"severity": rule.severity, "target": spec.target}
            placed.append(Check(history + offset, alert, firing, labels if firing else {}))
        end = max(ch.minute for ch in placed)
        total = sum(m for m, _, _ in phases)
        if history + total < end + step:  # the last phase lasts past the last check
            m, r, e = phases[-1]
            phases = [*phases[:-1], (m + end + step - history - total, r, e)]
        use_files = files + (["companions.rules.yml"] if companions and with_companions else [])
        use_groups = groups + (["crmpulse-companions"] if companions and with_companions else [])
        every = 5 if step > 1 and max(spec.windows) > 3 * 86400 else 1
        out.append(RuleScenario(
            f"{spec.name}: {title}", f"slo-{spec.name}-{'slow' if step > 1 else 'fast'}",
            _slo_series(spec, phases, history), placed, step, use_files, use_groups, history,
            never=never or [], end=end, sample_every=every))

    # error ratios as multiples of the budget: for a 99.9 % SLO, 100 %, 5 %, 1 %, 0.5 %, 0.1 %
    for label, ratio in (("full outage", 1.0), (f"{min(1.0, b * 50):.2%} errors", min(1.0, b * 50)),
                         (f"{b * 10:.2%} errors", b * 10)):
        silent, firing = _around(detection(spec, ratio)["critical"])
        checks = [(firing, fast, True)]
        if ratio == 1.0:
            checks.append((0, fast, False))  # silent as the outage begins
        if silent is not None:
            checks.append((silent, fast, False))
        add(f"{label} pages", [(firing + 5, PER_MINUTE, ratio)], checks)
    half = b * 5  # 0.5 % for a 99.9 % SLO: over budget, under every page threshold
    silent, firing = _around(detection(spec, half)["warning"])
    checks = [(firing, slow, True), (firing, fast, False)] + ([(silent, slow, False)] if silent else [])
    add(f"{half:.2%} errors ticket and never page", [(firing + 5, PER_MINUTE, half)], checks,
        tickets=True, never=[fast])
    for share, words in ((1.0, "exactly at budget"), (0.9, "under budget")):
        end = int(ticket_history) + 60
        add(f"{b * share:.3%} errors ({words}) never fire", [(end + 1, PER_MINUTE, b * share)],
            [(end, slow, False), (end, fast, False)], tickets=True, never=[fast, slow])
    outage = math.ceil(detection(spec, 1.0)["critical"] or 0) + 10
    back = outage + math.ceil(_resolve(spec) * 1.05) + 2
    add("recovery resolves the page", [(outage, PER_MINUTE, 1.0), (back - outage + 5, PER_MINUTE, 0.0)],
        [(outage, fast, True), (back, fast, False)])
    if spec.slo.kind == "availability" and "CrmProbesAbsent" in by_name:
        delay = math.ceil(by_name["CrmProbesAbsent"].delay / 60)
        add("no traffic fires the companion, not the burn alerts", [(3 * delay + 5, 0.0, 0.0)],
            [(delay, "CrmProbesAbsent", True), (delay, fast, False), (delay - 1, "CrmProbesAbsent", False)],
            companions=True)
    return out


def _companion_scenarios(rules: RuleSet, loaded: LoadedConfig) -> list[RuleScenario]:
    ctx = Context(loaded, rules.specs, 1.0)
    by_name = {a.name: a for a in rules.alerts}
    out = []
    for companion in COMPANIONS:
        rule = by_name.get(companion.name)
        if rule is None:
            continue
        for s in companion.scenarios(ctx, rule):
            checks = [Check(s.silent_at, rule.name, False), Check(s.fires_at, rule.name, True, s.labels)]
            out.append(RuleScenario(f"{rule.name}: {s.title}", "companions", dict(s.series), checks, 1,
                                    ["companions.rules.yml"], ["crmpulse-companions"], s.start,
                                    times=s.times))
    return out


def scenarios(rules: RuleSet, loaded: LoadedConfig) -> list[RuleScenario]:
    """Every scenario of every generated test file (real time only: ``compress`` must be 1)."""
    out = [s for spec in rules.specs for s in _slo_scenarios(spec, rules, loaded)]
    return out + _companion_scenarios(rules, loaded)


def _alerts_series(alert: AlertRule, labels: dict[str, str]) -> str:
    items = {"alertname": alert.name, "alertstate": "firing", **labels}
    return "ALERTS{" + ",".join(f'{k}="{v}"' for k, v in sorted(items.items())) + "}"


def promtool_files(rules: RuleSet, loaded: LoadedConfig) -> dict[str, dict[str, Any]]:
    """promtool test documents by file stem (``slo-availability-fast``, ``companions``)."""
    by_name = {a.name: a for a in rules.alerts}
    files: dict[str, dict[str, Any]] = {}
    for s in scenarios(rules, loaded):
        rule_tests, expr_tests = [], []
        for check in s.checks:
            at = f"{check.minute}m"
            if check.firing:
                expr_tests.append({"expr": f'ALERTS{{alertname="{check.alert}",alertstate="firing"}}',
                                   "eval_time": at, "exp_samples": [
                                       {"labels": _alerts_series(by_name[check.alert], check.labels),
                                        "value": 1}]})
            else:
                rule_tests.append({"eval_time": at, "alertname": check.alert, "exp_alerts": []})
        for alert in s.never:  # neither pending nor firing at any evaluation
            span = f"{s.end - s.start + s.step}m"
            expr_tests.append({"expr": f'absent_over_time(ALERTS{{alertname="{alert}"}}[{span}])',
                               "eval_time": f"{s.end}m",
                               "exp_samples": [{"labels": f'{{alertname="{alert}"}}', "value": 1}]})
        doc = files.setdefault(s.file, {
            "rule_files": [f"../{f}" for f in s.rule_files], "evaluation_interval": f"{s.step}m",
            "group_eval_order": list(s.groups), "tests": []})
        for name in s.rule_files:
            if f"../{name}" not in doc["rule_files"]:
                doc["rule_files"].append(f"../{name}")
        for group in s.groups:
            if group not in doc["group_eval_order"]:
                doc["group_eval_order"].append(group)
        test: dict[str, Any] = {"name": s.name, "interval": f"{s.sample_every}m",
                                "input_series": [{"series": name,
                                                  "values": _segments(values[::s.sample_every])}
                                                 for name, values in s.series.items()]}
        if rule_tests:
            test["alert_rule_test"] = rule_tests
        if expr_tests:
            test["promql_expr_test"] = expr_tests
        doc["tests"].append(test)
    return files

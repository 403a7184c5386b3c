"""Grafana-managed twins: the provisioning file Grafana accepts, and rules that fire with their twins.

Schema: ``alerts/schema/grafana-alert-provisioning.schema.json``, written from Grafana's
documentation of alerting file provisioning (Grafana docs, "Use configuration files to
provision alerting resources", section "Import alert rules":
https://grafana.com/docs/grafana/latest/alerting/set-up/provision-alerting-resources/file-provisioning/)
and the provisioner's source it describes (rules_types.go ``AlertRuleGroupV1``/``AlertRuleV1``).

Twins: every scenario of the generated promtool tests is loaded into a real Prometheus
(raw series backfilled with ``promtool tsdb create-blocks-from openmetrics``; each
recording rule evaluated by that Prometheus at every step, as ``promtool tsdb
create-blocks-from rules`` does, and loaded back). At every evaluation step each
Prometheus alert and its Grafana twin are evaluated on those series through the HTTP
API: the Prometheus rule with Prometheus's semantics (active while the expression
returns the series, firing once active for ``for``), the Grafana rule with Grafana's
(every datasource query; no data for any -> ``noDataState``; math, then threshold, per
series; Pending for ``for``; a vanished series resolved after
``missing_series_evals_to_resolve``; an error -> ``execErrState``). Firing must start and
end within one evaluation interval of the twin, and the Prometheus side must agree with
every check promtool made on the same scenario.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from crmpulse import load_config
from crmpulse.alerts.grafana import MATH, provisioning
from crmpulse.alerts.rules import RuleSet, build_rules
from crmpulse.alerts.ruletests import RuleScenario, scenarios
from tests.helpers import PROMTOOL, reserve_port, wait_http
from tests.integration.test_alerts import example_config

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "alerts" / "schema" / "grafana-alert-provisioning.schema.json").read_text())
Labels = frozenset[tuple[str, str]]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[RuleSet, dict[str, Any], Any]:
    folder = tmp_path_factory.mktemp("twins")
    import os

    os.environ.setdefault("CRMPULSE_CLIENT_SECRET", "x")
    loaded = load_config(example_config(folder))
    rules = build_rules(loaded)
    return rules, provisioning(rules), loaded


# -- the file Grafana reads ------------------------------------------------------------------


def test_the_provisioning_file_matches_grafanas_documented_format(setup: Any) -> None:
    _, document, _ = setup
    jsonschema.Draft202012Validator(SCHEMA).validate(document)
    twin = jsonschema.Draft202012Validator({"$schema": SCHEMA["$schema"], "$defs": SCHEMA["$defs"],
                                            "$ref": "#/$defs/twinRule"})
    rules = [r for g in document["groups"] for r in g["rules"]]
    assert len(rules) == 22  # every alert crmpulse generates: the example config covers them all
    for rule in rules:
        twin.validate(rule)
        assert "grafana_alert" not in rule and rule["title"]


def test_the_committed_provisioning_file_matches_the_schema_too() -> None:
    committed = json.loads((REPO / "deploy" / "grafana" / "alerting" / "crmpulse-alerts.json").read_text())
    jsonschema.Draft202012Validator(SCHEMA).validate(committed)


def test_the_schema_rejects_the_ruler_shape_grafanalib_writes(setup: Any) -> None:
    from grafanalib.core import AlertExpression, AlertFileBasedProvisioning, AlertGroup, AlertRulev9, Target

    ruler = AlertRulev9(title="x", uid="x", triggers=[
        Target(expr="up", refId="A", datasource="d"),
        AlertExpression(refId="B", expression="A", expressionType="reduce", reduceFunction="last")],
        condition="B")
    group = AlertGroup(name="g", rules=[ruler], folder="f", evaluateInterval="1m").to_json_data()
    document = json.loads(json.dumps(AlertFileBasedProvisioning([group]).to_json_data(),
                                     default=lambda o: o.to_json_data()))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(SCHEMA).validate(document)


# -- a real Prometheus with every scenario ------------------------------------------------


@dataclass
class Placed:
    scenario: RuleScenario
    base: int  # unix seconds of the scenario's minute 0

    def at(self, minute: int) -> int:
        return self.base + 60 * minute


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _series_key(name: str) -> tuple[str, str]:
    metric, _, rest = name.partition("{")
    return metric, "{" + rest if rest else ""


class Backfilled:
    """A real Prometheus serving backfilled blocks only (no scraping, no rules)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.samples: dict[str, list[tuple[str, int, float]]] = {}  # metric -> (labels, ts, value)
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.cache: dict[tuple[str, int, int, int], dict[int, dict[Labels, float]]] = {}

    def add(self, metric: str, labels: str, ts: int, value: float) -> None:
        self.samples.setdefault(metric, []).append((labels, ts, value))

    def start(self) -> None:
        """Backfill the samples added since the last start into blocks, then (re)start Prometheus."""
        self.stop()
        data = self.folder / "data"
        om, blocks = self.folder / "series.om", self.folder / "blocks"
        shutil.rmtree(blocks, ignore_errors=True)
        with om.open("w") as out:
            for metric, samples in self.samples.items():
                for labels, ts, value in sorted(samples):
                    out.write(f"{metric}{labels} {_fmt(value)} {ts}\n")
            out.write("# EOF\n")
        self.samples = {}
        run = subprocess.run([*PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", "-q", str(om),
                              str(blocks)], capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stdout + run.stderr
        data.mkdir(exist_ok=True)
        for block in blocks.iterdir():  # overlapping blocks are merged at query time
            block.rename(data / block.name)
        port = reserve_port()
        (self.folder / "prometheus.yml").write_text("global: {evaluation_interval: 1m}\n")
        self.proc = subprocess.Popen(
            [str(shutil.which("prometheus")), f"--config.file={self.folder / 'prometheus.yml'}",
             f"--storage.tsdb.path={data}", "--storage.tsdb.retention.time=100y",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
        self.url = f"http://127.0.0.1:{port}"
        wait_http(self.url + "/-/ready", self.proc, timeout=120)
        self.cache: dict[tuple[str, int, int, int], dict[int, dict[Labels, float]]] = {}

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None

    def range(self, expr: str, start: int, end: int, step: int) -> dict[int, dict[Labels, float]]:
        """Every step's instant result: query_range evaluates the expression at each step."""
        key = (expr, start, end, step)
        if key not in self.cache:
            self.cache[key] = self._range(*key)
        return self.cache[key]

    def _range(self, expr: str, start: int, end: int, step: int) -> dict[int, dict[Labels, float]]:
        response = httpx.get(self.url + "/api/v1/query_range", timeout=120, params={
            "query": expr, "start": start, "end": end, "step": step})
        body = response.json()
        assert body["status"] == "success", (expr, body)
        out: dict[int, dict[Labels, float]] = {t: {} for t in range(start, end + 1, step)}
        for series in body["data"]["result"]:
            labels = frozenset(series["metric"].items())
            for ts, value in series["values"]:
                out.setdefault(int(ts), {})[labels] = float(value)
        return out


def _place(all_scenarios: list[RuleScenario]) -> list[Placed]:
    """Scenarios on a timeline ending a day ago; those that share no metric share time.

    A scenario only ever meets the data of earlier scenarios on the same metrics, and
    its healthy history is as long as the longest window its checks look at; whatever
    earlier data a window does see, both twins see it too. (Fewer days, fewer 2-hour
    blocks to backfill.)
    """
    free: dict[str, int] = {}  # metric -> first free minute
    offsets = []
    for s in all_scenarios:
        metrics = {_series_key(name)[0] for name in s.series}
        start = max((free.get(m, 0) for m in metrics), default=0)
        length = max(len(v) for v in s.series.values()) + 1
        offsets.append(start)
        for m in metrics:
            free[m] = start + length
    span = max(free.values())
    base = (int(time.time()) - 86400 - span * 60) // 7200 * 7200
    return [Placed(s, base + 60 * offset) for s, offset in zip(all_scenarios, offsets, strict=True)]


def _record(prom: Backfilled, placed: list[Placed], rules: RuleSet, names: set[str]) -> None:
    """Evaluate the recording rules called ``names`` at every step of every scenario; keep the results."""
    for p in placed:
        s = p.scenario
        for file in s.rule_files:
            for group in rules.files[file]:
                for rule in group["rules"]:
                    if rule.get("record") not in names:
                        continue
                    length = max(len(v) for v in s.series.values())
                    result = prom.range(rule["expr"], p.base, p.at(length - 1), 60 * s.step)
                    for ts, samples in result.items():
                        for labels, value in samples.items():
                            merged = {**dict(labels), **rule.get("labels", {})}
                            merged.pop("__name__", None)
                            text = "{" + ",".join(f'{k}="{v}"' for k, v in sorted(merged.items())) + "}"
                            prom.add(rule["record"], text, ts, value)


@pytest.fixture(scope="module")
def prometheus(setup: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Backfilled, list[Placed]]]:
    rules, _, loaded = setup
    placed = _place(scenarios(rules, loaded))
    prom = Backfilled(tmp_path_factory.mktemp("backfill"))
    for p in placed:
        for name, values in p.scenario.series.items():
            metric, labels = _series_key(name)
            shift = p.base if name in p.scenario.times else 0  # promtool's clock starts at 0
            for minute, value in enumerate(values):
                if minute % p.scenario.sample_every == 0 and isinstance(value, float | int):
                    prom.add(metric, labels, p.at(minute), float(value) + shift)
    records = {r["record"] for groups in rules.files.values() for g in groups for r in g["rules"]
               if "record" in r}
    # recording rules that read other recorded series come after them
    later = {"crmpulse_slo:sli_error:ratio_period"}
    last = {"crmpulse_slo:error_budget_remaining:ratio", "crmpulse_slo:objective:ratio"}
    try:
        began = time.monotonic()
        for names in (records - later - last, later, last):
            prom.start()
            _record(prom, placed, rules, names)
        prom.start()
        print(f"{len(placed)} scenarios backfilled and recorded in {time.monotonic() - began:.1f}s")
        yield prom, placed
    finally:
        prom.stop()


# -- the two engines' semantics ------------------------------------------------------------------


def prometheus_firing(results: dict[int, dict[Labels, float]], hold: float) -> dict[int, set[Labels]]:
    """Prometheus's alerting rule: active while returned, firing once active ``hold`` seconds."""
    active: dict[Labels, int] = {}
    out = {}
    for t in sorted(results):
        present = {_alert_labels(labels) for labels in results[t]}
        active = {labels: active.get(labels, t) for labels in present}
        out[t] = {labels for labels, since in active.items() if t - since >= hold}
    return out


def _alert_labels(labels: Labels) -> Labels:
    return frozenset((k, v) for k, v in labels if k != "__name__")


def _math(expression: str, value: float) -> float:
    if expression == MATH:  # is_number($query) || is_nan($query) || is_inf($query)
        return 1.0 if (math.isfinite(value) or math.isnan(value) or math.isinf(value)) else 0.0
    if expression == "$query > 0":  # what the old file did: value 0 and NaN read as normal
        return float("nan") if math.isnan(value) else float(value > 0)
    raise AssertionError(f"no semantics for {expression}")


def grafana_firing(rule: dict[str, Any], results: dict[str, dict[int, dict[Labels, float]]],
                   interval: int) -> dict[int, set[Labels]]:
    """Grafana's evaluation of a provisioned rule, step by step, on the queries' results."""
    nodes = {d["refId"]: d for d in rule["data"]}
    math_node = nodes["prometheus_math"]["model"]
    threshold = nodes[rule["condition"]]["model"]
    assert threshold["type"] == "threshold" and threshold["expression"] == "prometheus_math"
    evaluator = threshold["conditions"][0]["evaluator"]
    assert evaluator["type"] == "gt"
    hold = _seconds(rule["for"])
    missing_limit = rule.get("missing_series_evals_to_resolve", 2)
    state: dict[Labels, dict[str, Any]] = {}  # instance -> {alerting, since, missing}
    out = {}
    for t in sorted(results["query"]):
        if any(not results[ref][t] for ref in results):  # any query without data: NoData
            assert rule["noDataState"] == "OK"
            state = {}  # OK: every instance resolves
        else:
            condition = {}
            for labels, value in results["query"][t].items():
                computed = _math(math_node["expression"], value)
                # threshold: 1 when the predicate holds; NaN compares false
                condition[labels] = 1.0 if computed > evaluator["params"][0] else 0.0
            for labels, value in condition.items():
                if value != 0:
                    current = state.get(labels)
                    if current is None:
                        state[labels] = {"alerting": hold == 0, "since": t, "missing": 0}
                    else:
                        current["missing"] = 0
                        if not current["alerting"] and t - current["since"] >= hold:
                            current["alerting"] = True
                else:
                    state.pop(labels, None)
            for labels in [labels for labels in state if labels not in condition]:
                state[labels]["missing"] += 1
                if state[labels]["missing"] >= missing_limit:
                    del state[labels]
        out[t] = {_alert_labels(labels) for labels, s in state.items() if s["alerting"]}
    return out


def _seconds(duration: str) -> float:
    from crmpulse.units import parse_duration

    return 0.0 if duration in ("0", "0s") else parse_duration(duration)


def _intervals(firing: dict[int, set[Labels]]) -> dict[Labels, list[tuple[int, int | None]]]:
    """Per instance: (first firing step, first step no longer firing or None)."""
    out: dict[Labels, list[tuple[int, int | None]]] = {}
    previous: set[Labels] = set()
    for t in sorted(firing):
        for labels in firing[t] - previous:
            out.setdefault(labels, []).append((t, None))
        for labels in previous - firing[t]:
            start, _ = out[labels][-1]
            out[labels][-1] = (start, t)
        previous = firing[t]
    return out


def _evaluate(prom: Backfilled, p: Placed, alert: dict[str, Any], twin: dict[str, Any],
              rule_labels: dict[str, str]) -> tuple[dict[int, set[Labels]], dict[int, set[Labels]]]:
    s = p.scenario
    start, end, step = p.base, p.at(s.end + s.step), 60 * s.step
    extra = frozenset(rule_labels.items())
    fired = prometheus_firing(prom.range(alert["expr"], start, end, step), _seconds(alert.get("for", "0s")))
    prometheus = {t: {labels | extra for labels in v} for t, v in fired.items()}
    queries = {d["refId"]: prom.range(d["model"]["expr"], start, end, step)
               for d in twin["data"] if d["datasourceUid"] != "__expr__"}
    grafana = {t: {labels | extra for labels in v}
               for t, v in grafana_firing(twin, queries, step).items()}
    return prometheus, grafana


def _alerts_of(rules: RuleSet, s: RuleScenario) -> list[dict[str, Any]]:
    return [r for f in s.rule_files for g in rules.files[f] for r in g["rules"] if "alert" in r]


def _twin(document: dict[str, Any], alert: dict[str, Any]) -> dict[str, Any]:
    return next(r for g in document["groups"] for r in g["rules"]
                if r["title"] == alert["alert"] and r["labels"] == alert["labels"])


def test_every_grafana_twin_fires_and_resolves_within_one_evaluation_of_its_prometheus_rule(
        setup: Any, prometheus: tuple[Backfilled, list[Placed]]) -> None:
    rules, document, _ = setup
    prom, placed = prometheus
    covered: set[str] = set()
    fired_somewhere: set[str] = set()
    for p in placed:
        s = p.scenario
        for alert in _alerts_of(rules, s):
            twin = _twin(document, alert)
            rule_labels = {k: v for k, v in alert["labels"].items()}
            prom_firing, grafana = _evaluate(prom, p, alert, twin, rule_labels)
            # the Prometheus side agrees with every check promtool made on this scenario. A
            # backfill cannot write a staleness marker (a NaN bit pattern the text formats do
            # not carry), so a series the scenario ends with one lingers here for the 5 minute
            # lookback: where the alert reads such a series through an instant selector, only
            # its silent checks are compared (a lingering series can only delay firing), and
            # the twins' agreement below still covers its firing
            staled = {_series_key(n)[0] for n, v in s.series.items() if "stale" in v}
            bare = re.sub(r"\{[^}]*\}", "", alert["expr"])  # selectors without their matchers
            lingers = any(re.search(re.escape(name) + r"(?![\w:])(?!\s*\[)", bare) for name in staled)
            for check in (c for c in s.checks
                          if c.alert == alert["alert"] and not (lingers and c.firing)):
                now = prom_firing[p.at(check.minute)]
                if check.firing:
                    assert frozenset(check.labels.items()) in now, (s.name, check)
                else:
                    assert not now, (s.name, check, now)
            ours, theirs = _intervals(prom_firing), _intervals(grafana)
            assert set(ours) == set(theirs), (s.name, alert["alert"], ours, theirs)
            for labels in ours:
                assert len(ours[labels]) == len(theirs[labels]), (s.name, alert["alert"])
                for (a_start, a_end), (b_start, b_end) in zip(ours[labels], theirs[labels], strict=True):
                    assert abs(a_start - b_start) <= 60 * s.step, (s.name, alert["alert"])
                    assert (a_end is None) == (b_end is None), (s.name, alert["alert"])
                    if a_end is not None and b_end is not None:
                        assert abs(a_end - b_end) <= 60 * s.step, (s.name, alert["alert"])
            covered.add(alert["alert"])
            if ours:
                fired_somewhere.add(alert["alert"])
    names = {a.name for a in rules.alerts}
    assert covered == names
    # every rule fires in some scenario (its own), so every comparison above was put to work
    assert fired_somewhere == names, names - fired_somewhere


def test_the_old_condition_would_leave_the_value_zero_rules_silent(
        setup: Any, prometheus: tuple[Backfilled, list[Placed]]) -> None:
    """The evaluator can tell twins apart: `$query > 0` never fires where the rule returns 0."""
    rules, document, _ = setup
    prom, placed = prometheus
    p = next(p for p in placed if p.scenario.name.startswith("CrmProtectionBroken"))
    alert = next(a for a in _alerts_of(rules, p.scenario) if a["alert"] == "CrmProtectionBroken")
    twin = json.loads(json.dumps(_twin(document, alert)))
    next(d for d in twin["data"] if d["refId"] == "prometheus_math")["model"]["expression"] = "$query > 0"
    prom_firing, grafana = _evaluate(prom, p, alert, twin, dict(alert["labels"]))
    assert any(prom_firing.values()) and not any(grafana.values())

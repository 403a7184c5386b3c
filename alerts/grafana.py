"""The same alerts as Grafana-managed rules, in Grafana's alerting file-provisioning format.

The document is what Grafana's file provisioner reads from ``provisioning/alerting/``
(https://grafana.com/docs/grafana/latest/alerting/set-up/provision-alerting-resources/file-provisioning/,
"Import alert rules"): ``apiVersion: 1`` and ``groups`` of ``orgId``, ``name``,
``folder``, ``interval`` and ``rules``, each rule with ``uid``, ``title``,
``condition``, ``data``, ``noDataState``, ``execErrState``, ``for``, ``labels``,
``annotations`` and ``isPaused`` directly on it. (grafanalib's ``AlertRulev9`` nests
those under ``grafana_alert``, the ruler API's shape, which the provisioner reads as a
rule with no title; no grafanalib class writes this shape, so the rule and group
envelopes are written here, and grafanalib builds the queries and the math.)

Each rule fires exactly when its Prometheus twin does, the way Grafana's own
Prometheus-rule converter does it: the twin's PromQL as an *instant* query
(``query``), a math expression that is 1 for every returned sample whatever its
value (``is_number($query) || is_nan($query) || is_inf($query)``: 0, NaN and Inf
included, so ``== 0`` rules fire too), a threshold ``> 0`` as the condition; no data
is OK (an empty result resolves, as in Prometheus), a query error keeps the last
state (Prometheus keeps its alerts when a rule fails), a vanished series resolves
at the next evaluation (``missing_series_evals_to_resolve: 1``), and the same
``for``, labels and interval. The values the annotations show (burn rates, budget,
the deep link's time range) are further instant queries: Grafana has no ``query``
in templates, so they reach the text as ``$values.<name>``.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from grafanalib.core import EXP_TYPE_MATH, AlertExpression, AlertFileBasedProvisioning, Target

from .rules import AlertRule, RuleSet
from .slo import prom_duration

__all__ = ["CONDITION", "DATASOURCE_UID", "FOLDER", "MATH", "provisioning", "queries_of"]

DATASOURCE_UID = "crmpulse-prometheus"  # the uid deploy/grafana's datasource file provisions
FOLDER = "crmpulse"
CONDITION = "threshold"
MATH = "is_number($query) || is_nan($query) || is_inf($query)"
_EXPR = "__expr__"


def escape(text: str) -> str:
    """Grafana expands ``$VAR`` from its environment in provisioned titles and labels: ``$`` -> ``$$``."""
    return text.replace("$", "$$")


def uid(alert: AlertRule) -> str:
    """A stable uid of at most 40 characters, unique per alert and label set."""
    digest = hashlib.sha1(repr((alert.name, sorted(alert.labels.items()))).encode()).hexdigest()[:8]
    return f"crm-{alert.name.lower()[:27]}-{digest}"


def _query(ref: str, expr: str) -> dict[str, Any]:
    model = Target(expr=expr, refId=ref, datasource=DATASOURCE_UID, instant=True).to_json_data()
    # instant, never range (a range query's last point lags the twin); the datasource by uid
    model.update({"range": False, "instant": True, "intervalMs": 1000, "maxDataPoints": 43200,
                  "datasource": {"type": "prometheus", "uid": DATASOURCE_UID}})
    return {"refId": ref, "relativeTimeRange": {"from": 600, "to": 0},
            "datasourceUid": DATASOURCE_UID, "model": model}


def _math(ref: str, expression: str) -> dict[str, Any]:
    built = AlertExpression(refId=ref, expression=expression, expressionType=EXP_TYPE_MATH).to_json_data()
    model = {k: v for k, v in built["model"].items()
             if k in ("expression", "hide", "intervalMs", "maxDataPoints", "refId", "type")}
    model["datasource"] = {"type": _EXPR, "uid": _EXPR}
    return {"refId": ref, "datasourceUid": _EXPR, "model": model}


def _threshold(ref: str, source: str) -> dict[str, Any]:
    # grafanalib has no threshold expression (its types: classic, reduce, resample, math)
    return {"refId": ref, "datasourceUid": _EXPR, "model": {
        "refId": ref, "type": "threshold", "expression": source,
        "datasource": {"type": _EXPR, "uid": _EXPR},
        "conditions": [{"evaluator": {"type": "gt", "params": [0]}}]}}


def rule(alert: AlertRule, with_dashboard: bool = False) -> dict[str, Any]:
    """One provisioned rule, the twin of ``alert``."""
    data = [_query("query", alert.expr), _math("prometheus_math", MATH),
            _threshold(CONDITION, "prometheus_math")]
    data += [_query(name, expr) for name, expr in alert.values.items()]
    out: dict[str, Any] = {
        "uid": uid(alert), "title": escape(alert.name), "condition": CONDITION, "data": data,
        "noDataState": "OK", "execErrState": "KeepLast",
        "for": prom_duration(alert.for_) if alert.for_ else "0s",
        "missing_series_evals_to_resolve": 1,
        "labels": {k: escape(v) for k, v in {"severity": alert.severity, **alert.labels}.items()},
        "annotations": alert.annotations("grafana"), "isPaused": False}
    if with_dashboard and alert.panel is not None:
        out["dashboardUid"], out["panelId"] = alert.panel.dashboard, alert.panel.id
    return out


def interval(seconds: float) -> str:
    """A group interval Grafana accepts: a whole multiple of its 10 s scheduler tick."""
    return prom_duration(max(10, math.ceil(seconds / 10 - 1e-9) * 10))


def provisioning(rules: RuleSet, with_dashboard: bool = False) -> dict[str, Any]:
    """The file-provisioning document: one group per Prometheus alert group."""
    groups = []
    for groups_of_file in rules.files.values():
        for group in groups_of_file:
            names = [r["alert"] for r in group["rules"] if "alert" in r]
            if not names:
                continue
            alerts = [a for a in rules.alerts if a.name in names
                      and all(a.labels.get(k) == v for k, v in _group_labels(group).items())]
            groups.append({"orgId": 1, "name": group["name"], "folder": FOLDER,
                           "interval": interval(rules.interval),
                           "rules": [rule(a, with_dashboard) for a in alerts]})
    document = AlertFileBasedProvisioning(groups).to_json_data()
    return {"apiVersion": document["apiVersion"], "groups": document["groups"]}


def _group_labels(group: dict[str, Any]) -> dict[str, str]:
    """The labels every alert of a Prometheus group shares (an SLO's group: its slo)."""
    rules = [r for r in group["rules"] if "alert" in r]
    shared = dict(rules[0].get("labels", {}))
    for r in rules[1:]:
        shared = {k: v for k, v in shared.items() if r.get("labels", {}).get(k) == v}
    shared.pop("severity", None)
    return shared


def queries_of(document: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Alert title -> {refId: PromQL} of its datasource queries, read back from a document."""
    out: dict[str, dict[str, str]] = {}
    for group in document["groups"]:
        for r in group["rules"]:
            out[r["title"]] = {d["refId"]: d["model"]["expr"] for d in r["data"]
                               if d["datasourceUid"] != _EXPR}
    return out

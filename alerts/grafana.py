"""The same alerts as Grafana-managed alert rules, through grafanalib's alert groups.

Each Grafana rule queries Prometheus with exactly its twin's PromQL (query A), reduces
it to the last value (B) and alerts when that is above 0 (C), with the same ``for``,
labels and annotations. The generated promtool tests evaluate every query A over the
same series as the Prometheus rules and check it holds exactly when the twin fires.
"""

from __future__ import annotations

import json
from typing import Any

from grafanalib.core import (
    EXP_REDUCER_FUNC_LAST,
    EXP_TYPE_MATH,
    EXP_TYPE_REDUCE,
    AlertExpression,
    AlertFileBasedProvisioning,
    AlertGroup,
    AlertRulev9,
    Target,
)

from crmpulse.units import format_duration

from .rules import AlertRule

__all__ = ["DATASOURCE_UID", "alert_group", "provisioning", "queries_of"]

DATASOURCE_UID = "crmpulse-prometheus"  # the uid deploy/grafana's datasource file provisions


def _rule(alert: AlertRule) -> AlertRulev9:
    return AlertRulev9(
        title=alert.name,
        uid=("crm-" + alert.name.lower())[:40],
        triggers=[
            Target(expr=alert.expr, refId="A", datasource=DATASOURCE_UID),
            AlertExpression(refId="B", expression="A", expressionType=EXP_TYPE_REDUCE,
                            reduceFunction=EXP_REDUCER_FUNC_LAST),
            AlertExpression(refId="C", expression="$B > 0", expressionType=EXP_TYPE_MATH),
        ],
        condition="C",
        evaluateFor=format_duration(alert.for_) if alert.for_ else "0s",
        labels={"severity": alert.severity, **alert.labels},
        annotations={"summary": alert.summary, "description": alert.description,
                     "runbook_url": alert.runbook_url},
        noDataAlertState="OK", errorAlertState="Error",
    )


def alert_group(name: str, alerts: list[AlertRule]) -> AlertGroup:
    return AlertGroup(name=name, rules=[_rule(a) for a in alerts], folder="crmpulse",
                      evaluateInterval="1m")


def provisioning(groups: list[AlertGroup]) -> dict[str, Any]:
    """A Grafana file-provisioning document (deploy/grafana/alerting/) for the groups."""
    data = AlertFileBasedProvisioning([g.to_json_data() for g in groups]).to_json_data()
    return json.loads(json.dumps(data, default=lambda o: o.to_json_data()))


def queries_of(document: dict[str, Any]) -> dict[str, str]:
    """Alert title -> the PromQL of its query A, read back from a provisioning document."""
    out = {}
    for group in document["groups"]:
        for rule in group["rules"]:
            alert = rule["grafana_alert"]
            for item in alert["data"]:
                if item["refId"] == "A":
                    out[alert["title"]] = item["model"]["expr"]
    return out

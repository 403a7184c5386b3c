"""Prometheus rules from the config: SLO recording rules, burn-rate alerts, companions.

Every alert has the same shape (kubernetes-mixin's): a CamelCase name, ``severity``
(critical pages, warning tickets), a static ``summary``, a ``description`` templated
with the target and the check, pair or SLO it is about, and a ``runbook_url`` derived
from the alert name. Page and ticket are distinct alerts so Alertmanager can inhibit
one with the other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from crmpulse import LoadedConfig, contract
from crmpulse import contract as c
from crmpulse.units import format_duration, parse_duration

from .slo import PAIRS, RECORD, WINDOWS, SLOSpec, slo_specs

__all__ = ["ALERT_NAMES", "AlertRule", "RuleSet", "build_rules", "render_annotation"]

#: Every alert crmpulse can generate; each has alerts/runbooks/<name>.md.
ALERT_NAMES = (
    "CrmAvailabilityBurnRateFast", "CrmAvailabilityBurnRateSlow",
    "CrmLatencyBurnRateFast", "CrmLatencyBurnRateSlow",
    "CrmSyncLagBurnRateFast", "CrmSyncLagBurnRateSlow",
    "CrmProbesAbsent", "CrmSyncStalled", "CrmCanariesLost", "CrmProtectionBroken",
    "CrmCertificateExpiringSoon", "CrmCertificateExpiring", "CrmCertificateInvalid",
)


@dataclass
class AlertRule:
    name: str
    expr: str
    severity: str
    summary: str
    description: str
    runbook_url: str
    for_: float = 0.0
    labels: dict[str, str] = field(default_factory=dict)

    def as_rule(self) -> dict[str, Any]:
        rule: dict[str, Any] = {"alert": self.name, "expr": self.expr}
        if self.for_:
            rule["for"] = format_duration(self.for_)
        rule["labels"] = {"severity": self.severity, **self.labels}
        rule["annotations"] = {"summary": self.summary, "description": self.description,
                               "runbook_url": self.runbook_url}
        return rule


@dataclass
class RuleSet:
    """Rule groups by file name, and the alerts in them (for tests and Grafana)."""

    files: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    alerts: list[AlertRule] = field(default_factory=list)
    specs: list[SLOSpec] = field(default_factory=list)


def render_annotation(template: str, labels: dict[str, str]) -> str:
    """What Prometheus renders for our annotation templates (which use only $labels)."""
    return re.sub(r"\{\{\s*\$labels\.(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template)


def _window_name(seconds: float) -> str:
    return format_duration(seconds)


def build_rules(loaded: LoadedConfig, compress: float = 1.0, interval: float = 60.0) -> RuleSet:
    """The rule set; ``compress`` > 1 divides every window and duration by it.

    ``interval`` is every group's evaluation interval (seconds).

    Compressed time is for demos and end-to-end tests only (``crmpulse stack``): an
    outage pages within seconds and resolves within a minute instead of half an hour.
    The burn-rate factors, and so what an alert means, do not change.
    """
    alerting = loaded.config.alerting
    every = format_duration(interval)
    base = alerting.runbook_base_url.rstrip("/")
    out = RuleSet(specs=slo_specs(loaded))

    def w(window: str | float) -> str:
        seconds = parse_duration(window) if isinstance(window, str) else window
        return format_duration(round(seconds / compress, 3))

    def runbook(name: str) -> str:
        return f"{base}/{name}.md"

    for spec in out.specs:
        period = spec.slo.window
        records: list[dict[str, Any]] = []
        for window in WINDOWS:
            records.append({"record": RECORD.format(window=w(window)), "expr": spec.ratio(w(window)),
                            "labels": spec.labels})
        bad, total = spec.rates(w("5m"))
        records += [
            {"record": c.SLO_ERRORS_RATE5M.name, "expr": bad, "labels": spec.labels},
            {"record": c.SLO_EVENTS_RATE5M.name, "expr": total, "labels": spec.labels},
            # the period's SLI as a ratio of sums (not a mean of short ratios)
            {"record": c.SLO_ERROR_RATIO_PERIOD.name,
             "expr": (f"sum_over_time({c.SLO_ERRORS_RATE5M.name}{{{spec.matchers}}}"
                      f"[{w(period)}]) / sum_over_time({c.SLO_EVENTS_RATE5M.name}"
                      f"{{{spec.matchers}}}[{w(period)}])"),
             "labels": spec.labels},
            {"record": c.SLO_OBJECTIVE.name, "expr": f"vector({spec.slo.objective / 100!r})",
             "labels": spec.labels},
            {"record": c.SLO_BUDGET_REMAINING.name,
             "expr": f"1 - {c.SLO_ERROR_RATIO_PERIOD.name}{{{spec.matchers}}} / {spec.budget!r}",
             "labels": spec.labels},
        ]
        alerts = []
        for severity, suffix, noun in (("critical", "Fast", "page"), ("warning", "Slow", "ticket")):
            pairs = [p for p in PAIRS if p.severity == severity]
            conditions = []
            for pair in pairs:
                threshold = f"({pair.factor(period)!r} * {spec.budget!r})"
                long = f"{RECORD.format(window=w(pair.long))}{{{spec.matchers}}}"
                short = f"{RECORD.format(window=w(pair.short))}{{{spec.matchers}}}"
                conditions.append(f"({long} > {threshold} and {short} > {threshold})")
            name = f"{spec.alert_prefix}BurnRate{suffix}"
            spend = " or ".join(f"{p.budget_share:.0%} of the {_window_name(period)} budget in {p.long}"
                                for p in pairs)
            kind = spec.slo.kind.replace("_", " ")
            rule = AlertRule(
                name=name, expr=" or ".join(conditions), severity=severity,
                summary=f"CRM {kind} error budget is burning "
                        + ("fast" if severity == "critical" else "slowly"),
                description=(f"{{{{ $labels.target }}}}: the {{{{ $labels.slo }}}} SLO "
                             f"({spec.slo.objective:g} % over {_window_name(period)}) is spending its "
                             f"error budget at a rate that would use {spend} ({noun}). "
                             f"Open the CRM overview dashboard, SLO row."),
                runbook_url=runbook(name), labels=dict(spec.labels))
            alerts.append(rule)
        out.alerts += alerts
        out.files[f"slo-{spec.name}.rules.yml"] = [
            {"name": f"crmpulse-slo-{spec.name}-sli", "interval": every, "rules": records},
            {"name": f"crmpulse-slo-{spec.name}-alerts", "interval": every,
             "rules": [a.as_rule() for a in alerts]},
        ]

    companions = _companions(loaded, out.specs, runbook, w)
    out.alerts += companions
    if companions:
        out.files["companions.rules.yml"] = [
            {"name": "crmpulse-companions", "interval": every, "rules": [a.as_rule() for a in companions]}]
    return out


def _companions(loaded: LoadedConfig, specs: list[SLOSpec], runbook: Any, w: Any) -> list[AlertRule]:
    c, config, alerting = contract, loaded.config, loaded.config.alerting
    target = config.target.name
    t = f'target="{target}"'
    kinds = {check.kind for check in config.probes.checks}
    rules = []
    if config.probes.checks:
        window = w(alerting.absent_for)
        rules.append(AlertRule(
            name="CrmProbesAbsent",
            expr=(f"absent({c.CHECK_RUNS.series}{{{t}}}) or "
                  f"sum by (target) (increase({c.CHECK_RUNS.series}{{{t}}}[{window}])) == 0"),
            for_=parse_duration(w(alerting.absent_for)), severity="critical",
            summary="No probe results for the CRM: its SLOs cannot be judged",
            description=("{{ $labels.target }}: no crmpulse check has completed a run for "
                         f"{window}: the exporter is down, not scraped, or stuck. Burn-rate "
                         "alerts cannot fire while this lasts."),
            runbook_url=runbook("CrmProbesAbsent"), labels={"target": target}))
    sync_slos = [s for s in specs if s.slo.kind == "sync_lag"]
    if config.probes.sync:
        threshold = min((s.slo.threshold or 0 for s in sync_slos), default=300.0)
        rules.append(AlertRule(
            name="CrmSyncStalled",
            expr=f"max by (target, pair) ({c.SYNC_LAG.series}{{{t}}}) > {threshold!r}",
            for_=parse_duration(w(alerting.stall_for)), severity="critical",
            summary="CRM data is not reaching the other side: sync stalled",
            description=(f"{{{{ $labels.target }}}}: sync pair {{{{ $labels.pair }}}} has lagged more "
                         f"than {format_duration(threshold)} for {format_duration(alerting.stall_for)}; "
                         "records written in the CRM are not visible where they are needed."),
            runbook_url=runbook("CrmSyncStalled")))
        rules.append(AlertRule(
            name="CrmCanariesLost",
            expr=f"sum by (target, pair) (increase({c.SYNC_LOST.series}{{{t}}}[{w('15m')}])) > 0",
            severity="warning",
            summary="CRM sync canaries never became visible",
            description=("{{ $labels.target }}: sync pair {{ $labels.pair }} lost canaries in the "
                         "last 15 minutes: records did not reach the other side within the SLA."),
            runbook_url=runbook("CrmCanariesLost")))
    if "protection" in kinds:
        rules.append(AlertRule(
            name="CrmProtectionBroken",
            expr=f"{c.PROTECTION_HOLDS.series}{{{t}}} == 0", severity="critical",
            summary="A CRM protection no longer holds",
            description=("{{ $labels.target }}: protection {{ $labels.protection }} checked by "
                         "{{ $labels.check }} is broken (for require_auth: the CRM answers without "
                         "valid credentials)."),
            runbook_url=runbook("CrmProtectionBroken")))
    if "tls" in kinds:
        for name, days, severity in (("CrmCertificateExpiringSoon", 14, "warning"),
                                     ("CrmCertificateExpiring", 3, "critical")):
            rules.append(AlertRule(
                name=name, expr=f"{c.TLS_EXPIRY.series}{{{t}}} - time() < {days} * 86400",
                severity=severity,
                summary=f"The CRM's TLS certificate expires in less than {days} days",
                description=("{{ $labels.target }}: the certificate checked by {{ $labels.check }} "
                             f"expires within {days} days; clients will refuse the CRM after that."),
                runbook_url=runbook(name)))
        rules.append(AlertRule(
            name="CrmCertificateInvalid", expr=f"{c.TLS_CHAIN_VALID.series}{{{t}}} == 0",
            for_=parse_duration(w("5m")), severity="critical",
            summary="The CRM's TLS certificate chain does not verify",
            description=("{{ $labels.target }}: the certificate served to {{ $labels.check }} does "
                         "not verify against the trust store (self-signed, wrong host, missing "
                         "intermediate or expired)."),
            runbook_url=runbook("CrmCertificateInvalid")))
    assert all(r.name in ALERT_NAMES for r in rules)
    return rules

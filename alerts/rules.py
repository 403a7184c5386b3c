"""Prometheus rules from the config: SLO recording rules, burn-rate alerts, companions.

Every alert has the same shape (kubernetes-mixin's): a CamelCase name, ``severity``
(critical pages, warning tickets), a ``summary`` with the numbers on-call needs at a
glance (for burn-rate alerts: the current burn rates and the error budget left, read
from the recorded series), a ``description`` naming the SLO, target and window and
saying what to check first, a ``runbook_url`` derived from the alert name and, when
``alerting.dashboard_url`` is set, a ``dashboard_url`` deep link to the panel that
shows what fired, over the alert's time range. Page and ticket are distinct alerts
so Alertmanager can inhibit one with the other.

Annotation texts are written once with ``[[name|format]]`` placeholders and rendered
for each engine: Prometheus reads a value with ``query`` (or ``$value``), Grafana,
which has no ``query`` in templates, from an extra instant query of its rule
(``$values.<name>``). Both read the same PromQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from crmpulse import ConfigError, LoadedConfig, Problem
from crmpulse import contract as c
from crmpulse.units import format_duration

from .slo import SLOSpec, decimal_text, prom_duration, slo_specs

__all__ = ["AlertRule", "Context", "RuleSet", "build_rules", "for_grafana", "for_prometheus",
           "render_annotation"]

_PLACEHOLDER = re.compile(r"\[\[(\w+)\|([^\]]+)\]\]")


@dataclass
class AlertRule:
    """One alert, engine-neutral: rules.py renders it for Prometheus, grafana.py for Grafana."""

    name: str
    expr: str
    severity: str
    summary: str  # may hold [[name|format]] placeholders
    description: str
    runbook_url: str
    for_: float = 0.0
    labels: dict[str, str] = field(default_factory=dict)
    #: extra values the texts show, by name: an instant PromQL query each
    values: dict[str, str] = field(default_factory=dict)
    dashboard_url: str | None = None  # with placeholders (the time range)
    panel: c.Panel | None = None
    #: seconds from the condition's start to firing, as the description states it
    delay: float = 0.0

    def annotations(self, flavour: str) -> dict[str, str]:
        render = for_prometheus if flavour == "prometheus" else for_grafana
        out = {"summary": render(self.summary, self.values),
               "description": render(self.description, self.values),
               "runbook_url": self.runbook_url}
        if self.dashboard_url:
            out["dashboard_url"] = render(self.dashboard_url, self.values)
        return out

    def as_rule(self) -> dict[str, Any]:
        rule: dict[str, Any] = {"alert": self.name, "expr": self.expr}
        if self.for_:
            rule["for"] = prom_duration(self.for_)
        rule["labels"] = {"severity": self.severity, **self.labels}
        rule["annotations"] = self.annotations("prometheus")
        return rule


def for_prometheus(text: str, values: dict[str, str]) -> str:
    """Placeholders as Prometheus templates: ``query`` for named values, ``$value`` for the alert's."""
    def one(match: re.Match[str]) -> str:
        name, fmt = match.groups()
        if name == "value":
            return f"{{{{ $value | {fmt} }}}}"
        return f"{{{{ with query `{values[name]}` }}}}{{{{ . | first | value | {fmt} }}}}{{{{ end }}}}"
    return _PLACEHOLDER.sub(one, text)


def for_grafana(text: str, values: dict[str, str]) -> str:
    """Placeholders as Grafana templates: each value is an instant query of the rule (``$values``)."""
    def one(match: re.Match[str]) -> str:
        name, fmt = match.groups()
        ref = "query" if name == "value" else name
        if name != "value" and name not in values:
            raise KeyError(name)
        return f"{{{{ with $values.{ref} }}}}{{{{ .Value | {fmt} }}}}{{{{ end }}}}"
    return _PLACEHOLDER.sub(one, text)


@dataclass
class RuleSet:
    """Rule groups by file name, and the alerts in them (for tests and Grafana)."""

    files: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    alerts: list[AlertRule] = field(default_factory=list)
    specs: list[SLOSpec] = field(default_factory=list)
    interval: float = 60.0


def render_annotation(template: str, labels: dict[str, str]) -> str:
    """What Prometheus renders for templates that use only $labels."""
    return re.sub(r"\{\{\s*\$labels\.(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template)


@dataclass
class Context:
    """What every rule builder needs: the config, the SLOs, and the time scale."""

    loaded: LoadedConfig
    specs: list[SLOSpec]
    compress: float

    def w(self, seconds: float) -> str:
        """A window (seconds) as PromQL, divided by ``compress``."""
        return prom_duration(seconds / self.compress)

    def seconds(self, seconds: float) -> float:
        return seconds / self.compress

    def runbook(self, name: str) -> str:
        return f"{self.loaded.config.alerting.runbook_base_url.rstrip('/')}/{name}.md"

    @property
    def target(self) -> str:
        return self.loaded.config.target.name

    def link(self, panel: c.Panel, window: float, **variables: str) -> tuple[str | None, dict[str, str]]:
        """A deep link to ``panel`` over the last ``window`` before the evaluation, and its values."""
        base = self.loaded.config.alerting.dashboard_url
        if base is None:
            return None, {}
        span = self.seconds(window)
        query = "".join(f"&var-{k}={v}" for k, v in {"target": self.target, **variables}.items())
        url = (f"{base}/d/{panel.dashboard}?orgId=1&viewPanel={panel.id}{query}"
               '&from=[[link_from|printf "%.0f"]]&to=[[link_to|printf "%.0f"]]')
        return url, {"link_from": f"vector((time() - {span:g}) * 1000)",
                     "link_to": "vector(time() * 1000)"}


FIRST_CHECK = {
    "availability": (c.PANEL_FAILURES, "which checks fail and why: the {panel} panel of the CRM "
                     "overview, or `sum by (check, reason) (rate({failures}{{target=\"{target}\"}}[5m]))`; "
                     "one reason (timeout, connect, tls, auth, status) usually names the broken layer"),
    "latency": (c.PANEL_LATENCY, "which checks are slow and in which HTTP phase: the {panel} panel of "
                "the CRM overview, then the journeys dashboard's HTTP phases (connect and tls point at "
                "the network, processing at the CRM itself)"),
    "sync_lag": (c.PANEL_SYNC_LAG, "whether the sync is stopped or only slow: the {panel} panel of the "
                 "CRM overview and lost canaries; a lag that only grows is a stalled sync worker or "
                 "queue on the CRM side"),
}


def build_rules(loaded: LoadedConfig, compress: float = 1.0, interval: float = 60.0) -> RuleSet:
    """The rule set; ``compress`` > 1 divides every window and duration by it.

    ``interval`` is every group's evaluation interval (seconds).

    Compressed time is for demos and end-to-end tests only (``crmpulse stack``): an
    outage pages within seconds and resolves within a minute instead of half an hour.
    The burn-rate factors, and so what an alert means, do not change.
    """
    every = prom_duration(interval)
    ctx = Context(loaded, slo_specs(loaded), compress)
    out = RuleSet(specs=ctx.specs, interval=interval)

    for spec in out.specs:
        records: list[dict[str, Any]] = []
        for window in spec.windows:
            # rounded to 12 decimals: the division's float noise (~1e-16) must not lift a
            # steady error ratio of exactly the budget over a factor-1 threshold
            records.append({"record": c.SLO_ERROR_RATIO_RATE.at(ctx.w(window)),
                            "expr": f"round({spec.ratio(ctx.w(window))}, 1e-12)", "labels": spec.labels})
        bad, total = spec.rates(ctx.w(300))
        period = ctx.w(spec.window)
        records += [
            {"record": c.SLO_ERRORS_RATE5M.name, "expr": bad, "labels": spec.labels},
            {"record": c.SLO_EVENTS_RATE5M.name, "expr": total, "labels": spec.labels},
            # the period's SLI as a ratio of sums (not a mean of short ratios)
            {"record": c.SLO_ERROR_RATIO_PERIOD.name,
             "expr": (f"sum_over_time({c.SLO_ERRORS_RATE5M.name}{{{spec.matchers}}}[{period}]) / "
                      f"sum_over_time({c.SLO_EVENTS_RATE5M.name}{{{spec.matchers}}}[{period}])"),
             "labels": spec.labels},
            {"record": c.SLO_OBJECTIVE.name, "expr": f"vector({1 - spec.budget_exact})",
             "labels": spec.labels},
            {"record": c.SLO_BUDGET_REMAINING.name,
             "expr": f"1 - {c.SLO_ERROR_RATIO_PERIOD.name}{{{spec.matchers}}} / {spec.budget_text}",
             "labels": spec.labels},
        ]
        alerts = [_burn_alert(ctx, spec, severity) for severity in ("critical", "warning")]
        out.alerts += alerts
        out.files[f"slo-{spec.name}.rules.yml"] = [
            {"name": f"crmpulse-slo-{spec.name}-sli", "interval": every, "rules": records},
            {"name": f"crmpulse-slo-{spec.name}-alerts", "interval": every,
             "rules": [a.as_rule() for a in alerts]},
        ]

    from .companions import COMPANIONS

    problems: list[Problem] = []
    companions = []
    for companion in COMPANIONS:
        try:
            rule = companion.build(ctx)
        except ConfigError as exc:
            problems += exc.problems
            continue
        if rule is not None:
            companions.append(rule)
    if problems:
        raise ConfigError(problems)
    out.alerts += companions
    if companions:
        out.files["companions.rules.yml"] = [
            {"name": "crmpulse-companions", "interval": every, "rules": [a.as_rule() for a in companions]}]
    return out


def _burn_alert(ctx: Context, spec: SLOSpec, severity: str) -> AlertRule:
    pairs = [p for p in spec.pairs if p.severity == severity]
    conditions = []
    values: dict[str, str] = {}
    for pair in pairs:
        threshold = spec.threshold(pair)
        long = f"{c.SLO_ERROR_RATIO_RATE.at(ctx.w(pair.long))}{{{spec.matchers}}}"
        short = f"{c.SLO_ERROR_RATIO_RATE.at(ctx.w(pair.short))}{{{spec.matchers}}}"
        conditions.append(f"({long} > {threshold} and {short} > {threshold})")
        # the burn rate over the long window: the error ratio in units of the budget
        values[f"burn{len(values) + 1}"] = f"{long} / {spec.budget_text}"
    values["budget"] = (f"100 * sum by (target, slo, kind) "
                        f"({c.SLO_BUDGET_REMAINING.name}{{{spec.matchers}}})")
    suffix, noun = ("Fast", "page") if severity == "critical" else ("Slow", "ticket")
    name = f"{spec.alert_prefix}BurnRate{suffix}"
    window = format_duration(spec.window)
    kind = spec.slo.kind.replace("_", " ")
    rates = ", ".join(f'[[burn{i + 1}|printf "%.1f"]]x over {format_duration(p.long)}'
                      for i, p in enumerate(pairs))
    summary = (f"CRM {kind} SLO {spec.name} burning its error budget: {rates}; "
               f'[[budget|printf "%.1f"]]% of the {window} budget left')
    rules = " or ".join(f"{p.factor}x over both {format_duration(p.long)} and "
                        f"{format_duration(p.short)}" for p in pairs)
    fastest = max(pairs, key=lambda p: p.factor)
    exhaust = format_duration(round(spec.window / float(fastest.factor)))
    if severity == "critical":
        pace = (f"fast enough to page: more than {rules}. At {fastest.factor}x the whole budget "
                f"is gone in {exhaust}")
    else:
        pace = (f"faster than the SLO can sustain: more than {rules}. At this pace the budget "
                "runs out before the window ends")
    panel, first = FIRST_CHECK[spec.slo.kind]
    first = first.format(panel=panel.title, failures=c.CHECK_FAILURES.series, target=spec.target)
    description = (f"{{{{ $labels.target }}}}: the {spec.name} SLO ({spec.slo.objective:g} % of "
                   f"{spec.what} over {window}; error budget {decimal_text(spec.budget_exact * 100)} %) "
                   f"burns its budget {pace} ({noun}). Check first: {first}.")
    link, link_values = ctx.link(panel, max(p.long for p in pairs), slo=spec.name)
    return AlertRule(name=name, expr=" or ".join(conditions), severity=severity, summary=summary,
                     description=description, runbook_url=ctx.runbook(name), labels=dict(spec.labels),
                     values={**values, **link_values}, dashboard_url=link, panel=panel)

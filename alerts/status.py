"""``crmpulse slo status``: each SLO's error budget and burn rates, read from Prometheus.

    crmpulse slo status --prometheus http://127.0.0.1:9090 [--config crmpulse.yaml]

For every SLO of the config: the objective, the error budget left over the SLO
window, the burn rate over both windows of every alert pair next to the factor it
alerts above, and which alerts fire. It reads the series the generated recording
rules write (``crmpulse_slo:*``) and Prometheus's ``ALERTS`` through the HTTP API, so
what it prints is what the alerts see. :attr:`Status.exhausted` is true when a budget
is spent: the CLI exits 1 then, which makes it a change-freeze gate before peak season.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import httpx

from crmpulse import LoadedConfig
from crmpulse import contract as c
from crmpulse.units import format_duration

from .slo import SLOSpec, prom_duration, slo_specs

__all__ = ["PairStatus", "PrometheusUnreadable", "SLOStatus", "Status", "slo_status"]


class PrometheusUnreadable(Exception):
    """Prometheus could not be asked, or has none of the recorded series (rules not loaded)."""


@dataclass
class PairStatus:
    label: str  # "1h/5m"
    severity: str
    factor: float
    long: float | None  # burn rate over the long window (None: no data)
    short: float | None

    @property
    def burning(self) -> bool:
        return (self.long is not None and self.short is not None
                and self.long > self.factor and self.short > self.factor)


@dataclass
class SLOStatus:
    spec: SLOSpec
    budget_left: float | None  # share of the budget not yet spent; None: no events yet
    sli: float | None
    pairs: list[PairStatus]
    firing: list[str]

    @property
    def exhausted(self) -> bool:
        return self.budget_left is not None and self.budget_left <= 0


@dataclass
class Status:
    slos: list[SLOStatus] = field(default_factory=list)
    other_firing: list[str] = field(default_factory=list)  # companions for the target

    @property
    def exhausted(self) -> bool:
        return any(s.exhausted for s in self.slos)

    def text(self) -> str:
        lines = []
        for s in self.slos:
            spec = s.spec
            lines.append(f"SLO {spec.name} ({spec.slo.kind} of {spec.target}): objective "
                         f"{spec.slo.objective:g} % of {spec.what} over {format_duration(spec.window)}")
            if s.budget_left is None:
                lines.append("  error budget left: no events yet")
            else:
                state = "  EXHAUSTED" if s.exhausted else ""
                sli = f" (SLI {s.sli:.4%} over the window)" if s.sli is not None else ""
                lines.append(f"  error budget left: {s.budget_left:.2%}{sli}{state}")
            lines.append(f"  {'pair':<12} {'alert':<7} {'burn rate long / short':>24}  "
                         f"{'fires above':>11}  state")
            for p in s.pairs:
                rates = f"{_rate(p.long)} / {_rate(p.short)}"
                kind = "page" if p.severity == "critical" else "ticket"
                lines.append(f"  {p.label:<12} {kind:<7} {rates:>24}  {p.factor:>10g}x  "
                             f"{'BURNING' if p.burning else 'ok'}")
            lines.append(f"  firing: {', '.join(s.firing) if s.firing else 'none'}")
        if self.other_firing:
            lines.append(f"Also firing: {', '.join(self.other_firing)}")
        return "\n".join(lines)


def _rate(value: float | None) -> str:
    return "no data" if value is None else f"{value:.2f}x"


class _Prometheus:
    def __init__(self, url: str, client: httpx.Client) -> None:
        self.url, self.client = url.rstrip("/"), client

    def query(self, expr: str) -> list[dict[str, Any]]:
        try:
            response = self.client.get(f"{self.url}/api/v1/query", params={"query": expr})
        except httpx.HTTPError as exc:
            raise PrometheusUnreadable(f"cannot reach Prometheus at {self.url}: "
                                       f"{exc.__class__.__name__}: {exc}") from None
        try:
            body = response.json()
        except ValueError:
            raise PrometheusUnreadable(f"{self.url} answered HTTP {response.status_code} without "
                                       "JSON: is it Prometheus?") from None
        if not isinstance(body, dict) or body.get("status") != "success":
            error = body.get("error") if isinstance(body, dict) else None
            raise PrometheusUnreadable(f"Prometheus at {self.url} refused {expr!r}: "
                                       f"{str(error)[:200]}")
        result = body.get("data", {}).get("result") if isinstance(body.get("data"), dict) else None
        if not isinstance(result, list) or not all(
                isinstance(r, dict) and isinstance(r.get("metric"), dict) for r in result):
            raise PrometheusUnreadable(f"{self.url} answered {expr!r} with no vector: is it Prometheus?")
        return result

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        if not result:
            return None
        try:
            value = float(result[0]["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            raise PrometheusUnreadable(f"{self.url} answered {expr!r} with a sample that is not a "
                                       "number: is it Prometheus?") from None
        return None if math.isnan(value) else value


def slo_status(loaded: LoadedConfig, url: str, compress: float = 1.0,
               client: httpx.Client | None = None) -> Status:
    """Read every SLO's budget, burn rates and firing alerts; raises PrometheusUnreadable."""
    own = client is None
    client = client or httpx.Client(timeout=10)
    try:
        prom = _Prometheus(url, client)
        status = Status()
        specs = slo_specs(loaded)
        for spec in specs:
            m = spec.matchers
            if not prom.query(f"{c.SLO_OBJECTIVE.name}{{{m}}}"):
                raise PrometheusUnreadable(
                    f"Prometheus at {url} has no {c.SLO_OBJECTIVE.name}{{{m}}}: load the rules "
                    "`crmpulse alerts` wrote for this config (rule_files in prometheus.yml)")
            pairs = []
            for pair in spec.pairs:
                rates = [prom.value(f"{c.SLO_ERROR_RATIO_RATE.at(prom_duration(w / compress))}{{{m}}} "
                                    f"/ {spec.budget_text}") for w in (pair.long, pair.short)]
                pairs.append(PairStatus(pair.label, pair.severity, float(pair.factor), *rates))
            budget = prom.value(f"{c.SLO_BUDGET_REMAINING.name}{{{m}}}")
            error = prom.value(f"{c.SLO_ERROR_RATIO_PERIOD.name}{{{m}}}")
            firing = sorted({str(r["metric"].get("alertname")) for r in prom.query(
                f'ALERTS{{alertstate="firing",{m}}}')})
            status.slos.append(SLOStatus(spec, budget, None if error is None else 1 - error, pairs, firing))
        target = loaded.config.target.name
        status.other_firing = sorted({str(r["metric"].get("alertname")) for r in prom.query(
            f'ALERTS{{alertstate="firing",target="{target}",slo=""}}')})
        return status
    finally:
        if own:
            client.close()

"""Journeys: per-step latency and failures, and where the time goes (HTTP phases)."""

from grafanalib.core import Dashboard

from crmpulse import contract as c
from crmpulse.config import Config
from crmpulse.dashboards.common import SEL, Layout, dashboard, timeseries

CHK = f'{SEL},check=~"$check"'


def build(config: Config) -> Dashboard:
    layout = Layout()
    layout.row("Steps")
    layout.add(timeseries("Step latency p95", "Per journey step, from the step duration histogram.",
                          (f"histogram_quantile(0.95, sum by (check, step, le) "
                           f"(rate({c.JOURNEY_STEP_DURATION.bucket()}{{{CHK}}}[$__rate_interval])))",
                           "{{check}} {{step}}"), unit="s"), 12, 9)
    layout.add(timeseries("Step failures by reason", "Failed steps per second.",
                          (f"sum by (check, step, reason) "
                           f"(rate({c.JOURNEY_STEP_FAILURES.series}{{{CHK}}}[$__rate_interval]))",
                           "{{check}} {{step}} {{reason}}"), unit="reqps", stacked=True), 12, 9)
    layout.add(timeseries("Token fetch time", "Time the journey spent fetching tokens (0 when cached).",
                          (f"{c.JOURNEY_AUTH_DURATION.series}{{{CHK}}}", "{{check}}"), unit="s"), 12, 7)
    layout.add(timeseries("Journey duration p50 / p95", "Whole journey, without token fetches.",
                          *[(f"histogram_quantile({q}, sum by (check, le) "
                             f"(rate({c.CHECK_DURATION.bucket()}{{{CHK}}}[$__rate_interval])))",
                             f"{{{{check}}}} p{int(q * 100)}") for q in (0.5, 0.95)], unit="s"), 12, 7)
    layout.row("Where the time goes")
    layout.add(timeseries("HTTP phases of the last run", "resolve, connect, tls, processing, transfer.",
                          (f"{c.CHECK_PHASE.series}{{{CHK}}}", "{{check}} {{phase}}"), unit="s",
                          stacked=True), 24, 9)

    return dashboard("crmpulse-journeys", layout,
                     "Multi-step journeys: which step is slow or failing, and in which phase.", ("check",))

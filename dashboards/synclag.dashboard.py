"""Sync lag: is CRM data reaching search and downstream systems, and is anything left behind."""

from grafanalib.core import Dashboard

from crmpulse import contract as c
from crmpulse.config import Config
from crmpulse.dashboards.common import SEL, Layout, dashboard, stat, timeseries

PAIR = f'{SEL},pair=~"$pair"'


def build(config: Config) -> Dashboard:
    layout = Layout()
    layout.row("Lag")
    layout.add(timeseries("Current lag", "Keeps growing during a stall (heartbeat pairs).",
                          (f"{c.SYNC_LAG.series}{{{PAIR}}}", "{{pair}}"), unit="s"), 24, 8)
    layout.add(timeseries("Lag distribution (p50, p95, p99)", "Write-to-visible lag of each record.",
                          *[(f"histogram_quantile({q}, sum by (pair, le) "
                             f"(rate({c.SYNC_LAG_OBSERVED.bucket()}{{{PAIR}}}[$__rate_interval])))",
                             f"{{{{pair}}}} p{int(q * 100)}") for q in (0.5, 0.95, 0.99)], unit="s"), 12, 8)
    layout.add(timeseries("Within the SLO threshold", "Share of records visible within each sync SLO's "
                          "threshold (1 h window).",
                          (f'1 - {c.SLO_ERROR_RATIO_RATE.at("1h")}{{{SEL},kind="sync_lag"}}', "{{slo}}"),
                          unit="percentunit"), 12, 8)
    layout.row("Canaries")


    def per_pair(metric: c.Metric, function: str, window: str) -> str:
        return f"sum by (pair) ({function}({metric.series}{{{PAIR}}}[{window}]))"


    layout.add(timeseries("Written, seen, lost", "Per second.",
                          (per_pair(c.SYNC_CREATED, "rate", "$__rate_interval"), "{{pair}} written"),
                          (per_pair(c.SYNC_SEEN, "rate", "$__rate_interval"), "{{pair}} seen"),
                          (per_pair(c.SYNC_LOST, "rate", "$__rate_interval"), "{{pair}} lost"),
                          unit="reqps"), 12, 8)
    layout.add(timeseries("In flight", "Written, not yet visible.",
                          (f"{c.SYNC_IN_FLIGHT.series}{{{PAIR}}}", "{{pair}}")), 12, 8)
    layout.row("Nothing left behind")
    for title, description, metric in (
            ("Deleted after their run", "In the selected time range.", c.SYNC_DELETED),
            ("Orphans found", "Marked records the sweeper found.", c.SYNC_ORPHANS_FOUND),
            ("Orphans deleted", "Marked records the sweeper deleted.", c.SYNC_ORPHANS_DELETED)):
        layout.add(stat(title, description, (per_pair(metric, "increase", "$__range"), "{{pair}}")), 6, 5)
    layout.add(stat("Delete failures", "Deletes that failed (retried, then swept).",
                    (per_pair(c.SYNC_DELETE_FAILURES, "increase", "$__range"), "{{pair}}"),
                    thresholds=[{"value": None, "color": "green"}, {"value": 1, "color": "orange"}]), 6, 5)

    return dashboard("crmpulse-synclag", layout,
                     "Sync lag between the CRM and where its data must show up.", ("pair",))

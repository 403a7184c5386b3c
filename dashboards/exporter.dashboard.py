"""The exporter's own health: scrape time, overruns, reloads.

Exporter-level series come from every shard (one per instance): stats aggregate them
per target, so a sharded exporter reads as one (docs/probes.md, sharding).
"""

from grafanalib.core import Dashboard

from crmpulse import contract as c
from crmpulse.config import Config
from crmpulse.dashboards.common import SEL, Layout, dashboard, stat, table, timeseries


def build(config: Config) -> Dashboard:
    layout = Layout()
    layout.add(timeseries("Scrape duration p50 / p99", "Time to render /metrics.",
                          *[(f"histogram_quantile({q}, sum by (le) "
                             f"(rate({c.SCRAPE_DURATION.bucket()}[$__rate_interval])))", f"p{int(q * 100)}")
                            for q in (0.5, 0.99)], unit="s"), 12, 8)
    layout.add(timeseries("Check overruns", "Runs skipped because the previous outlasted the interval.",
                          (f"sum by (check) (rate({c.CHECK_OVERRUNS.series}{{{SEL}}}[$__rate_interval]))",
                           "{{check}}"), unit="reqps"), 12, 8)
    layout.add(stat(c.PANEL_CHECKS_RUNNING.title,
                    "Checks and sync pairs in the config, and running on all shards together: "
                    "fewer running than configured means a shard, a schedule or a pair loop is "
                    "down (CrmChecksNotRunning).",
                    (f"max by (target) ({c.CHECKS_CONFIGURED.series}{{{SEL}}})", "checks configured"),
                    (f"sum by (target) ({c.CHECKS_RUNNING.series}{{{SEL}}})", "checks running"),
                    (f"max by (target) ({c.SYNC_PAIRS_CONFIGURED.series}{{{SEL}}})", "pairs configured"),
                    (f"sum by (target) ({c.SYNC_PAIRS_RUNNING.series}{{{SEL}}})", "pairs running")), 6, 5,
               anchor=c.PANEL_CHECKS_RUNNING)
    layout.add(stat("Last reload successful", "The worst of all shards.",
                    (f"min({c.CONFIG_RELOAD_OK.series})", "reload"),
                    thresholds=[{"value": None, "color": "red"}, {"value": 1, "color": "green"}]), 6, 5)
    layout.add(timeseries("Reloads", "By result, all shards.",
                          (f"sum by (result) (increase({c.CONFIG_RELOADS.series}[$__rate_interval]))",
                           "{{result}}")), 12, 5)
    layout.add(table("Build", "", (f"{c.BUILD_INFO.series}", "")), 24, 4)

    return dashboard("crmpulse-exporter", layout, "The probe exporter's own health.")

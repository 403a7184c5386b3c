"""CRM overview: is the CRM up, how much error budget is left, what is slow, is data in sync."""

from typing import Any

from grafanalib.core import Annotations, Dashboard

from crmpulse import contract as c
from crmpulse.config import Config
from crmpulse.dashboards.common import SEL, Layout, dashboard, stat, table, timeline, timeseries

CHK = f'{SEL},check=~"$check"'
BUDGET: list[dict[str, Any]] = [{"value": None, "color": "red"}, {"value": 25, "color": "orange"},
                                 {"value": 50, "color": "green"}]


def build(config: Config) -> Dashboard:
    layout = Layout()
    layout.row("SLOs")
    layout.add(stat("SLO objective", "The target share of good events, per SLO.",
                    (f'{c.SLO_OBJECTIVE.series}{{{SEL},slo=~"$slo"}} * 100', "{{slo}}"),
                    unit="percent", decimals=2), 6, 5)
    layout.add(stat("SLI over the SLO window", "Good events over the whole SLO window (a ratio of sums).",
                    (f'(1 - {c.SLO_ERROR_RATIO_PERIOD.series}{{{SEL},slo=~"$slo"}}) * 100', "{{slo}}"),
                    unit="percent", decimals=3), 6, 5)
    layout.add(stat("Error budget remaining", "Share of the window's error budget not yet spent.",
                    (f'{c.SLO_BUDGET_REMAINING.series}{{{SEL},slo=~"$slo"}} * 100', "{{slo}}"),
                    unit="percent", decimals=1, thresholds=BUDGET), 6, 5)
    layout.add(table("Firing alerts", "Alerts firing now for this target (each links its runbook).",
                     (f'ALERTS{{alertstate="firing",{SEL}}} or on() label_replace(vector(0), '
                      '"alertname", "none firing", "", "")', "")), 6, 5)
    layout.add(timeseries("Burn rate (1 h window)", "How fast the error budget burns: 1 = exactly on "
                          "budget; the page threshold is 14.4.",
                          (f'{c.SLO_ERROR_RATIO_RATE.at("1h")}{{{SEL},slo=~"$slo"}} / on(slo, target) '
                           f'(1 - {c.SLO_OBJECTIVE.series}{{{SEL},slo=~"$slo"}})', "{{slo}}"),
                          thresholds=[{"value": None, "color": "green"}, {"value": 6, "color": "orange"},
                                      {"value": 14.4, "color": "red"}]), 24, 7,
               anchor=c.PANEL_BURN_RATE)
    layout.row("Checks")
    layout.add(timeline("Check status", "1 = the last run succeeded.",
                        (f"{c.CHECK_SUCCESS.series}{{{CHK}}}", "{{check}}")), 24, 6,
               anchor=c.PANEL_CHECK_STATUS)
    layout.add(timeseries("Availability per check", "Share of runs that succeeded.",
                          (f"1 - sum by (check) (rate({c.CHECK_FAILURES.series}{{{CHK}}}[$__rate_interval])) "
                           f"/ sum by (check) (rate({c.CHECK_RUNS.series}{{{CHK}}}[$__rate_interval]))",
                           "{{check}}"), unit="percentunit"), 12, 8)
    layout.add(timeseries("Failures by reason", "Failed runs per second, by check and bounded reason.",
                          (f"sum by (check, reason) "
                           f"(rate({c.CHECK_FAILURES.series}{{{CHK}}}[$__rate_interval]))",
                           "{{check}} {{reason}}"), unit="reqps", stacked=True), 12, 8,
               anchor=c.PANEL_FAILURES)
    layout.add(timeseries("Latency per check (p50, p95, p99)", "From the check duration histogram.",
                          *[(f"histogram_quantile({q}, sum by (check, le) "
                             f"(rate({c.CHECK_DURATION.bucket()}{{{CHK}}}[$__rate_interval])))",
                             f"{{{{check}}}} p{int(q * 100)}") for q in (0.5, 0.95, 0.99)], unit="s"), 24, 8,
               anchor=c.PANEL_LATENCY)
    layout.row("Sync, protections, certificates")
    layout.add(timeseries("Sync lag per pair", "Heartbeat: now minus the newest visible stamp; "
                          "canary/webhook: the last measured lag or the oldest unseen record's age.",
                          (f"{c.SYNC_LAG.series}{{{SEL}}}", "{{pair}}"), unit="s"), 12, 8,
               anchor=c.PANEL_SYNC_LAG)
    layout.add(timeline("Protections", "1 = the protection holds (auth enforced, no exposed fields, ...).",
                        (f"{c.PROTECTION_HOLDS.series}{{{SEL}}}", "{{check}} {{protection}}")), 12, 8,
               anchor=c.PANEL_PROTECTIONS)
    layout.add(stat("Certificate expires in", "Days until the served certificate expires.",
                    (f"({c.TLS_EXPIRY.series}{{{SEL}}} - time()) / 86400", "{{check}}"), unit="d",
                    decimals=1, thresholds=[{"value": None, "color": "red"}, {"value": 3, "color": "orange"},
                                            {"value": 14, "color": "green"}]), 12, 5,
               anchor=c.PANEL_CERT_EXPIRY)
    layout.add(stat("Certificate chain valid", "1 = the chain verifies against the trust store.",
                    (f"{c.TLS_CHAIN_VALID.series}{{{SEL}}}", "{{check}}"),
                    thresholds=[{"value": None, "color": "red"}, {"value": 1, "color": "green"}]), 12, 5,
               anchor=c.PANEL_CERT_CHAIN)
    layout.row("Access and privacy")
    layout.add(timeline("Access protections", "1 = the protection holds on this path: isolation "
                        "(another tenant cannot read the check's record), role scope, exposure, "
                        "revocation, login lockout; 0 = the last run that could judge it found it "
                        "broken.",
                        (f"{c.ACCESS_HOLDS.series}{{{SEL}}}", "{{check}} {{kind}} {{path}}")), 24, 8,
               anchor=c.PANEL_ACCESS)
    layout.add(timeseries("Exposed personal data", "Values per read and detector beyond what the "
                          "config allows, in the last exposure run (counts: values are never "
                          "exported).",
                          (f"sum by (check, path, detector) ({c.ACCESS_EXPOSED.series}{{{SEL}}})",
                           "{{check}} {{path}} {{detector}}"),
                          thresholds=[{"value": None, "color": "green"}, {"value": 1, "color": "red"}]),
               12, 7, anchor=c.PANEL_EXPOSURE)
    layout.add(stat("Revocation: seconds until refused", "From revoking a fresh token to its first "
                    "refusal, in the last revocation run.",
                    (f"{c.ACCESS_REVOCATION.series}{{{SEL}}}", "{{check}}"), unit="s", decimals=2),
               6, 7)
    layout.add(stat("Wrong passwords before lockout", "Wrong passwords the last bruteforce run sent "
                    "before the canary was throttled or locked (0: still locked from an earlier run).",
                    (f"{c.ACCESS_LOGIN_ATTEMPTS.series}{{{SEL}}}", "{{check}}")), 6, 7)

    LOAD_TESTS = Annotations(list=[{
        "datasource": {"type": "prometheus", "uid": "${datasource}"}, "enable": True,
        "name": "Load tests", "iconColor": "purple", "titleFormat": "load test {{run}}",
        "expr": f"({c.LOADTEST_RUNNING.series}{{{SEL}}} == 1) * on(target) "
                f"group_left(run) {c.LOADTEST_INFO.series}{{{SEL}}}",
        "step": "30s", "useValueForTime": False}])

    return dashboard("crmpulse-overview", layout,
                     "Is the CRM up, how much error budget is left, which operation is slow, is data "
                     "in sync, is a load test running.", ("slo", "check"),
                     runbooks=config.alerting.runbook_base_url, annotations=LOAD_TESTS)

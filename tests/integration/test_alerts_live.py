"""The generated rules in a real Prometheus scraping a real exporter probing the sandbox CRM.

A sync stall fires CrmSyncStalled although the canaries' SLA is shorter than the stall
threshold; an outage burns the budget, `crmpulse slo status` shows it (exit 1 once the
budget is spent) and the page's text carries the burn rates, the budget left and a deep
link, the same in its Grafana twin's templates.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from crmpulse import load_config
from crmpulse.alerts.generate import generate
from crmpulse.alerts.grafana import provisioning
from crmpulse.alerts.rules import build_rules
from tests.helpers import ExporterProcess, PrometheusProcess, SandboxProcess, sample, write_config

ENV = {"CRMPULSE_CLIENT_SECRET": "sandbox-secret"}


def stack(tmp_path: Path, config: Path, compress: float) -> tuple[ExporterProcess, PrometheusProcess]:
    """The exporter and a Prometheus (1 s scrapes and evaluations) with the generated rules."""
    generate(load_config(config), tmp_path / "rules", compress=compress, evaluation_interval=1.0)
    exporter = ExporterProcess(config, env=ENV)
    (tmp_path / "prom").mkdir()
    rules = [str(p) for p in sorted((tmp_path / "rules").glob("*.rules.yml"))]
    return exporter, PrometheusProcess(tmp_path / "prom", {"crmpulse": [f"127.0.0.1:{exporter.port}"]},
                                       rule_files=rules)


STALL = """
target:
  name: sandbox
  base_url: {url}
  auth: {{type: oauth2_client_credentials, client_id: crmpulse, client_secret: "${{env:CRMPULSE_CLIENT_SECRET}}"}}
slos:
  - {{name: search_sync, kind: sync_lag, objective: 99, threshold: 5s}}
probes:
  sync:
    - name: search
      mode: canary
      interval: 1s
      sla: 2s
      create: {{operation: create_contact, with: {{first_name: C, last_name: D, email: "{{{{ marker }}}}-{{{{ canary }}}}@crmpulse.example", tags: ["{{{{ marker }}}}"]}}}}
      read: {{operation: search_contacts, with: {{email: "{{{{ email }}}}"}}, found: "$.data[0].id"}}
      sweep: {{operation: list_contacts, with: {{tag: "{{{{ marker }}}}"}}}}
alerting:
  stall_for: 3s
"""


@pytest.mark.usefixtures("sandbox_secret")
def test_a_stall_longer_than_the_threshold_fires_even_when_the_sla_is_shorter(
        crm: SandboxProcess, tmp_path: Path) -> None:
    config = write_config(tmp_path, STALL.format(url=crm.url))
    exporter, prometheus = stack(tmp_path, config, compress=1)
    try:
        exporter.wait_for("crmpulse_sync_canaries_seen_total", 2, timeout=20, target="sandbox",
                          pair="search")
        prometheus.wait_for('crmpulse_sync_lag_seconds{pair="search"} < 2')
        crm.faults(sync_stall=True)
        stalled = time.monotonic()
        # the SLA is 2 s: canaries are lost and replaced, yet the lag keeps counting from the
        # oldest one still unseen, past the SLA and past the 5 s threshold
        exporter.wait_until("crmpulse_sync_lag_seconds", lambda v: v > 9, timeout=30,
                            target="sandbox", pair="search")
        assert (sample(exporter.metrics(), "crmpulse_sync_canaries_lost_total", target="sandbox",
                       pair="search") or 0) >= 2
        waited = prometheus.wait_for('ALERTS{alertname="CrmSyncStalled",alertstate="firing",'
                                     'pair="search"}', timeout=60)
        print(f"CrmSyncStalled fired {time.monotonic() - stalled:.1f}s after the stall began "
              f"(threshold 5s, for 3s, SLA 2s; {waited:.1f}s after the lag passed 9s)")
        crm.faults(sync_stall=False)
        exporter.wait_until("crmpulse_sync_lag_seconds", lambda v: v < 3, timeout=30,
                            target="sandbox", pair="search")
    finally:
        crm.reset()
        prometheus.stop()
        exporter.stop()


OUTAGE = """
target:
  name: sandbox
  base_url: {url}
  auth: {{type: oauth2_client_credentials, client_id: crmpulse, client_secret: "${{env:CRMPULSE_CLIENT_SECRET}}"}}
slos:
  - {{name: availability, kind: availability, objective: 99.9}}
probes:
  checks:
    - {{name: api_read, kind: http, operation: list_accounts, interval: 1s, timeout: 800ms}}
alerting:
  dashboard_url: https://grafana.example.com
  absent_for: 10s
"""


def slo_status(config: Path, prometheus: PrometheusProcess) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crmpulse", "slo", "status", "--config", str(config),
                           "--prometheus", prometheus.url, "--compress", "60"],
                          capture_output=True, text=True, timeout=60, env={**__import__("os").environ, **ENV})


def firing_alert(prometheus: PrometheusProcess, name: str) -> dict[str, Any]:
    alerts = httpx.get(prometheus.url + "/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    return next(a for a in alerts if a["labels"]["alertname"] == name and a["state"] == "firing")


def grafana_render(template: str, labels: dict[str, str], values: dict[str, float]) -> str:
    """Grafana's rendering of the template forms crmpulse writes ($labels and $values only)."""
    def value(match: re.Match[str]) -> str:
        name, fmt = match.group(1), match.group(2).strip()
        number = values[name]
        if fmt.startswith("printf"):
            return str(re.search(r'"(.*)"', fmt).group(1) % number)  # type: ignore[union-attr]
        raise AssertionError(f"unexpected format {fmt}")
    text = re.sub(r"\{\{ with \$values\.(\w+) \}\}\{\{ \.Value \| ([^}]+) \}\}\{\{ end \}\}", value, template)
    return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], text)


@pytest.mark.usefixtures("sandbox_secret")
def test_an_outage_burns_the_budget_slo_status_shows_it_and_the_page_says_so(
        crm: SandboxProcess, tmp_path: Path) -> None:
    config = write_config(tmp_path, OUTAGE.format(url=crm.url))
    exporter, prometheus = stack(tmp_path, config, compress=60)
    try:
        prometheus.wait_for('crmpulse_slo:error_budget_remaining:ratio{slo="availability"} > 0.99',
                            timeout=60)
        healthy = slo_status(config, prometheus)
        assert healthy.returncode == 0, healthy.stdout + healthy.stderr
        assert "SLO availability (availability of sandbox): objective 99.9 %" in healthy.stdout
        assert re.search(r"error budget left: 100\.00%", healthy.stdout), healthy.stdout
        assert "1h/5m        page" in healthy.stdout and "firing: none" in healthy.stdout

        crm.faults(outage=True)
        began = time.monotonic()
        prometheus.wait_for('ALERTS{alertname="CrmAvailabilityBurnRateFast",alertstate="firing"}',
                            timeout=60)
        paged = time.monotonic() - began
        # a full window (1 h, 60 s compressed) of outage: the 1 h burn rate is 1 / 0.001
        prometheus.wait_for('crmpulse_slo:sli_error:ratio_rate1m{slo="availability"} == 1', timeout=120)
        deadline = time.monotonic() + 30  # the alert's text is rendered at its next evaluation
        while "1000.0x over 1h" not in firing_alert(prometheus, "CrmAvailabilityBurnRateFast")[
                "annotations"]["summary"]:
            assert time.monotonic() < deadline, firing_alert(prometheus, "CrmAvailabilityBurnRateFast")
            time.sleep(0.2)
        burning = slo_status(config, prometheus)
        assert burning.returncode == 1, burning.stdout + burning.stderr
        assert "EXHAUSTED" in burning.stdout and "Error budget exhausted: availability" in burning.stderr
        assert re.search(r"1h/5m\s+page\s+1000\.00x / 1000\.00x\s+14\.4x\s+BURNING", burning.stdout), \
            burning.stdout
        assert "firing: CrmAvailabilityBurnRateFast" in burning.stdout

        alert = firing_alert(prometheus, "CrmAvailabilityBurnRateFast")
        summary = alert["annotations"]["summary"]
        match = re.fullmatch(r"CRM availability SLO availability burning its error budget: "
                             r"1000\.0x over 1h, ([\d.]+)x over 6h; (-?[\d.]+)% of the 30d budget left",
                             summary)
        assert match, summary
        budget = float(prometheus.query('crmpulse_slo:error_budget_remaining:ratio')[0]["value"][1])
        assert float(match.group(2)) == pytest.approx(budget * 100, rel=0.2)
        assert float(match.group(2)) < 0  # the 12 h (compressed 30 d) budget is spent
        link = re.fullmatch(r"https://grafana\.example\.com/d/crmpulse-overview\?orgId=1&viewPanel=101"
                            r"&var-target=sandbox&var-slo=availability&from=(\d+)&to=(\d+)",
                            alert["annotations"]["dashboard_url"])
        assert link, alert["annotations"]["dashboard_url"]
        start, end = int(link.group(1)), int(link.group(2))
        assert end - start == 6 * 60 * 1000  # the page's longest window, 6 h compressed 60x
        assert abs(end / 1000 - time.time()) < 30
        assert alert["annotations"]["runbook_url"].endswith("/CrmAvailabilityBurnRateFast.md")

        # the Grafana twin says the same, from its own instant queries on this Prometheus
        loaded = load_config(config)
        rules = build_rules(loaded, compress=60, interval=1.0)
        twin = next(r for g in provisioning(rules)["groups"] for r in g["rules"]
                    if r["title"] == "CrmAvailabilityBurnRateFast")
        values = {d["refId"]: float(prometheus.query(d["model"]["expr"])[0]["value"][1])
                  for d in twin["data"] if d["datasourceUid"] == "crmpulse-prometheus"}
        labels = alert["labels"]
        rendered = grafana_render(twin["annotations"]["summary"], labels, values)
        assert re.sub(r"-?[\d.]+", "N", rendered) == re.sub(r"-?[\d.]+", "N", summary)
        assert "1000.0x over 1h" in rendered
        assert grafana_render(twin["annotations"]["description"], labels, values) == \
            alert["annotations"]["description"]
        print(f"paged {paged:.1f}s into the outage (windows compressed 60x)")
    finally:
        crm.reset()
        prometheus.stop()
        exporter.stop()


def test_slo_status_says_what_is_wrong_when_prometheus_cannot_answer(tmp_path: Path) -> None:
    config = write_config(tmp_path, OUTAGE.format(url="http://127.0.0.1:9"))
    run = subprocess.run([sys.executable, "-m", "crmpulse", "slo", "status", "--config", str(config),
                          "--prometheus", "http://127.0.0.1:9"], capture_output=True, text=True,
                         timeout=60, env={**__import__("os").environ, **ENV})
    assert run.returncode == 2
    assert run.stderr.startswith("crmpulse: cannot reach Prometheus at http://127.0.0.1:9: ConnectError")
    assert "Traceback" not in run.stderr


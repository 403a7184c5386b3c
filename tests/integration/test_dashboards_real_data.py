"""Every dashboard panel's query, run through a real Prometheus scraping real crmpulse processes.

The sandbox CRM, the probe exporter (checks of every kind and sync pairs) and a short
load test run on loopback; a real Prometheus scrapes them with the generated rules
loaded; then each panel's PromQL, with its template variables substituted, goes
through Prometheus's HTTP API and must neither error nor come back empty.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from crmpulse.app.cli import main
from crmpulse.dashboards.generate import build_all
from tests.badservers import BadServers
from tests.helpers import ExporterProcess, PrometheusProcess, SandboxProcess, reserve_port, write_config

SECRETS = {"CRMPULSE_CLIENT_SECRET": "sandbox-secret", "TENANT2_SECRET": "tenant2-secret",
           "CANARY_PASSWORD": "canary-password"}  # the sandbox's public test values
SUBSTITUTE = {"$target": "sandbox", "$check": ".*", "$pair": ".*", "$slo": ".*", "$operation": ".*",
              "$__rate_interval": "10s", "$__range": "5m", "$__interval": "2s"}


def config(url: str, tls_port: int, metrics_port: int) -> str:
    return f"""
target:
  name: sandbox
  base_url: {url}
  auth: {{type: oauth2_client_credentials, client_id: crmpulse, client_secret: "${{env:CRMPULSE_CLIENT_SECRET}}"}}
  safety: {{allow_loadtest: true, max_users: 20, max_rps: 200}}
  credentials:
    tenant2: {{type: oauth2_client_credentials, client_id: crmpulse-tenant2, client_secret: "${{env:TENANT2_SECRET}}"}}
    canary: {{type: oauth2_password, client_id: crmpulse, username: canary@sandbox.example, password: "${{env:CANARY_PASSWORD}}"}}
slos:
  - {{name: availability, kind: availability, objective: 99.9}}
  - {{name: latency, kind: latency, objective: 99, threshold: 800ms}}
  - {{name: search_sync, kind: sync_lag, objective: 99, threshold: 30s}}
probes:
  checks:
    - {{name: api_read, kind: http, operation: list_accounts, interval: 1s, timeout: 800ms}}
    - name: journey
      kind: journey
      interval: 1s
      timeout: 900ms
      steps:
        - operation: authenticate
        - {{operation: search_contacts, with: {{q: smith}}, save: {{contact_id: first_id}}}}
        - {{operation: get_contact, with: {{id: "{{{{ contact_id }}}}"}}}}
    - {{name: protections, kind: protection, interval: 1s, timeout: 800ms, forbidden_patterns: ['"tax_id"']}}
    - {{name: certificate, kind: tls, interval: 2s, timeout: 1s, host: 127.0.0.1, port: {tls_port}}}
    - name: isolation
      kind: isolation
      interval: 2s
      timeout: 1500ms
      observer: tenant2
      reads: {{get: {{operation: get_contact, with: {{id: "{{{{ id }}}}"}}}}}}
    - name: exposure
      kind: exposure
      interval: 2s
      timeout: 1500ms
      reads: [{{operation: get_contact, with: {{id: "{{{{ id }}}}"}}}}]
      allow: [{{detector: email, path: $.email}}]
    - name: revocation
      kind: revocation
      interval: 2s
      timeout: 1500ms
      credential: tenant2
      revoke: {{operation: revoke_token, with: {{token: "{{{{ token }}}}"}}}}
      read: {{operation: whoami}}
      within: 1s
    - {{name: lockout, kind: bruteforce, interval: 2s, timeout: 1500ms, credential: canary, account: canary@sandbox.example}}
  sync:
    - name: search
      mode: canary
      interval: 1s
      sla: 10s
      create: {{operation: create_contact, with: {{first_name: C, last_name: D, email: "{{{{ marker }}}}-{{{{ canary }}}}@crmpulse.example", tags: ["{{{{ marker }}}}"]}}}}
      read: {{operation: search_contacts, with: {{email: "{{{{ email }}}}"}}, found: "$.data[0].id"}}
      sweep: {{operation: list_contacts, with: {{tag: "{{{{ marker }}}}"}}}}
loadtest:
  think_time: 200ms
  metrics_listen: 127.0.0.1:{metrics_port}
  shape: {{kind: soak, users: 3, duration: 15s}}
  gates:  # the panels need gate series, not a verdict: thresholds a starved CI machine still meets
    global: {{p95: 10s}}
    operations: {{search_contacts: {{p95: 5s}}}}
"""


def test_every_panel_query_returns_data_from_a_real_prometheus(crm: SandboxProcess, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    bad = BadServers()
    tls_port = int(bad.urls["self_signed"].rsplit(":", 1)[1])
    metrics_port = reserve_port()
    path = write_config(tmp_path, config(crm.url, tls_port, metrics_port))
    assert main(["alerts", "--config", str(path), "--out", str(tmp_path / "alerts")]) == 0
    for rules in (tmp_path / "alerts").glob("*.rules.yml"):  # evaluate every 2 s in this test
        rules.write_text(rules.read_text().replace("interval: 1m", "interval: 2s"))
    exporter = ExporterProcess(path, env=SECRETS)
    (tmp_path / "prom").mkdir()
    prometheus = PrometheusProcess(
        tmp_path / "prom", {"crmpulse": [f"127.0.0.1:{exporter.port}"],
                            "loadtest": [f"127.0.0.1:{metrics_port}"]},
        rule_files=[str(p) for p in sorted((tmp_path / "alerts").glob("*.rules.yml"))])
    start = time.time()
    try:
        env = {k: v for k, v in os.environ.items() if k != "LOCUST_SKIP_MONKEY_PATCH"}
        run = subprocess.run([sys.executable, "-m", "crmpulse", "loadtest", "-c", str(path),
                              "--report-dir", str(tmp_path / "report")], capture_output=True,
                             text=True, timeout=180, env=env)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        prometheus.wait_for("crmpulse_slo:sli_error:ratio_period", timeout=30)
        time.sleep(3)
        failures = []
        checked = 0
        for area, dashboard in build_all().items():
            queries = [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])]
            queries += [(f"annotation {a['name']}", a["expr"])
                        for a in dashboard.get("annotations", {}).get("list", []) if a.get("expr")]
            for title, expr in queries:
                for variable, value in SUBSTITUTE.items():
                    expr = expr.replace(variable, value)
                response = httpx.get(prometheus.url + "/api/v1/query_range", params={
                    "query": expr, "start": start, "end": time.time(), "step": "2s"}, timeout=30)
                body = response.json()
                checked += 1
                if body.get("status") != "success":
                    failures.append(f"{area} / {title}: error {body.get('error')}: {expr}")
                elif not body["data"]["result"]:
                    failures.append(f"{area} / {title}: no series: {expr}")
        assert checked > 40
        assert not failures, "\n".join(failures)
    finally:
        prometheus.stop()
        exporter.stop()
        bad.close()

"""Secrets never show: resolve known secrets from every source, run every output, grep it all.

Sources: an environment variable as a URL's user-info (``http://user:${env:X}@host``),
a file as a header value, an environment variable as an OAuth2 client secret, and a
token obtained at run time (from a token endpoint that hands out a value appearing
nowhere in the config). Outputs: check-config, call, smoke, the exporter's start-up
line, its log at debug level, landing page, /metrics and /probe?debug=true, and a load
test's report.json, report.html, summary.md and Locust's own locust.html and CSVs.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.badservers import Recorder
from tests.helpers import ExporterProcess, SandboxProcess, write_config

URL_PASSWORD = "sandbox-password"       # the sandbox user's password, given as URL user-info
API_KEY = "sandbox-api-key"             # from a file, sent as a header
CLIENT_SECRET = "sandbox-secret"        # the downstream system's OAuth2 client secret
RUNTIME_TOKEN = "sandbox-pat"           # only ever known from the token endpoint's answer
SECRETS = {
    "url user-info password": URL_PASSWORD,
    "file header": API_KEY,
    "client secret": CLIENT_SECRET,
    "runtime token": RUNTIME_TOKEN,
    "basic header": base64.b64encode(f"rep@sandbox.example:{URL_PASSWORD}".encode()).decode(),
    "client basic header": base64.b64encode(f"crmpulse:{CLIENT_SECRET}".encode()).decode(),
}
ENV = {**{k: v for k, v in os.environ.items() if k != "LOCUST_SKIP_MONKEY_PATCH"},
       "T_URL_PASSWORD": URL_PASSWORD, "T_CLIENT_SECRET": CLIENT_SECRET, "CRMPULSE_PROGRESS": "1"}


def config(crm: SandboxProcess, token_server: Recorder) -> str:
    host = crm.url.removeprefix("http://")
    return f"""
target:
  name: sandbox
  base_url: http://rep%40sandbox.example:${{env:T_URL_PASSWORD}}@{host}
  headers: {{X-API-Key: "${{file:api-key.txt}}"}}
  safety: {{allow_loadtest: true, max_users: 5, max_rps: 50}}
systems:
  - name: mirror
    base_url: {crm.url}
    profile: sandbox
    auth: {{type: oauth2_client_credentials, client_id: crmpulse, client_secret: "${{env:T_CLIENT_SECRET}}",
           token_url: "{token_server.url}/token"}}
probes:
  checks:
    - {{name: api_read, kind: http, operation: list_accounts, interval: 1s, timeout: 900ms}}
    - name: journey
      kind: journey
      interval: 1s
      timeout: 900ms
      steps:
        - operation: authenticate
        - {{operation: search_contacts, with: {{q: smith}}, save: {{contact_id: first_id}}}}
        - {{operation: get_contact, with: {{id: "{{{{ contact_id }}}}"}}}}
  sync:
    - name: mirrored
      mode: canary
      interval: 1s
      sla: 10s
      create:
        operation: create_contact
        with: {{first_name: Crmpulse, last_name: Canary, email: "{{{{ marker }}}}-{{{{ canary }}}}@crmpulse.example",
               tags: ["{{{{ marker }}}}"]}}
      read: {{system: mirror, operation: search_contacts, with: {{email: "{{{{ email }}}}"}}, found: "$.data[0].id"}}
      sweep: {{operation: list_contacts, with: {{tag: "{{{{ marker }}}}"}}}}
loadtest:
  think_time: 200ms
  metrics_listen: "off"
  shape: {{kind: ramp, users: 2, duration: 6s}}
"""


def crmpulse(*args: str) -> str:
    run = subprocess.run([sys.executable, "-m", "crmpulse", *args], capture_output=True, text=True,
                         timeout=180, env=ENV)
    return f"$ crmpulse {' '.join(args)} (exit {run.returncode})\n{run.stdout}{run.stderr}"


def test_no_output_shows_a_secret_from_any_source(crm: SandboxProcess, tmp_path: Path) -> None:
    token_server = Recorder(body=json.dumps({"access_token": RUNTIME_TOKEN, "expires_in": 3600}).encode())
    (tmp_path / "api-key.txt").write_text(API_KEY + "\n")
    path = write_config(tmp_path, config(crm, token_server))
    outputs: dict[str, str] = {}
    try:
        outputs["check-config"] = crmpulse("check-config", str(path))
        outputs["call"] = crmpulse("call", "-c", str(path), "whoami") + crmpulse(
            "call", "-c", str(path), "list_accounts")
        outputs["smoke"] = crmpulse("smoke", "-c", str(path))
        outputs["probe --check-config"] = crmpulse("probe", "-c", str(path), "--check-config")
        exporter = ExporterProcess(path, "--log-level", "debug", env=ENV)
        try:
            exporter.wait_until("crmpulse_sync_canaries_seen_total", lambda v: v >= 1, timeout=30,
                                target="sandbox", pair="mirrored")
            exporter.wait_for("crmpulse_check_success", 1, target="sandbox", check="journey")
            outputs["landing page"] = httpx.get(exporter.url + "/").text
            outputs["/metrics"] = httpx.get(exporter.url + "/metrics").text
            for module in ("api_read", "journey"):
                for target in ("sandbox", crm.url):
                    outputs[f"/probe {module} {target}"] = httpx.get(exporter.url + "/probe", params={
                        "module": module, "target": target, "debug": "true"}).text
        finally:
            outputs["exporter log"] = exporter.stop()
        report = tmp_path / "report"
        outputs["loadtest"] = crmpulse("loadtest", "-c", str(path), "--report-dir", str(report))
        for file in sorted(report.iterdir()):
            outputs[f"report file {file.name}"] = file.read_text(encoding="utf-8", errors="replace")
    finally:
        token_server.close()

    # every output exists and says something: a blank output would pass any grep
    assert "valid (target sandbox at http://127.0.0.1" in outputs["check-config"]
    assert "whoami: ok status 200" in outputs["call"]
    assert "steps succeeded" in outputs["smoke"]
    assert "crmpulse probe: 2 checks against http://127.0.0.1" in outputs["exporter log"]
    assert "level=INFO msg=started target=sandbox" in outputs["exporter log"]
    assert "Logs for the probe" in outputs["/probe journey sandbox"]
    assert "crmpulse_sync_canaries_seen_total" in outputs["/metrics"]
    assert {"report file report.json", "report file report.html", "report file summary.md",
            "report file locust.html", "report file locust_stats.csv",
            "report file locust_failures.csv"} <= set(outputs)
    assert ("POST", "/token") in [(m, p) for m, p, _, _ in token_server.seen]  # runtime token fetched

    leaks = [f"{source} in {where}" for where, text in outputs.items()
             for source, secret in SECRETS.items() if secret in text]
    assert leaks == []


def test_a_token_endpoint_that_echoes_the_client_secret_never_gets_it_shown(
        tmp_path: Path, crm: SandboxProcess) -> None:
    echo = Recorder(status=400, body=json.dumps({"error": CLIENT_SECRET}).encode())
    path = write_config(tmp_path, f"""
        target:
          name: echo
          base_url: {crm.url}
          auth: {{type: oauth2_client_credentials, client_id: crmpulse,
                 client_secret: "${{env:T_CLIENT_SECRET}}", token_url: "{echo.url}/token"}}
        probes:
          checks:
            - {{name: api_read, kind: http, operation: list_accounts, interval: 1s, timeout: 900ms}}
        """)
    try:
        call = crmpulse("call", "-c", str(path), "whoami")
        exporter = ExporterProcess(path, "--log-level", "debug", env=ENV)
        try:
            exporter.wait_for("crmpulse_check_failures_total", 1, target="echo", check="api_read",
                              reason="auth")
            deadline = time.monotonic() + 10
            while "FAILED" not in (page := httpx.get(exporter.url + "/").text):
                assert time.monotonic() < deadline
                time.sleep(0.1)
            debug = httpx.get(exporter.url + "/probe", params={"module": "api_read", "target": "echo",
                                                               "debug": "true"}).text
        finally:
            log = exporter.stop()
    finally:
        echo.close()
    assert "whoami: FAILED" in call and "token endpoint answered 400 (****)" in call
    assert "token endpoint answered 400 (****)" in page
    assert "token endpoint answered 400 (****)" in debug
    assert "token endpoint answered 400 (****)" in log
    for text in (call, page, debug, log):
        assert CLIENT_SECRET not in text

"""The exporter as Prometheus sees it: a real `crmpulse probe` process and a real Prometheus."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import httpx
import pytest

from tests.badservers import BadServers, make_certificate
from tests.helpers import (
    ExporterProcess,
    PrometheusProcess,
    SandboxProcess,
    parse_metrics,
    sample,
    write_config,
)

INTERVAL = 1.0  # seconds between runs of each check in these tests

CONFIG = """
target:
  name: sandbox
  base_url: {url}
  auth: {{type: oauth2_client_credentials, client_id: crmpulse,
         client_secret: "${{env:CRMPULSE_CLIENT_SECRET}}"}}
slos:
  - {{name: latency, kind: latency, objective: 99, threshold: 800ms}}
probes:
  checks:
    - name: api_read
      kind: http
      operation: list_accounts
      interval: 1s
      timeout: 800ms
      jitter: 0
    - name: journey
      kind: journey
      interval: 1s
      timeout: 800ms
      jitter: 0
      steps:
        - operation: authenticate
        - {{operation: search_contacts, with: {{q: smith}}, save: {{contact_id: first_id}}}}
        - {{operation: get_contact, with: {{id: "{{{{ contact_id }}}}"}}}}
    - name: protections
      kind: protection
      interval: 1s
      timeout: 800ms
      jitter: 0
      forbidden_patterns: ['"tax_id"']
"""
ENV = {"CRMPULSE_CLIENT_SECRET": "sandbox-secret"}


@pytest.fixture(scope="module")
def exporter(sandbox: SandboxProcess,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExporterProcess]:
    folder = tmp_path_factory.mktemp("exporter")
    path = write_config(folder, CONFIG.format(url=sandbox.url))
    proc = ExporterProcess(path, env=ENV)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def prometheus(exporter: ExporterProcess,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusProcess]:
    proc = PrometheusProcess(tmp_path_factory.mktemp("prometheus"),
                             {"crmpulse": [f"127.0.0.1:{exporter.port}"]})
    yield proc
    proc.stop()


def test_failure_series_exist_at_zero_before_any_failure(exporter: ExporterProcess) -> None:
    metrics = exporter.metrics()
    for reason in ("timeout", "connect", "dns", "tls", "status", "assertion", "auth", "protection"):
        assert sample(metrics, "crmpulse_check_failures_total", target="sandbox", check="api_read",
                      reason=reason) is not None, reason
    assert sample(metrics, "crmpulse_protection_holds", target="sandbox", check="protections",
                  protection="require_auth") is not None


def test_the_duration_histogram_has_a_bucket_at_the_slo_threshold(exporter: ExporterProcess) -> None:
    assert sample(exporter.metrics(), "crmpulse_check_duration_seconds_bucket", target="sandbox",
                  check="api_read", le="0.8") is not None


def test_prometheus_scrapes_success_for_every_check(crm: SandboxProcess,
                                                   prometheus: PrometheusProcess) -> None:
    prometheus.wait_for('crmpulse_check_success{check="api_read"} == 1')
    prometheus.wait_for('crmpulse_check_success{check="journey"} == 1')
    prometheus.wait_for('crmpulse_check_success{check="protections"} == 1')
    prometheus.wait_for('crmpulse_build_info{version!=""}')


@pytest.mark.parametrize(("faults", "check", "reason"), [
    ({"outage": True}, "api_read", "status"),
    ({"latency_ms": 1500, "path_prefix": "/api/v1/accounts"}, "api_read", "timeout"),
    ({"auth_enforced": False}, "protections", "protection"),
    ({"expose_sensitive": True}, "protections", "protection"),
    ({"error_rate": 1.0, "path_prefix": "/api/v1/contacts/"}, "journey", "status"),
])
def test_an_injected_fault_shows_up_in_prometheus_with_its_reason_within_two_intervals(
        crm: SandboxProcess, prometheus: PrometheusProcess, faults: dict, check: str,
        reason: str) -> None:
    prometheus.wait_for(f'crmpulse_check_success{{check="{check}"}} == 1')
    before = prometheus.query(f'crmpulse_check_failures_total{{check="{check}",reason="{reason}"}}')
    baseline = float(before[0]["value"][1])
    crm.faults(**faults)
    waited = prometheus.wait_for(
        f'crmpulse_check_failures_total{{check="{check}",reason="{reason}"}} > {baseline}', timeout=20)
    print(f"{check} {reason}: visible in Prometheus after {waited:.1f}s "
          f"(check interval {INTERVAL:g}s, scrape interval 1s)")
    # two check intervals, plus one scrape interval and the query's own poll for slack
    assert waited <= 2 * INTERVAL + 1.0 + 0.5 + 0.8
    crm.reset()
    prometheus.wait_for(f'crmpulse_check_success{{check="{check}"}} == 1', timeout=20)


def test_metrics_pass_promtool_check_metrics(exporter: ExporterProcess) -> None:
    text = httpx.get(exporter.url + "/metrics").text
    assert "sandbox-secret" not in text and "Bearer" not in text
    run = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip() == "" and run.stderr.strip() == "", run.stdout + run.stderr


def test_probe_answers_with_blackbox_names(exporter: ExporterProcess, crm: SandboxProcess) -> None:
    response = httpx.get(exporter.url + "/probe", params={"target": crm.url, "module": "api_read"})
    metrics = parse_metrics(response.text)
    assert sample(metrics, "probe_success") == 1
    assert sample(metrics, "probe_http_status_code") == 200
    assert (sample(metrics, "probe_duration_seconds") or 0) > 0
    for phase in ("resolve", "connect", "tls", "processing", "transfer"):
        assert sample(metrics, "probe_http_duration_seconds", phase=phase) is not None


def test_probe_debug_returns_the_log_and_the_metrics_without_secrets(exporter: ExporterProcess,
                                                                    crm: SandboxProcess) -> None:
    text = httpx.get(exporter.url + "/probe", params={
        "target": "sandbox", "module": "journey", "debug": "true"}).text
    assert "Logs for the probe" in text and "Metrics that would have been returned" in text
    assert "GET http://127.0.0.1" in text and "probe_success 1.0" in text
    assert "sandbox-secret" not in text and "Bearer" not in text


def test_probe_fails_an_outage_with_its_reason(exporter: ExporterProcess, crm: SandboxProcess) -> None:
    # a token from before the outage: the API's own 503 is the reason (without one, fetching
    # the token fails first, and the reason is auth)
    assert "probe_success 1.0" in httpx.get(exporter.url + "/probe", params={
        "target": "sandbox", "module": "api_read"}).text
    crm.faults(outage=True)
    metrics = parse_metrics(httpx.get(exporter.url + "/probe", params={
        "target": "sandbox", "module": "api_read"}).text)
    assert sample(metrics, "probe_success") == 0
    assert sample(metrics, "probe_crmpulse_failure_reason", reason="status") == 1
    assert sample(metrics, "probe_http_status_code") == 503


def test_probe_honours_the_scrape_timeout_header(exporter: ExporterProcess, crm: SandboxProcess) -> None:
    crm.faults(latency_ms=3000)
    start = time.monotonic()
    response = httpx.get(exporter.url + "/probe", params={"target": "sandbox", "module": "api_read"},
                         headers={"X-Prometheus-Scrape-Timeout-Seconds": "0.9"}, timeout=10)
    elapsed = time.monotonic() - start
    metrics = parse_metrics(response.text)
    assert sample(metrics, "probe_crmpulse_failure_reason", reason="timeout") == 1
    assert elapsed < 0.9  # answered before Prometheus would give up (0.9 s - 0.5 s offset)


@pytest.mark.parametrize(("params", "status"), [
    ({"target": "sandbox"}, 400),
    ({"target": "sandbox", "module": "nope"}, 400),
    ({"target": "ftp://127.0.0.1/", "module": "api_read"}, 400),
    ({"target": "http://10.1.2.3:8080", "module": "api_read"}, 403),
])
def test_probe_refuses_bad_or_disallowed_requests(exporter: ExporterProcess, params: dict,
                                                  status: int) -> None:
    assert httpx.get(exporter.url + "/probe", params=params).status_code == status


def test_landing_page_lists_checks_and_links(exporter: ExporterProcess) -> None:
    exporter.wait_for("crmpulse_check_success", 1, target="sandbox", check="api_read")
    page = httpx.get(exporter.url + "/").text
    for name in ("api_read", "journey", "protections"):
        assert name in page
    assert 'href="/metrics"' in page and ">ok<" in page
    assert httpx.get(exporter.url + "/-/healthy").text == "Healthy\n"


def test_reload_rejects_a_bad_config_and_keeps_running_then_applies_a_good_one(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    path = write_config(tmp_path, CONFIG.format(url=sandbox.url))
    exporter = ExporterProcess(path, env=ENV)
    try:
        exporter.wait_for("crmpulse_check_success", 1, target="sandbox", check="api_read")
        path.write_text(path.read_text().replace("interval: 1s", "interval: soon", 1))
        response = httpx.post(exporter.url + "/-/reload")
        assert response.status_code == 500
        assert 'probes.checks[0].interval: expected a duration like "30s", got "soon"' in response.text
        metrics = exporter.metrics()
        assert sample(metrics, "crmpulse_config_reloads_total", result="failure") == 1
        assert sample(metrics, "crmpulse_config_last_reload_successful") == 0
        runs = sample(metrics, "crmpulse_check_runs_total", target="sandbox", check="api_read") or 0
        # the old config keeps running: its check completes more runs
        exporter.wait_until("crmpulse_check_runs_total", lambda v: v > runs, target="sandbox",
                            check="api_read")

        good = CONFIG.format(url=sandbox.url).replace("    - name: protections", """    - name: whoami
      kind: http
      operation: whoami
      interval: 1s
      timeout: 800ms
    - name: protections""")
        path.write_text(good)
        exporter.proc.send_signal(signal.SIGHUP)
        exporter.wait_for("crmpulse_check_success", 1, target="sandbox", check="whoami")
        metrics = exporter.metrics()
        assert sample(metrics, "crmpulse_config_last_reload_successful") == 1
        assert sample(metrics, "crmpulse_config_reloads_total", result="success") == 2
    finally:
        log = exporter.stop()
    assert "reload rejected" in log and "sandbox-secret" not in log


def test_the_exporter_keeps_answering_while_its_crm_hangs(tmp_path: Path) -> None:
    bad = BadServers()
    path = write_config(tmp_path, f"""
        target: {{name: stuck, base_url: "{bad.urls['hang']}"}}
        probes:
          checks:
            - {{name: hung, kind: http, request: {{path: /}}, interval: 5s, timeout: 4s}}
        """)
    exporter = ExporterProcess(path)
    try:
        time.sleep(0.5)  # the check is now waiting on a server that never answers
        for _ in range(5):
            response = httpx.get(exporter.url + "/metrics", timeout=2)  # would raise if it waited
            assert response.status_code == 200
        exporter.wait_for("crmpulse_check_failures_total", 1, timeout=15, target="stuck",
                          check="hung", reason="timeout")
    finally:
        exporter.stop()
        bad.close()


def test_web_config_enables_tls_and_basic_auth(sandbox: SandboxProcess, tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path, "exporter", days_valid=2)
    hashed = bcrypt.hashpw(b"scrape-pass", bcrypt.gensalt(rounds=4)).decode()
    (tmp_path / "web.yml").write_text(
        f"tls_server_config: {{cert_file: {cert}, key_file: {key}}}\n"
        f"basic_auth_users: {{prometheus: '{hashed}'}}\n")
    path = write_config(tmp_path, CONFIG.format(url=sandbox.url))
    exporter = ExporterProcess(path, "--web-config-file", str(tmp_path / "web.yml"), env=ENV)
    context = ssl.create_default_context(cafile=cert)
    url = f"https://127.0.0.1:{exporter.port}/metrics"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(url, verify=context, timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert response.status_code == 401
        ok = httpx.get(url, verify=context, auth=("prometheus", "scrape-pass"))
        assert ok.status_code == 200 and "crmpulse_build_info" in ok.text
        assert httpx.get(url, verify=context, auth=("prometheus", "wrong")).status_code == 401
    finally:
        exporter.stop()


def test_check_config_flag_validates_without_serving(sandbox: SandboxProcess, tmp_path: Path) -> None:
    path = write_config(tmp_path, CONFIG.format(url=sandbox.url))
    env = {**os.environ, **ENV}
    command = [sys.executable, "-m", "crmpulse", "probe", "--config", str(path), "--check-config"]
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 0 and "valid" in run.stdout
    path.write_text(path.read_text().replace("kind: journey", "kind: journy"))
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 2 and "probes.checks[1].kind" in run.stderr

"""`crmpulse loadtest` end to end: real Locust processes against the sandbox CRM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import PrometheusProcess, SandboxProcess, reserve_port, write_config

ENV = {**{k: v for k, v in os.environ.items() if k != "LOCUST_SKIP_MONKEY_PATCH"},
       "CRMPULSE_CLIENT_SECRET": "sandbox-secret", "CRMPULSE_PROGRESS": "1"}


def config(url: str, shape: str = "{kind: peak_season, users: 3, multiple: 2, duration: 10s}",
           gates: str = "{global: {p95: 800ms, error_ratio: 1}, operations: {search_contacts: {p95: 400ms}}}",
           safety: str = "{allow_loadtest: true, max_users: 20, max_rps: 300}", extra: str = "") -> str:
    return f"""
target:
  name: sandbox
  base_url: {url}
  auth: {{type: oauth2_client_credentials, client_id: crmpulse, client_secret: "${{env:CRMPULSE_CLIENT_SECRET}}"}}
  safety: {safety}
loadtest:
  think_time: 200ms
  metrics_listen: "off"
  shape: {shape}
  gates: {gates}
{extra}
"""


def run(tmp_path: Path, body: str, *args: str, timeout: float = 180) -> tuple[subprocess.CompletedProcess[str], dict]:
    path = write_config(tmp_path, body)
    report = tmp_path / "report"
    proc = subprocess.run([sys.executable, "-m", "crmpulse", "loadtest", "-c", str(path),
                           "--report-dir", str(report), *args],
                          capture_output=True, text=True, timeout=timeout, env=ENV)
    data = json.loads((report / "report.json").read_text()) if (report / "report.json").exists() else {}
    return proc, data


def marked(crm: SandboxProcess) -> int:
    token = crm.token()
    total = 0
    for resource in ("contacts", "deals", "activities"):
        page = httpx.get(f"{crm.url}/api/v1/{resource}", params={"limit": 200},
                         headers={"Authorization": f"Bearer {token}"}).json()["data"]
        total += sum(1 for r in page if any(str(t).startswith("crmpulse-sandbox-lt-") for t in r.get("tags", [])))
    return total


def test_a_short_peak_season_run_passes_its_gate_and_leaves_nothing(crm: SandboxProcess,
                                                                   tmp_path: Path) -> None:
    proc, data = run(tmp_path, config(crm.url))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert data["passed"] and data["validity"]["valid"]
    assert {g["name"] for g in data["gates"]} == {"all operations", "search_contacts"}
    assert set(data["operations"]) >= {"create_contact", "search_contacts", "list_contacts",
                                       "update_deal", "log_activity", "pipeline_report"}
    assert set(data["journeys"]) == {"sales_rep", "support_agent", "marketing_import",
                                     "integration_sync", "manager_reporting"}
    assert data["cleanup"]["created"] > 0 and data["cleanup"]["left"] == 0
    assert marked(crm) == 0
    assert "crmpulse [" in proc.stdout  # progress while it ran
    report = (tmp_path / "report")
    assert "<svg" in (report / "report.html").read_text()
    assert "| operation search_contacts | p95 |" in (report / "summary.md").read_text()
    assert (report / "locust_stats.csv").exists() and (report / "locust.html").exists()


def test_injected_latency_fails_the_named_operation_gate_and_exits_1(crm: SandboxProcess,
                                                                     tmp_path: Path) -> None:
    crm.faults(latency_ms=500, path_prefix="/api/v1/search")
    proc, data = run(tmp_path, config(crm.url))
    assert proc.returncode == 1, proc.stdout[-2000:]
    failed = [g for g in data["gates"] if not g["passed"]]
    assert [(g["scope"], g["name"], g["metric"]) for g in failed] == [
        ("operation", "search_contacts", "p95")]
    assert failed[0]["actual"] >= 0.5
    assert "FAILED operation search_contacts p95" in proc.stdout
    assert marked(crm) == 0


def test_an_outage_aborts_the_run_and_still_leaves_nothing(crm: SandboxProcess, tmp_path: Path) -> None:
    crm.faults(error_rate=1.0, path_prefix="/api/v1/search")
    body = config(crm.url, shape="{kind: soak, users: 4, duration: 60s}",
                  extra="  abort_error_ratio: 10")
    start = time.monotonic()
    proc, data = run(tmp_path, body)
    assert time.monotonic() - start < 50  # aborted, not run for its full minute
    assert proc.returncode == 1
    assert "error ratio" in data["aborted"]
    assert data["verdict"] == "ABORTED" and "Aborted" in (tmp_path / "report" / "summary.md").read_text()
    assert data["cleanup"]["left"] == 0 and marked(crm) == 0


def test_two_workers_give_the_same_verdict_structure(crm: SandboxProcess, tmp_path: Path) -> None:
    proc, data = run(tmp_path, config(crm.url), "--workers", "2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert {g["name"] for g in data["gates"]} == {"all operations", "search_contacts"}
    assert data["cleanup"]["created"] > 0 and data["cleanup"]["left"] == 0, (data["events"], proc.stdout[-3000:])
    assert data["operations"]["search_contacts"]["requests"] > 0
    assert marked(crm) == 0


def test_open_model_pacing_never_exceeds_its_target_and_reports_what_it_reached(
        crm: SandboxProcess, tmp_path: Path) -> None:
    body = config(crm.url, shape="{kind: soak, users: 6, duration: 12s, rps: 40}")
    proc, data = run(tmp_path, body)
    assert data, proc.stdout[-2000:] + proc.stderr[-2000:]
    steady = [p for p in data["timeline"] if 2 < p["t"] < 12]
    assert steady and all(p["target_rps"] == 40 for p in steady)
    # the token bucket holds at most 4 tokens at 40/s: no 2 s window goes much above 40
    assert max(p["rps"] for p in steady) <= 40 * 1.25, steady
    assert "(target 40)" in proc.stdout
    # how close it came depends on the machine; what it says about it must be true
    reached = sum(p["rps"] for p in steady if p["t"] > 5) / len([p for p in steady if p["t"] > 5])
    short = any("target: add users or workers" in r for r in data["validity"]["reasons"])
    assert short == (reached < 0.9 * 40), (reached, data["validity"])


def test_a_rate_the_generator_cannot_reach_marks_the_run_invalid(crm: SandboxProcess,
                                                                tmp_path: Path) -> None:
    body = config(crm.url, shape="{kind: soak, users: 1, duration: 10s, rps: 250}")
    proc, data = run(tmp_path, body)
    assert proc.returncode == 1
    assert data["validity"]["valid"] is False
    assert "target" in data["validity"]["reasons"][0]


def test_the_safety_cap_limits_the_request_rate(crm: SandboxProcess, tmp_path: Path) -> None:
    body = config(crm.url, shape="{kind: soak, users: 10, duration: 10s}",
                  safety="{allow_loadtest: true, max_users: 20, max_rps: 25}").replace(
        "think_time: 200ms", "think_time: 10ms")
    proc, data = run(tmp_path, body)
    assert data, proc.stdout[-2000:] + proc.stderr[-2000:]
    steady = [p["rps"] for p in data["timeline"] if p["t"] > 3]
    assert max(steady) <= 25 * 1.2, steady


def test_429s_count_as_throttling(crm: SandboxProcess, tmp_path: Path) -> None:
    crm.faults(rate_limit_rps=20, retry_after_s=1)
    body = config(crm.url, gates="{global: {error_ratio: 100}}")
    _, data = run(tmp_path, body)
    throttled = [e for e in data["errors"] if e["error"].startswith("throttled (429)")]
    assert throttled, data["errors"]
    assert max(p["throttled_per_s"] for p in data["timeline"]) > 0
    assert marked(crm) == 0


@pytest.mark.parametrize(("safety", "message"), [
    ("{allow_loadtest: false}", "does not allow load tests"),
    ("{allow_loadtest: true, allowed_hosts: [crm.example.com]}", "is not in target.safety.allowed_hosts"),
    ("{allow_loadtest: true, max_users: 2}", "above target.safety.max_users"),
])
def test_the_safety_rails_refuse_to_run(crm: SandboxProcess, tmp_path: Path, safety: str,
                                        message: str) -> None:
    before = crm.stats()["requests"]
    proc, _ = run(tmp_path, config(crm.url, safety=safety))
    assert proc.returncode == 2
    assert message in proc.stderr
    assert crm.stats()["requests"] == before  # nothing was sent


def test_a_dry_run_prints_the_plan_and_sends_nothing(crm: SandboxProcess, tmp_path: Path) -> None:
    before = crm.stats()["requests"]
    proc, _ = run(tmp_path, config(crm.url), "--dry-run")
    assert proc.returncode == 0
    assert "peak 6 users" in proc.stdout and "hosts it will hit: 127.0.0.1" in proc.stdout
    assert "records created" in proc.stdout and "Dry run: nothing was sent." in proc.stdout
    assert crm.stats()["requests"] == before


LOCUSTFILE = Path(__file__).resolve().parents[2] / "loadtests" / "locustfile.py"


def test_plain_locust_runs_the_locustfile(crm: SandboxProcess, tmp_path: Path) -> None:
    path = write_config(tmp_path, config(crm.url))
    proc = subprocess.run([sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--crmpulse-config",
                           str(path), "--headless", "--only-summary", "--crmpulse-report-dir",
                           str(tmp_path / "r")], capture_output=True, text=True, timeout=120, env=ENV)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert json.loads((tmp_path / "r" / "report.json").read_text())["verdict"] == "PASS"
    assert marked(crm) == 0


def test_a_locust_conf_with_crmpulse_config_runs(crm: SandboxProcess, tmp_path: Path) -> None:
    path = write_config(tmp_path, config(crm.url, shape="{kind: soak, users: 2, duration: 4s}"))
    (tmp_path / "locust.conf").write_text(
        f"locustfile = {LOCUSTFILE}\ncrmpulse-config = {path}\nheadless = true\nonly-summary = true\n"
        f"crmpulse-report-dir = {tmp_path / 'from-conf'}\n")
    proc = subprocess.run([sys.executable, "-m", "locust"], capture_output=True, text=True,
                          timeout=120, env=ENV, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    data = json.loads((tmp_path / "from-conf" / "report.json").read_text())
    assert data["verdict"] == "PASS" and data["target"] == "sandbox"
    assert marked(crm) == 0


def test_the_config_can_come_from_locusts_environment_variable(crm: SandboxProcess, tmp_path: Path) -> None:
    path = write_config(tmp_path, config(crm.url, shape="{kind: soak, users: 1, duration: 2s}"))
    proc = subprocess.run([sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
                           "--only-summary"], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**ENV, "LOCUST_CRMPULSE_CONFIG": str(path),
                               "LOCUST_CRMPULSE_REPORT_DIR": str(tmp_path / "env")})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (tmp_path / "env" / "report.json").exists()


def test_importing_the_locustfile_does_nothing(tmp_path: Path) -> None:
    # no config exists here: an import that read it (or exited) would fail
    proc = subprocess.run([sys.executable, "-c", f"import runpy; runpy.run_path({str(LOCUSTFILE)!r}); "
                           "print('imported')"], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, env=ENV)
    assert proc.returncode == 0 and "imported" in proc.stdout, proc.stderr[-2000:]
    assert not list(tmp_path.iterdir())


def test_prometheus_scrapes_live_metrics_during_a_run(crm: SandboxProcess, tmp_path: Path) -> None:
    port = reserve_port()
    (tmp_path / "prom").mkdir()
    prometheus = PrometheusProcess(tmp_path / "prom", {"loadtest": [f"127.0.0.1:{port}"]})
    try:
        body = config(crm.url, shape="{kind: soak, users: 3, duration: 12s}").replace(
            'metrics_listen: "off"', f'metrics_listen: "127.0.0.1:{port}"')
        path = write_config(tmp_path, body)
        proc = subprocess.Popen([sys.executable, "-m", "crmpulse", "loadtest", "-c", str(path),
                                 "--report-dir", str(tmp_path / "report")],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
        prometheus.wait_for('crmpulse_loadtest_running{target="sandbox"} == 1', timeout=30)
        prometheus.wait_for('crmpulse_loadtest_requests_total{kind="operation",name="search_contacts",'
                            'result="success"} > 0', timeout=30)
        prometheus.wait_for('crmpulse_loadtest_request_duration_seconds_bucket{name="search_contacts",'
                            'le="0.4"} > 0', timeout=30)  # the gate threshold is a bucket
        prometheus.wait_for('crmpulse_loadtest_gate_threshold_seconds{name="search_contacts",'
                            'percentile="p95"} == 0.4')
        prometheus.wait_for('crmpulse_loadtest_users{target="sandbox"} > 0')
        assert proc.wait(timeout=120) == 0
    finally:
        prometheus.stop()

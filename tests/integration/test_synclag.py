"""Sync-lag probes against the sandbox's real sync worker, through a real exporter process."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import (
    ExporterProcess,
    PrometheusProcess,
    SandboxProcess,
    sample,
    write_config,
)

ENV = {"CRMPULSE_CLIENT_SECRET": "sandbox-secret"}

CANARY = """
    - name: canary
      mode: canary
      interval: {interval}
      sla: {sla}
      sweep_after: {sweep_after}
      sweep_every: {sweep_every}
      create:
        operation: create_contact
        with: {{first_name: Crmpulse, last_name: Canary, email: "{{{{ marker }}}}-{{{{ canary }}}}@crmpulse.example",
               tags: ["{{{{ marker }}}}"]}}
      read:
        operation: search_contacts
        with: {{email: "{{{{ email }}}}"}}
        found: "$.data[0].id"
      sweep:
        operation: list_contacts
        with: {{tag: "{{{{ marker }}}}"}}"""

HEARTBEAT = """
    - name: beat
      mode: heartbeat
      interval: {interval}
      sla: {sla}
      create:
        operation: create_contact
        with: {{first_name: Crmpulse, last_name: Heartbeat, email: "{{{{ marker }}}}@crmpulse.example",
               tags: ["{{{{ marker }}}}"]}}
      update:
        operation: update_contact
        with: {{id: "{{{{ id }}}}", custom: {{crmpulse_heartbeat: "{{{{ heartbeat }}}}"}}}}
      read:
        operation: search_contacts
        with: {{tag: "{{{{ marker }}}}"}}
        value: "$.data[0].custom.crmpulse_heartbeat"
      sweep:
        operation: list_contacts
        with: {{tag: "{{{{ marker }}}}"}}"""

WEBHOOK = """
    - name: hook
      mode: webhook
      interval: {interval}
      sla: {sla}
      create:
        operation: create_contact
        with: {{first_name: Crmpulse, last_name: Webhook, email: "{{{{ marker }}}}-{{{{ canary }}}}@crmpulse.example",
               tags: ["{{{{ marker }}}}"]}}
      webhook:
        subscribe:
          operation: register_webhook
          with: {{url: "{{{{ url }}}}", events: [contact.created]}}
        match: $.data.id
      sweep:
        operation: list_contacts
        with: {{tag: "{{{{ marker }}}}"}}"""


def config(url: str, pairs: str, slos: str = "", systems: str = "") -> str:
    return f"""
target:
  name: sandbox
  base_url: {url}
  auth: {{type: oauth2_client_credentials, client_id: crmpulse,
         client_secret: "${{env:CRMPULSE_CLIENT_SECRET}}"}}
{systems}
slos:
  - {{name: search_sync, kind: sync_lag, objective: 99, threshold: 1500ms}}
{slos}
probes:
  sync:{pairs}
"""


def marked(crm: SandboxProcess, prefix: str = "crmpulse-sandbox-") -> list[dict]:
    response = httpx.get(crm.url + "/api/v1/contacts", params={"email_prefix": prefix, "limit": 200},
                         headers={"Authorization": f"Bearer {crm.token()}"})
    return list(response.json()["data"])


@pytest.fixture
def start(crm: SandboxProcess, tmp_path: Path) -> Iterator:
    started: list[ExporterProcess] = []

    def run(pairs: str, **kwargs: str) -> ExporterProcess:
        path = write_config(tmp_path, config(crm.url, pairs, **kwargs), f"c{len(started)}.yaml")
        exporter = ExporterProcess(path, env=ENV)
        started.append(exporter)
        return exporter

    yield run
    crm.reset()
    for exporter in started:
        if exporter.proc.poll() is None:
            exporter.stop()
    assert marked(crm) == [], "a sync probe left marked records behind"


def lag_of(exporter: ExporterProcess, pair: str) -> tuple[float, float]:
    metrics = exporter.metrics()
    count = sample(metrics, "crmpulse_sync_lag_observed_seconds_count", target="sandbox", pair=pair) or 0
    total = sample(metrics, "crmpulse_sync_lag_observed_seconds_sum", target="sandbox", pair=pair) or 0
    return count, total


def test_canary_measures_the_injected_lag_and_deletes_every_canary(crm: SandboxProcess, start) -> None:
    crm.faults(sync_lag_ms=400)
    exporter = start(CANARY.format(interval="1s", sla="5s", sweep_after="1h", sweep_every="10m"))
    exporter.wait_for("crmpulse_sync_canaries_seen_total", 3, timeout=20, target="sandbox", pair="canary")
    count, total = lag_of(exporter, "canary")
    assert 0.35 <= total / count <= 0.6, total / count
    metrics = exporter.metrics()
    assert sample(metrics, "crmpulse_sync_canaries_lost_total", target="sandbox", pair="canary") == 0
    # what CrmChecksNotRunning adds up over shards
    assert sample(metrics, "crmpulse_sync_pairs_configured", target="sandbox") == 1
    assert sample(metrics, "crmpulse_sync_pairs_running", target="sandbox") == 1
    deleted = sample(metrics, "crmpulse_sync_cleanup_deleted_total", target="sandbox", pair="canary") or 0
    assert deleted >= 3
    assert sample(metrics, "crmpulse_sync_lag_observed_seconds_bucket", target="sandbox", pair="canary",
                  le="1.5") is not None  # the SLO threshold is a bucket boundary


def test_a_canary_past_its_sla_is_lost_and_still_deleted(crm: SandboxProcess, start) -> None:
    crm.faults(sync_stall=True)
    exporter = start(CANARY.format(interval="1s", sla="1s", sweep_after="1h", sweep_every="10m"))
    exporter.wait_for("crmpulse_sync_canaries_lost_total", 2, timeout=20, target="sandbox", pair="canary")
    deleted = sample(exporter.metrics(), "crmpulse_sync_cleanup_deleted_total", target="sandbox",
                     pair="canary") or 0
    assert deleted >= 1


def test_the_heartbeat_gauge_rises_during_a_stall_and_falls_after(crm: SandboxProcess, start) -> None:
    crm.faults(sync_lag_ms=200)
    exporter = start(HEARTBEAT.format(interval="1s", sla="30s"))
    exporter.wait_for("crmpulse_sync_canaries_seen_total", 2, timeout=20, target="sandbox", pair="beat")
    assert (sample(exporter.metrics(), "crmpulse_sync_lag_seconds", target="sandbox", pair="beat") or 0) < 2
    crm.faults(sync_stall=True)
    stalled_at = time.monotonic()
    rising = []
    for _ in range(4):
        time.sleep(1)
        rising.append(sample(exporter.metrics(), "crmpulse_sync_lag_seconds", target="sandbox", pair="beat"))
    assert rising == sorted(rising) and rising[-1] >= 3.5  # grows with the stall, not after it
    crm.faults(sync_stall=False)
    deadline = time.monotonic() + 10
    while (sample(exporter.metrics(), "crmpulse_sync_lag_seconds", target="sandbox", pair="beat")
           or 99) > 2:
        assert time.monotonic() < deadline, "the lag did not fall after the stall"
        time.sleep(0.2)
    # every stamp written during the stall was observed once it arrived, with its real lag
    count, total = lag_of(exporter, "beat")
    assert total / count > 0.5
    assert time.monotonic() - stalled_at < 20


def test_webhook_mode_measures_delivery_lag(crm: SandboxProcess, start) -> None:
    crm.faults(webhook_delay_ms=300)
    exporter = start(WEBHOOK.format(interval="1s", sla="5s"))
    exporter.wait_for("crmpulse_sync_canaries_seen_total", 3, timeout=20, target="sandbox", pair="hook")
    count, total = lag_of(exporter, "hook")
    assert 0.29 <= total / count <= 0.4, total / count
    hooks = httpx.get(crm.url + "/api/v1/webhooks", headers={"Authorization": f"Bearer {crm.token()}"})
    assert len(hooks.json()["data"]) == 1
    exporter.stop()
    hooks = httpx.get(crm.url + "/api/v1/webhooks", headers={"Authorization": f"Bearer {crm.token()}"})
    assert hooks.json()["data"] == []  # unsubscribed on shutdown


def test_a_killed_exporter_leaves_records_that_the_sweeper_removes(crm: SandboxProcess, start,
                                                                   tmp_path: Path) -> None:
    crm.faults(sync_stall=True)  # canaries stay in flight until the SLA
    exporter = start(CANARY.format(interval="500ms", sla="30s", sweep_after="1h", sweep_every="10m")
                     + HEARTBEAT.format(interval="1s", sla="30s"))
    exporter.wait_for("crmpulse_sync_canaries_in_flight", 3, timeout=20, target="sandbox", pair="canary")
    exporter.proc.send_signal(signal.SIGKILL)
    exporter.proc.wait()
    left = marked(crm)
    assert len(left) >= 4  # three canaries and the heartbeat marker, abandoned
    run = subprocess.run([sys.executable, "-m", "crmpulse", "probe", "--config", str(exporter.config),
                          "--sweep-only", "--sweep-older-than", "0s"],
                         capture_output=True, text=True, timeout=60, env={**__import__("os").environ, **ENV})
    assert run.returncode == 0, run.stdout + run.stderr
    assert "sync pair canary:" in run.stdout and "failed" in run.stdout
    assert marked(crm) == []


def test_delete_failures_are_counted_retried_and_swept(crm: SandboxProcess, start) -> None:
    crm.faults(sync_lag_ms=0)
    exporter = start(CANARY.format(interval="1s", sla="5s", sweep_after="1s", sweep_every="2s"))
    exporter.wait_for("crmpulse_sync_canaries_seen_total", 1, timeout=20, target="sandbox", pair="canary")
    crm.faults(outage=True, path_prefix="/api/v1/contacts/")  # GET and DELETE by id fail; create works
    deadline = time.monotonic() + 20
    while (sample(exporter.metrics(), "crmpulse_sync_delete_failures_total", target="sandbox",
                  pair="canary") or 0) < 4:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    stuck = {c["id"] for c in marked(crm)}
    assert len(stuck) >= 2  # undeletable while the outage lasts
    crm.faults(outage=False)
    deadline = time.monotonic() + 20
    while stuck & {c["id"] for c in marked(crm)}:
        assert time.monotonic() < deadline, "retries and the sweeper did not clean up"
        time.sleep(0.3)


def test_a_downstream_system_with_its_own_auth_and_profile_is_the_read_side(crm: SandboxProcess,
                                                                           start) -> None:
    systems = f"""systems:
  - name: search_cluster
    base_url: {crm.url}
    profile: sandbox
    auth: {{type: api_key, header: X-API-Key, key: "${{env:SEARCH_KEY}}"}}"""
    pair = CANARY.format(interval="1s", sla="5s", sweep_after="1h", sweep_every="10m").replace(
        "        operation: search_contacts\n", "        operation: search_contacts\n        system: search_cluster\n")
    import os

    os.environ["SEARCH_KEY"] = "sandbox-api-key"
    try:
        exporter = start(pair, systems=systems)
        exporter.wait_for("crmpulse_sync_canaries_seen_total", 2, timeout=20, target="sandbox",
                          pair="canary")
    finally:
        del os.environ["SEARCH_KEY"]


def test_prometheus_sees_the_lag_rise_and_fall_and_the_histogram_fill(crm: SandboxProcess, start,
                                                                      tmp_path: Path) -> None:
    crm.faults(sync_lag_ms=100)
    exporter = start(HEARTBEAT.format(interval="1s", sla="60s"))
    (tmp_path / "prom").mkdir()
    prometheus = PrometheusProcess(tmp_path / "prom", {"crmpulse": [f"127.0.0.1:{exporter.port}"]})
    try:
        prometheus.wait_for('crmpulse_sync_lag_seconds{pair="beat"} < 1.5')
        crm.faults(sync_lag_ms=4000)
        waited = prometheus.wait_for('crmpulse_sync_lag_seconds{pair="beat"} > 3', timeout=30)
        print(f"lag above 3 s in Prometheus {waited:.1f}s after raising the sandbox's lag to 4 s")
        crm.faults(sync_lag_ms=100)
        prometheus.wait_for('crmpulse_sync_lag_seconds{pair="beat"} < 1.5', timeout=30)
        prometheus.wait_for('crmpulse_sync_lag_observed_seconds_bucket{pair="beat",le="+Inf"} > 5')
        slow = prometheus.query('crmpulse_sync_lag_observed_seconds_count{pair="beat"} '
                                '- ignoring(le) crmpulse_sync_lag_observed_seconds_bucket{pair="beat",le="1.5"}')
        assert float(slow[0]["value"][1]) >= 1  # the slow stamps landed above the SLO threshold
    finally:
        prometheus.stop()

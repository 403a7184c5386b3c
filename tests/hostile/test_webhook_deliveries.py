"""Webhook deliveries are authenticated, and a broken subscription is told apart from late webhooks.

Anyone who can reach the exporter can POST to /-/webhook/<pair>. With a signature
configured, a delivery that is unsigned, malformed or forged gets 401, is counted by
reason and is never measured, even when it names a record the probe is waiting for.
A subscription the CRM refuses is logged once per change of state, exported as its
own state, and no record is written while it lasts, so nothing counts as lost.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from crmpulse import load_config
from crmpulse.contract import DEFAULT_SYNC_BUCKETS
from crmpulse.markers import pair_marker
from crmpulse.probes.checks import TargetRunner
from crmpulse.probes.synclag import SyncMetrics, SyncPairRunner
from tests.helpers import ExporterProcess, SandboxProcess, sample, write_config

ENV = {"CRMPULSE_CLIENT_SECRET": "sandbox-secret"}

PAIR = """
target:
  name: sandbox
  base_url: {url}
  auth: {{type: oauth2_client_credentials, client_id: crmpulse, client_secret: "${{env:CRMPULSE_CLIENT_SECRET}}"}}
{profile}
probes:
  sync:
    - name: hook
      mode: webhook
      interval: 1s
      sla: {sla}
      create:
        operation: create_contact
        with: {{first_name: Crmpulse, last_name: Webhook, email: "{{{{ marker }}}}-{{{{ canary }}}}@crmpulse.example",
               tags: ["{{{{ marker }}}}"]}}
      webhook:
        subscribe:
          operation: register_webhook
          with: {{url: "{{{{ url }}}}", events: [contact.created], secret: "{{{{ webhook_secret }}}}"}}
        match: $.data.id
        signature: {{header: X-Sandbox-Signature, prefix: "sha256=", encoding: hex}}
      sweep:
        operation: list_contacts
        with: {{tag: "{{{{ marker }}}}"}}
"""


def marked(crm: SandboxProcess) -> list[dict]:
    response = httpx.get(crm.url + "/api/v1/contacts", params={"email_prefix": str(pair_marker("sandbox", "hook")),
                                                               "limit": 200},
                         headers={"Authorization": f"Bearer {crm.token()}"})
    return list(response.json()["data"])


@pytest.fixture
def exporter(crm: SandboxProcess, tmp_path: Path) -> Iterator:
    started: list[ExporterProcess] = []

    def start(sla: str = "3s", profile: str = "") -> ExporterProcess:
        path = write_config(tmp_path, PAIR.format(url=crm.url, sla=sla, profile=profile))
        started.append(ExporterProcess(path, env=ENV))
        return started[-1]

    yield start
    crm.reset()
    for proc in started:
        if proc.proc.poll() is None:
            proc.stop()
    assert marked(crm) == [], "the webhook probe left records behind"


def test_signed_deliveries_from_the_crm_are_measured(crm: SandboxProcess, exporter) -> None:
    proc = exporter()
    proc.wait_until("crmpulse_sync_canaries_seen_total", lambda v: v >= 2, timeout=20,
                    target="sandbox", pair="hook")
    metrics = proc.metrics()
    assert sample(metrics, "crmpulse_sync_webhook_subscription", target="sandbox", pair="hook",
                  state="subscribed") == 1
    for reason in ("missing", "malformed", "mismatch"):
        assert sample(metrics, "crmpulse_sync_webhook_rejected_total", target="sandbox", pair="hook",
                      reason=reason) == 0


def test_unsigned_malformed_and_forged_deliveries_get_401_are_counted_and_never_measured(
        crm: SandboxProcess, exporter) -> None:
    crm.faults(webhook_delay_ms=60_000)  # the CRM's own deliveries will come too late
    proc = exporter(sla="3s")
    url = proc.url + "/-/webhook/hook"
    sent = {"missing": 0, "malformed": 0, "mismatch": 0}
    forged_for: set[str] = set()
    deadline = time.monotonic() + 30
    while len(forged_for) < 3:
        assert time.monotonic() < deadline, "no canaries to forge deliveries for"
        for record in marked(crm):
            if record["id"] in forged_for:
                continue
            body = json.dumps({"type": "contact.created", "data": {"id": record["id"]}}).encode()
            wrong = hmac.new(b"not-the-secret", body, hashlib.sha256).hexdigest()
            for reason, headers in (("missing", {}),
                                    ("malformed", {"X-Sandbox-Signature": "sha256=zz-not-hex"}),
                                    ("mismatch", {"X-Sandbox-Signature": f"sha256={wrong}"})):
                response = httpx.post(url, content=body, headers={"Content-Type": "application/json",
                                                                  **headers})
                assert (response.status_code, response.text) == (401, "signature does not verify\n")
                sent[reason] += 1
            forged_for.add(record["id"])
        time.sleep(0.1)
    proc.wait_until("crmpulse_sync_canaries_lost_total", lambda v: v >= 3, timeout=20,
                    target="sandbox", pair="hook")
    metrics = proc.metrics()
    assert sample(metrics, "crmpulse_sync_canaries_seen_total", target="sandbox", pair="hook") == 0
    assert sample(metrics, "crmpulse_sync_lag_observed_seconds_count", target="sandbox", pair="hook") == 0
    for reason, count in sent.items():
        assert sample(metrics, "crmpulse_sync_webhook_rejected_total", target="sandbox", pair="hook",
                      reason=reason) == count


REFUSED = "profile: refused.yaml"


def test_a_refused_subscription_is_logged_once_exported_and_loses_no_record(
        crm: SandboxProcess, exporter, tmp_path: Path) -> None:
    profile = (Path(__file__).parents[2] / "crmpulse" / "profiles" / "sandbox.yaml").read_text()
    # subscribing without credentials: the sandbox answers 401, as a CRM does to a token
    # that lacks the webhook scope, while creating contacts keeps working
    refused = profile.replace("    method: POST\n    path: /api/v1/webhooks\n",
                              "    method: POST\n    path: /api/v1/webhooks\n    auth: false\n", 1)
    assert refused != profile
    (tmp_path / "refused.yaml").write_text(refused)
    proc = exporter(sla="1s", profile=REFUSED)
    proc.wait_until("crmpulse_sync_errors_total", lambda v: v >= 4, timeout=20, target="sandbox",
                    pair="hook", stage="subscribe", reason="auth")
    metrics = proc.metrics()
    states = {state: sample(metrics, "crmpulse_sync_webhook_subscription", target="sandbox", pair="hook",
                            state=state) for state in ("pending", "subscribed", "auth_failed", "failed")}
    assert states == {"pending": 0, "subscribed": 0, "auth_failed": 1, "failed": 0}
    for name in ("crmpulse_sync_canaries_created_total", "crmpulse_sync_canaries_lost_total"):
        assert sample(metrics, name, target="sandbox", pair="hook") == 0
    log = proc.stop()
    lines = [line for line in log.splitlines() if "webhook subscription" in line]
    assert lines == [lines[0]] and "level=WARNING msg=sync pair hook: webhook subscription auth_failed: " \
        "register_webhook: expected status 201, got 401" in lines[0], log


def runner_for(tmp_path: Path, signature: str) -> tuple[SyncPairRunner, CollectorRegistry]:
    path = write_config(tmp_path, f"""
        target: {{name: t, base_url: "http://127.0.0.1:9"}}
        probes:
          sync:
            - name: hook
              mode: webhook
              create: {{operation: create_contact, with: {{first_name: a, last_name: b, email: c@d.example}}}}
              webhook: {{url: "http://127.0.0.1:9/-/webhook/hook", match: $.data.id, signature: {signature}}}
              sweep: {{operation: list_contacts}}
        """)
    loaded = load_config(path)
    registry = CollectorRegistry()
    runner = TargetRunner(loaded)
    pair = SyncPairRunner(loaded.config.probes.sync[0], runner, runner,
                          SyncMetrics(registry, DEFAULT_SYNC_BUCKETS), "t")
    return pair, registry


def test_base64_signatures_with_a_configured_secret_verify_and_others_do_not(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_WEBHOOK_SECRET", "whsec-configured-5150")
    pair, registry = runner_for(
        tmp_path, '{header: X-Hub-Signature, encoding: base64, secret: "${env:T_WEBHOOK_SECRET}"}')
    body = b'{"data": {"id": "c1"}}'
    good = base64.b64encode(hmac.new(b"whsec-configured-5150", body, hashlib.sha256).digest()).decode()
    assert pair.receive(body, {"x-hub-signature": good}) == 204
    assert list(pair.early) == ["c1"]  # accepted: kept until its record's run waits for it
    assert pair.receive(b'{"data": {"id": "c2"}}', {"x-hub-signature": good}) == 401  # another body
    assert pair.receive(body, {"x-hub-signature": "!!not base64!!"}) == 401
    assert pair.receive(body, {}) == 401
    assert list(pair.early) == ["c1"]
    counts = {r: registry.get_sample_value("crmpulse_sync_webhook_rejected_total",
                                           {"target": "t", "pair": "hook", "reason": r})
              for r in ("missing", "malformed", "mismatch")}
    assert counts == {"missing": 1, "malformed": 1, "mismatch": 1}
    asyncio.run(pair.write.aclose())

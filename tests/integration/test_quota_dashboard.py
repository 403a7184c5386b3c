"""The overview's API-quota panel, and the quota alert's expression, run through a real Prometheus.

tests/integration/test_dashboards_real_data.py runs every other panel against the native
sandbox, which reports no API quota; here the Salesforce dialect does. Its exporter is
scraped by a real Prometheus, and the panel's PromQL (template variables substituted as
Grafana would) must come back with one series per quota, at used / limit.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from crmpulse import contract as c
from crmpulse.alerts.rules import build_rules
from crmpulse.dashboards.generate import build_all
from tests.helpers import ExporterProcess, PrometheusProcess, SandboxProcess
from tests.integration.preset_harness import SALESFORCE, init_config, set_env, set_quota

SUBSTITUTE = {"$target": "salesforce", "$__rate_interval": "10s"}


@pytest.fixture
def salesforce(monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxProcess]:
    set_env(SALESFORCE, monkeypatch)
    crm = SandboxProcess("--dialect", "salesforce", "--seed", "20", "--sync-lag", "200ms")
    yield crm
    crm.stop()


def test_the_quota_panel_shows_used_over_limit_per_quota_from_a_real_prometheus(
        tmp_path: Path, salesforce: SandboxProcess) -> None:
    from crmpulse import load_config

    set_quota(salesforce, daily_api_requests=2000)
    path = init_config(SALESFORCE, tmp_path, salesforce.url, fast=True)
    exporter = ExporterProcess(path, env=SALESFORCE.env)
    (tmp_path / "prom").mkdir()
    prometheus = PrometheusProcess(tmp_path / "prom", {"crmpulse": [f"127.0.0.1:{exporter.port}"]})
    start = time.time()
    try:
        prometheus.wait_for(f'{c.API_QUOTA_USED.series}{{quota="daily_api_requests"}}', timeout=30)
        panel = next(p for p in build_all()["overview"]["panels"] if p.get("id") == c.PANEL_API_QUOTA.id)
        assert panel["title"] == c.PANEL_API_QUOTA.title
        (target,) = panel["targets"]
        expr = target["expr"]
        for variable, value in SUBSTITUTE.items():
            expr = expr.replace(variable, value)
        deadline = time.monotonic() + 20
        while True:  # the first scrapes land a moment after the series first answers an instant query
            body = httpx.get(prometheus.url + "/api/v1/query_range", params={
                "query": expr, "start": start, "end": time.time(), "step": "1s"}, timeout=30).json()
            assert body["status"] == "success", body
            if body["data"]["result"] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        (result,) = body["data"]["result"]
        assert {k: result["metric"][k] for k in ("target", "quota", "window")} == {
            "target": "salesforce", "quota": "daily_api_requests", "window": "1d"}
        spent = sum(salesforce.admin.get("/admin/quota").json()["usage"]["DailyApiRequests"].values())
        last = float(result["values"][-1][1])
        assert 0 < last <= 100 * spent / 2000  # what the CRM said last, never more than it has spent
        # the quota alert's expression is valid PromQL over these series (silent: nothing runs out)
        rule = next(r for r in build_rules(load_config(path)).alerts if r.name == "CrmApiQuotaExhaustion")
        answer = httpx.get(prometheus.url + "/api/v1/query", params={"query": rule.expr}, timeout=10).json()
        assert answer == {"status": "success", "data": {"resultType": "vector", "result": []}}
    finally:
        prometheus.stop()
        exporter.stop()

"""API quotas as a first-class signal, against each vendor dialect of the sandbox.

The exporter's quota series follow what the dialect reports as its quota is spent and
changed; a load test whose plan would spend more than its share of what is left is
refused before anything is sent; one whose quota falls under the floor mid-run aborts,
cleans up and says what it spent. Quotas are made tiny through the sandbox's admin API
(PUT /admin/quota), so every test takes seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from crmpulse import load_config
from tests.helpers import ExporterProcess, SandboxProcess
from tests.integration.preset_harness import (
    DYNAMICS,
    HUBSPOT,
    SALESFORCE,
    Vendor,
    client,
    counts,
    init_config,
    loadtest,
    reset,
    set_env,
    set_quota,
    wait_for_counts,
)

#: per vendor: the quota load tests keep within, the admin API's name for its limit, its default
QUOTA = {"salesforce": ("daily_api_requests", "daily_api_requests", 100_000),
         "hubspot": ("daily", "daily", 625_000),
         "dynamics365": ("requests", "requests", 6000)}
#: the sandbox's counter of that quota (GET /admin/quota: usage)
COUNTER = {"salesforce": "DailyApiRequests", "hubspot": "daily", "dynamics365": "requests"}
#: the window label: the profile's window as crmpulse writes durations
WINDOW = {"salesforce": "1d", "hubspot": "1d", "dynamics365": "5m"}
VENDORS = [SALESFORCE, HUBSPOT, DYNAMICS]


@pytest.fixture(scope="module", params=VENDORS, ids=lambda v: v.preset)
def dialect(request: pytest.FixtureRequest) -> Iterator[tuple[Vendor, SandboxProcess]]:
    vendor: Vendor = request.param
    crm = SandboxProcess("--dialect", vendor.dialect, "--seed", "30", "--sync-lag", "200ms")
    yield vendor, crm
    crm.stop()


@pytest.fixture
def crm(dialect: tuple[Vendor, SandboxProcess],
        monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Vendor, SandboxProcess]]:
    vendor, sandbox = dialect
    set_env(vendor, monkeypatch)
    reset(sandbox)
    yield vendor, sandbox
    reset(sandbox)


def used_now(vendor: Vendor, path: Path) -> float:
    """What the CRM says is spent, read the way a load test reads it."""
    from crmpulse.loadtests.quota import read_quota

    reading = read_quota(load_config(path)).get(QUOTA[vendor.preset][0])
    assert reading is not None
    return reading.used


def test_quota_series_appear_and_move_with_use_and_with_the_limit(tmp_path: Path,
                                                                   crm: tuple[Vendor, SandboxProcess]) -> None:
    vendor, sandbox = crm
    name, knob, default = QUOTA[vendor.preset]
    path = init_config(vendor, tmp_path, sandbox.url, fast=True)  # checks every 10 s
    target = load_config(path).target.name
    exporter = ExporterProcess(path, env=vendor.env)
    try:
        labels = {"target": target, "quota": name, "window": WINDOW[vendor.preset]}
        exporter.wait_for("crmpulse_api_quota_limit", float(default), timeout=20, **labels)
        before = exporter.metrics()
        used = [v for (n, lab), v in before.items()
                if n == "crmpulse_api_quota_used" and dict(lab).get("quota") == name]
        assert len(used) == 1 and used[0] >= 1
        window = {v for (n, lab), v in before.items() if n == "crmpulse_api_quota_window_seconds"
                  and dict(lab).get("quota") == name}
        assert window == {300.0 if vendor is DYNAMICS else 86400.0}
        with client(path) as other:  # another integration spends the same quota
            assert all(other.call("list_accounts").ok for _ in range(5))
        exporter.wait_until("crmpulse_api_quota_used", lambda v: v >= used[0] + 5, timeout=25, **labels)
        set_quota(sandbox, **{knob: 4321})
        if vendor is DYNAMICS:  # Dataverse says only what is left; the profile knows the limit
            exporter.wait_until("crmpulse_api_quota_used", lambda v: v >= 6000 - 4321, timeout=25, **labels)
        else:
            exporter.wait_for("crmpulse_api_quota_limit", 4321.0, timeout=25, **labels)
        if vendor is HUBSPOT:  # the account-info API names its reset: midnight UTC in the sandbox
            resets = [v for (n, lab), v in exporter.metrics().items()
                      if n == "crmpulse_api_quota_reset_timestamp_seconds"]
            assert len(resets) == 1 and time.time() < resets[0] <= time.time() + 86400
    finally:
        exporter.stop()


def test_a_plan_that_would_spend_more_than_its_share_of_what_is_left_is_refused(
        tmp_path: Path, crm: tuple[Vendor, SandboxProcess]) -> None:
    vendor, sandbox = crm
    name, knob, _ = QUOTA[vendor.preset]
    path = init_config(vendor, tmp_path, sandbox.url, fast=True)
    before = counts(sandbox)
    set_quota(sandbox, **{knob: int(used_now(vendor, path)) + 100})  # 20 % of ~100 left: 20 requests
    proc, report = loadtest(path, vendor, tmp_path / "report", timeout=60)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    refusal = [line for line in proc.stderr.splitlines() if line.startswith("crmpulse: refusing")]
    # HubSpot reports its daily count twice (headers, and the account-info API): both refuse
    assert len(refusal) == (2 if vendor is HUBSPOT else 1), proc.stderr
    assert f"more than loadtest.quota.max_share (20 %) of what is left of API quota {name} (" in refusal[0]
    assert "Running Locust" not in proc.stdout and report == {}
    assert counts(sandbox) == before


def test_a_run_whose_quota_falls_under_the_floor_aborts_cleans_up_and_reports_what_it_spent(
        tmp_path: Path, crm: tuple[Vendor, SandboxProcess]) -> None:
    vendor, sandbox = crm
    name, knob, _ = QUOTA[vendor.preset]
    path = init_config(vendor, tmp_path, sandbox.url, fast=True)
    path.write_text(path.read_text().replace("duration: 15s", "duration: 20s").replace(
        "loadtest:\n", "loadtest:\n  quota: {floor: 50%}\n", 1))
    before = counts(sandbox)
    squeezed: list[int] = []

    def other_integrations() -> None:
        """Once the run has spent 40 requests, the org's quota shrinks to 1.5x what is spent:
        what is left (a third of the limit) is under the floor (half), yet enough to clean up."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            usage = sandbox.admin.get("/admin/quota").json()["usage"].get(COUNTER[vendor.preset], {})
            spent = int(sum(usage.values()))
            if spent >= 40:
                set_quota(sandbox, **{knob: int(spent * 1.5) + 60})
                squeezed.append(spent)
                return
            time.sleep(0.2)

    squeezer = threading.Thread(target=other_integrations, daemon=True)
    squeezer.start()
    proc, report = loadtest(path, vendor, tmp_path / "report", timeout=120)
    squeezer.join(5)
    assert squeezed, "the run never spent 40 requests"
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert report["verdict"] == "ABORTED"
    assert report["aborted"].startswith(f"API quota {name}: ")
    assert "under loadtest.quota.floor (50 % of the limit)" in report["aborted"]
    assert report["duration_s"] < 19
    quota = report["quota"][name]
    assert quota["spent"] is not None and quota["spent"] >= squeezed[0] - quota["used_before"]
    assert quota["used_after"] == quota["used_before"] + quota["spent"]
    said = f"API quota {name} ({WINDOW[vendor.preset]}): {quota['spent']:,.0f} spent during the run"
    assert f"crmpulse: {said}" in proc.stdout
    assert f"- {said}" in (tmp_path / "report" / "summary.md").read_text()
    assert report["cleanup"]["left"] == 0
    assert wait_for_counts(sandbox, before) == before

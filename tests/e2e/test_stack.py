"""The whole loop on one machine: `crmpulse stack up`, an outage that pages and resolves,
a sync stall that alerts, a broken tenant filter that pages, every other
broken protection firing its own access alert, and silence while healthy (access
checks of every kind included). Real Prometheus, real Alertmanager.

Alert windows are compressed 60x (`--compress 60`) and intervals shortened, so an hour
of burn-rate window is a minute here: what is tested is the wiring (rules loaded,
alerts routed, notifications delivered and resolved), with the same rules and routes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import SandboxProcess, parse_metrics, reserve_port

ADMIN = {"X-Admin-Token": "sandbox-admin"}


def notifications(folder: Path) -> list[dict]:
    path = folder / "alerts.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def seen(folder: Path, alertname: str, status: str) -> bool:
    return any(a["labels"].get("alertname") == alertname and a["status"] == status
               for n in notifications(folder) for a in n["alerts"])


def wait_for(folder: Path, alertname: str, status: str, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if seen(folder, alertname, status):
            return time.monotonic() - start
        time.sleep(0.5)
    raise AssertionError(f"{alertname} never {status}: {notifications(folder)}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("stack")
    ports = {name: reserve_port() for name in ("sandbox", "probe", "prometheus", "alertmanager",
                                             "receiver", "loadtest")}
    args = [arg for name, port in ports.items() for arg in (f"--{name}-port", str(port))]
    up = subprocess.run([sys.executable, "-m", "crmpulse", "stack", "up", "--dir", str(folder),
                         "--check-interval", "2s", "--scrape-interval", "1s", "--eval-interval", "1s",
                         "--compress", "60", *args], capture_output=True, text=True, timeout=120)
    assert up.returncode == 0, up.stdout + up.stderr
    yield folder, f"http://127.0.0.1:{ports['sandbox']}", f"http://127.0.0.1:{ports['prometheus']}"
    subprocess.run([sys.executable, "-m", "crmpulse", "stack", "down", "--dir", str(folder)],
                   capture_output=True, text=True, timeout=120)


def evaluations(prometheus: str) -> float:
    """Rule group evaluations Prometheus has run so far (its own counter, on its /metrics)."""
    metrics = parse_metrics(httpx.get(prometheus + "/metrics", timeout=5).text)
    return sum(value for (name, _), value in metrics.items()
               if name == "prometheus_rule_group_iterations_total")


def test_a_healthy_run_sends_no_alert(stack) -> None:  # type: ignore[no-untyped-def]
    folder, _, prometheus = stack
    # Quiet over 25 evaluations of every rule group (25 s here, ~25 minutes of alert time
    # at 60x): counted, not slept, so a slow machine watches just as many evaluations.
    start = evaluations(prometheus)
    groups = len(httpx.get(prometheus + "/api/v1/rules", timeout=5).json()["data"]["groups"])
    deadline = time.monotonic() + 120
    while evaluations(prometheus) < start + 25 * groups:
        assert time.monotonic() < deadline, "Prometheus stopped evaluating rules"
        time.sleep(0.5)
    sent = notifications(folder)
    if sent:  # say why, so a failure here can be understood from the CI log alone
        print((folder / "probe.log").read_text()[-3000:])
    assert sent == []


def test_a_full_outage_pages_and_resolves_after_recovery(stack) -> None:  # type: ignore[no-untyped-def]
    folder, sandbox, _ = stack
    httpx.put(sandbox + "/admin/faults", json={"outage": True}, headers=ADMIN)
    detected = wait_for(folder, "CrmAvailabilityBurnRateFast", "firing", timeout=60)
    httpx.delete(sandbox + "/admin/faults", headers=ADMIN)
    resolved = wait_for(folder, "CrmAvailabilityBurnRateFast", "resolved", timeout=120)
    print(f"page delivered {detected:.1f}s after the outage began; resolved {resolved:.1f}s after "
          "recovery (alert windows compressed 60x)")
    assert not seen(folder, "CrmProtectionBroken", "firing")  # an outage is not a broken protection


def test_a_sync_stall_fires_the_sync_alert(stack) -> None:  # type: ignore[no-untyped-def]
    folder, sandbox, _ = stack
    httpx.put(sandbox + "/admin/faults", json={"sync_stall": True}, headers=ADMIN)
    try:
        detected = wait_for(folder, "CrmSyncStalled", "firing", timeout=120)
        print(f"sync stall alert delivered {detected:.1f}s after the stall began "
              "(30 s threshold, then 5 s compressed `for`)")
    finally:
        httpx.delete(sandbox + "/admin/faults", headers=ADMIN)


def test_a_tenant_filter_dropped_from_search_pages_at_once_and_resolves(stack) -> None:  # type: ignore[no-untyped-def]
    folder, sandbox, _ = stack
    httpx.put(sandbox + "/admin/faults", json={"unfiltered_reads": ["search"]}, headers=ADMIN)
    try:
        detected = wait_for(folder, "CrmTenantIsolationBroken", "firing", timeout=60)
    finally:
        httpx.delete(sandbox + "/admin/faults", headers=ADMIN)
    resolved = wait_for(folder, "CrmTenantIsolationBroken", "resolved", timeout=60)
    page = next(a for n in notifications(folder) for a in n["alerts"]
                if a["labels"].get("alertname") == "CrmTenantIsolationBroken")
    assert {k: page["labels"][k] for k in ("severity", "check", "kind", "path")} == {
        "severity": "critical", "check": "tenant_isolation", "kind": "isolation", "path": "search"}
    print(f"isolation page delivered {detected:.1f}s after search lost its tenant filter; resolved "
          f"{resolved:.1f}s after it was restored")
    assert not seen(folder, "CrmPersonalDataExposed", "firing")  # only the broken protection pages


#: knob -> (the alert it must fire, its severity, the check and path in its labels)
ACCESS_KNOBS = {
    "widen_role": ("CrmRoleScopeBroken", "critical", "restricted_role", "get_contact"),
    "expose_sensitive": ("CrmPersonalDataExposed", "critical", "personal_data", "get_contact"),
    "ignore_revocation": ("CrmRevokedTokenAccepted", "warning", "token_revocation", "revoke"),
    "login_throttle": ("CrmLoginThrottleMissing", "warning", "login_lockout", "login"),
}


def test_every_other_broken_protection_fires_its_own_access_alert_and_resolves(stack) -> None:  # type: ignore[no-untyped-def]
    """The four other knobs at once: each breaks a different check (that each breaks exactly its
    own is proven run by run in tests/integration/test_access_native.py), so what this adds is
    the wiring of every access alert: rule loaded, fired, routed, delivered with its labels,
    resolved. At once, so the stack pays one detection wait, not four."""
    folder, sandbox, _ = stack
    before = len(notifications(folder))
    httpx.put(sandbox + "/admin/faults", headers=ADMIN, json={
        "widen_role": True, "expose_sensitive": True, "ignore_revocation": True, "login_throttle": False})
    try:
        for alert, *_ in ACCESS_KNOBS.values():
            wait_for(folder, alert, "firing", timeout=60)
    finally:
        httpx.delete(sandbox + "/admin/faults", headers=ADMIN)
    for alert, severity, check, path in ACCESS_KNOBS.values():
        wait_for(folder, alert, "resolved", timeout=60)
        fired = [a["labels"] for n in notifications(folder) for a in n["alerts"]
                 if a["labels"].get("alertname") == alert and a["status"] == "firing"]
        assert {"severity": severity, "check": check, "path": path} in [
            {k: labels.get(k) for k in ("severity", "check", "path")} for labels in fired], (alert, fired)
    assert not [a for n in notifications(folder)[before:] for a in n["alerts"]  # isolation held
                if a["labels"].get("alertname") == "CrmTenantIsolationBroken" and a["status"] == "firing"]


def test_status_reports_and_down_stops_only_what_up_started(stack, sandbox: SandboxProcess) -> None:  # type: ignore[no-untyped-def]
    folder, _, _ = stack
    status = subprocess.run([sys.executable, "-m", "crmpulse", "stack", "status", "--dir", str(folder)],
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0 and status.stdout.count(" up ") == 5, status.stdout
    state = json.loads((folder / "stack.json").read_text())
    pids = [p["pid"] for p in state["processes"].values()]
    down = subprocess.run([sys.executable, "-m", "crmpulse", "stack", "down", "--dir", str(folder)],
                          capture_output=True, text=True, timeout=120)
    assert down.returncode == 0
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    assert httpx.get(sandbox.url + "/healthz").status_code == 200  # not ours: still running


def test_up_says_exactly_what_to_install_when_prometheus_is_missing(tmp_path: Path) -> None:
    import os

    run = subprocess.run([sys.executable, "-m", "crmpulse", "stack", "up", "--dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PATH": str(tmp_path)})  # no prometheus on this PATH
    assert run.returncode == 2
    assert "sudo apt-get install prometheus prometheus-alertmanager" in run.stderr
    assert not (tmp_path / "stack.json").exists()

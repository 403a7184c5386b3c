"""What every preset test does the same way: a dialect sandbox, the starter `init` writes for it,
and ways to show that nothing was left behind.

Each tests/integration/test_preset_<vendor>.py proves its preset against the sandbox's emulation
of that vendor, as a user would run it: `crmpulse init --preset NAME --sandbox`, `check-config`,
`smoke`, the exporter's checks and canary sync pair, a short load test; then the vendor's auth
flow, paging, error bodies and throttling through crmpulse's own clients.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from crmpulse import Client, load_config
from crmpulse.app.cli import main
from tests.helpers import ADMIN, ExporterProcess, SandboxProcess


@dataclass(frozen=True)
class Vendor:
    preset: str                 # crmpulse init --preset
    dialect: str                # crmpulse sandbox --dialect
    env: dict[str, str]         # what the starter's ${env:...} references resolve to


SALESFORCE = Vendor("salesforce", "salesforce", {"SALESFORCE_CLIENT_SECRET": "sandbox-secret"})
HUBSPOT = Vendor("hubspot", "hubspot", {"HUBSPOT_TOKEN": "pat-na1-11111111-1111-4111-8111-111111111111"})
DYNAMICS = Vendor("dynamics365", "dynamics", {"DYNAMICS_CLIENT_SECRET": "sandbox-secret"})


def start(vendor: Vendor) -> SandboxProcess:
    """The vendor's dialect with 250 contacts: enough for two pages of Salesforce's smallest batch."""
    return SandboxProcess("--dialect", vendor.dialect, "--seed", "250", "--sync-lag", "300ms")


def set_env(vendor: Vendor, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in vendor.env.items():
        monkeypatch.setenv(name, value)


def init_config(vendor: Vendor, folder: Path, url: str, fast: bool = False) -> Path:
    """`crmpulse init --preset NAME --sandbox`, pointed at this test's sandbox port.

    ``fast`` shortens the probes' intervals and the load test, as a test must.
    """
    path = folder / "crmpulse.yaml"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["init", "--preset", vendor.preset, "--sandbox", "--force", str(path)]) == 0
    text = path.read_text().replace("http://127.0.0.1:8085", url).replace("127.0.0.1:9687", "127.0.0.1:0")
    if fast:
        text = re.sub(r"interval: \S+", "interval: 10s", text)
        text = re.sub(r"timeout: \S+", "timeout: 10s", text)
        text = re.sub(r"sla: \S+", "sla: 20s", text)
        text = text.replace("duration: 1m", "duration: 15s").replace("users: 5", "users: 3")
    path.write_text(text)
    return path


def counts(crm: SandboxProcess) -> dict[str, int]:
    """Records in the sandbox's store, by table: what "left nothing behind" is measured by."""
    return {k: int(v) for k, v in crm.admin.get("/admin/stats").json()["records"].items()}


def wait_for_counts(crm: SandboxProcess, expected: dict[str, int], timeout: float = 30) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        now = counts(crm)
        if now == expected or time.monotonic() > deadline:
            return now
        time.sleep(0.2)


def smoke(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["smoke", "-c", str(path)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def exporter_run(path: Path, vendor: Vendor, crm: SandboxProcess) -> dict[str, float]:
    """Run the exporter until every check has succeeded and the canary was seen; its metrics."""
    exporter = ExporterProcess(path, env=vendor.env)
    try:
        loaded = load_config(path)
        for check in loaded.config.probes.checks:
            exporter.wait_for("crmpulse_check_success", 1.0, timeout=40, check=check.name,
                              target=loaded.target.name)
        for pair in loaded.config.probes.sync:
            exporter.wait_until("crmpulse_sync_canaries_seen_total", lambda v: v >= 1, timeout=60,
                                pair=pair.name, target=loaded.target.name)
        metrics = exporter.metrics()
    finally:
        exporter.stop()
    return {f"{name}{dict(sorted(labels))}": value for (name, labels), value in metrics.items()}


def loadtest(path: Path, vendor: Vendor, report: Path, timeout: float = 240) -> tuple[subprocess.CompletedProcess[str],
                                                                                     dict[str, Any]]:
    env = {**{k: v for k, v in os.environ.items() if k != "LOCUST_SKIP_MONKEY_PATCH"}, **vendor.env}
    text = path.read_text()
    if "metrics_listen" not in text:
        path.write_text(text.replace("loadtest:\n", "loadtest:\n  metrics_listen: \"off\"\n"
                                     "  think_time: 500ms\n", 1))
    proc = subprocess.run([sys.executable, "-m", "crmpulse", "loadtest", "-c", str(path),
                           "--report-dir", str(report)], capture_output=True, text=True,
                          timeout=timeout, env=env)
    data = json.loads((report / "report.json").read_text()) if (report / "report.json").exists() else {}
    return proc, data


def client(path: Path) -> Client:
    return Client(load_config(path))


def set_quota(crm: SandboxProcess, **limits: Any) -> None:
    response = crm.admin.put("/admin/quota", json=limits)
    assert response.status_code == 200, response.text


def reset(crm: SandboxProcess) -> None:
    """Back to the state after start: faults, quota, tokens, records."""
    assert httpx.post(crm.url + "/admin/reset", headers=ADMIN, timeout=30).status_code == 200

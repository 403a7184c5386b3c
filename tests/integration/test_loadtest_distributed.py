"""A distributed run for real: `crmpulse loadtest --master` and two `--worker` processes on
loopback, each its own process tree, as they would be on three machines."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import SandboxProcess, reserve_port, write_config
from tests.integration.test_loadtest import ENV, config, marked
from tests.integration.test_loadtest_interrupt import INTERRUPTED, wait_until


def start(path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "crmpulse", "loadtest", "-c", str(path), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV,
                            start_new_session=True)


def cluster(tmp_path: Path, body: str) -> tuple[subprocess.Popen[str], list[subprocess.Popen[str]], Path]:
    path = write_config(tmp_path, body)
    port = reserve_port()
    folder = tmp_path / "report"
    master = start(path, "--master", "--expect-workers", "2", "--master-port", str(port),
                   "--report-dir", str(folder))
    workers = [start(path, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port))
               for _ in range(2)]
    return master, workers, folder


def test_a_master_and_two_workers_merge_every_request_and_clean_up(crm: SandboxProcess,
                                                                  tmp_path: Path) -> None:
    master, workers, folder = cluster(tmp_path, config(crm.url, shape="{kind: soak, users: 4, duration: 8s}"))
    out, _ = master.communicate(timeout=180)
    assert master.returncode == 0, out[-3000:]
    for worker in workers:
        assert worker.wait(timeout=60) == 0, worker.stdout.read()[-2000:] if worker.stdout else ""
    data = json.loads((folder / "report.json").read_text())
    assert data["verdict"] == "PASS"
    assert data["cleanup"]["created"] > 0 and data["cleanup"]["left"] == 0
    assert not data["events"], data["events"]  # every worker's cleanup report arrived
    assert marked(crm) == 0
    # Locust's own count of requests (its CSV) and the merged HDR histograms agree
    with open(folder / "locust_stats.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["Type"] not in ("journey", "")]
    theirs = {r["Name"]: int(r["Request Count"]) for r in rows}
    ours = {name: op["requests"] for name, op in data["operations"].items()}
    assert set(ours) == set(theirs)
    assert sum(ours.values()) >= sum(theirs.values()) > 0  # Locust may miss a worker's last report
    assert sum(ours.values()) <= sum(theirs.values()) * 1.1


def test_a_worker_that_is_stopped_ends_the_distributed_run_interrupted_and_clean(
        crm: SandboxProcess, tmp_path: Path) -> None:
    master, workers, folder = cluster(tmp_path, config(crm.url, shape="{kind: soak, users: 4, duration: 60s}"))
    wait_until(lambda: marked(crm) >= 6, 60, "records to be created")
    workers[0].send_signal(signal.SIGTERM)
    sent = time.monotonic()
    out, _ = master.communicate(timeout=180)
    assert master.returncode == INTERRUPTED, out[-3000:]
    assert time.monotonic() - sent < 60
    data = json.loads((folder / "report.json").read_text())
    assert data["verdict"] == "INTERRUPTED" and "received SIGTERM" in data["interrupted"]
    assert data["cleanup"]["left"] == 0 and marked(crm) == 0
    for worker in workers:
        worker.wait(timeout=60)

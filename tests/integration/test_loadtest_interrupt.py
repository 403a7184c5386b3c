"""Interrupting a load test, as people and machines do: Ctrl-C in a real terminal, signals to
the launcher, to Locust, to its process group, kill -9, a worker dying. Every run must end
INTERRUPTED (never PASS) with its reports, and leave nothing behind (or `crmpulse sweep` does).

Each run starts with SIGINT ignored, as in a background job of a non-interactive shell
(`bash scripts/test &`), so these tests also prove that crmpulse restores SIGINT itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import random
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers import SandboxProcess, write_config
from tests.integration.test_loadtest import ENV, config, marked

REPO = Path(__file__).resolve().parents[2]
INTERRUPTED = 130
SOAK = "{kind: soak, users: 4, duration: 40s, spawn_rate: 4}"


def ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def wait_until(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def report(folder: Path) -> dict:
    return json.loads((folder / "report.json").read_text())


def assert_interrupted_and_clean(folder: Path, crm: SandboxProcess, reason: str) -> dict:
    data = report(folder)
    assert data["verdict"] == "INTERRUPTED", data["verdict"]
    assert reason in data["interrupted"], data["interrupted"]
    assert data["cleanup"]["left"] == 0, data["cleanup"]
    assert data["cleanup"]["created"] <= data["cleanup"]["deleted"] + data["cleanup"]["swept"]
    summary = (folder / "summary.md").read_text()
    assert "INTERRUPTED" in summary and "left 0" in summary and "Interrupted:" in summary
    html = (folder / "report.html").read_text()
    assert "INTERRUPTED" in html and "What happened" in html
    assert marked(crm) == 0
    return data


class Terminal:
    """`crmpulse loadtest` on a real pseudo-terminal, its output read as a person would see it."""

    def __init__(self, args: list[str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: a session leader whose terminal is the pty
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a background job's children start
            os.environ.update(ENV)
            os.execv(sys.executable, [sys.executable, "-m", "crmpulse", "loadtest", *args])
        self.output = b""
        self.status: int | None = None

    def read(self, timeout: float = 0.1) -> None:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if ready:
            with contextlib.suppress(OSError):  # EIO: the child closed the terminal
                self.output += os.read(self.fd, 65536)

    def wait_for(self, pattern: bytes, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.output):
            assert self.poll() is None, self.text()[-3000:]
            assert time.monotonic() < deadline, self.text()[-3000:]
            self.read()

    def ctrl_c(self) -> None:
        os.write(self.fd, b"\x03")  # the terminal turns it into SIGINT for the foreground group

    def poll(self) -> int | None:
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
        return self.status

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            assert time.monotonic() < deadline, self.text()[-3000:]
            self.read()
        for _ in range(20):
            self.read(0.05)
        os.close(self.fd)
        assert self.status is not None
        return self.status

    def text(self) -> str:
        return self.output.decode("utf-8", "replace")


def test_ctrl_c_in_a_terminal_at_random_moments_always_ends_interrupted_with_reports_and_nothing_left(
        crm: SandboxProcess, tmp_path: Path) -> None:
    path = write_config(tmp_path, config(crm.url, shape=SOAK))
    rng = random.Random(int(os.environ.get("CRMPULSE_TEST_SEED", time.time())))
    moments = sorted(rng.uniform(0.0, 9.0) for _ in range(10))
    for i, moment in enumerate(moments):
        folder = tmp_path / f"run{i}"
        terminal = Terminal(["-c", str(path), "--report-dir", str(folder)])
        terminal.wait_for(rb"Load test plan", timeout=60)
        pressed = time.monotonic()
        while time.monotonic() - pressed < moment:
            terminal.read()
        terminal.ctrl_c()
        stopped = time.monotonic()
        code = terminal.wait(timeout=120)
        out = terminal.text()
        assert code == INTERRUPTED, f"Ctrl-C at {moment:.1f}s: exit {code}\n{out[-3000:]}"
        assert "verdict PASS" not in out and "Traceback" not in out, out[-3000:]
        assert re.search(r"verdict INTERRUPTED", out), out[-3000:]
        data = assert_interrupted_and_clean(folder, crm, "SIGINT")
        # stopping (users, cleanup, sweep, report) is prompt: well under the 40 s run
        assert time.monotonic() - stopped < 30, (moment, data["events"])


def launch(tmp_path: Path, body: str, *args: str) -> tuple[subprocess.Popen[str], Path]:
    path = write_config(tmp_path, body)
    folder = tmp_path / "report"
    proc = subprocess.Popen([sys.executable, "-m", "crmpulse", "loadtest", "-c", str(path),
                             "--report-dir", str(folder), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV,
                            preexec_fn=ignore_sigint, start_new_session=True)
    return proc, folder


def locust_of(proc: subprocess.Popen[str]) -> int:
    found: list[int] = []
    wait_until(lambda: bool(found.extend(children(proc.pid)) or found), 30, "Locust to start")
    return found[0]


@pytest.mark.parametrize(("whom", "signum"), [
    ("the launcher", signal.SIGINT),
    ("the launcher's process group", signal.SIGINT),
    ("the launcher", signal.SIGTERM),
    ("Locust", signal.SIGINT),
    ("Locust", signal.SIGTERM),  # what `kubectl delete pod` / `rollout restart` sends
])
def test_a_signal_ends_the_run_interrupted_cleaned_up_and_reported(
        crm: SandboxProcess, tmp_path: Path, whom: str, signum: signal.Signals) -> None:
    proc, folder = launch(tmp_path, config(crm.url, shape=SOAK))
    locust = locust_of(proc)
    wait_until(lambda: marked(crm) >= 5, 60, "records to be created")
    sent = time.monotonic()
    if whom == "Locust":
        os.kill(locust, signum)
    elif whom == "the launcher":
        os.kill(proc.pid, signum)
    else:
        os.killpg(proc.pid, signum)
    out, _ = proc.communicate(timeout=150)
    took = time.monotonic() - sent
    assert proc.returncode == INTERRUPTED, out[-3000:]
    assert "verdict INTERRUPTED" in out and "verdict PASS" not in out
    assert_interrupted_and_clean(folder, crm, signal.Signals(signum).name)
    grace = yaml.safe_load_all((REPO / "deploy/kubernetes/locust.yaml").read_text())
    master = next(d for d in grace if d and d["metadata"]["name"] == "crmpulse-locust-master")
    assert took < master["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]


def test_kill_9_leaves_records_that_crmpulse_sweep_removes_and_the_next_run_points_to(
        crm: SandboxProcess, tmp_path: Path) -> None:
    proc, _ = launch(tmp_path, config(crm.url, shape=SOAK))
    locust = locust_of(proc)
    wait_until(lambda: marked(crm) >= 5, 60, "records to be created")
    os.killpg(locust, signal.SIGKILL)  # Locust's session: master and workers at once
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    left = marked(crm)
    assert left >= 5
    path = tmp_path / "crmpulse.yaml"

    def sweep(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "crmpulse", "sweep", "-c", str(path), *args],
                              capture_output=True, text=True, timeout=120, env=ENV)

    dry = sweep("--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert re.search(r"list_contacts -> delete_contact: listed \d+, marked \d+, would delete \d+", dry.stdout)
    assert sum(int(n) for n in re.findall(r"would delete (\d+)", dry.stdout)) == left
    assert marked(crm) == left
    young = sweep("--older-than", "1h")
    assert "deleted 0" in young.stdout and marked(crm) == left
    other = sweep("--run", "20000101t000000-abcdef")  # another run's records: none of these
    assert marked(crm) == left, other.stdout
    # the next load test says what is left and how to sweep it
    nxt = subprocess.run([sys.executable, "-m", "crmpulse", "loadtest", "-c", str(path), "--duration", "1s",
                          "--report-dir", str(tmp_path / "next")], capture_output=True, text=True,
                         timeout=120, env=ENV)
    assert "record(s) left by earlier load tests of sandbox" in nxt.stdout, nxt.stdout[-2000:]
    assert f"crmpulse sweep -c {path}" in nxt.stdout
    done = sweep()
    assert done.returncode == 0, done.stdout + done.stderr
    assert sum(int(n) for n in re.findall(r", deleted (\d+)", done.stdout)) >= left
    assert marked(crm) == 0


def test_a_worker_killed_mid_run_ends_the_run_interrupted_and_its_records_are_swept(
        crm: SandboxProcess, tmp_path: Path) -> None:
    proc, folder = launch(tmp_path, config(crm.url, shape=SOAK), "--workers", "2")
    locust = locust_of(proc)
    workers: list[int] = []
    wait_until(lambda: bool(workers.extend(children(locust)) or len(workers) >= 2), 30, "two workers")
    wait_until(lambda: marked(crm) >= 6, 60, "records to be created")
    os.kill(workers[0], signal.SIGKILL)
    out, _ = proc.communicate(timeout=150)
    assert proc.returncode == INTERRUPTED, out[-3000:]
    data = assert_interrupted_and_clean(folder, crm, "worker")
    assert data["cleanup"]["swept"] > 0  # the dead worker could not delete its own records


def test_a_launcher_killed_with_9_still_gets_its_run_stopped_and_cleaned_by_locust(
        crm: SandboxProcess, tmp_path: Path) -> None:
    proc, folder = launch(tmp_path, config(crm.url, shape=SOAK))
    locust = locust_of(proc)
    wait_until(lambda: marked(crm) >= 5, 60, "records to be created")
    os.kill(proc.pid, signal.SIGKILL)  # Locust is told by the kernel (parent-death signal)
    proc.wait(timeout=10)
    wait_until(lambda: not Path(f"/proc/{locust}").exists() or
               Path(f"/proc/{locust}/stat").read_text().split()[2] == "Z", 120, "Locust to end")
    assert_interrupted_and_clean(folder, crm, "SIGTERM")

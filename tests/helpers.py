"""Test helpers: real server processes on loopback, configs written to disk.

Ports: servers of ours bind port 0 and say which port they got (read from their first
output line); programs that cannot (Prometheus, Alertmanager, Locust's master) get a
:func:`reserve_port`, never a port bound and closed in the ephemeral range, which the
kernel may hand to any outgoing connection before the server binds it.
"""

from __future__ import annotations

import fcntl
import os
import random
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import IO, Any

import httpx

ADMIN = {"X-Admin-Token": "sandbox-admin"}

# promtool's rule tests are the suite's heaviest CPU work (minutes of simulated evaluations)
# and measure nothing in real time; at a lower priority they leave the cores to the tests
# that do (load tests with latency gates, the demo) when pytest-xdist runs them side by side.
PROMTOOL = ["nice", "-n", "10", "promtool"]
_LOCKS = Path(tempfile.gettempdir()) / "crmpulse-test-ports"
_HELD: list[IO[str]] = []


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def reserve_port() -> int:
    """A loopback port for a server that cannot bind port 0 itself; held until this process exits.

    It comes from below the kernel's ephemeral range (so no outgoing connection is ever
    given it as a source port), is locked by a file lock shared by every test process on
    the machine (so two concurrent runs never pick the same one), and is skipped when
    anything listens on it already.
    """
    _LOCKS.mkdir(exist_ok=True)
    high = min(_ephemeral_low(), 32768) - 1
    candidates = list(range(20000, high))
    random.shuffle(candidates)
    for port in candidates:
        handle = open(_LOCKS / str(port), "w")  # noqa: SIM115 - held for the process's life
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                handle.close()
                continue
        _HELD.append(handle)
        return port
    raise RuntimeError("no free port to reserve")


class Output:
    """Drains a child's stdout on a thread (a full pipe would block the child) and keeps it."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._proc = proc
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float = 20) -> re.Match[str]:
        """The first line matching ``pattern``; raises with the output when the child exits first."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        seen = 0
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    if match := regex.search(line):
                        return match
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or (not self._thread.is_alive() and seen == len(self.lines)):
                    raise RuntimeError(f"no line like {pattern!r} in: {self.text()[-3000:]}")
                self._changed.wait(min(left, 0.5))

    def text(self) -> str:
        return "".join(self.lines)

    def join(self, timeout: float = 10) -> str:
        self._thread.join(timeout)
        return self.text()


class SandboxProcess:
    """A `crmpulse sandbox` subprocess, reached only over HTTP like any CRM."""

    def __init__(self, *args: str, scheme: str = "http", verify: ssl.SSLContext | bool = True) -> None:
        self.verify = verify
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "crmpulse", "sandbox", "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.output = Output(self.proc)
        self.port = int(self.output.wait_for(r"Sandbox CRM on \S+://127\.0\.0\.1:(\d+)").group(1))
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        wait_http(self.url + "/healthz", self.proc, verify=verify)
        self.admin = httpx.Client(base_url=self.url, headers=ADMIN, timeout=10, verify=verify)

    def faults(self, **knobs: Any) -> dict[str, Any]:
        response = self.admin.put("/admin/faults", json=knobs)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def reset(self) -> None:
        assert self.admin.delete("/admin/faults").status_code == 200

    def stats(self) -> dict[str, Any]:
        return dict(self.admin.get("/admin/stats").json())

    def token(self) -> str:
        r = httpx.post(self.url + "/oauth/token", data={
            "grant_type": "client_credentials", "client_id": "crmpulse",
            "client_secret": "sandbox-secret"})
        return str(r.json()["access_token"])

    def stop(self) -> None:
        self.admin.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def write_config(directory: Path, body: str, name: str = "crmpulse.yaml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
    return path


def wait_http(url: str, proc: subprocess.Popen[Any], timeout: float = 20, **kwargs: Any) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1, **kwargs).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up (exit {proc.poll()})")
        time.sleep(0.05)


def parse_metrics(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Exposition text -> {(sample name, labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def sample(metrics: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
           **labels: str) -> float | None:
    return metrics.get((name, frozenset(labels.items())))


class ExporterProcess:
    """`crmpulse probe` as a subprocess on a free loopback port."""

    def __init__(self, config: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "crmpulse", "probe", "--config", str(config),
             "--listen", "127.0.0.1:0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, **(env or {})})
        self.output = Output(self.proc)
        self.port = int(self.output.wait_for(r"metrics on https?://127\.0\.0\.1:(\d+)/").group(1))
        self.url = f"http://127.0.0.1:{self.port}"
        if "--web-config-file" not in args:
            wait_http(self.url + "/-/healthy", self.proc)

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        return parse_metrics(httpx.get(self.url + "/metrics", timeout=5).text)

    def wait_for(self, name: str, value: float, timeout: float = 15, **labels: str) -> float:
        """Wait until a sample has ``value``; return the seconds it took."""
        return self.wait_until(name, lambda v: v == value, timeout, **labels)

    def wait_until(self, name: str, condition: Any, timeout: float = 15, **labels: str) -> float:
        """Wait until ``condition(sample value)`` holds; return the seconds it took."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            value = sample(self.metrics(), name, **labels)
            if value is not None and condition(value):
                return time.monotonic() - start
            time.sleep(0.1)
        raise AssertionError(f"{name}{labels} never met the condition: {sample(self.metrics(), name, **labels)}")

    def stop(self) -> str:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.output.join()


class PrometheusProcess:
    """A real Prometheus (Debian package) on loopback, scraping the given targets every second."""

    def __init__(self, folder: Path, jobs: dict[str, list[str]], rule_files: list[str] | None = None,
                 extra_scrape: str = "", evaluation_interval: str = "1s") -> None:
        import shutil

        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("prometheus is not installed: apt-get install prometheus "
                               "(scripts/test installs it when run as root)")
        self.port = reserve_port()
        self.url = f"http://127.0.0.1:{self.port}"
        scrape = "".join(
            f"  - job_name: {job}\n    static_configs: [{{targets: [{', '.join(targets)}]}}]\n"
            for job, targets in jobs.items())
        rules = "rule_files: [" + ", ".join(rule_files or []) + "]\n"
        (folder / "prometheus.yml").write_text(
            f"global: {{scrape_interval: 1s, scrape_timeout: 900ms, evaluation_interval: "
            f"{evaluation_interval}}}\n{rules}scrape_configs:\n{scrape}{extra_scrape}")
        self.proc = subprocess.Popen(
            [binary, f"--config.file={folder / 'prometheus.yml'}",
             f"--storage.tsdb.path={folder / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}",
             "--web.enable-lifecycle"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wait_http(self.url + "/-/ready", self.proc, timeout=30)

    def query(self, expr: str) -> list[dict[str, Any]]:
        response = httpx.get(self.url + "/api/v1/query", params={"query": expr}, timeout=10)
        body = response.json()
        if body.get("status") != "success":
            raise AssertionError(f"query {expr!r} failed: {body}")
        return list(body["data"]["result"])

    def wait_for(self, expr: str, timeout: float = 30) -> float:
        """Wait until ``expr`` returns at least one series; return the seconds it took."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.query(expr):
                return time.monotonic() - start
            time.sleep(0.2)
        raise AssertionError(f"{expr} returned nothing within {timeout}s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()

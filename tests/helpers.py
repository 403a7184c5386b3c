"""Test helpers: a real sandbox CRM process on loopback, configs written to disk."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx

ADMIN = {"X-Admin-Token": "sandbox-admin"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SandboxProcess:
    """A `crmpulse sandbox` subprocess, reached only over HTTP like any CRM."""

    def __init__(self, *args: str, scheme: str = "http", verify: ssl.SSLContext | bool = True) -> None:
        self.port = free_port()
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.verify = verify
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "crmpulse", "sandbox", "--port", str(self.port), *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=1, verify=verify).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                out = self.proc.stdout.read() if self.proc.stdout else ""
                raise RuntimeError(f"sandbox did not start: {out}")
            time.sleep(0.05)
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


def wait_http(url: str, proc: subprocess.Popen[str], timeout: float = 20, **kwargs: Any) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1, **kwargs).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            out = proc.stdout.read() if proc.stdout else ""
            raise RuntimeError(f"{url} did not come up: {out}")
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
        import os

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = config
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "crmpulse", "probe", "--config", str(config),
             "--listen", f"127.0.0.1:{self.port}", *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, **(env or {})})
        if "--web-config-file" not in args:
            wait_http(self.url + "/-/healthy", self.proc)

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        return parse_metrics(httpx.get(self.url + "/metrics", timeout=5).text)

    def wait_for(self, name: str, value: float, timeout: float = 15, **labels: str) -> float:
        """Wait until a sample has ``value``; return the seconds it took."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if sample(self.metrics(), name, **labels) == value:
                return time.monotonic() - start
            time.sleep(0.1)
        raise AssertionError(f"{name}{labels} never became {value}: {sample(self.metrics(), name, **labels)}")

    def stop(self) -> str:
        self.proc.terminate()
        try:
            out, _ = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out or ""


class PrometheusProcess:
    """A real Prometheus (Debian package) on loopback, scraping the given targets every second."""

    def __init__(self, folder: Path, jobs: dict[str, list[str]], rule_files: list[str] | None = None,
                 extra_scrape: str = "", evaluation_interval: str = "1s") -> None:
        import shutil

        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("prometheus is not installed: apt-get install prometheus "
                               "(scripts/test installs it when run as root)")
        self.port = free_port()
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

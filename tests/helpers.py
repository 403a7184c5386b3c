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

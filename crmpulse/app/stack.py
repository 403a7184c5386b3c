"""``crmpulse stack up|down|status``: the whole loop on one machine, on loopback.

The sandbox CRM, the probe exporter, a real Prometheus with the generated rules,
a real Alertmanager, and a webhook receiver that writes every notification to
``<dir>/alerts.jsonl``. Prometheus and Alertmanager come from Debian's packages
(``prometheus``, ``prometheus-alertmanager``); when they are missing the command
says exactly what to install. ``down`` stops what ``up`` started (the processes in
``<dir>/stack.json`` whose command line names ``<dir>``) and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml

__all__ = ["Stack", "StackPorts", "receive"]

STARTER = Path(__file__).parents[1] / "starter.yaml"
SANDBOX_SECRET = "sandbox-secret"  # the sandbox's public test secret
#: The sandbox's other public test credentials (docs/sandbox.md), for the access checks: name ->
#: (file the secret is written to, the credential, with the file's reference for its secret).
ACCESS_CREDENTIALS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "tenant2": ("tenant2-secret", "tenant2-secret", {
        "type": "oauth2_client_credentials", "client_id": "crmpulse-tenant2", "client_secret": None}),
    "restricted": ("restricted-secret", "restricted-secret", {
        "type": "oauth2_client_credentials", "client_id": "crmpulse-restricted", "client_secret": None}),
    "integration": ("client-secret", SANDBOX_SECRET, {
        "type": "oauth2_client_credentials", "client_id": "crmpulse", "client_secret": None}),
    "canary": ("canary-password", "canary-password", {
        "type": "basic", "username": "canary@sandbox.example", "password": None}),
}


ACCESS_CHECKS = """\
- name: tenant_isolation
  kind: isolation
  observer: tenant2
  reads:
    get: {operation: get_contact, with: {id: "{{ id }}"}}
    list: {operation: list_contacts, with: {tag: "{{ marker }}"}}
    search: {operation: search_contacts, with: {email: "{{ email }}"}}
    export: {operation: export_contacts}
- name: restricted_role
  kind: role_scope
  credential: restricted
  own: {operation: create_contact, with: {first_name: Crmpulse, last_name: "Own {{ nonce }}",
                                          email: "{{ email }}", tags: ["{{ marker }}"]}}
  denied:
    - {operation: get_contact, with: {id: "{{ other_id }}"}, status: [404]}
    - {operation: delete_contact, with: {id: "{{ own_id }}"}, status: [403]}
  hidden_fields:
    - {operation: get_contact, with: {id: "{{ own_id }}"}, fields: [phone]}
- name: personal_data
  kind: exposure
  reads:
    - {operation: get_contact, with: {id: "{{ id }}"}}
    - {operation: export_contacts}
  allow: [{detector: email, path: $.email}, {detector: email, path: csv.email}]
- name: token_revocation
  kind: revocation
  credential: integration
  revoke: {operation: revoke_token, with: {token: "{{ token }}"}}
  read: {operation: whoami}
- name: login_lockout
  kind: bruteforce
  credential: canary
  account: canary@sandbox.example
  login: {operation: login, with: {username: "{{ username }}", password: "{{ password }}"}}
"""


def access_checks(timeout: float) -> list[dict[str, Any]]:
    """An access check of each kind the native sandbox can break (as in docs/probes.md)."""
    checks: list[dict[str, Any]] = yaml.safe_load(ACCESS_CHECKS)
    wait = f"{max(0.2, timeout * 0.6):g}s"  # a wait inside a run must end before the run does
    by_kind = {c["kind"]: c for c in checks}
    by_kind["isolation"]["reads"]["search"]["within"] = wait  # the search index lags the store
    by_kind["revocation"]["within"] = wait
    return checks


@dataclass
class StackPorts:
    sandbox: int = 8085
    probe: int = 9687
    prometheus: int = 9090
    alertmanager: int = 9093
    receiver: int = 9095
    loadtest: int = 9688


def binaries() -> dict[str, str | None]:
    return {"prometheus": shutil.which("prometheus"),
            "alertmanager": shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")}


class Stack:
    def __init__(self, folder: Path, ports: StackPorts | None = None) -> None:
        self.dir = folder.resolve()
        self.ports = ports or StackPorts()
        self.state_file = self.dir / "stack.json"

    # -- up --------------------------------------------------------------------------

    def up(self, check_interval: float = 10.0, scrape_interval: float = 5.0,
           eval_interval: float = 5.0, compress: float = 1.0, out: Any = sys.stdout,
           alerting: bool = True, loadtest_shape: dict[str, Any] | None = None) -> int:
        """Start the stack; with ``alerting=False`` only the sandbox and the exporter."""
        found = binaries()
        missing = [name for name, path in found.items() if path is None]
        if missing and alerting:
            packages = " ".join("prometheus" if m == "prometheus" else "prometheus-alertmanager"
                                for m in missing)
            print(f"crmpulse stack needs {', '.join(missing)}: sudo apt-get install {packages}",
                  file=sys.stderr)
            return 2
        if self.state_file.exists() and self._alive():
            print(f"a stack is already running from {self.dir}: crmpulse stack down --dir {self.dir}",
                  file=sys.stderr)
            return 2
        self.dir.mkdir(parents=True, exist_ok=True)
        config = self._write_config(check_interval, loadtest_shape)
        if alerting:
            self._write_rules(config, compress, eval_interval)
            self._write_prometheus(scrape_interval, eval_interval)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        p = self.ports
        py = sys.executable
        plan = [
            ("receiver", [py, "-m", "crmpulse.app.stack", "receive", "--port", str(p.receiver),
                          "--out", str(self.dir / "alerts.jsonl")], f"http://127.0.0.1:{p.receiver}/"),
            ("sandbox", [py, "-m", "crmpulse", "sandbox", "--port", str(p.sandbox),
                         "--db", str(self.dir / "sandbox.db")], f"http://127.0.0.1:{p.sandbox}/healthz"),
            ("probe", [py, "-m", "crmpulse", "probe", "--config", str(config), "--listen",
                       f"127.0.0.1:{p.probe}"], f"http://127.0.0.1:{p.probe}/-/healthy"),
            ("alertmanager", [str(found["alertmanager"]),
                              f"--config.file={self.dir / 'alertmanager.yml'}",
                              f"--storage.path={self.dir / 'alertmanager'}",
                              f"--web.listen-address=127.0.0.1:{p.alertmanager}",
                              "--cluster.listen-address="], f"http://127.0.0.1:{p.alertmanager}/-/ready"),
            ("prometheus", [str(found["prometheus"]), f"--config.file={self.dir / 'prometheus.yml'}",
                            f"--storage.tsdb.path={self.dir / 'prometheus'}",
                            f"--web.listen-address=127.0.0.1:{p.prometheus}", "--web.enable-lifecycle"],
             f"http://127.0.0.1:{p.prometheus}/-/ready"),
        ]
        if not alerting:
            plan = [step for step in plan if step[0] in ("sandbox", "probe")]
        state: dict[str, Any] = {"dir": str(self.dir), "processes": {}}
        for name, command, health in plan:
            log = open(self.dir / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True, cwd=self.dir)
            state["processes"][name] = {"pid": proc.pid, "health": health}
            self.state_file.write_text(json.dumps(state, indent=2))
            if not self._wait(health, proc):
                print(f"crmpulse stack: {name} did not start; see {self.dir / (name + '.log')}",
                      file=sys.stderr)
                self.down(out=out)
                return 1
            print(f"  {name:13} up  {urlsplit(health).scheme}://{urlsplit(health).netloc}", file=out)
            if name == "probe":
                # Let every check complete a first, warm run (token fetch, imports, TLS
                # contexts) before Prometheus starts counting: cold-start slowness is not
                # an outage, and in compressed time one slow run would page.
                self._warm_up(f"http://127.0.0.1:{p.probe}/metrics")
        if alerting:
            print(f"Stack up from {self.dir}: Prometheus http://127.0.0.1:{p.prometheus}, Alertmanager "
                  f"http://127.0.0.1:{p.alertmanager}, notifications in {self.dir / 'alerts.jsonl'}",
                  file=out)
        return 0

    def _write_config(self, check_interval: float, loadtest_shape: dict[str, Any] | None) -> Path:
        data = yaml.safe_load(STARTER.read_text())
        data["target"]["base_url"] = f"http://127.0.0.1:{self.ports.sandbox}"
        # the sandbox's public test secret, by file: the stack's processes need no env
        secret = self.dir / "client-secret"
        secret.write_text(SANDBOX_SECRET)
        data["target"]["auth"]["client_secret"] = f"${{file:{secret}}}"
        credentials = data["target"].setdefault("credentials", {})
        for name, (file, value, spec) in ACCESS_CREDENTIALS.items():
            (self.dir / file).write_text(value)
            key = "password" if "password" in spec else "client_secret"
            credentials[name] = {**spec, key: f"${{file:{self.dir / file}}}"}
        data["probes"]["checks"] += access_checks(max(0.5, check_interval * 0.8))
        data["probes"]["listen"] = f"127.0.0.1:{self.ports.probe}"
        for check in data["probes"]["checks"]:
            check["interval"] = f"{check_interval:g}s"
            check["timeout"] = f"{max(0.5, check_interval * 0.8):g}s"
        for pair in data["probes"]["sync"]:
            pair["interval"] = f"{check_interval:g}s"
        data["loadtest"]["metrics_listen"] = f"127.0.0.1:{self.ports.loadtest}"
        if loadtest_shape:
            data["loadtest"]["shape"] = loadtest_shape
        path = self.dir / "crmpulse.yaml"
        path.write_text("# Written by `crmpulse stack up` for the stack's sandbox.\n"
                        + yaml.safe_dump(data, sort_keys=False))
        return path

    def _write_rules(self, config: Path, compress: float, eval_interval: float) -> None:
        """The generated rules and Alertmanager config, with the stack's timings and receiver."""
        from crmpulse.alerts.generate import generate

        from ..config import load_config

        quick = compress > 1  # notify within seconds in compressed time
        written = generate(load_config(config), self.dir / "rules", compress=compress,
                           evaluation_interval=eval_interval,
                           webhook_url=f"http://127.0.0.1:{self.ports.receiver}/alerts",
                           group_wait=1.0 if quick else 10.0, group_interval=2.0 if quick else 60.0)
        shutil.copyfile(written["alertmanager.yml"], self.dir / "alertmanager.yml")

    def _write_prometheus(self, scrape_interval: float, eval_interval: float) -> None:
        p = self.ports
        config = {
            "global": {"scrape_interval": f"{scrape_interval:g}s",
                       "scrape_timeout": f"{max(1.0, scrape_interval * 0.8):g}s",
                       "evaluation_interval": f"{eval_interval:g}s"},
            "rule_files": [str(self.dir / "rules" / "*.rules.yml")],
            "alerting": {"alertmanagers": [{"static_configs": [
                {"targets": [f"127.0.0.1:{p.alertmanager}"]}]}]},
            "scrape_configs": [
                {"job_name": "crmpulse", "static_configs": [{"targets": [f"127.0.0.1:{p.probe}"]}]},
                {"job_name": "crmpulse_loadtest",
                 "static_configs": [{"targets": [f"127.0.0.1:{p.loadtest}"]}]}],
        }
        (self.dir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))

    @staticmethod
    def _warm_up(url: str, timeout: float = 30.0) -> None:
        from prometheus_client.parser import text_string_to_metric_families

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                text = httpx.get(url, timeout=2).text
            except httpx.HTTPError:
                text = ""
            values = [s.value for f in text_string_to_metric_families(text) for s in f.samples
                      if s.name == "crmpulse_check_success"]
            if values and all(v == 1 for v in values):
                return
            time.sleep(0.5)

    @staticmethod
    def _wait(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            try:
                if httpx.get(url, timeout=1).status_code < 500:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        return False

    # -- down / status -------------------------------------------------------------------

    def _processes(self) -> dict[str, dict[str, Any]]:
        if not self.state_file.exists():
            return {}
        return dict(json.loads(self.state_file.read_text())["processes"])

    def _ours(self, pid: int) -> bool:
        """Only a process whose command line names this stack's folder is ours to stop."""
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return False
        return str(self.dir) in cmdline

    def _alive(self) -> bool:
        return any(self._ours(p["pid"]) for p in self._processes().values())

    def down(self, out: Any = sys.stdout) -> int:
        processes = self._processes()
        if not processes:
            print(f"no stack running from {self.dir}", file=out)
            return 0
        for name, info in reversed(list(processes.items())):
            pid = info["pid"]
            if not self._ours(pid):
                continue
            os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while self._ours(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
            if self._ours(pid):
                os.killpg(pid, signal.SIGKILL)
            print(f"  {name:13} stopped", file=out)
        self.state_file.unlink()
        return 0

    def status(self, out: Any = sys.stdout) -> int:
        processes = self._processes()
        if not processes:
            print(f"no stack running from {self.dir}", file=out)
            return 1
        healthy = True
        for name, info in processes.items():
            running = self._ours(info["pid"])
            try:
                ok = running and httpx.get(info["health"], timeout=2).status_code < 500
            except httpx.HTTPError:
                ok = False
            healthy = healthy and ok
            print(f"  {name:13} {'up' if ok else 'DOWN':5} pid {info['pid']:<8} {info['health']}", file=out)
        return 0 if healthy else 1


def receive(port: int, out: Path) -> None:
    """A webhook receiver for Alertmanager: one JSON line per notification."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"crmpulse webhook receiver\n")

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                payload = json.loads(body)
            except ValueError:
                self.send_response(400)
                self.end_headers()
                return
            line = {"received_at": time.time(), "status": payload.get("status"),
                    "alerts": [{"status": a.get("status"), "labels": a.get("labels", {})}
                               for a in payload.get("alerts", [])]}
            with out.open("a") as handle:
                handle.write(json.dumps(line) + "\n")
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m crmpulse.app.stack")
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("receive")
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--out", required=True)
    args = parser.parse_args()
    receive(args.port, Path(args.out))

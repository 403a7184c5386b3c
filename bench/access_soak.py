"""Do the access probes hold, run after run, against a healthy CRM? A soak with no fault.

The sandbox CRM and the exporter run for ``--minutes`` (10 by default) with an access check
of every kind (the same checks ``crmpulse stack`` runs, docs/probes.md's worked example) and
one plain http check as the peer, every ``--interval``. ``/metrics`` is read every few seconds:
any run that failed, any path whose protection was reported broken, any personal-data value
counted, and any record left behind afterwards is a failure (exit 1). It prints, per check,
its runs and failures and the mean run time as a ratio to the http check's, measured in the
same run (what an access run costs next to a plain probe).

    python bench/access_soak.py [--minutes 10] [--interval 10s]

Everything runs on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import IO

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from crmpulse.app.stack import ACCESS_CREDENTIALS, access_checks  # noqa: E402
from crmpulse.units import parse_duration  # noqa: E402
from tests.helpers import parse_metrics  # noqa: E402

ACCESS = ("tenant_isolation", "restricted_role", "personal_data", "token_revocation", "login_lockout")


def _drain(stream: IO[str]) -> None:
    for _ in stream:
        pass


def start(command: list[str], pattern: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=os.environ)
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if match := re.search(pattern, line):
            # keep reading what it prints: a full pipe would block it mid-soak
            threading.Thread(target=_drain, args=(proc.stdout,), daemon=True).start()
            return proc, int(match.group(1))
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit(f"{command[3]} did not start")


def write_config(folder: Path, sandbox: str, interval: float) -> Path:
    timeout = max(0.5, interval * 0.8)
    credentials = {}
    for name, (file, value, spec) in ACCESS_CREDENTIALS.items():
        (folder / file).write_text(value)
        key = "password" if "password" in spec else "client_secret"
        credentials[name] = {**spec, key: f"${{file:{folder / file}}}"}
    (folder / "client-secret").write_text("sandbox-secret")
    checks = [{"name": "api_read", "kind": "http", "operation": "list_accounts"}, *access_checks(timeout)]
    for check in checks:
        check.update(interval=f"{interval:g}s", timeout=f"{timeout:g}s")
    config = {"target": {"name": "sandbox", "base_url": sandbox,
                         "auth": {"type": "oauth2_client_credentials", "client_id": "crmpulse",
                                  "client_secret": f"${{file:{folder / 'client-secret'}}}"},
                         "credentials": credentials},
              "probes": {"checks": checks}}
    path = folder / "crmpulse.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def value(metrics: dict, name: str, **labels: str) -> float:
    return metrics.get((name, frozenset(labels.items())), 0.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--interval", default="10s", help="every check's interval")
    args = parser.parse_args()
    interval = parse_duration(args.interval)
    py = sys.executable
    sandbox, sandbox_port = start([py, "-m", "crmpulse", "sandbox", "--port", "0", "--seed", "200"],
                                  r"Sandbox CRM on http://127\.0\.0\.1:(\d+)")
    url = f"http://127.0.0.1:{sandbox_port}"
    exporter = None
    broken: Counter[str] = Counter()
    exposed: Counter[str] = Counter()
    try:
        with tempfile.TemporaryDirectory() as folder:
            config = write_config(Path(folder), url, interval)
            exporter, port = start([py, "-m", "crmpulse", "probe", "--config", str(config), "--listen",
                                    "127.0.0.1:0"], r"metrics on http://127\.0\.0\.1:(\d+)/")
            print(f"soaking {args.minutes:g} min: sandbox {url}, exporter :{port}, every check each "
                  f"{interval:g}s", flush=True)
            end = time.monotonic() + args.minutes * 60
            metrics: dict = {}
            while time.monotonic() < end:
                time.sleep(min(5.0, max(0.0, end - time.monotonic())))
                metrics = parse_metrics(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
                for (name, labels), sample in metrics.items():
                    label = dict(labels)
                    if name == "crmpulse_access_holds" and sample == 0:
                        broken[f"{label['check']} {label['path']}"] += 1
                    if name == "crmpulse_access_exposed_values" and sample > 0:
                        exposed[f"{label['check']} {label['path']} {label['detector']}"] += 1
            exporter.terminate()
            exporter.wait(timeout=30)
            exporter = None
        token = httpx.post(url + "/oauth/token", data={
            "grant_type": "client_credentials", "client_id": "crmpulse",
            "client_secret": "sandbox-secret"}).json()["access_token"]
        export = httpx.get(url + "/api/v1/export/contacts",
                           headers={"Authorization": f"Bearer {token}"}).text
        left = sum(1 for line in export.splitlines() if "crmpulse-sandbox-access-" in line)
        logins = httpx.get(url + "/admin/access", headers={"X-Admin-Token": "sandbox-admin"}).json()["logins"]
    finally:
        for proc in (exporter, sandbox):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)

    def mean(check: str) -> float:
        labels = {"target": "sandbox", "check": check}
        count = value(metrics, "crmpulse_check_duration_seconds_count", **labels)
        return value(metrics, "crmpulse_check_duration_seconds_sum", **labels) / max(count, 1)

    peer = mean("api_read")
    failed_any = False
    print(f"\n{'check':18} {'runs':>5} {'failed':>6} {'mean run':>9} {'x http check':>12}")
    for check in ("api_read", *ACCESS):
        runs = value(metrics, "crmpulse_check_runs_total", target="sandbox", check=check)
        failed = sum(v for (name, labels), v in metrics.items()
                     if name == "crmpulse_check_failures_total" and dict(labels).get("check") == check)
        failed_any = failed_any or failed > 0 or runs < 2
        print(f"{check:18} {runs:5.0f} {failed:6.0f} {mean(check) * 1000:7.1f}ms {mean(check) / peer:11.1f}x")
    # a run that starts while the previous run's lock holds sends no wrong password and holds
    # on the CRM's "locked" answer: only runs after the lockout ends test the throttle afresh
    print(f"\ncanary locked by wrong passwords {logins['locks']} times (sandbox lockout "
          f"{logins['lockout_s']:g}s; the other login_lockout runs found it still locked)")
    print(f"protections reported broken: {dict(broken) or 'none'}; personal data counted: "
          f"{dict(exposed) or 'none'}; marked records left: {left}")
    ok = not failed_any and not broken and not exposed and left == 0
    print("HOLDS: every access probe held on every run" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

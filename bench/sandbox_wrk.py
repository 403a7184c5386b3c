"""How fast is the sandbox CRM? wrk against its API, as a ratio of its own bare /healthz.

The sandbox must never be the bottleneck of the demo, the tests or a load test, so
this measures requests per second for the endpoints a load test hits hardest (get a
contact, list a page of contacts, search) and prints each as a ratio of the same
server's /healthz, which has no auth, no database and no JSON work: the ceiling of
the HTTP stack on this machine, measured in the same run. Absolute numbers drift on
shared machines; the ratios are what docs/benchmarks.md records.

    python bench/sandbox_wrk.py [--duration 8] [--connections 32] [--seed 1000]

Needs `wrk` (Debian package wrk). Traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wrk(url: str, token: str | None, duration: int, connections: int) -> float:
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency"]
    if token:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if not match:
        raise RuntimeError(f"wrk printed no rate:\n{out}")
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} non-2xx responses; the benchmark is invalid")
    return float(match.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=8, help="seconds per endpoint")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seed", type=int, default=1000, help="contacts in the sandbox")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("bench: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "crmpulse", "sandbox", "--port", str(port),
                             "--seed", str(args.seed)], stdout=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        for _ in range(200):
            try:
                if httpx.get(base + "/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        token = httpx.post(base + "/oauth/token", data={
            "grant_type": "client_credentials", "client_id": "crmpulse",
            "client_secret": "sandbox-secret"}).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        contact = httpx.get(base + "/api/v1/contacts?limit=1", headers=auth).json()["data"][0]
        cases = [
            ("healthz (peer: bare HTTP stack)", "/healthz", None),
            ("get contact", f"/api/v1/contacts/{contact['id']}", token),
            ("list 50 contacts", "/api/v1/contacts?limit=50", token),
            ("search contacts", f"/api/v1/search/contacts?q={contact['last_name']}", token),
        ]
        rates = [(name, wrk(base + path, tok, args.duration, args.connections))
                 for name, path, tok in cases]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    peer = rates[0][1]
    print(f"sandbox CRM, wrk -t2 -c{args.connections} -d{args.duration}s, {args.seed} contacts, "
          f"{os.cpu_count()} cores shared by wrk and the server")
    print(f"{'endpoint':34} {'req/s':>9} {'ratio to healthz':>17}")
    for name, rate in rates:
        print(f"{name:34} {rate:9.0f} {rate / peer:17.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

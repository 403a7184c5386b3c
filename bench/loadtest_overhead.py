"""Requests per second of one Locust process: crmpulse's journey layer vs plain Locust vs wrk.

All three hit the same fast static endpoint (nginx from Debian serving canned JSON on
loopback) in the same run:

- crmpulse: the support_agent journey (search, read, update) through the operations
  engine (templates, auth, interpretation, pacing, journey timing), one process;
- peer: a plain Locust FastHttpUser sending the same three requests, one process;
- ceiling: wrk with one thread against the same endpoint.

Printed: each rate and crmpulse's as a ratio of plain Locust's (goal: at least 0.8).

    python bench/loadtest_overhead.py [--seconds 10] [--users 20] [--rounds 3]

Needs the Debian packages nginx and wrk. Traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CANNED = ('{"id":"c1","email":"a@b.example","sub":"bench","total":1,"next_cursor":null,'
          '"access_token":"t","expires_in":3600,"data":[{"id":"c1","last_name":"Smith"}]}')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_nginx(folder: Path, port: int) -> subprocess.Popen[bytes]:
    (folder / "nginx.conf").write_text(f"""
worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {folder}/body;
  server {{
    listen 127.0.0.1:{port};
    location / {{ default_type application/json; return 200 '{CANNED}'; }}
  }}
}}
""")
    return subprocess.Popen([shutil.which("nginx") or "/usr/sbin/nginx", "-c", str(folder / "nginx.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def locust_rate(args: list[str], folder: Path, name: str, seconds: int, users: int,
                env: dict[str, str]) -> float:
    prefix = folder / name
    subprocess.run([sys.executable, "-m", "locust", *args, "--headless", "--only-summary",
                    "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--csv", str(prefix),
                    "--loglevel", "ERROR"], env=env, capture_output=True, timeout=seconds + 120)
    with open(f"{prefix}_stats.csv", newline="") as handle:
        rows = {r["Name"]: r for r in csv.DictReader(handle)}
    total = rows["Aggregated"]
    requests = int(total["Request Count"])
    if "handle_a_ticket" in str(rows) or any(r["Type"] == "journey" for r in rows.values()):
        requests -= sum(int(r["Request Count"]) for r in rows.values() if r["Type"] == "journey")
    return requests / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for tool in ("nginx", "wrk"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            print(f"bench: install the Debian package {tool}", file=sys.stderr)
            return 2
    folder = Path(tempfile.mkdtemp(prefix="crmpulse-ltbench-"))
    port = free_port()
    nginx = start_nginx(folder, port)
    base = f"http://127.0.0.1:{port}"
    try:
        time.sleep(0.5)
        (folder / "crmpulse.yaml").write_text(f"""
target:
  name: bench
  base_url: {base}
  safety: {{allow_loadtest: true, max_users: 1000, max_rps: 1000000}}
profile: {REPO / 'bench' / 'loadtest' / 'static.yaml'}
loadtest:
  journeys: {{support_agent: 1}}
  think_time: 0ms
  metrics_listen: "off"
  shape: {{kind: soak, users: {args.users}, duration: {args.seconds}s, spawn_rate: {args.users}}}
""")
        env = {**os.environ, "CRMPULSE_PROGRESS": "0", "CRMPULSE_REPORT_DIR": str(folder / "report"),
               "CRMPULSE_CONFIG": str(folder / "crmpulse.yaml")}
        crm_runs, plain_runs = [], []
        for round_ in range(args.rounds):  # alternate, so drift on a shared machine hits both
            crm_runs.append(locust_rate(
                ["-f", str(REPO / "loadtests" / "locustfile.py"), "--crmpulse-config",
                 str(folder / "crmpulse.yaml")], folder, f"crmpulse{round_}", args.seconds,
                args.users, env))
            plain_runs.append(locust_rate(
                ["-f", str(REPO / "bench" / "loadtest" / "plain_locustfile.py"), "--host", base],
                folder, f"plain{round_}", args.seconds, args.users, env))
        out = subprocess.run(["wrk", "-t1", f"-c{args.users}", f"-d{args.seconds}s",
                              f"{base}/api/v1/contacts/c1"], capture_output=True, text=True).stdout
        ceiling = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
    crm, plain = statistics.median(crm_runs), statistics.median(plain_runs)
    ratios = [c / p for c, p in zip(crm_runs, plain_runs, strict=True)]
    print(f"one process, {args.users} users, {args.rounds} alternating rounds of {args.seconds}s "
          "against nginx canned JSON on loopback (medians)")
    print(f"{'crmpulse journey (support_agent)':36} {crm:9.0f} req/s  rounds: "
          + ", ".join(f"{r:.0f}" for r in crm_runs))
    print(f"{'plain Locust FastHttpUser (peer)':36} {plain:9.0f} req/s  rounds: "
          + ", ".join(f"{r:.0f}" for r in plain_runs))
    print(f"{'wrk, one thread (ceiling)':36} {ceiling:9.0f} req/s")
    print(f"ratio crmpulse/plain Locust: {statistics.median(ratios):.2f} median of rounds "
          f"({', '.join(f'{r:.2f}' for r in ratios)}; goal >= 0.80); "
          f"plain Locust/wrk: {plain / ceiling:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

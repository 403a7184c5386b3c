"""Requests per second: crmpulse's journey layer vs plain Locust, and what HDR recording costs.

Every run hits the same fast static endpoint (nginx from Debian serving canned JSON on
loopback), alternating rounds so that drift on a shared machine hits all alike:

- crmpulse: the support_agent journey (search, read, update) through the operations
  engine (templates, auth, interpretation, pacing, journey timing, HDR recording);
- crmpulse without HDR: the same, with HDR recording switched off (the peer that prices it);
- peer: a plain Locust FastHttpUser sending the same three requests;
each in one process, then with two worker processes (Locust's --processes 2);
- ceiling: wrk with one thread against the same endpoint.

With ``--ablation``, two more peers run in the same rounds (one process only), the same
requests on thinner HTTP paths (bench/loadtest/plain_reporting_locustfile.py): through
geventhttpclient's ``UserAgent`` reported with ``events.request`` directly (prices Locust's
session and response wrappers), and through geventhttpclient's pooled ``HTTPClient`` itself,
the path crmpulse's users take (loadtests/wire.py): crmpulse's CPU per request less that
peer's is what the journey layer's own work costs.

Printed: each rate, crmpulse/plain Locust (goal: at least 0.95) and the cost of HDR
recording, 1 - crmpulse/crmpulse without HDR (goal: at most 2 %); then the same ratios
from the CPU time each run's processes spent per request while the test ran
(bench/loadtest/cpu_probe.py), which on a shared machine scatter far less than rates.

    python bench/loadtest_overhead.py [--seconds 10] [--users 20] [--rounds 3] [--ablation]

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
                env: dict[str, str], processes: int = 0) -> tuple[float, float]:
    """Requests per second, and CPU microseconds per request (all the run's processes)."""
    prefix = folder / name
    extra = ["--processes", str(processes)] if processes else []
    cpu_file = folder / f"{name}.cpu"
    args = [args[0], f"{args[1]},{REPO / 'bench' / 'loadtest' / 'cpu_probe.py'}", *args[2:]]
    subprocess.run([sys.executable, "-m", "locust", *args, "--headless", "--only-summary",
                    "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--csv", str(prefix),
                    "--loglevel", "ERROR", *extra], env={**env, "BENCH_CPU_FILE": str(cpu_file)},
                   capture_output=True, timeout=seconds + 120)
    with open(f"{prefix}_stats.csv", newline="") as handle:
        rows = {r["Name"]: r for r in csv.DictReader(handle)}
    total = rows["Aggregated"]
    requests = int(total["Request Count"])
    if int(total["Failure Count"]):  # a rate of failing requests measures nothing
        failures = Path(f"{prefix}_failures.csv").read_text()[:2000]
        raise SystemExit(f"bench: {name} had {total['Failure Count']} failed requests:\n{failures}")
    if "handle_a_ticket" in str(rows) or any(r["Type"] == "journey" for r in rows.values()):
        requests -= sum(int(r["Request Count"]) for r in rows.values() if r["Type"] == "journey")
    probes = [line.split() for line in cpu_file.read_text().splitlines()] if cpu_file.exists() else []
    cpu, sent = sum(float(p[1]) for p in probes), sum(int(p[2]) for p in probes)
    return requests / seconds, (cpu / sent * 1e6 if sent else float("nan"))


def record_cost_us(count: int = 200_000) -> float:
    """Microseconds one LatencyBook.record takes (median of five batches)."""
    os.environ.setdefault("LOCUST_SKIP_MONKEY_PATCH", "1")
    sys.path.insert(0, str(REPO))
    from crmpulse.loadtests.latency import LatencyBook

    times = []
    for _ in range(5):
        book = LatencyBook()
        start = time.perf_counter()
        for i in range(count):
            book.record("operation", "search_contacts", 0.0012 + (i % 977) * 1e-5, True)
        times.append((time.perf_counter() - start) / count * 1e6)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--users", type=int, default=20, help="users per process")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ablation", action="store_true",
                        help="also price Locust's wrappers and the journey layer over the bare client")
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
  shape: {{kind: soak, users: {args.users}, duration: {args.seconds}s, spawn_rate: 200}}
""")
        env = {**os.environ, "CRMPULSE_PROGRESS": "0", "CRMPULSE_REPORT_DIR": str(folder / "report"),
               "CRMPULSE_CONFIG": str(folder / "crmpulse.yaml")}
        env.pop("LOCUST_SKIP_MONKEY_PATCH", None)
        crm_args = ["--crmpulse-config", str(folder / "crmpulse.yaml"), "--crmpulse-metrics-listen", "off"]
        files = {"crmpulse": ["-f", str(REPO / "loadtests" / "locustfile.py"), *crm_args],
                 "crmpulse without HDR": ["-f", str(REPO / "bench" / "loadtest" / "nohdr_locustfile.py"),
                                          *crm_args],
                 "plain Locust FastHttpUser (peer)": ["-f", str(REPO / "bench" / "loadtest" /
                                                            "plain_locustfile.py"), "--host", base]}
        ablation = {"plain, UserAgent + events.request": "direct",
                    "plain, HTTPClient + events.request": "raw"} if args.ablation else {}
        reporting = ["-f", str(REPO / "bench" / "loadtest" / "plain_reporting_locustfile.py"), "--host", base]
        rates: dict[tuple[str, int], list[float]] = {}
        cpu_us: dict[tuple[str, int], list[float]] = {}
        for processes in (0, 2):
            for round_ in range(args.rounds):  # alternate, so drift on a shared machine hits all
                schedule = [(name, argv, env) for name, argv in files.items()]
                if not processes:
                    schedule += [(name, reporting, {**env, "BENCH_PEER": peer})
                             for name, peer in ablation.items()]
                for name, argv, run_env in schedule:
                    if processes and name.startswith("crmpulse"):  # the shape sets the users
                        argv = [*argv, "--crmpulse-users", str(processes)]
                    tag = run_env.get("BENCH_PEER", name[:8].replace(" ", ""))
                    rate, per_request = locust_rate(argv, folder, f"{tag}{processes}{round_}", args.seconds,
                                                    args.users * max(processes, 1), run_env, processes)
                    rates.setdefault((name, processes), []).append(rate)
                    cpu_us.setdefault((name, processes), []).append(per_request)
        out = subprocess.run(["wrk", "-t1", f"-c{args.users}", f"-d{args.seconds}s",
                              f"{base}/api/v1/contacts/c1"], capture_output=True, text=True).stdout
        ceiling = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
    print(f"{args.users} users per process, {args.rounds} alternating rounds of {args.seconds}s against "
          "nginx canned JSON on loopback (medians of rounds)")
    for processes in (0, 2):
        label = "one process" if not processes else f"{processes} worker processes"
        print(f"\n{label}:")
        for name in files:
            runs = rates[(name, processes)]
            print(f"  {name:36} {statistics.median(runs):9.0f} req/s  rounds: "
                  + ", ".join(f"{r:.0f}" for r in runs))
        crm, bare, plain = (rates[(n, processes)] for n in files)
        ratio = [c / p for c, p in zip(crm, plain, strict=True)]
        cost = [1 - c / b for c, b in zip(crm, bare, strict=True)]
        print(f"  ratio crmpulse/plain Locust: {statistics.median(ratio):.2f} median of rounds "
              f"({', '.join(f'{r:.2f}' for r in ratio)}; goal >= 0.95)")
        print(f"  HDR recording cost (1 - crmpulse/without HDR): {statistics.median(cost) * 100:+.1f} % "
              f"median of rounds ({', '.join(f'{c * 100:+.1f}' for c in cost)}; goal <= 2 %)")
        # CPU time per request, which other work on the machine does not dilute as it does rates
        for name in files:
            runs = cpu_us[(name, processes)]
            print(f"  CPU per request, {name:36} {statistics.median(runs):6.1f} us  rounds: "
                  + ", ".join(f"{r:.1f}" for r in runs))
        crm_cpu, bare_cpu, plain_cpu = (cpu_us[(n, processes)] for n in files)
        cpu_ratio = [p / c for c, p in zip(crm_cpu, plain_cpu, strict=True)]
        cpu_cost = [1 - b / c for c, b in zip(crm_cpu, bare_cpu, strict=True)]
        print(f"  CPU ratio plain Locust/crmpulse (the rate ratio when CPU-bound): "
              f"{statistics.median(cpu_ratio):.2f} median of rounds "
              f"({', '.join(f'{r:.2f}' for r in cpu_ratio)}; goal >= 0.95)")
        print(f"  HDR recording CPU cost (1 - without HDR/crmpulse): "
              f"{statistics.median(cpu_cost) * 100:+.1f} % median of rounds "
              f"({', '.join(f'{c * 100:+.1f}' for c in cpu_cost)}; goal <= 2 %)")
    if ablation:
        raw = cpu_us[("plain, HTTPClient + events.request", 0)]
        own = [c - r for c, r in zip(cpu_us[("crmpulse", 0)], raw, strict=True)]
        print("\nthe journey layer's own work, one process (crmpulse's CPU per request less the same "
              "requests' on its transport, same round):")
        print(f"  {'crmpulse less HTTPClient peer':36} {statistics.median(own):+6.1f} us  rounds: "
              + ", ".join(f"{d:+.1f}" for d in own))
        plain_cpu = cpu_us[("plain Locust FastHttpUser (peer)", 0)]
        crm_extra = [c - p for c, p in zip(cpu_us[("crmpulse", 0)], plain_cpu, strict=True)]
        print("\none process, CPU per request less the plain FastHttpUser peer's, same round:")
        print(f"  {'crmpulse journey layer, in all':36} {statistics.median(crm_extra):+6.1f} us  rounds: "
              + ", ".join(f"{d:+.1f}" for d in crm_extra))
        for name in ablation:
            extra = [c - p for c, p in zip(cpu_us[(name, 0)], plain_cpu, strict=True)]
            print(f"  {name:36} {statistics.median(extra):+6.1f} us  rounds: "
                  + ", ".join(f"{d:+.1f}" for d in extra))
    print(f"\nwrk, one thread (ceiling): {ceiling:.0f} req/s")
    # HDR recording priced directly, which the rounds above cannot resolve on a busy machine:
    # the time one record takes, against the time one request takes in plain Locust
    record_us = record_cost_us()
    plain_us = 1e6 / statistics.median(rates[("plain Locust FastHttpUser (peer)", 0)])
    per_request = record_us * (1 + 1 / 3)  # every request, and a journey row per three requests
    print(f"HDR recording: {record_us:.2f} us per record, {per_request:.2f} us per request = "
          f"{per_request / plain_us * 100:.1f} % of the {plain_us:.0f} us one request takes in plain "
          "Locust (goal <= 2 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

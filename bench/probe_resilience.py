"""Does /metrics stay fast, and memory bounded, while a fifth of the CRM misbehaves?

Two runs of the same exporter in one go, 200 checks each:

1. the peer: all 200 checks against a healthy loopback endpoint;
2. 160 healthy checks plus 40 pointing at endpoints that hang, reset connections,
   send 10 MB bodies or invalid JSON, present self-signed or expired certificates,
   answer 500, or are down (5 of each).

During each run /metrics is scraped every 250 ms for ``--seconds`` and the
exporter's resident memory is sampled. Printed: scrape latency (median, p99, max),
how many scrapes took over 250 ms, peak memory, and the misbehaving run as a ratio
of the healthy one.

    python bench/probe_resilience.py [--seconds 60]

Traffic stays on 127.0.0.1; both runs stop by themselves.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.badservers import BadServers  # noqa: E402
from tests.helpers import ExporterProcess  # noqa: E402

MISBEHAVING = ("hang", "reset", "huge", "invalid_json", "self_signed", "expired", "error", "down")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def config(urls: list[str]) -> str:
    checks = "".join(
        f"    - {{name: c{i:03d}, kind: http, request: {{path: '{url}/', auth: false}}, "
        f"interval: 5s, timeout: 3s, expect: {{max_body: 1MiB, json: [{{path: $.data, exists: true}}]}}}}\n"
        for i, url in enumerate(urls))
    return (f"target: {{name: bench, base_url: '{urls[0]}'}}\n"
            f"probes:\n  concurrency: 64\n  checks:\n{checks}")


def run(label: str, urls: list[str], seconds: float, folder: Path) -> tuple[list[float], float]:
    path = folder / f"{label.replace('/', '-').replace(' ', '_')}.yaml"
    path.write_text(config(urls))
    exporter = ExporterProcess(path, "--log-level", "error")
    proc = exporter.proc
    url = f"{exporter.url}/metrics"
    latencies: list[float] = []
    rss: list[float] = []
    try:
        end = time.monotonic() + seconds
        with httpx.Client(timeout=10) as client:
            while time.monotonic() < end:
                start = time.perf_counter()
                response = client.get(url)
                latencies.append(time.perf_counter() - start)
                assert response.status_code == 200
                rss.append(rss_mib(proc.pid))
                time.sleep(max(0.0, 0.25 - (time.perf_counter() - start)))
        runs = sum(float(line.split()[-1]) for line in response.text.splitlines()
                   if line.startswith("crmpulse_check_runs_total{"))
    finally:
        exporter.stop()
    over = sum(1 for x in latencies if x > 0.25)
    peak = max(rss)
    third = max(1, len(rss) // 3)
    early, late = max(rss[:third]), max(rss[-third:])
    q = statistics.quantiles(latencies, n=100)
    print(f"{label:12} {len(latencies)} scrapes: median {statistics.median(latencies) * 1000:6.1f} ms, "
          f"p99 {q[98] * 1000:6.1f} ms, max {max(latencies) * 1000:6.1f} ms, over 250 ms: {over}; "
          f"RSS peak {peak:5.1f} MiB (first third {early:5.1f}, last third {late:5.1f}); "
          f"{runs:.0f} check runs")
    return latencies, peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    bad = BadServers()
    folder = Path(tempfile.mkdtemp(prefix="crmpulse-resilience-"))
    try:
        healthy = [bad.urls["ok"]] * 200
        mixed = [bad.urls["ok"]] * 160 + [bad.urls[name] for name in MISBEHAVING for _ in range(5)]
        print(f"200 checks every 5 s; /metrics scraped every 250 ms for {args.seconds:g} s per run")
        peer, peer_peak = run("all healthy", healthy, args.seconds, folder)
        lat, peak = run("1/5 broken", mixed, args.seconds, folder)
    finally:
        bad.close()
    p99 = statistics.quantiles(lat, n=100)[98]
    peer_p99 = statistics.quantiles(peer, n=100)[98]
    print(f"ratio broken/healthy: scrape p99 {p99 / peer_p99:.2f}, peak RSS {peak / peer_peak:.2f}")
    print(f"every scrape within 250 ms: {'yes' if max(lat) <= 0.25 else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

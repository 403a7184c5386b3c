"""An hour of an exporter at scale: does its memory grow?

2,000 http checks every 15 s against the sandbox's /healthz, /metrics scraped every
second as Prometheus scrapes it (OpenMetrics, gzip), a /probe every second, for
``--seconds`` (default one hour); with ``--reload-every``, a config reload that often
(the same file: a reload must not leak). Resident memory is sampled every 10 s.

Printed: RSS at the end of the warm-up, at the end, the peak; the median of the first
and of the last sixth of the run and their ratio (the peer: the same exporter at the
start of its steady state; 1.00 is no growth); a least-squares slope in MiB per hour.

    python bench/probe_soak.py [--checks 2000] [--seconds 3600]

Traffic stays on 127.0.0.1; the run stops by itself.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from probe_scale import ACCEPT, ExporterProcess, config, rss_mib, wait_all_ran  # noqa: E402

from tests.helpers import SandboxProcess  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checks", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=3600)
    parser.add_argument("--reload-every", type=float, default=0, help="seconds; 0: never")
    args = parser.parse_args()
    # stopped by a timeout or Ctrl-C, still stop the processes this bench started
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    folder = Path(tempfile.mkdtemp(prefix="crmpulse-soak-"))
    sandbox = SandboxProcess("--seed", "0")
    path = folder / "crmpulse.yaml"
    path.write_text(config(sandbox.url, args.checks, 1, 0))
    exporter = ExporterProcess(path)
    samples: list[tuple[float, float]] = []
    scrapes = probes = reloads = failures = 0
    try:
        wait_all_ran(exporter, args.checks, 60)
        time.sleep(15)
        pid = exporter.proc.pid
        start = time.monotonic()
        next_sample = start
        next_reload = start + args.reload_every if args.reload_every else float("inf")
        before_reloads: list[float] = []
        print(f"{args.checks} checks every 15 s; scrape and /probe every second; "
              + (f"reload every {args.reload_every:g} s; " if args.reload_every else "no reloads; ")
              + f"{args.seconds:g} s; RSS at start {rss_mib(pid):.1f} MiB", flush=True)
        with httpx.Client(timeout=30) as client:
            while (now := time.monotonic()) - start < args.seconds:
                tick = time.perf_counter()
                response = client.get(exporter.url + "/metrics",
                                      headers={"Accept": ACCEPT, "Accept-Encoding": "gzip"})
                failures += response.status_code != 200
                scrapes += 1
                probe = client.get(exporter.url + "/probe",
                                   params={"target": sandbox.url, "module": "c00000"})
                failures += "probe_success 1" not in probe.text
                probes += 1
                if now >= next_reload:
                    before_reloads.append(rss_mib(pid))
                    failures += client.post(exporter.url + "/-/reload").status_code != 200
                    reloads += 1
                    next_reload += args.reload_every
                if now >= next_sample:
                    samples.append((now - start, rss_mib(pid)))
                    next_sample += 10
                    if len(samples) % 30 == 0:
                        print(f"  {samples[-1][0] / 60:5.1f} min: RSS {samples[-1][1]:.1f} MiB", flush=True)
                time.sleep(max(0.0, 1.0 - (time.perf_counter() - tick)))
        runs = sum(float(line.split()[-1]) for line in response.text.splitlines()
                   if line.startswith("crmpulse_check_runs_total{"))
    finally:
        exporter.stop()
        sandbox.stop()
    values = [rss for _, rss in samples]
    sixth = max(1, len(values) // 6)
    first, final = statistics.median(values[:sixth]), statistics.median(values[-sixth:])
    xs = [t / 3600 for t, _ in samples]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(values)
    slope = (sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, values, strict=True))
             / sum((x - mean_x) ** 2 for x in xs))
    print(f"{scrapes} scrapes, {probes} probes, {reloads} reloads, {failures} failures; "
          f"{runs:.0f} check runs counted")
    print(f"RSS: start {values[0]:.1f} MiB, end {values[-1]:.1f} MiB, peak {max(values):.1f} MiB; "
          f"median of the first sixth {first:.1f} MiB, of the last sixth {final:.1f} MiB; "
          f"ratio last/first {final / first:.3f}; slope {slope:+.2f} MiB/hour")
    if before_reloads:
        print("RSS just before each reload: " + ", ".join(f"{r:.1f}" for r in before_reloads)
              + f" MiB; at the end {values[-1]:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A flood of /probe requests for decompression bombs: memory and /metrics stay bounded.

50 concurrent ``/probe`` requests, each for a CRM that answers a 2 MiB gzip body that
expands to 2 GiB (served from a process of its own), ten rounds in a row; meanwhile
``/metrics`` is scraped every 100 ms and the exporter's resident memory sampled every
20 ms. Printed: RSS before, peak and
5 s after the flood; /metrics latency during it (median, p99, max); how the probes
ended (answered with a failure reason, or refused with 503 over
``probes.max_concurrent_probes``).

Peers in the same run: the same exporter flooded the same way with probes of a small
healthy answer (what a flood costs by itself), and prometheus-blackbox-exporter flooded
with the same bombs (its http prober streams bodies to a sink). Goals (issue 12): RSS
under 400 MB and /metrics under 1 s throughout; RSS back near its baseline after.

    python bench/probe_flood.py [--concurrency 50] [--rounds 10] [--limit 16]

Traffic stays on 127.0.0.1; every process stops at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers import ExporterProcess, reserve_port, write_config  # noqa: E402


class Servers:
    """tests/hostile/exporter_servers.py in a process of its own (its threads hold a GIL)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.hostile.exporter_servers"],
                                     cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.urls: dict[str, str] = json.loads(self.proc.stdout.readline())

    def url(self, name: str) -> str:
        return self.urls[name]

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Sampler:
    """Samples a process's RSS every 20 ms on a thread."""

    def __init__(self, pid: int) -> None:
        self.pid, self.samples = pid, [rss_mib(pid)]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.samples.append(rss_mib(self.pid))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return max(self.samples)


async def flood(probe_url: str, params: dict[str, str], concurrency: int, rounds: int,
                metrics_url: str | None) -> tuple[Counter[str], list[float]]:
    """``rounds`` waves of ``concurrency`` simultaneous probes; outcomes and /metrics latencies."""
    outcomes: Counter[str] = Counter()
    latencies: list[float] = []
    done = asyncio.Event()
    limits = httpx.Limits(max_connections=concurrency + 4)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        async def one() -> None:
            try:
                response = await client.get(probe_url, params=params)
            except httpx.HTTPError as exc:
                outcomes[f"error {exc.__class__.__name__}"] += 1
                return
            if response.status_code != 200:
                outcomes[f"{response.status_code}"] += 1
                return
            reason = next((line.split('"')[1] for line in response.text.splitlines()
                           if line.startswith("probe_crmpulse_failure_reason") and line.endswith(" 1.0")),
                          None)
            success = "probe_success 1" in response.text
            outcomes["200 success" if success else f"200 failed ({reason or 'no reason'})"] += 1

        async def scrape() -> None:
            assert metrics_url is not None
            while not done.is_set():
                start = time.perf_counter()
                response = await client.get(metrics_url)
                latencies.append(time.perf_counter() - start)
                assert response.status_code == 200
                await asyncio.sleep(0.1)

        scraper = asyncio.create_task(scrape()) if metrics_url else None
        for _ in range(rounds):
            await asyncio.gather(*(one() for _ in range(concurrency)))
        done.set()
        if scraper:
            await scraper
    return outcomes, latencies


def run_crmpulse(label: str, target: str, exporter: ExporterProcess, args: argparse.Namespace) -> None:
    pid = exporter.proc.pid
    before = rss_mib(pid)
    sampler = Sampler(pid)
    outcomes, latencies = asyncio.run(flood(exporter.url + "/probe", {"target": target, "module": "fetch"},
                                            args.concurrency, args.rounds, exporter.url + "/metrics"))
    peak = sampler.stop()
    time.sleep(5)
    after = rss_mib(pid)
    p99 = sorted(latencies)[min(len(latencies) - 1, int(0.99 * len(latencies)))]  # nearest rank
    print(f"{label:26} RSS before {before:6.1f} MiB, peak {peak:6.1f} MiB, 5 s after {after:6.1f} MiB; "
          f"/metrics during: {len(latencies)} scrapes, median {statistics.median(latencies) * 1000:.1f} ms, "
          f"p99 {p99 * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms")
    print(f"{'':26} probes: {dict(sorted(outcomes.items()))}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--limit", type=int, default=16,
                        help="probes.max_concurrent_probes (16 is the default; above the "
                        "concurrency, every probe of the flood runs)")
    args = parser.parse_args()
    # stopped by a timeout or Ctrl-C, still stop the processes this bench started
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    servers = Servers()
    try:
        return flood_all(args, servers)
    finally:
        servers.close()


def flood_all(args: argparse.Namespace, servers: Servers) -> int:
    bomb = httpx.head(servers.url("bomb"), timeout=30)
    print(f"the bomb: {int(bomb.headers['content-length']) / 2**20:.1f} MiB of gzip for 2 GiB of zeros")
    folder = Path(tempfile.mkdtemp(prefix="crmpulse-flood-"))
    path = write_config(folder, f"""
        target: {{name: crm, base_url: "{servers.url('ok')}"}}
        probes:
          max_concurrent_probes: {args.limit}
          checks:  # any_target: the bomb has an origin of its own (probed without credentials)
            - {{name: fetch, kind: http, request: {{path: /, auth: false}}, interval: 1h, timeout: 10s,
               any_target: true}}
        """)
    exporter = ExporterProcess(path, "--log-level", "error")
    try:
        print(f"{args.rounds} rounds of {args.concurrency} concurrent /probe requests; "
              f"probes.max_concurrent_probes: {args.limit}")
        run_crmpulse("crmpulse, healthy (peer)", servers.url("ok"), exporter, args)
        run_crmpulse("crmpulse, bombs", servers.url("bomb"), exporter, args)
    finally:
        exporter.stop()
    blackbox = shutil.which("prometheus-blackbox-exporter") or shutil.which("blackbox_exporter")
    if blackbox:
        port = reserve_port()
        (folder / "blackbox.yml").write_text(
            "modules:\n  fetch:\n    prober: http\n    timeout: 10s\n"
            "    http: {preferred_ip_protocol: ip4}\n")
        peer = subprocess.Popen([blackbox, f"--config.file={folder / 'blackbox.yml'}",
                                 f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(200):
                try:
                    httpx.get(url + "/-/healthy", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.05)
            before = rss_mib(peer.pid)
            sampler = Sampler(peer.pid)
            outcomes, latencies = asyncio.run(flood(url + "/probe", {"target": servers.url("bomb"),
                                                                     "module": "fetch"},
                                                    args.concurrency, args.rounds, url + "/metrics"))
            peak = sampler.stop()
            time.sleep(5)
            print(f"{'blackbox_exporter, bombs':26} RSS before {before:6.1f} MiB, peak {peak:6.1f} MiB, "
                  f"5 s after {rss_mib(peer.pid):6.1f} MiB; /metrics max "
                  f"{max(latencies) * 1000:.1f} ms; probes: {dict(outcomes)}")
        finally:
            peer.terminate()
            peer.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())

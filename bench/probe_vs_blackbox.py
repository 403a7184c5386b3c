"""crmpulse's /probe against prometheus-blackbox-exporter on the same loopback endpoint.

Both exporters probe the same endpoint (the sandbox's /healthz, served by uvicorn in
its own process) through their /probe?target=&module= endpoint, with the same number
of concurrent scrapes, in the same run, alternating in rounds (the machine is shared:
alternation spreads its noise over both). For each concurrency, printed:

- probes per CPU-second of each exporter (user + system time from /proc, the process
  and its children), and crmpulse's as a ratio of blackbox_exporter's (goal: 0.9);
- the median ``probe_duration_seconds`` each reports for the same endpoint, and the
  difference (goal: within 1 ms); and how far each exporter's median moved from its
  own at one scrape at a time (what concurrency adds to what it reports).

    python bench/probe_vs_blackbox.py [--probes 3000] [--concurrency 1,8] [--rounds 3]

Needs the Debian package prometheus-blackbox-exporter. Traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers import ExporterProcess, SandboxProcess, reserve_port, wait_http  # noqa: E402


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and every live descendant."""
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        with contextlib.suppress(OSError):  # children: a kernel without CONFIG_PROC_CHILDREN
            pending += [int(c) for c in Path(f"/proc/{current}/task/{current}/children").read_text().split()]
    return total


async def hammer(url: str, params: dict[str, str], count: int, concurrency: int) -> list[float]:
    durations: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)
    limits = httpx.Limits(max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=10, limits=limits) as client:
        async def worker() -> None:
            while not queue.empty():
                queue.get_nowait()
                text = (await client.get(url, params=params)).text
                for line in text.splitlines():
                    if line.startswith("probe_success") and not line.endswith(" 1") and \
                            not line.endswith(" 1.0"):
                        raise RuntimeError(f"a probe failed: {text[:500]}")
                    if line.startswith("probe_duration_seconds "):
                        durations.append(float(line.split()[1]))
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return durations


def measure(pid: int, url: str, params: dict[str, str], count: int,
            concurrency: int) -> tuple[float, list[float]]:
    """Probes per CPU-second and the reported durations of ``count`` probes."""
    asyncio.run(hammer(url, params, min(100, count), concurrency))  # warm up
    before = cpu_seconds(pid)
    durations = asyncio.run(hammer(url, params, count, concurrency))
    used = cpu_seconds(pid) - before
    return (count / used if used else float("inf")), durations


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--probes", type=int, default=3000, help="probes per exporter and round")
    parser.add_argument("--concurrency", default="1,8", help="comma-separated scrapes at once")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    # stopped by a timeout or Ctrl-C, still stop the processes this bench started
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    levels = [int(c) for c in args.concurrency.split(",")]
    blackbox = shutil.which("prometheus-blackbox-exporter") or shutil.which("blackbox_exporter")
    if not blackbox:
        print("bench: install the Debian package prometheus-blackbox-exporter", file=sys.stderr)
        return 2
    folder = Path(tempfile.mkdtemp(prefix="crmpulse-bench-"))
    sandbox = SandboxProcess("--seed", "0")
    endpoint = f"{sandbox.url}/healthz"
    bb_port = reserve_port()
    (folder / "blackbox.yml").write_text(
        "modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n"
        "    http: {preferred_ip_protocol: ip4}\n")
    peer = subprocess.Popen([blackbox, f"--config.file={folder / 'blackbox.yml'}",
                             f"--web.listen-address=127.0.0.1:{bb_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    (folder / "crmpulse.yaml").write_text(
        f"target: {{name: bench, base_url: '{sandbox.url}'}}\n"
        "probes:\n  checks:\n"
        "    - {name: http_2xx, kind: http, request: {path: /healthz, auth: false}, "
        "interval: 1h, timeout: 5s}\n")
    crmpulse = ExporterProcess(folder / "crmpulse.yaml", "--log-level", "warning")
    try:
        wait_http(f"http://127.0.0.1:{bb_port}/-/healthy", peer)
        exporters = {
            "blackbox_exporter": (peer.pid, f"http://127.0.0.1:{bb_port}/probe",
                                  {"target": endpoint, "module": "http_2xx"}),
            "crmpulse /probe": (crmpulse.proc.pid, f"{crmpulse.url}/probe",
                                {"target": sandbox.url, "module": "http_2xx"}),
        }
        print(f"endpoint {endpoint}; {args.rounds} alternating rounds of {args.probes} probes per "
              f"exporter; {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f} at start")
        medians: dict[tuple[str, int], float] = {}
        for concurrency in levels:
            rates: dict[str, list[float]] = {name: [] for name in exporters}
            durations: dict[str, list[float]] = {name: [] for name in exporters}
            for _ in range(args.rounds):
                for name, (pid, url, params) in exporters.items():
                    rate, reported = measure(pid, url, params, args.probes, concurrency)
                    rates[name].append(rate)
                    durations[name] += reported
            print(f"-- {concurrency} concurrent scrape(s)")
            for name in exporters:
                medians[(name, concurrency)] = statistics.median(durations[name])
                print(f"   {name:18} {statistics.median(rates[name]):7.0f} probes/CPU-s "
                      f"(rounds {', '.join(f'{r:.0f}' for r in rates[name])}), "
                      f"median probe_duration_seconds {medians[(name, concurrency)] * 1000:.3f} ms")
            bb, cp = (statistics.median(rates[n]) for n in exporters)
            difference = (medians[("crmpulse /probe", concurrency)]
                          - medians[("blackbox_exporter", concurrency)]) * 1000
            print(f"   ratio probes/CPU-s crmpulse/blackbox: {cp / bb:.2f} (goal >= 0.90)")
            print(f"   median duration difference: {difference:+.3f} ms (goal within 1 ms)")
            if concurrency != levels[0]:
                for name in exporters:
                    moved = (medians[(name, concurrency)] - medians[(name, levels[0])]) * 1000
                    print(f"   {name} reports {moved:+.3f} ms against its own median at "
                          f"{levels[0]} scrape(s) at once")
    finally:
        crmpulse.stop()
        peer.terminate()
        peer.wait(timeout=10)
        sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

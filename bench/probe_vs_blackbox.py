"""crmpulse's /probe against prometheus-blackbox-exporter on the same loopback endpoint.

Both exporters probe the same endpoint (the sandbox's /healthz, served by uvicorn in
its own process) through their /probe?target=&module= endpoint, with the same number
of concurrent scrapes, in the same run. Printed:

- probes per CPU-second of the exporter process (user + system time from /proc),
  and crmpulse's as a ratio of blackbox_exporter's (goal: at least 0.5);
- the median ``probe_duration_seconds`` each reports for the same endpoint, and the
  difference (goal: within 1 ms).

    python bench/probe_vs_blackbox.py [--probes 2000] [--concurrency 4]

Needs the Debian package prometheus-blackbox-exporter. Traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait(url: str) -> None:
    for _ in range(400):
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


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


def measure(name: str, pid: int, url: str, params: dict[str, str], count: int,
            concurrency: int) -> tuple[float, float]:
    asyncio.run(hammer(url, params, min(100, count), concurrency))  # warm up
    before = cpu_seconds(pid)
    durations = asyncio.run(hammer(url, params, count, concurrency))
    used = cpu_seconds(pid) - before
    rate = count / used if used else float("inf")
    median = statistics.median(durations)
    print(f"{name:20} {count} probes, {used:6.2f} CPU-s -> {rate:8.0f} probes/CPU-s, "
          f"median probe_duration_seconds {median * 1000:.3f} ms")
    return rate, median


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--probes", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    blackbox = shutil.which("prometheus-blackbox-exporter") or shutil.which("blackbox_exporter")
    if not blackbox:
        print("bench: install the Debian package prometheus-blackbox-exporter", file=sys.stderr)
        return 2
    folder = Path(tempfile.mkdtemp(prefix="crmpulse-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        sandbox_port, crm_port, bb_port = free_port(), free_port(), free_port()
        procs.append(subprocess.Popen([sys.executable, "-m", "crmpulse", "sandbox", "--port",
                                       str(sandbox_port), "--seed", "0"], stdout=subprocess.DEVNULL))
        endpoint = f"http://127.0.0.1:{sandbox_port}/healthz"
        wait(endpoint)
        (folder / "blackbox.yml").write_text(
            "modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n"
            "    http: {preferred_ip_protocol: ip4}\n")
        procs.append(subprocess.Popen([blackbox, f"--config.file={folder / 'blackbox.yml'}",
                                       f"--web.listen-address=127.0.0.1:{bb_port}"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        (folder / "crmpulse.yaml").write_text(
            f"target: {{name: bench, base_url: 'http://127.0.0.1:{sandbox_port}'}}\n"
            "probes:\n  checks:\n"
            "    - {name: http_2xx, kind: http, request: {path: /healthz, auth: false}, "
            "interval: 1h, timeout: 5s}\n")
        procs.append(subprocess.Popen([sys.executable, "-m", "crmpulse", "probe", "--config",
                                       str(folder / "crmpulse.yaml"), "--listen",
                                       f"127.0.0.1:{crm_port}", "--log-level", "warning"],
                                      stdout=subprocess.DEVNULL))
        wait(f"http://127.0.0.1:{bb_port}/-/healthy")
        wait(f"http://127.0.0.1:{crm_port}/-/healthy")
        print(f"endpoint {endpoint}; {args.concurrency} concurrent scrapes; {os.cpu_count()} cores")
        bb_rate, bb_median = measure(
            "blackbox_exporter", procs[1].pid, f"http://127.0.0.1:{bb_port}/probe",
            {"target": endpoint, "module": "http_2xx"}, args.probes, args.concurrency)
        cp_rate, cp_median = measure(
            "crmpulse /probe", procs[2].pid, f"http://127.0.0.1:{crm_port}/probe",
            {"target": f"http://127.0.0.1:{sandbox_port}", "module": "http_2xx"},
            args.probes, args.concurrency)
        print(f"ratio probes/CPU-s crmpulse/blackbox: {cp_rate / bb_rate:.2f} (goal >= 0.50)")
        print(f"median duration difference: {(cp_median - bb_median) * 1000:+.3f} ms (goal within 1 ms)")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())

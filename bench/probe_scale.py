"""Thousands of scheduled checks: scrape latency, CPU and memory of the exporter, per shard.

N http checks (interval 15 s) against a fast loopback endpoint (the sandbox's /healthz,
its own process; or with ``--endpoint nginx``, nginx answering canned JSON, which
leaves the cores to the exporters: the bench prints the endpoint's CPU beside the
exporters'), split over S exporter processes (``probes.shard``); each exporter's
/metrics is scraped once per second the way Prometheus scrapes it (OpenMetrics
preferred, gzip). After a warm-up of one interval, for ``--seconds``, printed per shard:
series, exposition size (plain and gzipped), scrape latency (median, p99, max), CPU
(cores, from /proc) and resident memory.

Peers measured in the same run:

- CPU: prometheus-blackbox-exporter doing the same probes per second against the same
  endpoint, driven through /probe as Prometheus would drive N probe targets every 15 s;
  printed as crmpulse's cores (all shards) / blackbox's cores.
- Scrape time: prometheus_client's stock exposition (``generate_latest`` plus gzip of a
  registry with the same series, which is how crmpulse rendered before) timed in this
  process; printed as crmpulse's p99 / stock p99.
- Memory: an exporter with one check, for RSS per 1,000 checks.

    python bench/probe_scale.py --checks 2000 --shards 1 [--seconds 60]
    python bench/probe_scale.py --checks 10000 --shards 5 [--endpoint nginx]

Needs the Debian package prometheus-blackbox-exporter (or --no-peer). Traffic stays on
127.0.0.1; every process stops at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers import Output, SandboxProcess, reserve_port, wait_http  # noqa: E402

ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
          "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
INTERVAL = 15.0


class ExporterProcess:
    """`crmpulse probe` on a free port; a config of 10,000 checks takes seconds to load."""

    def __init__(self, config: Path, startup: float = 180) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "crmpulse", "probe", "--config", str(config), "--listen",
             "127.0.0.1:0", "--log-level", "warning"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.output = Output(self.proc)
        port = self.output.wait_for(r"metrics on http://127\.0\.0\.1:(\d+)/", startup).group(1)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + startup
        while True:  # the line comes just before the server starts listening
            try:
                httpx.get(self.url + "/-/healthy", timeout=5)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"the exporter did not start: {self.output.text()[-2000:]}") from None
                time.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and its children (nginx's workers)."""
    total = cpu_seconds(pid)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                total += cpu_seconds(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return total


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def config(endpoint: str, checks: int, shards: int, index: int) -> str:
    lines = "".join(
        f"    - {{name: c{i:05d}, kind: http, request: {{path: /healthz, auth: false}}, "
        f"interval: {INTERVAL:g}s, timeout: 5s}}\n" for i in range(checks))
    return (f"target: {{name: bench, base_url: '{endpoint}'}}\n"
            f"probes:\n  shard: {{index: {index}, count: {shards}}}\n  checks:\n{lines}")


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def scrape_loop(exporters: list[ExporterProcess], seconds: float) -> list[list[float]]:
    """Scrape every exporter once a second (as separate Prometheus jobs would); latencies."""
    latencies: list[list[float]] = [[] for _ in exporters]

    async def one(i: int, client: httpx.AsyncClient) -> None:
        url = exporters[i].url + "/metrics"
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            start = time.perf_counter()
            async with client.stream("GET", url, headers={"Accept": ACCEPT,
                                                          "Accept-Encoding": "gzip"}) as r:
                async for _ in r.aiter_raw():
                    pass
                assert r.status_code == 200
            latencies[i].append(time.perf_counter() - start)
            await asyncio.sleep(max(0.0, 1.0 - (time.perf_counter() - start)))

    async def run() -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            await asyncio.gather(*(one(i, client) for i in range(len(exporters))))

    asyncio.run(run())
    return latencies


def exposition(exporter: ExporterProcess) -> tuple[int, int, int]:
    """(series, plain bytes, gzipped bytes) of one scrape."""
    response = httpx.get(exporter.url + "/metrics", headers={"Accept": ACCEPT,
                                                             "Accept-Encoding": "gzip"}, timeout=30)
    raw = response.content
    series = sum(1 for line in raw.splitlines() if line and not line.startswith(b"#"))
    return series, len(raw), len(gzip.compress(raw, 1))


def wait_all_ran(exporter: ExporterProcess, checks: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = httpx.get(exporter.url + "/metrics", timeout=30).text
        ran = sum(1 for line in text.splitlines()
                  if line.startswith("crmpulse_check_runs_total{") and not line.endswith(" 0.0"))
        if ran >= checks:
            return
        time.sleep(1)
    raise RuntimeError(f"not every check ran within {timeout:g}s")


def own_scrape_time(exporter: ExporterProcess) -> tuple[float, float, dict[str, float]]:
    """The exporter's own account of its scrapes so far (crmpulse_exporter_scrape_duration_seconds):
    (sum of seconds, count, cumulative count per bucket)."""
    text = httpx.get(exporter.url + "/metrics", timeout=30).text
    total = count = 0.0
    buckets: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith("crmpulse_exporter_scrape_duration_seconds"):
            continue
        name, value = line.rsplit(" ", 1)
        if name.startswith("crmpulse_exporter_scrape_duration_seconds_sum"):
            total += float(value)
        elif name.startswith("crmpulse_exporter_scrape_duration_seconds_count"):
            count += float(value)
        elif 'le="' in name:
            le = name.split('le="', 1)[1].split('"', 1)[0]
            buckets[le] = buckets.get(le, 0.0) + float(value)
    return total, count, buckets


def stock_render(checks: int, rounds: int) -> tuple[float, float, int]:
    """Median and p99 of prometheus_client rendering (and gzipping) the series of ``checks``
    http checks as prometheus_client objects, as crmpulse did before; and the series count."""
    from prometheus_client import CollectorRegistry, generate_latest

    from crmpulse import contract as m
    from crmpulse.contract import FAILURE_REASONS, PHASES, duration_buckets
    from crmpulse.probes.metrics import make

    registry = CollectorRegistry()
    simple = [make(x, registry) for x in (m.CHECK_SUCCESS, m.CHECK_RUNS, m.CHECK_LAST_RUN,
                                          m.CHECK_STATUS_CODE, m.CHECK_OVERRUNS)]
    failures, phase = make(m.CHECK_FAILURES, registry), make(m.CHECK_PHASE, registry)
    duration = make(m.CHECK_DURATION, registry, buckets=duration_buckets())
    for i in range(checks):
        base = ("bench", f"c{i:05d}")
        for metric in simple:
            child = metric.labels(*base)
            child.inc() if metric._type == "counter" else child.set(1)
        for reason in FAILURE_REASONS:
            failures.labels(*base, reason)
        for name in PHASES:
            phase.labels(*base, name).set(0.001)
        duration.labels(*base).observe(0.002)
    series = sum(len(f.samples) for f in registry.collect())
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        gzip.compress(generate_latest(registry), 1)
        times.append(time.perf_counter() - start)
    return statistics.median(times), quantile(times, 0.99), series


async def drive_blackbox(url: str, params: dict[str, str], rate: float,
                         seconds: float) -> tuple[int, int]:
    """Send /probe requests at ``rate`` per second, evenly, for ``seconds``: (answered, failed)."""
    failures = answered = 0
    async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=64)) as client:
        async def one() -> None:
            nonlocal failures, answered
            try:
                text = (await client.get(url, params=params)).text
                answered += 1
                if "probe_success 1" not in text:
                    failures += 1
            except httpx.HTTPError:
                failures += 1

        tasks = set()
        start = time.monotonic()
        sent = 0
        while time.monotonic() - start < seconds:
            due = int((time.monotonic() - start) * rate)
            while sent < due:
                if len(tasks) >= 64:  # saturated: skip what is due rather than queue it without
                    sent = due        # bound (httpx's pool scans its queue on every request)
                    break
                task = asyncio.create_task(one())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                sent += 1
            await asyncio.sleep(0.005)
        await asyncio.gather(*tasks)
    return answered, failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checks", type=int, default=2000)
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--no-peer", action="store_true", help="skip blackbox_exporter")
    parser.add_argument("--endpoint", choices=("sandbox", "nginx"), default="sandbox",
                        help="what the checks probe (nginx needs the Debian package)")
    args = parser.parse_args()
    # stopped by a timeout or Ctrl-C, still stop the processes this bench started
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    blackbox = shutil.which("prometheus-blackbox-exporter") or shutil.which("blackbox_exporter")
    if not blackbox and not args.no_peer:
        print("bench: install prometheus-blackbox-exporter, or pass --no-peer", file=sys.stderr)
        return 2
    folder = Path(tempfile.mkdtemp(prefix="crmpulse-scale-"))
    sandbox: SandboxProcess | None = None
    nginx: subprocess.Popen[bytes] | None = None
    if args.endpoint == "nginx" and not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
        print("bench: install nginx, or use --endpoint sandbox", file=sys.stderr)
        return 2
    exporters: list[ExporterProcess] = []
    try:
        if args.endpoint == "nginx":
            sys.path.insert(0, str(REPO / "bench"))
            from loadtest_overhead import start_nginx

            port = reserve_port()
            nginx = start_nginx(folder, port)
            endpoint = f"http://127.0.0.1:{port}"
            wait_http(endpoint + "/healthz", nginx)
            endpoint_pid = nginx.pid
        else:
            sandbox = SandboxProcess("--seed", "0")
            endpoint = sandbox.url
            endpoint_pid = sandbox.proc.pid
        print(f"{args.checks} checks every {INTERVAL:g}s over {args.shards} exporter(s) against "
              f"{endpoint}/healthz; /metrics scraped every second for {args.seconds:g}s; "
              f"{os.cpu_count()} cores")
        small = folder / "one.yaml"
        small.write_text(config(endpoint, 1, 1, 0))
        one = ExporterProcess(small)
        wait_all_ran(one, 1, 30)
        baseline_rss = rss_mib(one.proc.pid)
        one.stop()
        for index in range(args.shards):
            path = folder / f"shard{index}.yaml"
            path.write_text(config(endpoint, args.checks, args.shards, index))
            exporters.append(ExporterProcess(path))
        counts = []
        for exporter in exporters:
            text = httpx.get(exporter.url + "/metrics", timeout=30).text
            counts.append(int(float(next(line.split()[-1] for line in text.splitlines()
                                         if line.startswith("crmpulse_checks_running{")))))
        for exporter, count in zip(exporters, counts, strict=True):
            wait_all_ran(exporter, count, INTERVAL + 30)
        time.sleep(INTERVAL)  # one more interval: the schedule settles into its phases
        own_before = [own_scrape_time(e) for e in exporters]
        before = [cpu_seconds(e.proc.pid) for e in exporters]
        endpoint_before, own_before_cpu = tree_cpu_seconds(endpoint_pid), cpu_seconds(os.getpid())
        start = time.monotonic()
        latencies = scrape_loop(exporters, args.seconds)
        elapsed = time.monotonic() - start
        endpoint_cores = (tree_cpu_seconds(endpoint_pid) - endpoint_before) / elapsed
        scraper_cores = (cpu_seconds(os.getpid()) - own_before_cpu) / elapsed
        own_after = [own_scrape_time(e) for e in exporters]
        cores = [(cpu_seconds(e.proc.pid) - b) / elapsed for e, b in zip(exporters, before, strict=True)]
        print(f"{'shard':>5} {'checks':>6} {'series':>7} {'plain':>8} {'gzip':>7} {'scrapes':>7} "
              f"{'median':>8} {'p99':>8} {'max':>8} {'CPU':>6} {'RSS':>8}")
        total_rss = 0.0
        worst_p99 = 0.0
        for i, exporter in enumerate(exporters):
            series, plain, packed = exposition(exporter)
            rss = rss_mib(exporter.proc.pid)
            total_rss += rss
            lat = latencies[i]
            worst_p99 = max(worst_p99, quantile(lat, 0.99))
            print(f"{i:>5} {counts[i]:>6} {series:>7} {plain / 1e6:>6.2f}MB {packed / 1e6:>5.2f}MB "
                  f"{len(lat):>7} {statistics.median(lat) * 1000:>6.1f}ms "
                  f"{quantile(lat, 0.99) * 1000:>6.1f}ms {max(lat) * 1000:>6.1f}ms "
                  f"{cores[i]:>6.3f} {rss:>6.1f}MiB")
        print(f"meanwhile: the endpoint ({args.endpoint}) used {endpoint_cores:.3f} cores, this "
              f"scraper {scraper_cores:.3f}, the exporters {sum(cores):.3f}; load average "
              f"{os.getloadavg()[0]:.1f}")
        # what each exporter says its own scrapes took (render and send, on its loop): far
        # below the latency seen over HTTP means the scrapes waited for a core, not for work
        for i, (b, a) in enumerate(zip(own_before, own_after, strict=True)):
            n = a[1] - b[1]
            under = {le: (a[2].get(le, 0.0) - b[2].get(le, 0.0)) / max(1.0, n)
                     for le in ("0.05", "0.1", "0.25")}
            mean = (a[0] - b[0]) / max(1.0, n)
            print(f"shard {i}: its own account of {n:.0f} scrapes: mean {mean * 1000:.1f} ms; "
                  + ", ".join(f"{v:.0%} within {float(le) * 1000:g} ms" for le, v in under.items()))
        if args.shards == 1:
            per_1000 = (total_rss - baseline_rss) / (args.checks / 1000)
            print(f"RSS: {baseline_rss:.1f} MiB for an exporter with 1 check; "
                  f"{per_1000:.1f} MiB per 1,000 checks above that")
        else:
            print(f"RSS: {baseline_rss:.1f} MiB for an exporter with 1 check; each shard above that "
                  f"holds the whole config of {args.checks} checks and runs its share: "
                  f"{total_rss / args.shards - baseline_rss:.1f} MiB on average")
        for exporter in exporters:
            exporter.stop()
        exporters = []
        per_shard = max(counts)
        stock_p50, stock_p99, stock_series = stock_render(per_shard, 20)
        print(f"peer: prometheus_client's stock exposition of the same {stock_series} series "
              f"(+gzip): median {stock_p50 * 1000:.1f} ms, p99 {stock_p99 * 1000:.1f} ms in-process; "
              f"ratio crmpulse scrape p99 (over HTTP) / stock render p99: {worst_p99 / stock_p99:.2f}")
        if not args.no_peer:
            assert blackbox is not None
            port = reserve_port()
            (folder / "blackbox.yml").write_text(
                "modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n"
                "    http: {preferred_ip_protocol: ip4}\n")
            peer = subprocess.Popen([blackbox, f"--config.file={folder / 'blackbox.yml'}",
                                     f"--web.listen-address=127.0.0.1:{port}"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                url = f"http://127.0.0.1:{port}"
                wait_http(url + "/-/healthy", peer)
                rate = args.checks / INTERVAL
                seconds = min(args.seconds, 60)
                before_peer = cpu_seconds(peer.pid)
                start = time.monotonic()
                answered, failures = asyncio.run(drive_blackbox(url + "/probe", {
                    "target": f"{endpoint}/healthz", "module": "http_2xx"}, rate, seconds))
                elapsed = time.monotonic() - start
                used = cpu_seconds(peer.pid) - before_peer
            finally:
                peer.terminate()
                peer.wait(timeout=10)
            # this process may not reach the rate: scale blackbox's CPU per probe to it
            peer_cores = used / max(1, answered) * rate
            print(f"peer: blackbox_exporter probing the same endpoint: {answered / elapsed:.0f} "
                  f"probes/s reached ({failures} failed), {used / max(1, answered) * 1000:.3f} ms "
                  f"CPU per probe, so {peer_cores:.3f} cores at {rate:.0f} probes/s; ratio crmpulse "
                  f"CPU (all shards) / blackbox: {sum(cores) / peer_cores:.2f}")
        print(f"targets per shard: p99 < 150 ms: {'met' if worst_p99 < 0.150 else 'NOT MET'}; "
              f"CPU < 0.3 cores: {'met' if max(cores) < 0.3 else 'NOT MET'}")
    finally:
        for exporter in exporters:
            exporter.stop()
        if sandbox is not None:
            sandbox.stop()
        if nginx is not None:
            nginx.terminate()
            nginx.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())

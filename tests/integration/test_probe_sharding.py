"""Three exporters share one config: each check runs on exactly one of them, once per tick."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from crmpulse.probes.sharding import parse_shard, shard_of
from tests.helpers import ExporterProcess, sample, write_config

CHECKS = [f"check_{i:02d}" for i in range(30)]


class CountingServer:
    """Answers 200 to every GET and counts the paths it was asked for."""

    def __init__(self) -> None:
        hits: Counter[str] = Counter()
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with lock:
                    hits[self.path] += 1
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.hits, self.lock = hits, lock
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def counts(self) -> Counter[str]:
        with self.lock:
            return Counter(self.hits)

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def endpoint() -> Iterator[CountingServer]:
    server = CountingServer()
    yield server
    server.close()


def test_three_shards_run_every_check_exactly_once(endpoint: CountingServer, tmp_path: Path) -> None:
    checks = "".join(f"    - {{name: {name}, kind: http, request: {{path: /c/{name}, auth: false}}, "
                     "interval: 1h, timeout: 5s}\n" for name in CHECKS)
    path = write_config(tmp_path, f"target: {{name: crm, base_url: '{endpoint.url}'}}\n"
                                  f"probes:\n  checks:\n{checks}")
    exporters = [ExporterProcess(path, "--shard", "0/3"), ExporterProcess(path, "--shard", "1/3"),
                 # as in the StatefulSet: the pod's name carries the ordinal
                 ExporterProcess(path, env={"CRMPULSE_PROBE_SHARD": "crmpulse-probe-shard-2/3"})]
    try:
        deadline = time.monotonic() + 30
        while len(endpoint.counts()) < len(CHECKS):  # first runs come within 5 s of a start
            assert time.monotonic() < deadline, f"only {sorted(endpoint.counts())} ran"
            time.sleep(0.1)
        metrics = [e.metrics() for e in exporters]
        while any(sum(v for (name, _), v in m.items() if name == "crmpulse_check_runs_total")
                  < (sample(m, "crmpulse_checks_running", target="crm") or 0) for m in metrics):
            assert time.monotonic() < deadline  # every run recorded where it ran
            time.sleep(0.1)
            metrics = [e.metrics() for e in exporters]
        readiness = [httpx.get(e.url + "/-/ready").text for e in exporters]
    finally:
        for exporter in exporters:
            exporter.stop()

    assert endpoint.counts() == Counter({f"/c/{name}": 1 for name in CHECKS})
    owners = {name: [i for i, m in enumerate(metrics)
                     if sample(m, "crmpulse_check_runs_total", target="crm", check=name) is not None]
              for name in CHECKS}
    assert owners == {name: [shard_of(name, 3)] for name in CHECKS}
    for i, m in enumerate(metrics):
        mine = [name for name in CHECKS if shard_of(name, 3) == i]
        assert mine, "every shard got a share of 30 checks"
        assert all(sample(m, "crmpulse_check_runs_total", target="crm", check=name) == 1 for name in mine)
        assert sample(m, "crmpulse_checks_running", target="crm") == len(mine)
        assert sample(m, "crmpulse_checks_configured", target="crm") == len(CHECKS)
        assert sample(m, "crmpulse_exporter_shard_info", index=str(i), count="3") == 1
        assert readiness[i] == f"Ready: {len(mine)} checks and 0 sync pairs running (shard {i}/3)\n"


@pytest.mark.parametrize(("text", "shard"), [("2/5", (2, 5)), ("crmpulse-probe-shard-4/5", (4, 5)),
                                            ("0/1", (0, 1))])
def test_a_shard_is_an_index_or_a_pod_name_over_a_count(text: str, shard: tuple[int, int]) -> None:
    assert parse_shard(text) == shard


@pytest.mark.parametrize("text", ["5/5", "x/3", "3", "-1/3", "1/0", "crmpulse-probe/3", "1/2000"])
def test_a_shard_outside_its_count_is_refused_with_exit_2(text: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    path = write_config(tmp_path, "target: {name: crm, base_url: 'http://127.0.0.1:9'}\n")
    run = subprocess.run([sys.executable, "-m", "crmpulse", "probe", "--config", str(path),
                          f"--shard={text}"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.startswith("crmpulse: --shard: expected") and "Traceback" not in run.stderr


def test_moving_from_three_to_four_shards_moves_about_a_quarter_of_the_checks() -> None:
    names = [f"check_{i}" for i in range(4000)]
    moved = sum(1 for name in names if shard_of(name, 3) != shard_of(name, 4))
    assert 0.2 < moved / len(names) < 0.3  # jump hash moves 1/4; modulo would move 3/4
    sizes = Counter(shard_of(name, 4) for name in names)
    assert all(900 < size < 1100 for size in sizes.values())


def test_a_config_of_thousands_of_checks_without_aliases_is_not_taken_for_an_alias_bomb(
        tmp_path: Path) -> None:
    from crmpulse import load_config

    checks = "".join(f"    - {{name: c{i:05d}, kind: http, request: {{path: /c/{i}, auth: false}}, "
                     "interval: 15s, timeout: 5s}\n" for i in range(7000))  # 105,000 YAML values
    path = write_config(tmp_path, f"target: {{name: crm, base_url: 'http://127.0.0.1:9'}}\n"
                                  f"probes:\n  checks:\n{checks}")
    assert len(load_config(path).config.probes.checks) == 7000


def test_a_shard_that_goes_down_fires_checks_not_running_in_a_real_prometheus(
        endpoint: CountingServer, tmp_path: Path) -> None:
    """Three shards scraped by Prometheus with the generated companion rules: stopping one
    fires CrmChecksNotRunning after its `for` (and not CrmProbesAbsent, since the others
    still report); starting it again on its address resolves it."""
    from crmpulse import load_config
    from crmpulse.alerts.generate import generate
    from tests.helpers import PrometheusProcess, reserve_port

    checks = "".join(f"    - {{name: {name}, kind: http, request: {{path: /c/{name}, auth: false}}, "
                     "interval: 2s, timeout: 1s}\n" for name in CHECKS)
    path = write_config(tmp_path, f"target: {{name: crm, base_url: '{endpoint.url}'}}\n"
                                  "alerting: {absent_for: 8s}\n"
                                  f"probes:\n  checks:\n{checks}")
    out = tmp_path / "alerts"
    # real time, evaluated every second (as `crmpulse stack` does) so the test takes seconds
    written = generate(load_config(path), out, evaluation_interval=1.0)
    ports = [reserve_port() for _ in range(3)]

    def shard(i: int) -> ExporterProcess:
        return ExporterProcess(path, "--shard", f"{i}/3", "--listen", f"127.0.0.1:{ports[i]}")

    exporters = [shard(i) for i in range(3)]
    assert [e.port for e in exporters] == ports
    prom = PrometheusProcess(tmp_path, {"crmpulse": [f"127.0.0.1:{p}" for p in ports]},
                             rule_files=[str(written["companions.rules.yml"])])
    firing = 'ALERTS{alertname="%s",alertstate="firing"}'
    try:
        prom.wait_for('sum(crmpulse_checks_running{target="crm"}) == 30', timeout=60)
        prom.wait_for('sum(increase(crmpulse_check_runs_total{target="crm"}[1m])) > 0', timeout=60)
        # an evaluation made while only some shards had been scraped may have left it pending
        prom.wait_for('absent(ALERTS{alertname="CrmChecksNotRunning"})', timeout=30)
        assert not prom.query(firing % "CrmChecksNotRunning")
        exporters[2].stop()
        stopped = time.monotonic()
        prom.wait_for('ALERTS{alertname="CrmChecksNotRunning",alertstate="pending"}', timeout=30)
        prom.wait_for(firing % "CrmChecksNotRunning", timeout=60)
        assert time.monotonic() - stopped >= 8  # its `for`: a shard briefly away does not page
        [alert] = prom.query(firing % "CrmChecksNotRunning")
        assert alert["metric"]["target"] == "crm" and alert["metric"]["severity"] == "critical"
        assert not prom.query(firing % "CrmProbesAbsent")
        alerts = httpx.get(prom.url + "/api/v1/alerts", timeout=10).json()["data"]["alerts"]
        [shown] = [a for a in alerts if a["labels"]["alertname"] == "CrmChecksNotRunning"]
        running = sum(1 for name in CHECKS if shard_of(name, 3) != 2)
        assert shown["annotations"]["summary"].startswith(
            f"Only {running} of {len(CHECKS)} crmpulse checks and sync pairs of the CRM target crm ")
        exporters[2] = shard(2)
        prom.wait_for('absent(ALERTS{alertname="CrmChecksNotRunning"})', timeout=60)  # resolved
        assert prom.query('sum(crmpulse_checks_running{target="crm"})')[0]["value"][1] == "30"
    finally:
        prom.stop()
        for exporter in exporters:
            exporter.stop()

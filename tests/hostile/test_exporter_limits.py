"""What a hostile CRM or a flood of /probe requests can make the exporter do: nothing unbounded.

A real `crmpulse probe` process probes real loopback servers that send decompression
bombs, megabyte headers, thousands of header fields, redirect loops and drips.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers import ExporterProcess, parse_metrics, sample, write_config
from tests.hostile.exporter_servers import HostileServers

LIMIT = 2


@pytest.fixture(scope="module")
def servers() -> Iterator[HostileServers]:
    running = HostileServers()
    yield running
    running.close()


@pytest.fixture(scope="module")
def exporter(servers: HostileServers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExporterProcess]:
    path = write_config(tmp_path_factory.mktemp("limits"), f"""
        target: {{name: crm, base_url: "{servers.url('ok')}"}}
        probes:
          max_concurrent_probes: {LIMIT}
          checks:  # any_target: each hostile server has an origin of its own; no credentials
            - {{name: fetch, kind: http, request: {{path: /, auth: false}}, interval: 1h, timeout: 3s,
               any_target: true}}
            - {{name: quick, kind: http, request: {{path: /, auth: false}}, interval: 1h, timeout: 1s,
               any_target: true}}
        """)
    proc = ExporterProcess(path)
    yield proc
    proc.stop()


def probe(exporter: ExporterProcess, target: str, module: str = "fetch",
          timeout: float = 20) -> httpx.Response:
    return httpx.get(exporter.url + "/probe", params={"target": target, "module": module},
                     timeout=timeout)


def reason_of(response: httpx.Response) -> str:
    metrics = parse_metrics(response.text)
    assert sample(metrics, "probe_success") == 0, response.text
    return next(labels["reason"] for (name, labels_set), value in metrics.items()
                if name == "probe_crmpulse_failure_reason" and value == 1
                for labels in [dict(labels_set)])


def test_probes_over_the_concurrency_limit_get_503_with_the_reason_and_are_counted(
        exporter: ExporterProcess, servers: HostileServers) -> None:
    before = sample(exporter.metrics(), "crmpulse_exporter_probes_rejected_total",
                    reason="concurrency") or 0
    running: list[httpx.Response] = []
    threads = [threading.Thread(target=lambda: running.append(probe(exporter, servers.url("hang"))))
               for _ in range(LIMIT)]
    for thread in threads:
        thread.start()
    exporter.wait_for("crmpulse_exporter_probes_in_flight", LIMIT)
    refused = [probe(exporter, servers.url("hang")) for _ in range(3)]
    for thread in threads:
        thread.join()
    assert [r.status_code for r in refused] == [503] * 3
    assert refused[0].text == (f"{LIMIT} probes are running already "
                               "(probes.max_concurrent_probes); retry later\n")
    assert refused[0].headers["retry-after"] == "1"
    assert [r.status_code for r in running] == [200] * LIMIT
    assert {reason_of(r) for r in running} == {"timeout"}
    metrics = exporter.metrics()
    assert sample(metrics, "crmpulse_exporter_probes_rejected_total", reason="concurrency") == before + 3
    assert sample(metrics, "crmpulse_exporter_probes_in_flight") == 0


def test_a_decompression_bomb_fails_the_probe_as_too_large_and_the_exporter_keeps_answering(
        exporter: ExporterProcess, servers: HostileServers) -> None:
    response = probe(exporter, servers.url("bomb"))
    assert response.status_code == 200
    assert reason_of(response) == "assertion"
    assert httpx.get(exporter.url + "/metrics", timeout=5).status_code == 200


@pytest.mark.parametrize("behaviour", ["huge_head", "many_headers"])
def test_a_response_head_past_the_limits_fails_the_probe_as_a_broken_connection(
        exporter: ExporterProcess, servers: HostileServers, behaviour: str) -> None:
    response = probe(exporter, servers.url(behaviour))
    assert response.status_code == 200
    assert reason_of(response) == "connect"
    debug = httpx.get(exporter.url + "/probe", params={
        "target": servers.url(behaviour), "module": "fetch", "debug": "true"}, timeout=20)
    assert "connection broken" in debug.text


def test_a_redirect_loop_costs_one_request_per_probe_and_reports_the_redirect(
        exporter: ExporterProcess, servers: HostileServers) -> None:
    before = servers.hits("redirect")
    response = probe(exporter, servers.url("redirect"))
    metrics = parse_metrics(response.text)
    assert sample(metrics, "probe_http_status_code") == 302
    assert reason_of(response) == "status"
    assert servers.hits("redirect") == before + 1


def test_a_server_that_drips_its_answer_is_cut_at_the_modules_timeout(
        exporter: ExporterProcess, servers: HostileServers) -> None:
    response = probe(exporter, servers.url("drip"), module="quick", timeout=10)
    assert reason_of(response) == "timeout"
    assert 0.9 <= sample(parse_metrics(response.text), "probe_duration_seconds") < 3  # type: ignore[operator]


@pytest.mark.parametrize("accept", [
    "application/openmetrics-text; version=abc", "text/plain;version=x.y", ";;;,,,", "a" * 20000,
    "application/openmetrics-text;version=2.0.0",
])
def test_any_accept_header_gets_a_parseable_exposition_never_a_500(
        exporter: ExporterProcess, accept: str) -> None:
    response = httpx.get(exporter.url + "/metrics", headers={"Accept": accept,
                                                             "Accept-Encoding": "br;q=x, gzip;q=nope"},
                         timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert sample(parse_metrics(response.text), "crmpulse_checks_configured", target="crm") == 2

"""What /metrics offers a scraper: per-phase series on demand, OpenMetrics, gzip."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics

from tests.helpers import ExporterProcess, SandboxProcess, parse_metrics, write_config

PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                     "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")


@pytest.fixture(scope="module")
def exporter(sandbox: SandboxProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExporterProcess]:
    path: Path = write_config(tmp_path_factory.mktemp("series"), f"""
        target: {{name: crm, base_url: "{sandbox.url}"}}
        probes:
          phase_series: false
          checks:
            - {{name: lean, kind: http, request: {{path: /healthz, auth: false}}, interval: 1s, timeout: 800ms}}
            - {{name: full, kind: http, request: {{path: /healthz, auth: false}}, interval: 1s,
               timeout: 800ms, phase_series: true}}
        """)
    proc = ExporterProcess(path)
    proc.wait_for("crmpulse_check_success", 1, target="crm", check="lean")
    proc.wait_for("crmpulse_check_success", 1, target="crm", check="full")
    yield proc
    proc.stop()


def test_phase_series_are_kept_only_where_asked_for(exporter: ExporterProcess) -> None:
    phases = {dict(labels)["check"] for (name, labels) in exporter.metrics()
              if name == "crmpulse_check_phase_duration_seconds"}
    assert phases == {"full"}


def test_prometheus_gets_openmetrics_gzipped_and_others_the_text_format(exporter: ExporterProcess) -> None:
    response = httpx.get(exporter.url + "/metrics", headers={
        "Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"})
    assert response.headers["content-type"] == "application/openmetrics-text; version=1.0.0; charset=utf-8"
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["vary"] == "Accept-Encoding"
    families = {f.name: f for f in parse_openmetrics(response.text)}  # the strict OpenMetrics parser
    assert response.text.endswith("# EOF\n")
    runs = families["crmpulse_check_runs"]
    assert runs.type == "counter" and {s.labels["check"] for s in runs.samples} == {"lean", "full"}

    plain = httpx.get(exporter.url + "/metrics", headers={"Accept-Encoding": "identity"})
    assert plain.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "content-encoding" not in plain.headers
    assert parse_metrics(plain.text)[("crmpulse_checks_running", frozenset({("target", "crm")}))] == 2

    raw = httpx.Client().send(httpx.Request("GET", exporter.url + "/metrics",
                                            headers={"Accept-Encoding": "gzip"}), stream=True)
    body = b"".join(raw.iter_raw())
    assert gzip.decompress(body).startswith(b"# HELP crmpulse_check_success ")

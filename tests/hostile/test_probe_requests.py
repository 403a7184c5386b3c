"""Bad /probe requests get a 4xx with a clear reason, never a 500, and send nothing anywhere.

Whoever reaches the exporter can call /probe. Each request here is malformed (a
broken URL, a parameter given twice, a 3,000-character target, a bad scrape-timeout
header) or names an origin the module's credentials may not go to; a recording
server on another port of the same host shows that none of them sent a byte.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.badservers import Recorder
from tests.helpers import ExporterProcess, SandboxProcess, write_config

CONFIG = """
target:
  name: sandbox
  base_url: {url}
  auth: {{type: oauth2_client_credentials, client_id: crmpulse, client_secret: "${{env:CRMPULSE_CLIENT_SECRET}}"}}
probes:
  checks:
    - {{name: api_read, kind: http, operation: list_accounts, interval: 1m, timeout: 5s}}
    - {{name: open_read, kind: http, operation: list_accounts, interval: 1m, timeout: 5s, any_target: true}}
"""

REQUIRED = "Both target and module parameters are required\n"
BAD_URL = "target must be an http(s) URL with a valid host and port, or the target's name\n"
NO_QUERY = "target must be a base URL, without a query or fragment\n"
SPACES = "target must not contain spaces or control characters\n"
TIMEOUT = "X-Prometheus-Scrape-Timeout-Seconds must be a positive number of seconds\n"


def refused(origin: str) -> str:
    return (f"target origin {origin} is not configured for module api_read's credentials: add it to "
            "probes.probe_hosts to probe it with them, or set any_target: true on the module to probe "
            "any target without credentials\n")


# id -> (query string, extra headers, status, body); {crm} is the sandbox's port, {other} a
# recording server's port on the same host
CASES: dict[str, tuple[str, dict[str, str], int, str]] = {
    "nothing": ("", {}, 400, REQUIRED),
    "no-module": ("target=sandbox", {}, 400, REQUIRED),
    "no-target": ("module=api_read", {}, 400, REQUIRED),
    "empty-target": ("target=&module=api_read", {}, 400, REQUIRED),
    "unknown-module": ("target=sandbox&module=nope", {}, 400,
                       "Unknown module 'nope' (the config's checks: api_read, open_read)\n"),
    "broken-ipv6": ("target=http://[::1&module=api_read", {}, 400, BAD_URL),
    "ftp": ("target=ftp://127.0.0.1/&module=api_read", {}, 400, BAD_URL),
    "port-99999": ("target=http://127.0.0.1:99999&module=api_read", {}, 400, BAD_URL),
    "no-host": ("target=http://&module=api_read", {}, 400, BAD_URL),
    "user-info": ("target=http://u:p@127.0.0.1:{crm}&module=api_read", {}, 400,
                  "target must not carry user-info (user:password@): the module's own credentials are used\n"),
    "query": ("target=http://127.0.0.1:{crm}/%3Fx%3D1&module=api_read", {}, 400, NO_QUERY),
    "fragment": ("target=http://127.0.0.1:{crm}/%23top&module=api_read", {}, 400, NO_QUERY),
    "space": ("target=http://127.0.0.1:{crm}/a%20b&module=api_read", {}, 400, SPACES),
    "crlf": ("target=http://127.0.0.1:{crm}/%0D%0AX-Evil:%201&module=api_read", {}, 400, SPACES),
    "target-3000-chars": ("target=http://127.0.0.1:{crm}/" + "a" * 3000 + "&module=api_read", {}, 400,
                          "target is longer than 2048 characters\n"),
    "module-200-chars": ("target=sandbox&module=" + "m" * 200, {}, 400, "module is longer than 128 characters\n"),
    "target-twice": ("target=sandbox&target=http://127.0.0.1:{other}&module=api_read", {}, 400,
                     "give the target parameter once, not 2 times\n"),
    "module-twice": ("target=sandbox&module=api_read&module=open_read", {}, 400,
                     "give the module parameter once, not 2 times\n"),
    "debug-maybe": ("target=sandbox&module=api_read&debug=maybe", {}, 400, "debug must be true or false\n"),
    "timeout-words": ("target=sandbox&module=api_read", {"X-Prometheus-Scrape-Timeout-Seconds": "soon"}, 400,
                      TIMEOUT),
    "timeout-nan": ("target=sandbox&module=api_read", {"X-Prometheus-Scrape-Timeout-Seconds": "NaN"}, 400,
                    TIMEOUT),
    "timeout-negative": ("target=sandbox&module=api_read", {"X-Prometheus-Scrape-Timeout-Seconds": "-1"}, 400,
                         TIMEOUT),
    "other-port-same-host": ("target=http://127.0.0.1:{other}/x&module=api_read", {}, 403,
                             refused("http://127.0.0.1:{other}")),
    "other-scheme": ("target=https://127.0.0.1:{crm}&module=api_read", {}, 403, refused("https://127.0.0.1:{crm}")),
    "other-spelling-of-the-host": ("target=http://localhost:{crm}&module=api_read", {}, 403,
                                   refused("http://localhost:{crm}")),
    "no-scheme-other-host": ("target=10.1.2.3:8080&module=api_read", {}, 403, refused("http://10.1.2.3:8080")),
}


@pytest.fixture(scope="module")
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.close()


@pytest.fixture(scope="module")
def exporter(sandbox: SandboxProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExporterProcess]:
    path = write_config(tmp_path_factory.mktemp("probe-requests"), CONFIG.format(url=sandbox.url))
    proc = ExporterProcess(path, env={"CRMPULSE_CLIENT_SECRET": "sandbox-secret"})
    yield proc
    proc.stop()


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_probe_request_gets_its_exact_answer_and_sends_nothing(
        case: str, exporter: ExporterProcess, sandbox: SandboxProcess, recorder: Recorder) -> None:
    query, headers, status, body = CASES[case]
    ports = {"crm": sandbox.port, "other": recorder.port}
    response = httpx.get(f"{exporter.url}/probe?{query.format(**ports)}", headers=headers)
    assert (response.status_code, response.text) == (status, body.format(**ports))
    assert recorder.connections == 0


def test_probe_answers_only_get(exporter: ExporterProcess) -> None:
    response = httpx.post(exporter.url + "/probe", params={"target": "sandbox", "module": "api_read"})
    assert response.status_code == 405


def test_the_exporter_still_probes_after_every_bad_request(exporter: ExporterProcess) -> None:
    response = httpx.get(exporter.url + "/probe", params={"target": "sandbox", "module": "api_read"})
    assert response.status_code == 200 and "probe_success 1.0" in response.text

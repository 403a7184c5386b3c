"""What a server posing as Prometheus answers `crmpulse slo status`: a clear refusal, exit 2.

`slo status` reads whatever the --prometheus URL sends back; anything that is not a
Prometheus query result (HTML, a result that is not a vector, an error, a sample that
is not a number, a huge error text) ends with one line naming the URL and exit 2,
never a traceback and never a budget read from garbage.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.helpers import write_config

CONFIG = """
target:
  name: sandbox
  base_url: http://127.0.0.1:9
  auth: {type: none}
slos:
  - {name: availability, kind: availability, objective: 99.9}
probes:
  checks:
    - {name: api_read, kind: http, operation: list_accounts, interval: 30s}
"""
OBJECTIVE = (b'{"status": "success", "data": {"resultType": "vector", "result": [{"metric": '
             b'{"slo": "availability"}, "value": [1, "0.999"]}]}}')


@pytest.fixture
def liar() -> Iterator[list[bytes]]:
    """A loopback server answering every query with the bodies in the list, in turn (the last repeats)."""
    answers: list[bytes] = []

    class Liar(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = answers.pop(0) if len(answers) > 1 else answers[0]
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Liar)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    answers.append(f"http://127.0.0.1:{server.server_address[1]}".encode())
    yield answers
    server.shutdown()


@pytest.mark.parametrize(("bodies", "says"), [
    ([b"<html>login</html>"], "without JSON: is it Prometheus?"),
    ([b'{"status": "success", "data": {"result": "nope"}}'], "with no vector: is it Prometheus?"),
    ([b'{"status": "success", "data": {"result": [1, 2]}}'], "with no vector: is it Prometheus?"),
    ([b'{"status": "error", "error": "' + b"x" * 100_000 + b'"}'], "refused"),
    ([OBJECTIVE, b'{"status": "success", "data": {"result": [{"metric": {}, "value": [1, "lots"]}]}}'],
     "with a sample that is not a number"),
    ([OBJECTIVE, b'{"status": "success", "data": {"result": [{"metric": {}}]}}'],
     "with a sample that is not a number"),
])
def test_slo_status_refuses_an_answer_that_is_not_prometheus(tmp_path: Path, liar: list[bytes],
                                                             bodies: list[bytes], says: str) -> None:
    url = liar.pop().decode()
    liar.extend(bodies)
    run = subprocess.run([sys.executable, "-m", "crmpulse", "slo", "status", "--config",
                          str(write_config(tmp_path, CONFIG)), "--prometheus", url],
                         capture_output=True, text=True, timeout=60, env=os.environ)
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.startswith("crmpulse: ") and says in run.stderr, run.stderr
    assert len(run.stderr) < 1000  # a huge error text is cut, not echoed
    assert "Traceback" not in run.stderr and run.stdout == ""

"""Whatever a CRM answers an access probe, the run ends with a bounded reason and a message that
holds paths and counts only: personal data as JSON keys, bodies that are not JSON, JSON nested
past what Python parses, answers too large, errors, a hang. A real HTTP server on loopback
plays the CRM; the access runs go through TargetRunner as the exporter's do."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from crmpulse import load_config
from crmpulse.probes.checks import Outcome, TargetRunner
from tests.helpers import write_config

VICTIM, CARD = "victim@real.example", "4111111111111111"


class CRM(BaseHTTPRequestHandler):
    """Creates contacts honestly; answers reads of them as ``mode`` says."""

    protocol_version = "HTTP/1.1"
    mode = "honest"
    made: dict[str, dict] = {}
    deleted: list[str] = []

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/oauth/token":
            self._send(200, b'{"access_token": "tok-' + str(time.time()).encode() + b'", "expires_in": 3600}')
            return
        record = {**json.loads(body), "id": f"con_{len(self.made):012d}"}
        self.made[record["id"]] = record
        self._send(201, json.dumps(record).encode())

    def do_DELETE(self) -> None:
        self.deleted.append(self.path.rsplit("/", 1)[1])
        self._send(204, b"")

    def do_GET(self) -> None:
        record_id = self.path.split("?")[0].rsplit("/", 1)[1]
        record = self.made.get(record_id, {})
        mine = self.headers.get("Authorization", "").startswith("Bearer tok-")
        mode = CRM.mode
        if mode == "pii_keys":
            self._send(200, json.dumps({**record, "by_email": {VICTIM: {"card": CARD}}}).encode())
        elif mode == "echo_in_404":  # an error that names what it could not find is not a leak
            self._send(404 if not mine else 200, json.dumps(
                {"error": f"no contact {record_id} ({record.get('last_name')})"} if not mine else record).encode())
        elif mode == "with_phone":
            self._send(200, json.dumps({**record, "phone": "+1-555-0100"}).encode())
        elif mode == "leak":
            self._send(200, json.dumps(record).encode())
        elif mode == "deep":
            self._send(200, b"[" * 200_000 + b"]" * 200_000)
        elif mode == "garbage":
            self._send(200, b"\xff\xfe\x00garbage " + CARD.encode(), "application/octet-stream")
        elif mode == "error":
            self._send(503, b'{"error": "down"}')
        elif mode == "huge":
            self._send(200, b'{"pad": "' + b"x" * (20 * 1024 * 1024) + b'"}')
        elif mode == "hang":
            time.sleep(5)
            self._send(200, b"{}")
        else:
            self._send(200, json.dumps(record).encode())

    def log_message(self, *args: object) -> None:
        pass


CONFIG = """
target:
  name: shop
  base_url: {url}
  timeout: 3s
  auth: {{type: oauth2_client_credentials, client_id: crmpulse, client_secret: "${{env:T_SECRET}}"}}
  credentials:
    other: {{type: bearer, token: "${{env:T_SECRET}}"}}
probes:
  checks:
    - name: exposure
      kind: exposure
      timeout: 4s
      scan: whole_response
      reads: [{{operation: get_contact, with: {{id: "{{{{ id }}}}"}}}}]
      allow: [{{detector: email, path: $.email}}]
    - name: isolation
      kind: isolation
      timeout: 4s
      observer: other
      reads: {{get: {{operation: get_contact, with: {{id: "{{{{ id }}}}"}}}}}}
    - name: role
      kind: role_scope
      timeout: 4s
      credential: other
      create: null
      own: {{operation: create_contact}}
      hidden_fields: [{{operation: get_contact, with: {{id: "{{{{ own_id }}}}"}}, fields: [phone]}}]
"""


@pytest.fixture
def crm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("T_SECRET", "shop-secret")
    server = ThreadingHTTPServer(("127.0.0.1", 0), CRM)
    server.daemon_threads = True
    CRM.made, CRM.deleted, CRM.mode = {}, [], "honest"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield write_config(tmp_path, CONFIG.format(url=f"http://127.0.0.1:{server.server_address[1]}"))
    server.shutdown()
    server.server_close()


def run(config: Path, name: str) -> Outcome:
    loaded = load_config(config)
    check = next(c for c in loaded.config.probes.checks if c.name == name)

    async def go() -> Outcome:
        runner = TargetRunner(loaded)
        try:
            return await runner.run(check, debug=True)
        finally:
            await runner.aclose()
    return asyncio.run(go())


def shown(outcome: Outcome) -> str:
    return " ".join([outcome.message, *outcome.log])


@pytest.mark.parametrize(("mode", "check", "success", "reason", "message"), [
    ("honest", "exposure", True, "", ""),
    ("pii_keys", "exposure", False, "protection",
     r"^personal data exposed: get_contact exposes to target\.auth: 1 card_number at \$\.by_email\[\?\]\.card$"),
    ("leak", "isolation", False, "protection",
     r"^isolation broken: get \(get_contact\) shows credential other a record of target\.auth$"),
    ("echo_in_404", "isolation", True, "", ""),
    ("deep", "isolation", False, "assertion",
     r"^not judged: get \(get_contact\) does not show target\.auth its own record \(status 200\)$"),
    ("deep", "exposure", True, "", ""),  # nothing to find in brackets, and no crash
    # scanning the whole response reads text that is not JSON too
    ("garbage", "exposure", False, "protection",
     r"^personal data exposed: get_contact exposes to target\.auth: 1 card_number at \$body$"),
    ("error", "isolation", False, "status",
     r"^not judged: get \(get_contact\) does not show target\.auth its own record \(status 503\)$"),
    ("huge", "exposure", False, "assertion", r"response body larger than \d+ bytes"),
    ("hang", "exposure", False, "timeout", r"^timed out \(http://127\.0\.0\.1:\d+\)$"),
    ("leak", "role", True, "", ""),
])
def test_each_answer_ends_in_a_bounded_reason_and_a_message_without_values(
        crm: Path, mode: str, check: str, success: bool, reason: str, message: str) -> None:
    CRM.mode = mode
    outcome = run(crm, check)
    assert (outcome.success, outcome.reason) == (success, reason), outcome.message
    assert re.search(message, outcome.message), outcome.message
    text = shown(outcome)
    for value in (VICTIM, CARD, "crmpulse.access."):  # the victim, the card, the probe's own email
        assert value not in text
    assert outcome.left_behind == 0 and len(CRM.deleted) == len(CRM.made)  # cleaned up regardless


def test_a_hidden_field_found_is_named_by_its_path_only(crm: Path) -> None:
    CRM.mode = "pii_keys"
    assert run(crm, "role").success  # the keys the CRM invented are not the hidden field
    CRM.mode = "with_phone"
    outcome = run(crm, "role")
    assert (outcome.success, outcome.reason) == (False, "protection")
    assert outcome.message == ("role scope broken: get_contact shows credential other hidden "
                               "field(s) at $.phone")
    assert "555-0100" not in shown(outcome)

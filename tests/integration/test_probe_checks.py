"""Each check kind against real misbehaving servers and the sandbox: the right reason, no crash."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from crmpulse import load_config
from crmpulse.probes.checks import Outcome, TargetRunner
from tests.badservers import BadServers
from tests.helpers import SandboxProcess, write_config


@pytest.fixture(scope="module")
def bad() -> Iterator[BadServers]:
    servers = BadServers()
    yield servers
    servers.close()


def run(tmp_path: Path, base_url: str, check: str, extra_target: str = "",
        auth: str = "{type: none}", times: int = 1) -> list[Outcome]:
    path = write_config(tmp_path, f"""
target:
  name: t
  base_url: {base_url}
  auth: {auth}
{extra_target}
probes:
  checks:
{check}
""")
    loaded = load_config(path)

    async def go() -> list[Outcome]:
        runner = TargetRunner(loaded)
        try:
            return [await runner.run(loaded.config.probes.checks[0]) for _ in range(times)]
        finally:
            await runner.aclose()
    return asyncio.run(go())


RAW = """    - name: raw
      kind: http
      request: {path: /, auth: false}
      timeout: 1s
      expect: {max_body: 1MiB, json: [{path: $.data, exists: true}]}"""


@pytest.mark.parametrize(("server", "reason"), [
    ("hang", "timeout"), ("huge", "assertion"), ("invalid_json", "assertion"), ("error", "status"),
    ("self_signed", "tls"), ("expired", "tls"), ("reset", "connect"), ("down", "connect"),
])
def test_a_misbehaving_crm_fails_the_check_with_the_right_reason(
        tmp_path: Path, bad: BadServers, server: str, reason: str) -> None:
    [outcome] = run(tmp_path, bad.urls[server], RAW)
    assert (outcome.success, outcome.reason) == (False, reason), outcome.message


def test_a_healthy_endpoint_passes_and_reports_phases(tmp_path: Path, bad: BadServers) -> None:
    [outcome] = run(tmp_path, bad.urls["ok"], RAW)
    assert outcome.success, outcome.message
    assert outcome.status == 200
    assert outcome.phases["connect"] > 0 and outcome.phases["processing"] > 0
    assert outcome.duration < 1


def test_a_hung_crm_fails_at_the_deadline_not_later(tmp_path: Path, bad: BadServers) -> None:
    [outcome] = run(tmp_path, bad.urls["hang"], RAW)
    assert outcome.reason == "timeout"
    assert 0.9 < outcome.duration < 2.0


def test_an_unresolvable_host_is_reason_dns(tmp_path: Path) -> None:
    [outcome] = run(tmp_path, "http://crm.nonexistent.invalid", RAW)
    assert (outcome.success, outcome.reason) == (False, "dns")


TLS = """    - name: cert
      kind: tls
      timeout: 2s"""


def test_tls_check_reports_expiry_and_a_valid_chain_when_trusted(tmp_path: Path, bad: BadServers) -> None:
    ca = bad.certs["self_signed"]
    [outcome] = run(tmp_path, bad.urls["self_signed"], TLS,
                    extra_target=f"  tls: {{ca_file: {ca}}}")
    assert outcome.success, outcome.message
    assert outcome.tls_chain_valid is True
    assert outcome.tls_expiry is not None and outcome.tls_expiry > 29 * 86400 + time.time()


def test_tls_check_flags_an_untrusted_chain_but_still_reads_expiry(tmp_path: Path,
                                                                   bad: BadServers) -> None:
    [outcome] = run(tmp_path, bad.urls["self_signed"], TLS)
    assert (outcome.success, outcome.reason, outcome.tls_chain_valid) == (False, "tls", False)
    assert outcome.tls_expiry is not None


def test_tls_check_flags_an_expired_certificate(tmp_path: Path, bad: BadServers) -> None:
    [outcome] = run(tmp_path, bad.urls["expired"], TLS)
    assert (outcome.success, outcome.reason) == (False, "tls")
    assert outcome.tls_expiry is not None and outcome.tls_expiry < time.time()


OAUTH = "{type: oauth2_client_credentials, client_id: crmpulse, client_secret: \"${env:S}\"}"
JOURNEY = """    - name: journey
      kind: journey
      timeout: 5s
      steps:
        - operation: authenticate
        - {operation: search_contacts, with: {q: smith}, save: {contact_id: first_id}}
        - {operation: get_contact, with: {id: "{{ contact_id }}"}}"""


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S", "sandbox-secret")


def test_a_journey_reports_each_step_and_reuses_its_token(tmp_path: Path, crm: SandboxProcess,
                                                          secret: None) -> None:
    outcomes = run(tmp_path, crm.url, JOURNEY, auth=OAUTH, times=3)
    assert all(o.success for o in outcomes), [o.message for o in outcomes]
    assert [s.name for s in outcomes[0].steps] == ["authenticate", "search_contacts", "get_contact"]
    assert outcomes[0].auth_duration > 0  # the first run fetched a token ...
    assert outcomes[1].auth_duration == outcomes[2].auth_duration == 0  # ... later runs reused it


def test_a_failing_journey_step_names_the_step_and_reason(tmp_path: Path, crm: SandboxProcess,
                                                          secret: None) -> None:
    crm.faults(error_rate=1.0, path_prefix="/api/v1/contacts/")
    [outcome] = run(tmp_path, crm.url, JOURNEY, auth=OAUTH)
    assert (outcome.success, outcome.reason) == (False, "status")
    assert [(s.name, s.success) for s in outcome.steps][-1] == ("get_contact", False)


def test_a_journey_that_creates_records_deletes_them(tmp_path: Path, crm: SandboxProcess,
                                                     secret: None) -> None:
    check = """    - name: create_read
      kind: journey
      steps:
        - operation: create_contact
          with: {first_name: Probe, last_name: Journey, email: "j-{{ unique }}@t.example",
                 tags: [crmpulse-probe-test]}
          save: {contact_id: id}
        - {operation: get_contact, with: {id: "{{ contact_id }}"}}"""
    outcomes = run(tmp_path, crm.url, check, auth=OAUTH, times=2)
    assert all(o.success and o.left_behind == 0 for o in outcomes)
    listed = httpx.get(crm.url + "/api/v1/contacts", params={"tag": "crmpulse-probe-test"},
                                     headers={"Authorization": f"Bearer {crm.token()}"}).json()
    assert listed["data"] == []


PROTECTION = """    - name: protections
      kind: protection
      operation: list_contacts
      require_auth: true
      forbidden_patterns: ['"tax_id"']"""


def test_protections_hold_on_a_healthy_crm(tmp_path: Path, crm: SandboxProcess, secret: None) -> None:
    [outcome] = run(tmp_path, crm.url, PROTECTION, auth=OAUTH)
    assert outcome.success, outcome.message
    assert outcome.protections == {"require_auth": True, "forbidden_patterns": True}


def test_auth_no_longer_enforced_is_a_protection_failure(tmp_path: Path, crm: SandboxProcess,
                                                         secret: None) -> None:
    crm.faults(auth_enforced=False)
    [outcome] = run(tmp_path, crm.url, PROTECTION, auth=OAUTH)
    assert (outcome.success, outcome.reason) == (False, "protection")
    assert outcome.protections["require_auth"] is False
    assert "auth not enforced" in outcome.message


def test_an_exposed_sensitive_field_is_a_protection_failure_that_never_echoes_data(
        tmp_path: Path, crm: SandboxProcess, secret: None) -> None:
    crm.faults(expose_sensitive=True)
    [outcome] = run(tmp_path, crm.url, PROTECTION, auth=OAUTH)
    assert (outcome.success, outcome.reason) == (False, "protection")
    assert outcome.protections == {"require_auth": True, "forbidden_patterns": False}
    assert re.search(r"\d{3}-\d{2}-\d{4}", outcome.message) is None  # no tax id in the message


class _Redirector(BaseHTTPRequestHandler):
    redirect = True

    def do_GET(self) -> None:
        if self.redirect:
            self.send_response(308)
            self.send_header("Location", "https://127.0.0.1" + self.path)
        else:
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize(("redirects", "holds"), [(True, True), (False, False)])
def test_https_redirect_is_checked_on_the_plain_http_port(tmp_path: Path, crm: SandboxProcess,
                                                         secret: None, redirects: bool,
                                                         holds: bool) -> None:
    handler = type("H", (_Redirector,), {"redirect": redirects})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    check = f"""    - name: redirect
      kind: protection
      require_auth: false
      https_redirect: true
      http_url: http://127.0.0.1:{server.server_address[1]}"""
    try:
        [outcome] = run(tmp_path, crm.url, check, auth=OAUTH)
    finally:
        server.shutdown()
    assert outcome.protections == {"https_redirect": holds}
    assert outcome.success is holds


def test_an_outage_is_not_mistaken_for_a_broken_protection(tmp_path: Path, crm: SandboxProcess,
                                                          secret: None) -> None:
    crm.faults(outage=True)
    [outcome] = run(tmp_path, crm.url, PROTECTION, auth=OAUTH)
    assert (outcome.success, outcome.reason) == (False, "status")
    assert "require_auth" not in outcome.protections

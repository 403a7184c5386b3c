"""Bad access checks are one located line each and exit 2; a bruteforce check refuses any account
the config does not name explicitly, at load and again at run time, sending nothing."""

from __future__ import annotations

import asyncio
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from crmpulse import load_config
from crmpulse.app.cli import main
from crmpulse.probes.checks import TargetRunner

BASE = """\
target:
  name: shop
  base_url: {url}
  auth: {{type: oauth2_client_credentials, client_id: crmpulse, client_secret: "${{env:T_SECRET}}"}}
  credentials:
    tenant2: {{type: oauth2_client_credentials, client_id: crmpulse-tenant2, client_secret: "${{env:T_SECRET}}"}}
    token: {{type: bearer, token: "${{env:T_SECRET}}"}}
    canary: {{type: oauth2_password, client_id: crmpulse, username: canary@shop.example, password: "${{env:T_SECRET}}"}}
probes:
  checks:
    - name: isolation
      kind: isolation
      observer: tenant2
      reads:
        get: {{operation: get_contact, with: {{id: "{{{{ id }}}}"}}}}
        search: {{operation: search_contacts, with: {{email: "{{{{ email }}}}"}}, within: 10s}}
    - name: exposure
      kind: exposure
      reads: [{{operation: get_contact, with: {{id: "{{{{ id }}}}"}}}}]
      allow: [{{detector: email, path: $.email}}]
    - name: role
      kind: role_scope
      credential: token
      denied: [{{operation: delete_contact, with: {{id: "{{{{ other_id }}}}"}}}}]
    - name: revocation
      kind: revocation
      credential: tenant2
      revoke: {{operation: revoke_token, with: {{token: "{{{{ token }}}}"}}}}
      read: {{operation: whoami}}
    - name: lockout
      kind: bruteforce
      credential: canary
      account: canary@shop.example
"""

# id -> (text to replace in BASE, its replacement, the exact problem line)
CASES: dict[str, tuple[str, str, str]] = {
    'bruteforce-account-not-the-credentials': (
        'account: canary@shop.example',
        'account: ceo@shop.example',
        '{f}:33 probes.checks[4].account: refusing to lock an account not named explicitly: account is "ceo@shop.example", credential canary signs in as "canary@shop.example"; write the canary\'s username here to confirm it may be locked'),
    'bruteforce-without-account': (
        '      account: canary@shop.example\n',
        '',
        '{f}:30 probes.checks[4].account: required key is missing'),
    'bruteforce-with-a-token': (
        'credential: canary\n',
        'credential: token\n',
        '{f}:32 probes.checks[4].credential: credential token is bearer: a bruteforce check signs in with a password, so it needs an oauth2_password or basic credential'),
    'bruteforce-on-the-targets-own-account': (
        'auth: {type: oauth2_client_credentials, client_id: crmpulse, client_secret: "${env:T_SECRET}"}',
        'auth: {type: oauth2_password, client_id: crmpulse, username: canary@shop.example, password: "${env:T_SECRET}"}',
        '{f}:33 probes.checks[4].account: "canary@shop.example" is the target\'s own account: locking it would stop every probe'),
    'bruteforce-canary-also-used-by-another-check': (
        '      observer: tenant2\n',
        '      observer: canary\n',
        '{f}:32 probes.checks[4].credential: account "canary@shop.example" is also used by isolation: a canary this check locks must serve nothing else'),
    'unknown-credential': (
        'observer: tenant2',
        'observer: tenant3',
        '{f}:13 probes.checks[0].observer: expected the name of a credential in target.credentials, got "tenant3" (defined: canary, tenant2, token)'),
    'unknown-read-path': (
        '        get: {operation',
        '        fetch: {operation',
        '{f}:15 probes.checks[0].reads.fetch: expected one of \'get\', \'list\', \'search\', \'global_search\', \'export\' or \'report\', got "fetch"'),
    'unknown-operation': (
        'get: {operation: get_contact',
        'get: {operation: get_kontakt',
        '{f}:15 probes.checks[0].reads.get.operation: expected an operation of profile sandbox, got "get_kontakt" (did you mean "get_contact"?)'),
    'create-without-cleanup': (
        '      kind: exposure\n      reads: [{operation: get_contact, with: {id: "{{ id }}"}}]\n',
        '      kind: exposure\n      create: {operation: whoami}\n      reads: [{operation: list_contacts}]\n',
        '{f}:19 probes.checks[1].create.operation: operation whoami declares no cleanup in profile sandbox: records a probe creates must be deletable'),
    'unknown-template-variable': (
        'with: {id: "{{ other_id }}"}',
        'with: {id: "{{ other_idd }}"}',
        '{f}:24 probes.checks[2].denied[0].with.id: unknown template variable "other_idd" (did you mean "other_id"?)'),
    'allowance-for-a-detector-not-run': (
        'allow: [{detector: email, path: $.email}]',
        'allow: [{detector: ssn, path: $.email}]',
        '{f}:17 probes.checks[1].exposure: allow names detector "ssn", which this check does not run (card_number, email, iban, national_id, phone)'),
    'allowance-path-not-a-path': (
        'path: $.email}',
        'path: email}',
        '{f}:20 probes.checks[1].allow[0].path: expected a path like "$.data[*].email", "$..email" or "csv.email", got "email"'),
    'pattern-named-like-a-builtin': (
        '      allow: [{detector: email, path: $.email}]\n',
        "      allow: [{detector: email, path: $.email}]\n      patterns: {iban: 'X\\d+'}\n",
        "{f}:17 probes.checks[1].exposure: patterns may not reuse a built-in detector's name: iban"),
    'pattern-not-a-regex': (
        '      allow: [{detector: email, path: $.email}]\n',
        "      allow: [{detector: email, path: $.email}]\n      patterns: {staff_id: '[A-Z'}\n",
        "{f}:21 probes.checks[1].patterns.staff_id: expected a regular expression, got '[A-Z' (unterminated character set)"),
    'revoke-needs-oauth': (
        '      credential: tenant2\n      revoke:',
        '      credential: token\n      revoke:',
        '{f}:27 probes.checks[3].credential: credential token is bearer: a check that revokes a token fetches a fresh one, so it needs an oauth2_client_credentials or oauth2_password credential (without revoke, name a token already revoked)'),
    'wait-longer-than-the-timeout': (
        'within: 10s}',
        'within: 2m}',
        "{f}:16 probes.checks[0].reads.search.within: expected less than the check's timeout (1m): the run must outlast its wait, or it ends as a timeout instead of a verdict"),
    'role-scope-with-nothing-to-judge': (
        '      denied: [{operation: delete_contact, with: {id: "{{ other_id }}"}}]\n',
        '',
        '{f}:21 probes.checks[2].role_scope: give denied operations or hidden_fields (or both)'),
    'denied-status-a-success': (
        'with: {id: "{{ other_id }}"}}]',
        'with: {id: "{{ other_id }}"}, status: [204]}]',
        '{f}:24 probes.checks[2].denied[0].status[0]: input should be greater than or equal to 400, got 204'),
}


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_SECRET", "shop-secret")


def test_the_base_config_with_every_access_kind_is_valid(tmp_path: Path, secret: None,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "crmpulse.yaml"
    path.write_text(BASE.format(url="http://127.0.0.1:8085"))
    assert main(["check-config", str(path)]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_access_check_is_one_located_line_and_exit_2(case: str, tmp_path: Path, secret: None,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    old, new, expected = CASES[case]
    base = BASE.format(url="http://127.0.0.1:8085")
    assert base.count(old) == 1, f"{old!r} must appear once in BASE"
    path = tmp_path / "crmpulse.yaml"
    path.write_text(base.replace(old, new))
    code = main(["check-config", str(path)])
    lines = capsys.readouterr().err.splitlines()
    assert lines == [expected.format(f=path), "crmpulse: 1 problem found"]
    assert code == 2


class Recorder(BaseHTTPRequestHandler):
    """A CRM that records every request it receives and answers 200 to all."""

    seen: list[str] = []

    def _answer(self) -> None:
        self.seen.append(f"{self.command} {self.path}")
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"access_token": "t", "expires_in": 3600}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


def test_a_bruteforce_check_for_an_account_not_named_sends_nothing_even_when_loading_is_bypassed(
        tmp_path: Path, secret: None) -> None:
    """Defence in depth: a check whose account was changed after loading (or built in code) is
    refused by the runner before a single password is tried."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Recorder.seen = []
    try:
        path = tmp_path / "crmpulse.yaml"
        path.write_text(BASE.format(url=f"http://127.0.0.1:{server.server_address[1]}"))
        loaded = load_config(path)
        check = next(c for c in loaded.config.probes.checks if c.kind == "bruteforce")
        tampered = check.model_copy(update={"account": "ceo@shop.example"})

        async def run() -> tuple[bool, str, str]:
            runner = TargetRunner(loaded)
            try:
                outcome = await runner.run(tampered)
            finally:
                await runner.aclose()
            return outcome.success, outcome.reason, outcome.message

        success, reason, message = asyncio.run(run())
    finally:
        server.shutdown()
        server.server_close()
    assert (success, reason) == (False, "assertion")
    assert message.startswith("refusing to try passwords: credential canary is not a password "
                              "credential of the account the check names")
    assert Recorder.seen == []

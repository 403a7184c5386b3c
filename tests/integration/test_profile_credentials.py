"""Named credentials against the real sandbox: each operation sends the one it names, and each
credential keeps and renews its own token."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crmpulse import Client, load_config, redact
from crmpulse.auth import OAuth2Provider, OperationTokenProvider
from tests.helpers import SandboxProcess, write_config

SANDBOX = (Path(__file__).parents[2] / "crmpulse" / "profiles" / "sandbox.yaml").read_text()

# A token-only default (the personal access token), a client-credentials credential, and a
# session token that an operation of the profile fetches with a password, as a CRM whose one
# endpoint wants a short-lived token instead of the PAT would.
EXTRA = """
credentials:
  session:
    type: operation
    operation: session_login
    with: {username: "{{ login_user }}", password: "{{ login_password }}"}
    token: $.access_token
    expires_in: $.expires_in

operations:
  session_login:  # not `login`: the sandbox profile has one, for bruteforce checks
    method: POST
    path: /oauth/token
    auth: false
    json: {grant_type: password, client_id: crmpulse, username: "{{ username }}",
           password: "{{ password }}"}
    expect: [200]
  whoami_session: {path: /api/v1/me, auth: session, expect: [200], extract: {via: $.via}}
  whoami_client: {path: /api/v1/me, auth: client, expect: [200], extract: {via: $.via}}
"""

CONFIG = """
target:
  name: sandbox
  base_url: {url}
  auth: {{type: bearer, token: "${{env:T_PAT}}"}}
  credentials:
    client: {{type: oauth2_client_credentials, client_id: crmpulse, client_secret: "${{env:T_SECRET}}",
             token_url: /oauth/token}}
  variables: {{login_user: rep@sandbox.example, login_password: "${{env:T_PASSWORD}}"}}
profile: named.yaml
"""


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"T_PAT": "sandbox-pat", "T_SECRET": "sandbox-secret",
                        "T_PASSWORD": "sandbox-password"}.items():
        monkeypatch.setenv(name, value)


def profile_text() -> str:
    head, _, rest = SANDBOX.partition("operations:\n")
    extra_credentials, _, extra_operations = EXTRA.partition("operations:\n")
    return head + extra_credentials + "operations:\n" + extra_operations + rest


def client_for(tmp_path: Path, url: str) -> Client:
    (tmp_path / "named.yaml").write_text(profile_text())
    return Client(load_config(write_config(tmp_path, CONFIG.format(url=url))))


def test_each_operation_sends_the_credential_it_names(tmp_path: Path, crm: SandboxProcess) -> None:
    with client_for(tmp_path, crm.url) as client:
        vias = {op: client.call(op).values.get("via")
                for op in ("whoami_session", "whoami_client")}
        default = client.call("whoami")
    assert vias == {"whoami_session": "password", "whoami_client": "client_credentials"}
    assert default.ok and json.loads(default.body)["via"] == "personal_token"


def test_a_credential_fetches_its_token_once_and_renews_it_alone_after_a_401(
        tmp_path: Path, crm: SandboxProcess) -> None:
    with client_for(tmp_path, crm.url) as client:
        session, other = client.session.credentials["session"], client.session.credentials["client"]
        assert isinstance(session, OperationTokenProvider) and isinstance(other, OAuth2Provider)
        assert client.call("whoami_session").ok and client.call("whoami_session").ok
        assert client.call("whoami_client").ok
        assert (session.fetched, other.fetched) == (1, 1)
        crm.admin.post("/admin/tokens/revoke")  # the CRM forgets every token it issued
        renewed = client.call("whoami_session")
        assert renewed.ok, renewed.message
        assert (session.fetched, other.fetched) == (2, 1)
        assert client.call("whoami").ok  # the PAT never needed renewing


def test_a_fetched_token_is_masked_like_every_secret(tmp_path: Path, crm: SandboxProcess) -> None:
    with client_for(tmp_path, crm.url) as client:
        assert client.call("whoami_session").ok
        token = client.session.credentials["session"].headers()["Authorization"].removeprefix("Bearer ")
    assert token and redact.redact(f"token {token} here") == "token **** here"


def test_a_failed_token_fetch_fails_the_call_with_the_credentials_name(
        tmp_path: Path, crm: SandboxProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_PASSWORD", "not-the-password")
    with client_for(tmp_path, crm.url) as client:
        result = client.call("whoami_session")
    assert (result.ok, result.reason) == (False, "auth")
    assert result.message.startswith("whoami_session: credential session: session_login: expected status 200, "
                                     "got 400"), result.message  # invalid_grant

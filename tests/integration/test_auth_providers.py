"""Every auth provider against the real sandbox, including OAuth2 token refresh."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from crmpulse import Client, load_config
from crmpulse.auth import OAuth2Provider
from tests.helpers import SandboxProcess, write_config

AUTH = {
    "none": "type: none",
    "basic": "type: basic\n    username: rep@sandbox.example\n    password: ${env:T_PASSWORD}",
    "bearer": "type: bearer\n    token: ${env:T_PAT}",
    "api_key": "type: api_key\n    header: X-API-Key\n    key: ${env:T_API_KEY}",
    "oauth2_client_credentials": "type: oauth2_client_credentials\n    client_id: crmpulse\n"
                                 "    client_secret: ${env:T_CLIENT_SECRET}",
    "oauth2_password": "type: oauth2_password\n    client_id: crmpulse\n"
                       "    username: rep@sandbox.example\n    password: ${env:T_PASSWORD}",
}


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"T_PASSWORD": "sandbox-password", "T_PAT": "sandbox-pat",
                        "T_API_KEY": "sandbox-api-key", "T_CLIENT_SECRET": "sandbox-secret"}.items():
        monkeypatch.setenv(name, value)


def client_for(tmp_path: Path, url: str, auth: str, extra: str = "") -> Client:
    body = ("target:\n  name: sandbox\n  base_url: " + url + "\n  auth:\n    "
            + auth + extra + "\n")
    return Client(load_config(write_config(tmp_path, body)))


@pytest.mark.parametrize("kind", [k for k in AUTH if k != "none"])
def test_each_auth_provider_is_accepted_by_the_sandbox(tmp_path: Path, crm: SandboxProcess,
                                                       kind: str) -> None:
    with client_for(tmp_path, crm.url, AUTH[kind]) as client:
        result = client.call("whoami")
    assert result.ok, result.message
    assert result.values["subject"]


def test_no_credentials_are_refused_with_401(tmp_path: Path, crm: SandboxProcess) -> None:
    with client_for(tmp_path, crm.url, AUTH["none"]) as client:
        result = client.call("list_accounts")
    assert (result.ok, result.status, result.reason) == (False, 401, "auth")


def test_wrong_client_secret_fails_as_auth_without_leaking_it(
        tmp_path: Path, crm: SandboxProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_CLIENT_SECRET", "wrong-secret-value")
    with client_for(tmp_path, crm.url, AUTH["oauth2_client_credentials"]) as client:
        result = client.call("list_accounts")
    assert (result.ok, result.reason) == (False, "auth")
    assert "invalid_client" in result.message
    assert "wrong-secret-value" not in result.message


def test_oauth_token_is_cached_across_calls(tmp_path: Path, crm: SandboxProcess) -> None:
    with client_for(tmp_path, crm.url, AUTH["oauth2_client_credentials"]) as client:
        for _ in range(5):
            assert client.call("whoami").ok
        auth = client.session.auth
        assert isinstance(auth, OAuth2Provider)
        assert auth.fetched == 1


def test_oauth_token_is_refreshed_before_it_expires(tmp_path: Path, crm: SandboxProcess) -> None:
    crm.admin.put("/admin/settings", json={"token_ttl_s": 2})
    try:
        with client_for(tmp_path, crm.url, AUTH["oauth2_client_credentials"],
                        "\n    refresh_before: 1s") as client:
            assert client.call("whoami").ok
            auth = client.session.auth
            assert isinstance(auth, OAuth2Provider)
            first = auth.token
            time.sleep(1.1)  # inside refresh_before of the 2 s lifetime: refresh, no 401 first
            before = crm.stats()["requests"]
            assert client.call("whoami").ok
            assert auth.fetched == 2 and auth.token != first
            # exactly one token request and one API request: no failed attempt in between
            assert crm.stats()["requests"] - before == 2
    finally:
        crm.admin.put("/admin/settings", json={"token_ttl_s": 3600})


def test_a_401_on_a_cached_token_refreshes_once_and_retries(tmp_path: Path,
                                                            crm: SandboxProcess) -> None:
    with client_for(tmp_path, crm.url, AUTH["oauth2_password"]) as client:
        assert client.call("whoami").ok
        crm.admin.post("/admin/tokens/revoke")  # the server forgets every token it issued
        result = client.call("whoami")
        auth = client.session.auth
        assert isinstance(auth, OAuth2Provider)
    assert result.ok
    assert auth.fetched == 2


def test_a_401_that_persists_after_refresh_fails_instead_of_looping(tmp_path: Path,
                                                                   crm: SandboxProcess) -> None:
    with client_for(tmp_path, crm.url, AUTH["oauth2_client_credentials"]) as client:
        assert client.call("whoami").ok
        crm.admin.put("/admin/settings", json={"token_ttl_s": 0})  # tokens are born expired
        crm.admin.post("/admin/tokens/revoke")
        before = crm.stats()["requests"]
        try:
            result = client.call("whoami")  # every new token is already expired
        finally:
            crm.admin.put("/admin/settings", json={"token_ttl_s": 3600})
    assert (result.ok, result.status) == (False, 401)
    # 401, new token, retry, 401 again: then stop (each retry also fetches a token: 4 requests)
    assert crm.stats()["requests"] - before <= 5

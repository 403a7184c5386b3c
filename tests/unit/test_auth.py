"""Token caching logic, with the clock passed in (the real refresh runs in integration tests)."""

from __future__ import annotations

import json

import pytest

from crmpulse import AuthError
from crmpulse._yamlfile import SecretValue
from crmpulse.auth import OAuth2Provider
from crmpulse.config import OAuth2ClientCredentials, OAuth2Password


def provider(refresh_before: float = 30.0) -> OAuth2Provider:
    spec = OAuth2ClientCredentials(type="oauth2_client_credentials", client_id="c",
                                   client_secret=SecretValue("s", "${env:X}"),  # type: ignore[arg-type]
                                   refresh_before=refresh_before)
    return OAuth2Provider(spec, "https://crm.example.com/oauth/token")


def test_a_token_is_reused_until_refresh_before_its_expiry() -> None:
    p = provider(refresh_before=30)
    assert p.needs_token(now=0)
    p.accept_token(200, json.dumps({"access_token": "t1", "expires_in": 300}).encode(), now=0)
    assert p.headers() == {"Authorization": "Bearer t1"}
    assert not p.needs_token(now=269)
    assert p.needs_token(now=270)


def test_a_rejected_token_request_raises_auth_error_naming_the_oauth_error() -> None:
    p = provider()
    with pytest.raises(AuthError, match=r"token endpoint answered 401 \(invalid_client\)") as caught:
        p.accept_token(401, b'{"error": "invalid_client"}', now=0)
    assert caught.value.reason == "auth"
    assert p.needs_token(now=0)


def test_the_client_secret_goes_in_basic_auth_never_in_the_url() -> None:
    request = provider().token_request()
    assert request.headers["Authorization"].startswith("Basic ")
    assert request.form == {"grant_type": "client_credentials"}
    assert "s" not in request.url.split("/")[-1]


def test_password_grant_sends_the_user_credentials() -> None:
    spec = OAuth2Password(type="oauth2_password", username="u@x.example",
                          password=SecretValue("pw", "${env:P}"))  # type: ignore[arg-type]
    request = OAuth2Provider(spec, "https://x/token").token_request()
    assert request.form == {"grant_type": "password", "username": "u@x.example", "password": "pw"}


def test_providers_do_not_show_secrets_in_repr() -> None:
    assert "s" not in repr(provider()).split("(")[1].replace("oauth2_client_credentials", "").replace(
        "https://crm.example.com/oauth/token", "")

"""Credentials for a target: none, basic, bearer, API key header, OAuth2 grants.

Providers are sans-I/O: they say which headers to add and, for OAuth2, which token
request to send and how to read its answer, so the async probes, the sync client and
Locust users share one implementation. An OAuth2 token is cached until
``refresh_before`` ahead of its expiry, then fetched again; a 401 on a request made
with a cached token invalidates it and the request is retried once with a new one.

Every provider knows the ``origins`` its credentials may go to (see crmpulse.origins);
:class:`crmpulse.client.Session` refuses to send them anywhere else. The header values
credentials become, and each token fetched, are registered with crmpulse.redact so no
output shows them.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterable
from typing import Any

from . import redact
from ._exceptions import AuthError
from .config import (
    APIKeyAuth,
    BasicAuth,
    BearerAuth,
    NoAuth,
    OAuth2ClientCredentials,
    OAuth2Password,
    Target,
)
from .origins import Origin, fixed_origin
from .profile import Profile, RenderedRequest

__all__ = ["AuthProvider", "OAuth2Provider", "StaticAuth", "make_auth", "token_url"]


class AuthProvider:
    """Adds credentials to requests. The base class sends none."""

    kind = "none"
    refreshable = False
    #: where these credentials may be sent (with the target's own origins)
    origins: frozenset[Origin] = frozenset()
    #: where token requests may also go: an absolute token URL the config or profile names
    token_origins: frozenset[Origin] = frozenset()

    def headers(self) -> dict[str, str]:
        """Headers to add now; empty when a token must be fetched first (see needs_token)."""
        return {}

    def needs_token(self, now: float | None = None) -> bool:
        return False

    def token_request(self) -> RenderedRequest:
        raise AuthError(f"{self.kind} credentials have no token to fetch")

    def accept_token(self, status: int, body: bytes, now: float | None = None) -> None:
        raise AuthError(f"{self.kind} credentials have no token to fetch")

    def invalidate(self) -> None:
        """Forget a cached token (after a 401)."""


class StaticAuth(AuthProvider):
    """Basic, bearer and API-key credentials: the same header on every request."""

    def __init__(self, kind: str, header: str, value: str) -> None:
        self.kind = kind
        self._header = {header: value}
        redact.register(value)

    def headers(self) -> dict[str, str]:
        return dict(self._header)

    def __repr__(self) -> str:
        return f"StaticAuth({self.kind}, {next(iter(self._header))}: ****)"


class OAuth2Provider(AuthProvider):
    """OAuth2 client-credentials or password grant with token caching and refresh."""

    refreshable = True

    def __init__(self, spec: OAuth2ClientCredentials | OAuth2Password, token_url: str) -> None:
        self.kind = spec.type
        self.spec = spec
        self.token_url = token_url
        self.token: str | None = None
        self.expires_at = 0.0
        self.fetched = 0
        redact.register(self.token_request().headers.get("Authorization"))

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def needs_token(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return self.token is None or now >= self.expires_at - self.spec.refresh_before

    def token_request(self) -> RenderedRequest:
        spec = self.spec
        form: dict[str, Any] = {}
        headers: dict[str, str] = {"Accept": "application/json"}
        if isinstance(spec, OAuth2ClientCredentials):
            form["grant_type"] = "client_credentials"
            secret: str | None = spec.client_secret.get_secret_value()
        else:
            form.update(grant_type="password", username=spec.username,
                        password=spec.password.get_secret_value())
            secret = spec.client_secret.get_secret_value() if spec.client_secret else None
        if spec.client_id and secret:
            pair = f"{spec.client_id}:{secret}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        elif spec.client_id:
            form["client_id"] = spec.client_id
        if spec.scope:
            form["scope"] = spec.scope
        return RenderedRequest(operation="authenticate", method="POST", url=self.token_url,
                               headers=headers, form=form, auth=False)

    def accept_token(self, status: int, body: bytes, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if status != 200:
            self.invalidate()
            raise AuthError(f"token endpoint answered {status}{_oauth_error(body)}")
        try:
            payload = json.loads(body)
            token = payload["access_token"]
            lifetime = float(payload.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError):
            self.invalidate()
            raise AuthError("token endpoint answered 200 without an access_token") from None
        self.token = str(token)
        redact.register(self.token, runtime=True)
        self.expires_at = now + lifetime
        self.fetched += 1

    def invalidate(self) -> None:
        self.token = None
        self.expires_at = 0.0

    def __repr__(self) -> str:
        return f"OAuth2Provider({self.kind}, {self.token_url})"


def _oauth_error(body: bytes) -> str:
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return ""
    return f" ({error})" if isinstance(error, str) and len(error) < 64 else ""


def token_url(target: Target, profile: Profile) -> str | None:
    """Where an OAuth2 target's token requests go (None for other kinds of credentials)."""
    spec = target.auth
    if not isinstance(spec, OAuth2ClientCredentials | OAuth2Password):
        return None
    if spec.token_url:
        if spec.token_url.lower().startswith(("http://", "https://")):
            return spec.token_url
        return target.base_url + "/" + spec.token_url.lstrip("/")
    return profile.operation("authenticate").render(target.base_url, {}).url


def make_auth(target: Target, profile: Profile, extra_origins: Iterable[Origin] = ()) -> AuthProvider:
    """The provider for ``target.auth``; OAuth2 uses the profile's authenticate path by default.

    Its credentials may go to the target's origins and ``extra_origins``; a token request
    also to an absolute token URL the config or the profile names.
    """
    spec = target.auth
    provider: AuthProvider
    if isinstance(spec, NoAuth):
        provider = AuthProvider()
    elif isinstance(spec, BasicAuth):
        pair = f"{spec.username}:{spec.password.get_secret_value()}".encode()
        provider = StaticAuth("basic", "Authorization", "Basic " + base64.b64encode(pair).decode())
    elif isinstance(spec, BearerAuth):
        provider = StaticAuth("bearer", "Authorization", f"Bearer {spec.token.get_secret_value()}")
    elif isinstance(spec, APIKeyAuth):
        provider = StaticAuth("api_key", spec.header, spec.key.get_secret_value())
    else:
        url = token_url(target, profile)
        assert url is not None
        provider = OAuth2Provider(spec, url)
    provider.origins = target.credential_origins | frozenset(extra_origins)
    if isinstance(spec, OAuth2ClientCredentials | OAuth2Password):
        named = fixed_origin(spec.token_url or profile.operation("authenticate").path)
        provider.token_origins = frozenset({named} if named else ())
    return provider

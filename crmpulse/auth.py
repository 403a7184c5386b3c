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
from ._types import first_match
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
from .profile import Extract, OperationCredential, OperationResult, Profile, RenderedRequest, loads_json
from .templates import MISSING

__all__ = ["AuthProvider", "OAuth2Provider", "OperationTokenProvider", "StaticAuth", "make_auth",
           "token_url"]


class AuthProvider:
    """Adds credentials to requests. The base class sends none."""

    kind = "none"
    refreshable = False
    #: where these credentials may be sent (with the target's own origins)
    origins: frozenset[Origin] = frozenset()
    #: where token requests may also go: an absolute token URL the config or profile names
    token_origins: frozenset[Origin] = frozenset()
    #: the base URL a token response named for later requests (Salesforce's instance_url)
    instance_url: str | None = None

    def __init__(self) -> None:
        #: the target's other credentials by name (``target.credentials`` and the profile's),
        #: kept with the default one so every Session sharing it shares their tokens too
        self.named: dict[str, AuthProvider] = {}

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
        super().__init__()
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

    def __init__(self, spec: OAuth2ClientCredentials | OAuth2Password, token_url: str,
                 instance_url: str | None = None, name: str = "authenticate") -> None:
        super().__init__()
        self.kind = spec.type
        self.spec = spec
        self.token_url = token_url
        self.name = name
        self.instance_url_path = instance_url
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
        return RenderedRequest(operation=self.name, method="POST", url=self.token_url,
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
        except (ValueError, KeyError, TypeError, AttributeError):
            self.invalidate()
            raise AuthError("token endpoint answered 200 without an access_token") from None
        if not isinstance(token, str) or not token or not 0 <= lifetime < 10 * 365 * 86400:
            self.invalidate()
            raise AuthError("token endpoint answered 200 without a usable access_token and lifetime")
        instance: Any = None
        if self.instance_url_path is not None:
            instance = first_match(self.instance_url_path, payload)
            if not isinstance(instance, str) or not instance.lower().startswith(("http://", "https://")):
                self.invalidate()
                raise AuthError(f"token endpoint answered 200 without an instance URL at "
                                f"{self.instance_url_path}")
        self.token = token
        redact.register(self.token, runtime=True)
        self.instance_url = instance.rstrip("/") if instance else None
        self.expires_at = now + lifetime
        self.fetched += 1

    def invalidate(self) -> None:
        self.token = None
        self.expires_at = 0.0

    def __repr__(self) -> str:
        return f"OAuth2Provider({self.kind}, {self.token_url})"


class OperationTokenProvider(AuthProvider):
    """A token a profile operation fetches (``credentials: {NAME: {type: operation}}``).

    The Session calls ``spec.operation`` when the token is missing or near expiry and
    hands the result to :meth:`accept_result`; the token then rides as
    ``spec.header: spec.prefix + token``.
    """

    kind = "operation"
    refreshable = True

    def __init__(self, name: str, spec: OperationCredential) -> None:
        super().__init__()
        self.name = name
        self.spec = spec
        self.token: str | None = None
        self.expires_at = 0.0
        self.fetched = 0

    def headers(self) -> dict[str, str]:
        return {self.spec.header: f"{self.spec.prefix}{self.token}"} if self.token else {}

    def needs_token(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return self.token is None or now >= self.expires_at - self.spec.refresh_before

    def accept_result(self, result: OperationResult, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if not result.ok:
            self.invalidate()
            raise AuthError(f"credential {self.name}: {result.message or result.reason}")
        token = _read(self.spec.token, result)
        if not isinstance(token, str) or not token or len(token) > 16384:
            self.invalidate()
            raise AuthError(f"credential {self.name}: {self.spec.operation} answered without a "
                            f"token at {self.spec.token.from_}")
        lifetime = self.spec.lifetime
        if self.spec.expires_in is not None:
            given = _read(self.spec.expires_in, result)
            try:
                seconds = float(given)
            except (TypeError, ValueError):
                seconds = 0.0
            if 0 < seconds < 10 * 365 * 86400:
                lifetime = seconds
        self.token = token
        redact.register(token, runtime=True)
        redact.register(self.headers()[self.spec.header], runtime=True)
        self.expires_at = now + lifetime
        self.fetched += 1

    def invalidate(self) -> None:
        self.token = None
        self.expires_at = 0.0

    def __repr__(self) -> str:
        return f"OperationTokenProvider({self.name}, {self.spec.operation})"


def _read(spec: Extract, result: OperationResult) -> Any:
    """A value of a result by an extract spec: a header, or a JSONPath into its body."""
    header = spec.in_header
    if header is not None:
        found: Any = next((v for k, v in result.headers.items() if k.lower() == header), MISSING)
    elif spec.from_ == "body":
        found = result.body.decode("utf-8", "replace")
    elif spec.from_ == "status":
        found = result.status
    else:
        try:
            found = first_match(spec.from_, loads_json(result.body))
        except ValueError:
            found = MISSING
    found = spec.pick(found)
    return None if found is MISSING else found


def _oauth_error(body: bytes) -> str:
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return ""
    return f" ({error})" if isinstance(error, str) and len(error) < 64 else ""


def token_url(target: Target, profile: Profile, spec: Any = None) -> str | None:
    """Where an OAuth2 credential's token requests go (None for other kinds of credentials).

    ``spec`` defaults to ``target.auth``; without a ``token_url`` of its own it is the
    path of the profile's ``authenticate`` operation.
    """
    spec = target.auth if spec is None else spec
    if not isinstance(spec, OAuth2ClientCredentials | OAuth2Password):
        return None
    if spec.token_url:
        if spec.token_url.lower().startswith(("http://", "https://")):
            return spec.token_url
        return target.base_url + "/" + spec.token_url.lstrip("/")
    if "authenticate" not in profile.operations:
        raise AuthError(f"profile {profile.name} has no authenticate operation: give token_url")
    return profile.operation("authenticate").render(target.base_url, {}).url


def _provider(spec: Any, name: str, target: Target, profile: Profile,
              origins: frozenset[Origin]) -> AuthProvider:
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
        url = token_url(target, profile, spec)
        assert url is not None
        provider = OAuth2Provider(spec, url, profile.instance_url,
                                  "authenticate" if name == "" else f"authenticate {name}")
    provider.origins = origins
    if isinstance(spec, OAuth2ClientCredentials | OAuth2Password):
        named = fixed_origin(spec.token_url or profile.operation("authenticate").path)
        provider.token_origins = frozenset({named} if named else ())
    return provider


def make_auth(target: Target, profile: Profile, extra_origins: Iterable[Origin] = ()) -> AuthProvider:
    """The provider for ``target.auth``; OAuth2 uses the profile's authenticate path by default.

    Its credentials may go to the target's origins and ``extra_origins``; a token request
    also to an absolute token URL the config or the profile names. The named credentials
    (``target.credentials`` and the profile's ``credentials``) ride along in ``.named``,
    each with the same origins and a token cache of its own.
    """
    origins = target.credential_origins | frozenset(extra_origins)
    provider = _provider(target.auth, "", target, profile, origins)
    for name, spec in target.credentials.items():
        provider.named[name] = _provider(spec, name, target, profile, origins)
    for name, credential in profile.credentials.items():
        if target.is_anonymous:
            break  # no credentials at all: an operation that needs one fails, unsent
        named = OperationTokenProvider(name, credential)
        named.origins = origins
        provider.named[name] = named
    return provider

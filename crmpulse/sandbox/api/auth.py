"""Credentials in the native dialect: token, login and revocation endpoints, /me, and what a
request carries.

Accepted on the API: an OAuth2 bearer token from ``POST /oauth/token`` or ``POST /login``,
a personal access token or the integration token as bearer, HTTP basic with a user's
password, or an ``X-API-Key`` header. The token endpoint takes the client_credentials
and password grants, as a form or as JSON, with the client authenticated by a Basic
header or by form fields. ``POST /oauth/revoke`` (RFC 7009) revokes any bearer token.
Every password path counts failures toward the account's lockout (access.LoginGuard).
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import parse_qsl

from pydantic import BaseModel, ValidationError
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response

from ..access import Principal
from ..engine import Sandbox
from .common import ApiError, Endpoint, Inputs, MalformedJSON, error, parse_json, read_body
from .models import LoginRequest, RevokeRequest, TokenRequest

__all__ = ["authenticator", "endpoints"]

M = TypeVar("M", bound=BaseModel)


def _basic(value: str) -> tuple[str | None, str | None]:
    try:
        user, _, password = base64.b64decode(value).decode().partition(":")
        return user, password
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        return None, None


def authenticator(sb: Sandbox) -> Callable[[Headers], Principal | None]:
    """Who a request's credentials belong to, or None."""
    def authenticate(headers: Headers) -> Principal | None:
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and value:
            return sb.bearer_principal(value)
        if scheme.lower() == "basic" and value:
            login, password = _basic(value)
            user = sb.password_user(login, password or "") if login is not None else None
            return Principal(login, "basic", user) if user is not None and login is not None else None
        key = headers.get("x-api-key")
        return sb.api_key_principal(key) if key else None
    return authenticate


def _invalid_request(message: str) -> ApiError:
    return ApiError(error(400, "invalid_request", message))


async def _token_request(inputs: Inputs, model: type[M]) -> M:
    """The request's parameters as ``model``: a form, or JSON when the type says so."""
    raw = await read_body(inputs.request)
    try:
        if "json" in inputs.request.headers.get("content-type", ""):
            data = parse_json(raw)
            if not isinstance(data, dict):
                raise ValueError
        else:
            pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=50)
            data = dict(pairs)
            if len(data) < len(pairs):  # RFC 6749 3.2: no parameter more than once
                raise _invalid_request("a parameter was given more than once")
    except (MalformedJSON, ValueError):
        raise _invalid_request("expected a form or JSON body") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        name = exc.errors()[0]["loc"][0]
        raise _invalid_request(f"{name}: expected a short string") from None


def endpoints(sb: Sandbox) -> list[Endpoint]:
    async def token(inputs: Inputs) -> Response:
        form = await _token_request(inputs, TokenRequest)
        client_id, client_secret = form.client_id, form.client_secret
        scheme, _, value = inputs.request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            client_id, client_secret = _basic(value)
        if form.grant_type == "client_credentials":
            user = sb.client_user(client_id, client_secret or "") if client_id is not None else None
            if user is None or client_id is None:
                return error(401, "invalid_client", "unknown client or wrong secret")
            return JSONResponse(sb.issue_token(Principal(client_id, "client_credentials", user)))
        if form.grant_type == "password":
            if client_id is not None and not sb.is_client(client_id):
                return error(401, "invalid_client", "unknown client")
            username = form.username or ""
            if sb.logins.locked(username):
                return error(400, "invalid_grant", "the account is locked after too many failed "
                             "logins; try again later")
            user = sb.password_user(username, form.password or "")
            if user is None:
                return error(400, "invalid_grant", "wrong username or password")
            return JSONResponse(sb.issue_token(Principal(username, "password", user)))
        return error(400, "unsupported_grant_type", "grant_type must be client_credentials or password")

    async def login(inputs: Inputs) -> Response:
        form = await _token_request(inputs, LoginRequest)
        username = form.username or ""
        locked = sb.logins.locked(username)
        if locked:
            return error(429, "locked", "the account is locked after too many failed logins",
                         {"Retry-After": str(math.ceil(locked))})
        user = sb.password_user(username, form.password or "")
        if user is None:
            return error(401, "invalid_credentials", "wrong username or password")
        return JSONResponse(sb.issue_token(Principal(username, "login", user)))

    async def revoke(inputs: Inputs) -> Response:
        form = await _token_request(inputs, RevokeRequest)
        if not form.token:
            return error(400, "invalid_request", "token is required")
        sb.revoke(form.token)
        return JSONResponse({})  # RFC 7009 2.2: the same answer whether the token was known

    async def me(inputs: Inputs) -> Response:
        return JSONResponse(inputs.principal.describe())

    return [
        Endpoint("POST", "/oauth/token", token, "Exchange client or user credentials for a token",
                 body=TokenRequest, form=True, access="token",
                 responses={200: "an access token", 400: "invalid request or grant",
                            401: "unknown client or wrong secret"},
                 operation_id="token"),
        Endpoint("POST", "/login", login, "Sign in with a username and password (locks after "
                 "repeated failures)", body=LoginRequest, form=True, access="token",
                 responses={200: "an access token", 401: "wrong username or password",
                            429: "the account is locked; Retry-After says for how long"},
                 operation_id="login"),
        Endpoint("POST", "/oauth/revoke", revoke, "Revoke a token (RFC 7009)", body=RevokeRequest,
                 form=True, access="token", responses={200: "revoked, or never valid",
                                                       400: "no token given"},
                 operation_id="revoke"),
        Endpoint("GET", "/api/v1/me", me, "Who the credentials belong to",
                 responses={200: "the principal: sub, via, user, tenant, role"}, operation_id="whoami"),
    ]

"""Credentials in the native dialect: the OAuth2 token endpoint, /me, and what a request carries.

Accepted on the API: an OAuth2 bearer token from ``POST /oauth/token``, a personal
access token as bearer, HTTP basic with a user's password, or an ``X-API-Key`` header.
The token endpoint takes the client_credentials and password grants, as a form or as
JSON, with the client authenticated by a Basic header or by form fields.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response

from ..engine import Sandbox
from .common import ApiError, Endpoint, Inputs, MalformedJSON, error, parse_json, read_body
from .models import TokenRequest

__all__ = ["authenticator", "endpoints"]


def _basic(value: str) -> tuple[str | None, str | None]:
    try:
        user, _, password = base64.b64decode(value).decode().partition(":")
        return user, password
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        return None, None


def authenticator(sb: Sandbox) -> Callable[[Headers], dict[str, Any] | None]:
    """Who a request's credentials belong to, or None."""
    def authenticate(headers: Headers) -> dict[str, Any] | None:
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and value:
            return sb.token_principal(value) or sb.personal_token_principal(value)
        if scheme.lower() == "basic" and value:
            user, password = _basic(value)
            if user is not None and sb.user_ok(user, password or ""):
                return {"sub": user, "via": "basic"}
            return None
        key = headers.get("x-api-key")
        return sb.api_key_principal(key) if key else None
    return authenticate


def _invalid_request(message: str) -> ApiError:
    return ApiError(error(400, "invalid_request", message))


async def _token_request(inputs: Inputs) -> TokenRequest:
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
        return TokenRequest.model_validate(data)
    except ValidationError as exc:
        name = exc.errors()[0]["loc"][0]
        raise _invalid_request(f"{name}: expected a short string") from None


def endpoints(sb: Sandbox) -> list[Endpoint]:
    async def token(inputs: Inputs) -> Response:
        form = await _token_request(inputs)
        client_id, client_secret = form.client_id, form.client_secret
        scheme, _, value = inputs.request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            client_id, client_secret = _basic(value)
        if form.grant_type == "client_credentials":
            if client_id is None or not sb.client_ok(client_id, client_secret or ""):
                return error(401, "invalid_client", "unknown client or wrong secret")
            return JSONResponse(sb.issue_token({"sub": client_id, "via": "client_credentials"}))
        if form.grant_type == "password":
            if client_id is not None and not sb.is_client(client_id):
                return error(401, "invalid_client", "unknown client")
            if not sb.user_ok(form.username or "", form.password or ""):
                return error(400, "invalid_grant", "wrong username or password")
            return JSONResponse(sb.issue_token({"sub": form.username, "via": "password"}))
        return error(400, "unsupported_grant_type", "grant_type must be client_credentials or password")

    async def me(inputs: Inputs) -> Response:
        return JSONResponse(inputs.request.state.principal)

    return [
        Endpoint("POST", "/oauth/token", token, "Exchange client or user credentials for a token",
                 body=TokenRequest, form=True, access="token",
                 responses={200: "an access token", 400: "invalid request or grant",
                            401: "unknown client or wrong secret"},
                 operation_id="token"),
        Endpoint("GET", "/api/v1/me", me, "Who the credentials belong to",
                 responses={200: "the principal"}, operation_id="whoami"),
    ]

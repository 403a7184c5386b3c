"""Salesforce OAuth2: the token and revoke endpoints, and the session a request carries.

    POST /services/oauth2/token    client_credentials (the app's client id and secret as
                                   form fields or a Basic header, acting as the app's
                                   run-as user) and password (username-password flow)
    POST /services/oauth2/revoke   token=...: 200 with no body; 400 invalid_token

Token responses carry ``instance_url``, the origin every later call must use (the
sandbox's own: the API is served on the same origin the token was asked for),
``issued_at`` in milliseconds as a string, an identity URL in ``id`` and a
``signature`` (HMAC-SHA256 of id + issued_at with the client secret; Salesforce does
not document the input, so clients must not check it). Access tokens look like
sessions: the org id, ``!``, then random text. A session expires after ``--token-ttl``
of inactivity (each call renews it; Salesforce's default is two hours). Errors are
``{"error", "error_description"}`` with status 400 (research/salesforce.md 1.1-1.4;
sources cc-flow, up-flow, oauth-err-obs, revoke).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable
from urllib.parse import parse_qsl

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ...access import Principal
from ...api.common import ApiError, read_body
from ...engine import Sandbox
from ..common import origin
from .objects import org_id, user_id

__all__ = ["authenticator", "revoke", "token"]


def _oauth_error(error: str, description: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def _basic(value: str) -> tuple[str, str] | None:
    try:
        user, sep, secret = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, ValueError):
        return None
    return (user, secret) if sep else None


async def _form(request: Request) -> dict[str, str]:
    raw = await read_body(request)
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=50)
    except (UnicodeDecodeError, ValueError):
        raise ApiError(_oauth_error("invalid_request", "the body must be a form")) from None
    form = dict(pairs)
    if len(form) < len(pairs):
        raise ApiError(_oauth_error("invalid_request", "a parameter was given more than once"))
    if any(len(v) > 4000 for v in form.values()):
        raise ApiError(_oauth_error("invalid_request", "a parameter is too long"))
    return form


def _session(sb: Sandbox, principal: Principal, request: Request, secret: str,
             with_scope: bool) -> JSONResponse:
    token = sb.issue_token(principal, prefix=f"{org_id(principal.user.tenant, 15)}!")["access_token"]
    base = origin(request)
    identity = f"{base}/id/{org_id(principal.user.tenant)}/{user_id(principal.user)}"
    issued_at = str(int(time.time() * 1000))
    signature = base64.b64encode(hmac.new(secret.encode(), (identity + issued_at).encode(),
                                          hashlib.sha256).digest()).decode()
    body = {"access_token": token, "signature": signature, "instance_url": base, "id": identity,
            "token_type": "Bearer", "issued_at": issued_at}
    if with_scope:
        body["scope"] = "api"
    return JSONResponse(body)


async def token(sb: Sandbox, request: Request) -> Response:
    try:
        form = await _form(request)
    except ApiError as exc:
        return exc.response
    client_id, secret = form.get("client_id"), form.get("client_secret")
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic" and (pair := _basic(value)) is not None:
        client_id, secret = pair
    grant = form.get("grant_type")
    if grant not in ("client_credentials", "password"):
        return _oauth_error("unsupported_grant_type", "grant type not supported")
    if client_id is None or not sb.is_client(client_id):
        return _oauth_error("invalid_client_id", "client identifier invalid")
    run_as = sb.client_user(client_id, secret or "")
    if run_as is None:
        return _oauth_error("invalid_client", "invalid client credentials")
    if grant == "client_credentials":
        return _session(sb, Principal(client_id, "client_credentials", run_as), request, secret or "", True)
    username = form.get("username") or ""
    user = sb.password_user(username, form.get("password") or "")
    if user is None:  # a wrong password and a locked account read the same
        return _oauth_error("invalid_grant", "authentication failure")
    return _session(sb, Principal(username, "password", user), request, secret or "", False)


async def revoke(sb: Sandbox, request: Request) -> Response:
    try:
        form = await _form(request)
    except ApiError as exc:
        return exc.response
    if not sb.revoke(form.get("token") or ""):
        return _oauth_error("invalid_token", "invalid token")
    return Response(status_code=200)


def authenticator(sb: Sandbox) -> Callable[[Headers], Principal | None]:
    """The session of ``Authorization: Bearer`` (or the older ``OAuth``) with a token."""
    def authenticate(headers: Headers) -> Principal | None:
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() not in ("bearer", "oauth") or not value:
            return None
        principal = sb.bearer_principal(value)
        if principal is not None and principal.via not in ("client_credentials", "password",
                                                           "integration_token", "outbound_message"):
            return None  # the native dialect's personal tokens are no Salesforce sessions
        if principal is not None and value in sb.tokens:  # sessions expire after inactivity
            sb.tokens[value] = (sb.tokens[value][0], time.time() + sb.settings.token_ttl)
        return principal
    return authenticate


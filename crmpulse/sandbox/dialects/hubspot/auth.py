"""HubSpot credentials: private-app tokens, the OAuth v1 token endpoint, and scopes.

    Authorization: Bearer pat-na1-...   a private app's token (static; an app has scopes)
    GET  /oauth/authorize               the install screen, consenting at once: 302 to the
                                        redirect_uri with ?code= (and state)
    POST /oauth/v1/token                grant_type authorization_code or refresh_token (form)
    GET  /oauth/v1/access-tokens/{t}    what an access token is
    GET|DELETE /oauth/v1/refresh-tokens/{t}   what a refresh token is | delete it (204)

OAuth access tokens live 30 minutes (``expires_in: 1800``, or ``--token-ttl`` when
shorter); their responses carry no daily rate-limit headers. Missing or unknown
credentials are a 401 ``INVALID_AUTHENTICATION`` with ``X-HubSpot-Auth-Failure``; an
expired OAuth token ``EXPIRED_AUTHENTICATION``; a call the app's scopes do not cover a
403 ``MISSING_SCOPES`` (research/hubspot.md section 1). Deleting a refresh token leaves
the access tokens made from it working, as HubSpot documents. A private-app token is
revoked in HubSpot's settings, not by API: the sandbox does it with
``POST /admin/access/revoke``.
"""

from __future__ import annotations

import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from ...access import Principal
from ...api.common import read_body
from ...engine import Sandbox
from .objects import owner_id, portal_id

__all__ = ["ALL_SCOPES", "PRIVATE_APPS", "REFRESH_TOKENS", "HubSpotAuth"]

ALL_SCOPES = frozenset({
    "oauth", "crm.objects.contacts.read", "crm.objects.contacts.write", "crm.objects.companies.read",
    "crm.objects.companies.write", "crm.objects.deals.read", "crm.objects.deals.write",
    "crm.objects.leads.read", "crm.objects.leads.write", "crm.objects.owners.read"})
# token -> (app id, user login, scopes): the sandbox's private apps, public test values
PRIVATE_APPS: dict[str, tuple[int, str, frozenset[str]]] = {
    "pat-na1-11111111-1111-4111-8111-111111111111": (1001, "integration@sandbox.example", ALL_SCOPES),
    "pat-na1-22222222-2222-4222-8222-222222222222": (1002, "admin@tenant2.example", ALL_SCOPES),
    "pat-na1-33333333-3333-4333-8333-333333333333": (1003, "integration@sandbox.example",
                                                     frozenset({"oauth", "crm.objects.contacts.read"})),
}
# refresh token -> (client id, user login): installs of the sandbox's OAuth app
REFRESH_TOKENS = {"sandbox-hubspot-refresh-token": ("crmpulse", "rep@sandbox.example"),
                  "sandbox-hubspot-refresh-token-tenant2": ("crmpulse", "admin@tenant2.example")}
OAUTH_APP_ID = 2001
AUTH_MESSAGE = ("Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
                "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview")


def hs_error(status: int, message: str, category: str | None = None, **extra: Any) -> JSONResponse:
    correlation = str(uuid.uuid4())
    body: dict[str, Any] = {"status": "error", "message": message, "correlationId": correlation}
    if category:
        body["category"] = category
    body.update(extra)
    headers = {"X-HubSpot-Correlation-Id": correlation}
    if status == 401:
        headers["X-HubSpot-Auth-Failure"] = "401 Unauthorized"
    return JSONResponse(body, status_code=status, headers=headers,
                        media_type="application/json;charset=utf-8")


def _oauth_error(status: str, message: str) -> JSONResponse:
    return JSONResponse({"status": status, "message": message, "correlationId": str(uuid.uuid4())},
                        status_code=400, media_type="application/json;charset=utf-8")


class HubSpotAuth:
    """The credentials of one sandbox: private apps, OAuth codes and refresh tokens."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.codes: dict[str, tuple[str, str, float]] = {}  # code -> (client id, redirect uri, expiry)
        self.refresh: dict[str, tuple[str, str]] = dict(REFRESH_TOKENS)
        for token, (app, login, scopes) in PRIVATE_APPS.items():
            user = sb.users[login]
            sb.add_static_token(token, Principal(f"private-app-{app}", "private_app", user, scopes=scopes,
                                                 extra={"app": app}))

    def reset(self) -> None:
        self.codes.clear()
        self.refresh = dict(REFRESH_TOKENS)

    def authenticate(self, headers: Headers) -> Principal | None:
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not value:
            return None
        principal = self.sb.bearer_principal(value)
        if principal is None or principal.via not in ("private_app", "oauth", "integration_token"):
            return None
        return principal

    def refuse(self, request: Request) -> Response:
        _, _, value = request.headers.get("authorization", "").partition(" ")
        ago = self.sb.token_expired(value) if value else None
        if ago is not None:
            expired = datetime.fromtimestamp(time.time() - ago, UTC).isoformat(timespec="milliseconds")
            return hs_error(401, f"The OAuth token used to make this call expired {int(ago)} second(s) ago.",
                            "EXPIRED_AUTHENTICATION",
                            context={"expire time": [expired.replace("+00:00", "Z")]})
        return hs_error(401, AUTH_MESSAGE, "INVALID_AUTHENTICATION")

    @staticmethod
    def allowed(principal: Principal, scope: str, widened: bool) -> bool:
        return widened or principal.scopes is None or scope in principal.scopes

    # -- OAuth -------------------------------------------------------------------------

    async def authorize(self, request: Request) -> Response:
        params = request.query_params
        client, redirect = params.get("client_id", ""), params.get("redirect_uri", "")
        if not self.sb.is_client(client) or not redirect.startswith(("http://", "https://")):
            return hs_error(400, "missing or unknown client id, or no redirect_uri", "VALIDATION_ERROR")
        code = secrets.token_urlsafe(18)
        self.codes[code] = (client, redirect, time.time() + 600)
        query = {"code": code, **({"state": params["state"]} if "state" in params else {})}
        joiner = "&" if "?" in redirect else "?"
        return RedirectResponse(f"{redirect}{joiner}{urlencode(query)}", status_code=302)

    async def token(self, request: Request) -> Response:
        raw = await read_body(request)
        try:
            pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=50)
        except (UnicodeDecodeError, ValueError):
            return _oauth_error("BAD_REQUEST", "the body must be a form")
        form = dict(pairs)
        client, secret = form.get("client_id", ""), form.get("client_secret", "")
        if not self.sb.is_client(client):
            return _oauth_error("BAD_CLIENT_ID", "missing or unknown client id")
        if self.sb.client_user(client, secret) is None:
            return _oauth_error("BAD_CLIENT_SECRET", "missing or invalid client secret")
        grant = form.get("grant_type")
        if grant == "refresh_token":
            entry = self.refresh.get(form.get("refresh_token", ""))
            if entry is None or entry[0] != client:
                return _oauth_error("BAD_REFRESH_TOKEN", "missing or invalid refresh token")
            return self.issue(client, entry[1], form["refresh_token"])
        if grant == "authorization_code":
            code = self.codes.pop(form.get("code", ""), None)
            if (code is None or code[0] != client or code[1] != form.get("redirect_uri")
                    or code[2] < time.time()):
                return _oauth_error("BAD_AUTH_CODE", "missing or invalid auth code")
            refresh = str(uuid.uuid4())
            self.refresh[refresh] = (client, "rep@sandbox.example")
            return self.issue(client, "rep@sandbox.example", refresh)
        return _oauth_error("BAD_GRANT_TYPE", "grant_type must be authorization_code or refresh_token")

    def issue(self, client: str, login: str, refresh: str) -> Response:
        user = self.sb.users[login]
        ttl = min(1800.0, self.sb.settings.token_ttl)
        principal = Principal(client, "oauth", user, scopes=ALL_SCOPES,
                              extra={"app": OAUTH_APP_ID, "refresh": refresh})
        token = self.sb.issue_token(principal, ttl=ttl, prefix="CJSP")["access_token"]
        return JSONResponse({"token_type": "bearer", "refresh_token": refresh, "access_token": token,
                             "expires_in": int(ttl), "token_use": "access", "hub_id": portal_id(user.tenant),
                             "user_id": int(owner_id(user)), "scopes": sorted(ALL_SCOPES)})

    async def access_token_info(self, request: Request) -> Response:
        token = request.path_params["token"]
        entry = self.sb.tokens.get(token)
        principal = self.sb.token_principal(token)
        if entry is None or principal is None or principal.via != "oauth":
            return hs_error(404, "not found", "OBJECT_NOT_FOUND")
        user = principal.user
        return JSONResponse({"token": token, "user": user.login,
                             "hub_domain": f"portal{portal_id(user.tenant)}.example",
                             "hub_id": portal_id(user.tenant), "app_id": OAUTH_APP_ID,
                             "expires_in": max(0, int(entry[1] - time.time())),
                             "user_id": int(owner_id(user)),
                             "token_type": "access", "scopes": sorted(principal.scopes or ())})

    async def refresh_token(self, request: Request) -> Response:
        token = request.path_params["token"]
        entry = self.refresh.get(token)
        if entry is None:
            return hs_error(404, "not found", "OBJECT_NOT_FOUND")
        if request.method == "DELETE":  # access tokens made from it keep working, as documented
            del self.refresh[token]
            return Response(status_code=204)
        user = self.sb.users[entry[1]]
        return JSONResponse({"token": token, "user": user.login,
                             "hub_domain": f"portal{portal_id(user.tenant)}.example",
                             "hub_id": portal_id(user.tenant), "client_id": entry[0],
                             "scopes": sorted(ALL_SCOPES), "token_type": "refresh",
                             "user_id": int(owner_id(user))})

"""Microsoft Entra ID tokens for Dataverse: ``POST /{tenant}/oauth2/v2.0/token``.

The client-credentials grant takes the app's client id (a GUID), its secret (a form
field or HTTP Basic) and the resource scope ``{environment URL}/.default``, where the
environment is the sandbox's own origin; the password grant (resource owner password
credentials) takes a user's login instead of a secret. Tokens are JWT-shaped bearer
tokens living ``expires_in: 3599`` seconds (or ``--token-ttl`` when shorter). Errors are
Entra's: ``{error, error_description "AADSTSnnnn: ...", error_codes, timestamp,
trace_id, correlation_id, error_uri}``, 401 for ``invalid_client``, 400 otherwise
(research/dynamics.md section 1; sources cc, aadsts, oauth). Failed passwords count
toward the account's lockout, answered ``AADSTS50053`` as Entra's smart lockout is.

A call without a valid token gets 401 with an empty body and ``WWW-Authenticate: Bearer
authorization_uri=..., resource_id=...``; the authorization URI names the sandbox's own
token endpoint (Dataverse names login.microsoftonline.com), so a client that discovers
its authority from the challenge stays on loopback.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ...access import Principal, User
from ...api.common import read_body
from ...engine import Sandbox
from ..common import origin
from .objects import TENANT_ID, user_guid

__all__ = ["APPS", "DOMAIN", "EntraAuth"]

# Entra application (client) ids of the sandbox's app registrations -> the sandbox's clients
APPS = {"4a5d7e1c-0000-4000-8000-000000000001": "crmpulse",
        "4a5d7e1c-0000-4000-8000-000000000002": "crmpulse-restricted",
        "4a5d7e1c-0000-4000-8000-000000000003": "crmpulse-tenant2"}
DOMAIN = "sandbox.example"  # the Entra tenant's verified domain; its GUID is TENANT_ID


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class EntraAuth:
    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb

    def error(self, status: int, error: str, code: int, message: str) -> JSONResponse:
        trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        return JSONResponse({
            "error": error,
            "error_description": f"AADSTS{code}: {message}\r\nTrace ID: {trace}\r\nCorrelation ID: "
                                 f"{correlation}\r\nTimestamp: {stamp}",
            "error_codes": [code], "timestamp": stamp, "trace_id": trace, "correlation_id": correlation,
            "error_uri": f"https://login.microsoftonline.com/error?code={code}"}, status_code=status)

    async def token(self, request: Request) -> Response:
        tenant = request.path_params["tenant"]
        if tenant.lower() not in (TENANT_ID, DOMAIN):
            return self.error(400, "invalid_request", 90002,
                              f"Tenant '{tenant[:80]}' not found. Check to make sure "
                              "you have the correct tenant ID and are signing into the correct cloud.")
        raw = await read_body(request)
        try:
            pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=50)
        except (UnicodeDecodeError, ValueError):
            return self.error(400, "invalid_request", 900144, "The request body must contain the following "
                              "parameter: 'grant_type'.")
        form = dict(pairs)
        if any(len(v) > 4000 for v in form.values()):
            return self.error(400, "invalid_request", 90014, "A parameter is too long.")
        client, secret = form.get("client_id"), form.get("client_secret")
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                client, _, secret = base64.b64decode(value, validate=True).decode().partition(":")
            except (binascii.Error, ValueError):
                return self.error(401, "invalid_client", 7000215, "Invalid client secret provided.")
        for name in ("grant_type", "client_id", "scope"):
            if not form.get(name) and not (name == "client_id" and client):
                return self.error(400, "invalid_request", 900144,
                                  f"The request body must contain the following "
                                  f"parameter: '{name}'.")
        grant = form["grant_type"]
        if grant not in ("client_credentials", "password"):
            return self.error(400, "unsupported_grant_type", 70003,
                              "The app requested an unsupported grant type "
                              f"'{grant[:60]}'.")
        app = APPS.get((client or "").lower())
        if app is None:
            return self.error(400, "unauthorized_client", 700016, (
                f"Application with identifier '{(client or '')[:60]}' was not found in the directory "
                f"'{DOMAIN}'. This can happen if the application has not been installed by the "
                "administrator of the tenant or consented to by any user in the tenant. You may have sent "
                "your authentication request to the wrong tenant."))
        scope = form["scope"]
        resource = origin(request)
        if not scope.endswith("/.default"):
            return self.error(400, "invalid_scope", 70011,
                              f"The provided value for the input parameter 'scope' is "
                              f"not valid. The scope {scope[:200]} is not valid.")
        wanted = scope.removesuffix("/.default").rstrip("/")
        if urlsplit(wanted).netloc.lower() != urlsplit(resource).netloc.lower():
            return self.error(400, "invalid_resource", 500011, (
                f"The resource principal named {wanted[:200]} was not found in the tenant named {DOMAIN}. "
                "This can happen if the application has not been installed by the administrator of the "
                "tenant or consented to by any user in the tenant."))
        if grant == "client_credentials":
            user = self.sb.client_user(app, secret or "")
            if user is None:
                return self.error(401, "invalid_client", 7000215, (
                    "Invalid client secret provided. Ensure the secret being sent in the request is the "
                    f"client secret value, not the client secret ID, for a secret added to app '{client}'."))
            return self.issue(Principal(app, "client_credentials", user, extra={"app": client}), resource)
        login = form.get("username", "")
        if self.sb.logins.locked(login):
            return self.error(400, "invalid_grant", 50053,
                              "Your account is locked because you've tried to sign "
                              "in too many times with an incorrect user ID or password.")
        person = self.sb.password_user(login, form.get("password", ""))
        if person is None:
            return self.error(400, "invalid_grant", 50126,
                              "Error validating credentials due to invalid username "
                              "or password.")
        return self.issue(Principal(login, "password", person, extra={"app": client}), resource)

    def issue(self, principal: Principal, resource: str) -> Response:
        ttl = min(3599.0, self.sb.settings.token_ttl)
        now = int(time.time())
        claims = {"aud": resource, "iss": f"https://sts.windows.net/{TENANT_ID}/", "iat": now, "nbf": now,
                  "exp": now + int(ttl), "tid": TENANT_ID, "oid": user_guid(principal.user),
                  "appid": principal.extra.get("app"), "ver": "1.0"}
        prefix = ".".join([_b64(json.dumps({"typ": "JWT", "alg": "RS256", "kid": "sandbox"}).encode()),
                           _b64(json.dumps(claims).encode()), ""])
        token = self.sb.issue_token(principal, ttl=ttl, prefix=prefix)["access_token"]
        return JSONResponse({"token_type": "Bearer", "expires_in": int(ttl), "ext_expires_in": int(ttl),
                             "access_token": token})

    def authenticate(self, headers: Headers) -> Principal | None:
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not value:
            return None
        principal = self.sb.bearer_principal(value)
        if principal is None or principal.via not in ("client_credentials", "password", "integration_token"):
            return None
        return principal

    def refuse(self, request: Request) -> Response:
        base = origin(request)
        challenge = f"Bearer authorization_uri={base}/{TENANT_ID}/oauth2/authorize, resource_id={base}/"
        return Response(status_code=401, headers={"WWW-Authenticate": challenge})


def user_of(sb: Sandbox, value: str) -> User | None:
    for user in sb.settings.users:
        if user_guid(user) == value.lower().strip("{}"):
            return user
    return None


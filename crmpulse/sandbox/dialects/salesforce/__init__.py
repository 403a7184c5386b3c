"""The Salesforce dialect: ``crmpulse sandbox --dialect salesforce``.

    GET  /services/data/                   the versions (31.0 to 62.0): no credentials, not counted
    POST /services/oauth2/token            client_credentials and password flows (auth.py)
    POST /services/oauth2/revoke           revoke a session (auth.py)
    ...  /services/data/vNN.N/...          the REST API (rest.py); SOQL and SOSL (soql.py)
    GET|POST /admin/webhooks, DELETE /admin/webhooks/{id}   outbound messages (outbound.py)

Quota: limits.py. Objects and wire forms: objects.py. docs/sandbox.md says, with the
sources, what is emulated and what is not.
"""

from __future__ import annotations

import re
import secrets
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ...access import TENANT_1
from ...api.common import MalformedJSON, read_body
from ...api.models import Body, Explain, _loopback
from ...engine import Sandbox
from ...middleware import ErrorStyle, Policy, Zone
from ...quota import Meters
from ...webhooks import Hook
from ..common import Surface, hook_admin, origin, sandbox_routes, sandbox_zone
from ..ids import salesforce_id
from . import auth, outbound
from .limits import SalesforceLimits, SalesforceMeter
from .objects import OBJECTS
from .rest import LATEST, NO_BODY, OLDEST, Call, Rest, versions

__all__ = ["surface"]

JSON = "application/json;charset=UTF-8"


def zone(path: str) -> Zone:
    own = sandbox_zone(path)
    if own is not None:
        return own
    if path in ("/services/data", "/services/data/"):
        return Zone.PUBLIC
    if path.startswith("/services/oauth2/"):
        return Zone.TOKEN
    if path.startswith("/services/data/"):
        return Zone.API
    return Zone.PUBLIC


class SalesforceErrors(ErrorStyle):
    """The shared layers' errors as Salesforce words them: an array of {message, errorCode}."""

    CODES = {"unavailable": "SERVER_UNAVAILABLE", "overloaded": "SERVER_UNAVAILABLE",
             "rate_limited": "REQUEST_LIMIT_EXCEEDED", "internal_error": "UNKNOWN_EXCEPTION",
             "unauthorized": "INVALID_SESSION_ID", "too_large": "REQUEST_ENTITY_TOO_LARGE",
             "bad_request": "BAD_REQUEST", "not_found": "NOT_FOUND",
             "method_not_allowed": "METHOD_NOT_ALLOWED"}

    def error(self, status: int, code: str, message: str, headers: Any = None) -> Response:
        if code == "not_found":
            message = "The requested resource does not exist"
        elif code == "method_not_allowed" and headers and "Allow" in headers:
            message = f"HTTP Method not allowed. Allowed are {headers['Allow'].replace(' ', '')}"
        elif code == "unauthorized":
            message = "Session expired or invalid"
        return JSONResponse([{"message": message, "errorCode": self.CODES.get(code, code.upper())}],
                            status_code=status, headers=dict(headers) if headers else None, media_type=JSON)


class OutboundMessage(Body):
    """An outbound message: which objects' creates and updates to send where."""

    url: Annotated[str, Field(max_length=2000), AfterValidator(_loopback)]
    objects: Annotated[list[Literal["Account", "Contact", "Lead", "Opportunity", "Task"]],
                       Field(min_length=1, max_length=5),
                       Explain("expected a list of sObject names")] = ["Contact"]
    fields: Annotated[list[Annotated[str, Field(max_length=80)]], Field(max_length=100),
                      Explain("expected a list of field names")] = []
    tenant: Annotated[str, Field(max_length=40), Explain("expected a tenant id")] = TENANT_1.id
    session: Annotated[bool, Explain("expected true or false")] = False


def surface(sb: Sandbox) -> Surface:
    sb.meters = Meters(SalesforceLimits)
    meter = SalesforceMeter(sb.meters)
    rest = Rest(sb, meter)
    render = outbound.render(sb)
    base: dict[str, str] = {}

    def make_hook(body: OutboundMessage) -> Hook:
        unknown = [f for f in body.fields if not any(OBJECTS[o].field(f) for o in body.objects)]
        if unknown or body.tenant not in sb.tenants:
            from ...api.common import ApiError, invalid
            where, what = (["body", "fields"], f"no such field {unknown[0]}") if unknown else \
                (["body", "tenant"], "no such tenant")
            raise ApiError(invalid([{"loc": where, "msg": what}]))
        session = None
        if body.session:  # a session the listener may call back with, as Salesforce can include
            run_as = next(u for u in sb.settings.users if u.tenant == body.tenant and u.role == "full")
            from ...access import Principal
            session = sb.issue_token(Principal(run_as.login, "outbound_message", run_as))["access_token"]
        return Hook(f"wh_{secrets.token_hex(6)}", body.url, body.tenant, render, kind="salesforce",
                    retry=outbound.RETRY,
                    options={"objects": list(body.objects), "fields": list(body.fields),
                             "action": salesforce_id(f"act_{secrets.token_hex(8)}", "04k"),
                             "base": base.get("url", ""), "session": session})

    async def versions_list(request: Request) -> Response:
        return JSONResponse(versions(), media_type=JSON)

    async def token(request: Request) -> Response:
        base["url"] = origin(request)
        return await auth.token(sb, request)

    async def revoke(request: Request) -> Response:
        return await auth.revoke(sb, request)

    async def data(request: Request) -> Response:
        first, _, path = request.path_params["rest"].partition("/")
        version = re.fullmatch(r"v(\d{1,3})\.(\d)", first)
        if version is None or version[2] != "0" or int(version[1]) > LATEST:
            return SalesforceErrors().error(404, "not_found", "")
        if int(version[1]) < OLDEST:
            return JSONResponse([{"message": f"API version {first[1:]} has been retired",
                                  "errorCode": "GONE"}], status_code=410, media_type=JSON)
        method = request.method
        params = {k: v for k, v in request.query_params.multi_items()[::-1]}  # the first of repeats wins
        if method == "POST" and params.pop("_HttpMethod", "").upper() == "PATCH":
            method = "PATCH"
        body: Any = NO_BODY
        if method in ("POST", "PATCH"):
            raw = await read_body(request)
            if raw.strip():
                try:
                    from ...api.common import MAX_DEPTH, parse_json
                    body = parse_json(raw, MAX_DEPTH)
                except MalformedJSON as exc:
                    return JSONResponse([{"message": str(exc), "errorCode": "JSON_PARSER_ERROR"}],
                                        status_code=400, media_type=JSON)
        batch = 2000
        options = re.search(r"batchSize\s*=\s*(\d{1,9})", request.headers.get("sforce-query-options", ""))
        if options:
            batch = max(200, min(2000, int(options[1])))
        result = rest.dispatch(Call(method, path, f"{version[1]}.0", params, request.state.principal,
                                    body, batch))
        if result.status == 204:
            return Response(status_code=204, headers=result.headers)
        return JSONResponse(result.body, status_code=result.status, headers=result.headers, media_type=JSON)

    def refuse(request: Request) -> Response:
        return SalesforceErrors().error(401, "unauthorized", "")

    routes = [
        *sandbox_routes(sb, hook_admin(sb, OutboundMessage, make_hook)),
        Route("/services/data", versions_list, methods=["GET"]),
        Route("/services/data/", versions_list, methods=["GET"]),
        Route("/services/oauth2/token", token, methods=["POST"]),
        Route("/services/oauth2/revoke", revoke, methods=["POST"]),
        Route("/services/data/{rest:path}", data, methods=["GET", "POST", "PATCH", "DELETE", "PUT"]),
    ]
    policy = Policy(zone=zone, authenticate=auth.authenticator(sb), errors=SalesforceErrors(),
                    refuse=refuse, meter=meter)
    return Surface(routes, policy)

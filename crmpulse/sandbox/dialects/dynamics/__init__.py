"""The Dynamics 365 dialect: ``crmpulse sandbox --dialect dynamics`` (the Dataverse Web API).

    POST /{tenant}/oauth2/v2.0/token          Entra ID tokens (auth.py)
    ...  /api/data/v9.2/...                   the Web API (webapi.py); $filter and paging (odata.py)
    GET|POST /admin/webhooks, DELETE /admin/webhooks/{id}   webhook steps (webhooks.py)

Service protection limits: limits.py. Tables and wire forms: objects.py. The second
tenant of the sandbox is a second business unit of the same environment, the way
Dataverse isolates parts of one organization. docs/sandbox.md says, with the sources,
what is emulated and what is not.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...access import TENANT_1
from ...api.common import ApiError, invalid
from ...api.models import Body, Explain, _loopback
from ...engine import Sandbox
from ...middleware import ErrorStyle, Policy, Zone
from ...quota import Meters
from ...webhooks import Hook
from ..common import Surface, hook_admin, origin, sandbox_routes, sandbox_zone
from . import webhooks
from .auth import EntraAuth
from .limits import DataverseLimits, DataverseMeter
from .webapi import WebApi, dv_error

__all__ = ["surface"]


def zone(path: str) -> Zone:
    own = sandbox_zone(path)
    if own is not None:
        return own
    if path.startswith("/api/data/"):
        return Zone.API
    if path.endswith("/oauth2/v2.0/token"):
        return Zone.TOKEN
    return Zone.PUBLIC


class DataverseErrors(ErrorStyle):
    """The shared layers' errors in Dataverse's envelope (401s are the policy's own)."""

    CODES = {"unavailable": "0x80040216", "overloaded": "0x80040216", "rate_limited": "0x80072322",
             "internal_error": "0x80040216", "too_large": "0x80040216", "bad_request": "0x80060888",
             "not_found": "0x8006088a", "method_not_allowed": "0x80060888", "unauthorized": "0x8005F101"}

    def error(self, status: int, code: str, message: str, headers: Any = None) -> Response:
        if code == "not_found":
            message = "Resource not found for the segment."
        return dv_error(status, self.CODES.get(code, "0x80040216"), message, headers)


class WebhookStep(Body):
    """A webhook and its step: which messages of which tables to send, and the shared secret."""

    url: Annotated[str, Field(max_length=2000), AfterValidator(_loopback)]
    entities: Annotated[list[Literal["account", "contact", "lead", "opportunity", "task"]],
                        Field(min_length=1, max_length=5),
                        Explain("expected a list of table logical names")] = [
        "contact"]
    messages: Annotated[list[Literal["Create", "Update", "Delete"]], Field(min_length=1, max_length=3),
                        Explain("expected a list of Create, Update, Delete")] = ["Create", "Update", "Delete"]
    auth: Annotated[Literal["HttpHeader", "WebhookKey", "HttpQueryString"],
                    Explain("expected HttpHeader, WebhookKey or HttpQueryString")] = "WebhookKey"
    value: Annotated[dict[Annotated[str, Field(max_length=100)], Annotated[str, Field(max_length=500)]],
                     Field(max_length=10), Explain("expected an object of strings")] = {}
    tenant: Annotated[str, Field(max_length=40), Explain("expected a tenant id")] = TENANT_1.id


def surface(sb: Sandbox) -> Surface:
    sb.meters = Meters(DataverseLimits)
    meter = DataverseMeter(sb.meters)
    auth = EntraAuth(sb)
    api = WebApi(sb)
    base: dict[str, str] = {}
    render = webhooks.render(sb, base)

    def make_hook(body: WebhookStep) -> Hook:
        if body.tenant not in sb.tenants:
            raise ApiError(invalid([{"loc": ["body", "tenant"], "msg": "no such tenant"}]))
        if body.auth == "WebhookKey" and set(body.value) != {"code"}:
            raise ApiError(invalid([{"loc": ["body", "value"], "msg": 'WebhookKey takes {"code": "..."}'}]))
        return Hook(f"wh_{secrets.token_hex(6)}", body.url, body.tenant, render, list(body.messages),
                    retry=webhooks.RETRY, kind="dynamics",
                    options={"entities": list(body.entities), "auth": body.auth, "value": dict(body.value),
                             "step": "5a1d0000-0000-4000-8000-" + secrets.token_hex(6)})

    async def token(request: Request) -> Response:
        base["host"] = origin(request).split("://", 1)[1]
        return await auth.token(request)

    routes = [
        *sandbox_routes(sb, hook_admin(sb, WebhookStep, make_hook)),
        Route("/{tenant}/oauth2/v2.0/token", token, methods=["POST"]),
        Route("/api/data/{version}/", api.dispatch, methods=["GET"]),
        Route("/api/data/{version}/{rest:path}", api.dispatch, methods=["GET", "POST", "PATCH", "DELETE",
                                                                        "PUT"]),
    ]
    policy = Policy(zone=zone, authenticate=auth.authenticate, errors=DataverseErrors(), refuse=auth.refuse,
                    meter=meter)
    return Surface(routes, policy)

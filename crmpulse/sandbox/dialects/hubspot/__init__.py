"""The HubSpot dialect: ``crmpulse sandbox --dialect hubspot``.

    /crm/v3/objects/...      contacts, companies, deals, tasks, notes, leads (crm.py)
    /crm/v3/owners, /crm/v3/pipelines/deals, /account-info/v3/...              (crm.py)
    /oauth/authorize, /oauth/v1/token, /oauth/v1/access-tokens|refresh-tokens  (auth.py)
    GET|POST /admin/webhooks, DELETE /admin/webhooks/{id}   app webhooks (webhooks.py)

Rate limits: limits.py. Objects and wire forms: objects.py. docs/sandbox.md says, with
the sources, what is emulated and what is not.
"""

from __future__ import annotations

import itertools
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
from ..common import Surface, hook_admin, sandbox_routes, sandbox_zone
from . import webhooks
from .auth import HubSpotAuth, hs_error
from .crm import Crm
from .limits import HubSpotLimits, HubSpotMeter

__all__ = ["surface"]


def zone(path: str) -> Zone:
    own = sandbox_zone(path)
    if own is not None:
        return own
    if path.startswith("/oauth/"):
        return Zone.TOKEN
    if path.startswith(("/crm/", "/account-info/")):
        return Zone.API
    return Zone.PUBLIC


class HubSpotErrors(ErrorStyle):
    """The shared layers' errors in HubSpot's envelope."""

    CATEGORIES = {"unauthorized": "INVALID_AUTHENTICATION", "too_large": "VALIDATION_ERROR",
                  "bad_request": "VALIDATION_ERROR", "rate_limited": "RATE_LIMITS"}

    def error(self, status: int, code: str, message: str, headers: Any = None) -> Response:
        if code == "not_found":
            message = "resource not found"
        response = hs_error(status, message, self.CATEGORIES.get(code))
        if code == "rate_limited":  # the shared rate-limit knob, in HubSpot's words for a burst
            response = hs_error(429, "You have reached your secondly limit.", None, errorType="RATE_LIMIT",
                                policyName="SECONDLY")
        for name, value in (headers or {}).items():
            response.headers[name] = value
        return response


class HubSpotHook(Body):
    """An app's webhook subscriptions: which events go to which URL, for which account."""

    url: Annotated[str, Field(max_length=2000), AfterValidator(_loopback)]
    events: Annotated[list[Literal[webhooks.EVENTS]],  # type: ignore[valid-type]
                      Field(min_length=1, max_length=len(webhooks.EVENTS)),
                      Explain(f"expected a list of {list(webhooks.EVENTS)}")] = ["contact.creation"]
    property: Annotated[str | None, Field(max_length=100),
                        Explain("expected a property name: propertyChange events for it only")] = None
    tenant: Annotated[str, Field(max_length=40), Explain("expected a tenant id")] = TENANT_1.id


def surface(sb: Sandbox) -> Surface:
    sb.meters = Meters(HubSpotLimits)
    meter = HubSpotMeter(sb.meters)
    auth = HubSpotAuth(sb)
    sb.on_reset.append(auth.reset)
    crm = Crm(sb, auth, meter)
    render = webhooks.render(sb)
    subscriptions = itertools.count(100001)
    secret = sb.settings.clients["crmpulse"][0]  # HubSpot signs with the app's client secret

    def make_hook(body: HubSpotHook) -> Hook:
        if body.tenant not in sb.tenants:
            raise ApiError(invalid([{"loc": ["body", "tenant"], "msg": "no such tenant"}]))
        return Hook(f"wh_{secrets.token_hex(6)}", body.url, body.tenant, render, list(body.events), secret,
                    retry=webhooks.RETRY, kind="hubspot",
                    options={"subscription": next(subscriptions), "property": body.property})

    async def token(request: Request) -> Response:
        return await auth.token(request)

    routes = [
        *sandbox_routes(sb, hook_admin(sb, HubSpotHook, make_hook)),
        Route("/oauth/authorize", auth.authorize, methods=["GET"]),
        Route("/oauth/v1/token", token, methods=["POST"]),
        Route("/oauth/v1/access-tokens/{token}", auth.access_token_info, methods=["GET"]),
        Route("/oauth/v1/refresh-tokens/{token}", auth.refresh_token, methods=["GET", "DELETE"]),
        Route("/crm/v3/objects/{type}", crm.collection, methods=["GET", "POST"]),
        Route("/crm/v3/objects/{type}/search", crm.search, methods=["POST"]),
        Route("/crm/v3/objects/{type}/{id}", crm.record, methods=["GET", "PATCH", "DELETE"]),
        Route("/crm/v3/owners", crm.owners, methods=["GET"]),
        Route("/crm/v3/owners/", crm.owners, methods=["GET"]),
        Route("/crm/v3/owners/{ownerId}", crm.owners, methods=["GET"]),
        Route("/crm/v3/pipelines/deals", crm.pipelines, methods=["GET"]),
        Route("/account-info/v3/api-usage/daily/private-apps", crm.usage, methods=["GET"]),
        Route("/account-info/v3/details", crm.details, methods=["GET"]),
    ]
    policy = Policy(zone=zone, authenticate=auth.authenticate, errors=HubSpotErrors(), refuse=auth.refuse,
                    meter=meter)
    return Surface(routes, policy)

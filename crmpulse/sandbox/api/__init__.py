"""The native dialect: the sandbox's own REST API, one module per resource.

    POST /oauth/token                         client_credentials and password grants (auth.py)
    POST /login, POST /oauth/revoke           sign in (with lockout), revoke a token (auth.py)
    GET  /api/v1/me                           who the credentials belong to (auth.py)
    GET|POST /api/v1/contacts                 cursor pagination and filters (contacts.py)
    GET|PATCH|DELETE /api/v1/contacts/{id}
    GET|POST /api/v1/accounts                 page/per_page pagination (accounts.py)
    GET|PATCH|DELETE /api/v1/accounts/{id}
    GET|POST /api/v1/deals, GET|PATCH|DELETE /api/v1/deals/{id}            (deals.py)
    GET|POST /api/v1/leads, GET|PATCH|DELETE /api/v1/leads/{id}            (leads.py)
    GET|POST /api/v1/activities, GET|DELETE /api/v1/activities/{id}        (activities.py)
    GET  /api/v1/search/contacts?q=&tag=&email=   served from the search index (search.py)
    GET  /api/v1/reports/pipeline, /api/v1/reports/activities             (reports.py)
    GET  /api/v1/export/{contacts,accounts,deals,leads,activities}  CSV   (reports.py)
    GET|POST /api/v1/webhooks, DELETE /api/v1/webhooks/{id}                (webhooks.py)
    GET|PUT|DELETE /admin/faults, GET|PUT /admin/settings, POST /admin/tokens/revoke,
    GET /admin/access, POST /admin/access/revoke, GET|PUT /admin/quota,
    GET /admin/stats, POST /admin/reset       the admin API (admin.py)
    GET  /healthz, GET /openapi.json          no credentials, never faulted

Inputs are the pydantic models of models.py; common.py turns the endpoint table into
routes, openapi.py into the document. Faults, body limits and credentials are the
shared layers of ../middleware.py, told about this dialect by ``policy()``.
"""

from __future__ import annotations

from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..engine import Sandbox
from ..middleware import ErrorStyle, Policy, Zone
from . import accounts, activities, admin, auth, contacts, deals, leads, reports, search, webhooks
from .common import Endpoint, Inputs
from .common import routes as _routes
from .openapi import document

__all__ = ["endpoints", "policy", "routes", "zone"]

TITLE = "crmpulse sandbox CRM"


def zone(path: str) -> Zone:
    if path.startswith("/api/"):
        return Zone.API
    if path in ("/oauth/token", "/oauth/revoke", "/login"):
        return Zone.TOKEN
    if path.startswith("/admin/"):
        return Zone.ADMIN
    return Zone.PUBLIC


def policy(sb: Sandbox) -> Policy:
    return Policy(zone=zone, authenticate=auth.authenticator(sb), errors=ErrorStyle())


def endpoints(sb: Sandbox) -> list[Endpoint]:
    """Every endpoint, the most frequently called first (the router tries them in order)."""
    described: dict[str, object] = {}

    async def healthz(inputs: Inputs) -> Response:
        return JSONResponse({"status": "ok"})

    async def openapi(inputs: Inputs) -> Response:
        if not described:
            described.update(document(table, TITLE))
        return JSONResponse(described)

    table = [
        Endpoint("GET", "/healthz", healthz, "Liveness: no credentials, never faulted",
                 access="public", responses={200: "ok"}, operation_id="healthz"),
        *auth.endpoints(sb), *contacts.endpoints(sb), *search.endpoints(sb),
        *accounts.endpoints(sb), *deals.endpoints(sb), *activities.endpoints(sb),
        *leads.endpoints(sb), *reports.endpoints(sb), *webhooks.endpoints(sb),
        *admin.endpoints(sb),
        Endpoint("GET", "/openapi.json", openapi, "This API as an OpenAPI 3.1 document",
                 access="public", responses={200: "the document"}, operation_id="openapi"),
    ]
    for endpoint in table:  # what the document says about credentials is what the layers do
        if zone(endpoint.path).value != endpoint.access:
            raise RuntimeError(f"{endpoint.method} {endpoint.path} is declared {endpoint.access} "
                               f"but served as {zone(endpoint.path).value}")
    return table


def routes(sb: Sandbox) -> list[Route]:
    return _routes(endpoints(sb))

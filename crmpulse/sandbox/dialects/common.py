"""What every vendor dialect shares: the sandbox's own routes, origins, JSON bodies, time.

Each vendor dialect also serves ``/healthz`` and the sandbox's admin API (answering in
the native dialect's words), so the same tests and tools drive any dialect.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..api import admin
from ..api.common import MAX_DEPTH, Endpoint, Inputs, MalformedJSON, parse_json, read_body
from ..api.common import routes as endpoint_routes
from ..engine import Sandbox
from ..middleware import Policy, Zone

__all__ = ["Surface", "hook_admin", "iso_utc", "json_body", "origin", "sandbox_routes", "sandbox_zone"]

_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]{1,253})(:[0-9]{1,5})?")


@dataclass(frozen=True)
class Surface:
    """A dialect's HTTP surface: its routes and what the shared layers need to know."""

    routes: Sequence[BaseRoute]
    policy: Policy


def sandbox_zone(path: str) -> Zone | None:
    """The zone of the sandbox's own paths in any dialect; None for the vendor's paths."""
    if path.startswith("/admin/"):
        return Zone.ADMIN
    if path == "/healthz":
        return Zone.PUBLIC
    return None


def sandbox_routes(sb: Sandbox, admin_extra: Iterable[Endpoint] = ()) -> list[Route]:
    """``/healthz`` and the admin API (with a dialect's own admin endpoints)."""
    async def healthz(inputs: Inputs) -> Response:
        return JSONResponse({"status": "ok", "dialect": sb.settings.dialect})

    return endpoint_routes([
        Endpoint("GET", "/healthz", healthz, "Liveness", access="public", operation_id="healthz"),
        *admin.endpoints(sb, admin_extra)])


def origin(request: Request) -> str:
    """``scheme://host[:port]`` the client reached the sandbox at (its Host header when sane)."""
    scheme = request.url.scheme if request.url.scheme in ("http", "https") else "http"
    host = request.headers.get("host", "")
    if not _HOST.fullmatch(host):
        server = request.scope.get("server") or ("127.0.0.1", 80)
        host = f"[{server[0]}]:{server[1]}" if ":" in str(server[0]) else f"{server[0]}:{server[1]}"
    return f"{scheme}://{host}"


async def json_body(request: Request) -> Any:
    """The body as strict JSON; raises ``MalformedJSON`` with a message fit for a client."""
    return parse_json(await read_body(request), MAX_DEPTH)


def iso_utc(stamp: str | None) -> datetime | None:
    if not stamp:
        return None
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


__all__ += ["MalformedJSON"]


def hook_admin(sb: Sandbox, model: type[Any], make: Any) -> list[Endpoint]:
    """``GET|POST /admin/webhooks`` and ``DELETE /admin/webhooks/{id}`` for a vendor dialect.

    Salesforce's outbound messages, HubSpot's app webhooks and Dataverse's webhook steps
    are set up in the vendor's console rather than through the API a preset uses, so
    the sandbox takes them through its admin API. ``make(body)`` builds the ``Hook``.
    """
    from ..webhooks import MAX_HOOKS

    async def list_hooks(inputs: Inputs) -> Response:
        return JSONResponse({"data": [h.shown() for h in sb.hooks.hooks.values()]})

    async def register(inputs: Inputs) -> Response:
        if len(sb.hooks.hooks) >= MAX_HOOKS:
            return JSONResponse({"error": "validation_failed", "message": f"at most {MAX_HOOKS} webhooks",
                                 "detail": [{"loc": ["body"], "msg": "delete a webhook first"}]},
                                status_code=422)
        hook = sb.hooks.add(make(inputs.body))
        return JSONResponse(hook.shown(), status_code=201)

    async def delete(inputs: Inputs) -> Response:
        if sb.hooks.hooks.pop(inputs.path["id"], None) is None:
            return JSONResponse({"error": "not_found", "message": "no such webhook"}, status_code=404)
        return Response(status_code=204)

    return [
        Endpoint("GET", "/admin/webhooks", list_hooks, "Webhook subscriptions", access="admin",
                 responses={200: "the subscriptions, secrets withheld"}, operation_id="list_admin_webhooks"),
        Endpoint("POST", "/admin/webhooks", register, "Subscribe a loopback URL in the vendor's format",
                 body=model, access="admin", responses={201: "the subscription"},
                 operation_id="register_admin_webhook"),
        Endpoint("DELETE", "/admin/webhooks/{id}", delete, "Delete a webhook subscription", access="admin",
                 responses={204: "deleted", 404: "no such webhook"}, operation_id="delete_admin_webhook"),
    ]

"""Webhook subscriptions: register a loopback receiver, list them, delete one.

A subscription belongs to the registering user's tenant: it receives that tenant's
changes only, and only that tenant's full users see and manage it.
"""

from __future__ import annotations

from starlette.responses import JSONResponse, Response

from ..engine import Sandbox
from ..webhooks import MAX_HOOKS, native_render
from .common import ApiError, Endpoint, Inputs, error, forbidden, invalid
from .models import WebhookCreate

__all__ = ["endpoints"]


def endpoints(sb: Sandbox) -> list[Endpoint]:
    render = native_render(sb.public)

    def check_role(inputs: Inputs) -> None:
        if not sb.access.can_manage(inputs.principal):
            raise ApiError(forbidden("your role may not manage webhooks"))

    async def list_hooks(inputs: Inputs) -> Response:
        check_role(inputs)
        tenant = inputs.principal.user.tenant
        return JSONResponse({"data": [h.shown() for h in sb.hooks.hooks.values() if h.tenant == tenant]})

    async def register(inputs: Inputs) -> Response:
        check_role(inputs)
        body: WebhookCreate = inputs.body
        if len(sb.hooks.hooks) >= MAX_HOOKS:
            raise ApiError(invalid([{"loc": ["body"], "msg": f"the sandbox holds at most "
                                     f"{MAX_HOOKS} webhooks; delete one first"}]))
        hook = sb.hooks.register(body.url, list(body.events), body.secret,
                                 inputs.principal.user.tenant, render)
        return JSONResponse(hook.shown(), status_code=201)

    async def delete(inputs: Inputs) -> Response:
        check_role(inputs)
        hook = sb.hooks.hooks.get(inputs.path["id"])
        if hook is None or hook.tenant != inputs.principal.user.tenant:
            return error(404, "not_found", "no such webhook")
        del sb.hooks.hooks[hook.id]
        return Response(status_code=204)

    return [
        Endpoint("GET", "/api/v1/webhooks", list_hooks, "List webhook subscriptions",
                 responses={200: "the subscriptions (secrets withheld)", 403: "your role may not"},
                 operation_id="list_webhooks"),
        Endpoint("POST", "/api/v1/webhooks", register, "Subscribe a loopback URL to change events",
                 body=WebhookCreate, responses={201: "the subscription", 403: "your role may not"},
                 operation_id="register_webhook"),
        Endpoint("DELETE", "/api/v1/webhooks/{id}", delete, "Delete a webhook subscription",
                 responses={204: "deleted", 404: "no such webhook"}, operation_id="delete_webhook"),
    ]

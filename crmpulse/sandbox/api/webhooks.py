"""Webhook subscriptions: register a loopback receiver, list them, delete one."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response

from ..engine import Sandbox
from ..webhooks import MAX_HOOKS
from .common import ApiError, Endpoint, Inputs, error, invalid
from .models import WebhookCreate

__all__ = ["endpoints"]


def _shown(hook: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in hook.items() if k != "secret"}


def endpoints(sb: Sandbox) -> list[Endpoint]:
    async def list_hooks(inputs: Inputs) -> Response:
        return JSONResponse({"data": [_shown(h) for h in sb.hooks.hooks.values()]})

    async def register(inputs: Inputs) -> Response:
        body: WebhookCreate = inputs.body
        if len(sb.hooks.hooks) >= MAX_HOOKS:
            raise ApiError(invalid([{"loc": ["body"], "msg": f"the sandbox holds at most "
                                     f"{MAX_HOOKS} webhooks; delete one first"}]))
        hook = sb.hooks.register(body.url, list(body.events), body.secret)
        return JSONResponse(_shown(hook), status_code=201)

    async def delete(inputs: Inputs) -> Response:
        if sb.hooks.hooks.pop(inputs.path["id"], None) is None:
            return error(404, "not_found", "no such webhook")
        return Response(status_code=204)

    return [
        Endpoint("GET", "/api/v1/webhooks", list_hooks, "List webhook subscriptions",
                 responses={200: "the subscriptions (secrets withheld)"}, operation_id="list_webhooks"),
        Endpoint("POST", "/api/v1/webhooks", register, "Subscribe a loopback URL to change events",
                 body=WebhookCreate, responses={201: "the subscription"},
                 operation_id="register_webhook"),
        Endpoint("DELETE", "/api/v1/webhooks/{id}", delete, "Delete a webhook subscription",
                 responses={204: "deleted", 404: "no such webhook"}, operation_id="delete_webhook"),
    ]

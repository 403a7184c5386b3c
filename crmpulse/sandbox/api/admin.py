"""The admin API (``X-Admin-Token``): fault knobs, settings, tokens, counters, reset.

    GET|PUT|DELETE /admin/faults   read, merge into, or clear the fault knobs
    GET|PUT /admin/settings        read or change run-time settings (token_ttl_s)
    POST /admin/tokens/revoke      forget every issued token
    GET  /admin/stats              counters, record counts, search and webhook state
    POST /admin/reset              back to the state right after start (Sandbox.reset)

The admin API is never faulted: it is how a test turns the faults off again.
"""

from __future__ import annotations

from pydantic import BaseModel
from starlette.responses import JSONResponse, Response

from ..engine import Sandbox
from ..store import TABLES
from .common import Endpoint, Handler, Inputs
from .models import FaultsPatch, SettingsPatch

__all__ = ["endpoints"]


def endpoints(sb: Sandbox) -> list[Endpoint]:
    async def get_faults(inputs: Inputs) -> Response:
        return JSONResponse(sb.faults.as_dict())

    async def put_faults(inputs: Inputs) -> Response:
        sb.set_faults(inputs.body.model_dump(exclude_unset=True))
        return JSONResponse(sb.faults.as_dict())

    async def clear_faults(inputs: Inputs) -> Response:
        sb.set_faults(sb.healthy_faults().as_dict())
        return JSONResponse(sb.faults.as_dict())

    async def get_settings(inputs: Inputs) -> Response:
        return JSONResponse({"token_ttl_s": sb.settings.token_ttl})

    async def put_settings(inputs: Inputs) -> Response:
        body: SettingsPatch = inputs.body
        sb.settings.token_ttl = float(body.token_ttl_s)
        return JSONResponse({"token_ttl_s": sb.settings.token_ttl})

    async def revoke(inputs: Inputs) -> Response:
        count = len(sb.tokens)
        sb.tokens.clear()
        return JSONResponse({"revoked": count})

    async def stats(inputs: Inputs) -> Response:
        return JSONResponse(sb.snapshot())

    async def reset(inputs: Inputs) -> Response:
        sb.reset()
        return JSONResponse({"status": "reset", "faults": sb.faults.as_dict(),
                             "records": {t: sb.store.count(t) for t in TABLES}})

    def admin(method: str, path: str, handler: Handler, summary: str, ok: str,
              operation_id: str, body: type[BaseModel] | None = None
              ) -> Endpoint:
        return Endpoint(method, path, handler, summary, body=body, access="admin",
                        responses={200: ok}, operation_id=operation_id)

    return [
        admin("GET", "/admin/faults", get_faults, "The fault knobs", "every knob",
              "get_faults"),
        admin("PUT", "/admin/faults", put_faults, "Turn fault knobs (a partial update merges)",
              "every knob, after the change", "set_faults", FaultsPatch),
        admin("DELETE", "/admin/faults", clear_faults, "Restore a healthy CRM",
              "every knob, back to healthy", "clear_faults"),
        admin("GET", "/admin/settings", get_settings, "Run-time settings", "the settings",
              "get_settings"),
        admin("PUT", "/admin/settings", put_settings, "Change run-time settings",
              "the settings, after the change", "set_settings", SettingsPatch),
        admin("POST", "/admin/tokens/revoke", revoke, "Forget every issued OAuth2 token",
              "how many were forgotten", "revoke_tokens"),
        admin("GET", "/admin/stats", stats, "Counters and state", "counters and state",
              "stats"),
        admin("POST", "/admin/reset", reset, "Back to the state right after start",
              "the knobs and record counts after the reset", "reset"),
    ]

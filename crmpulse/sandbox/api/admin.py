"""The admin API (``X-Admin-Token``): fault knobs, settings, tokens, access, quota, counters, reset.

    GET|PUT|DELETE /admin/faults   read, merge into, or clear the fault knobs
    GET|PUT /admin/settings        read or change run-time settings (token TTL, login lockout)
    POST /admin/tokens/revoke      forget every issued token
    GET  /admin/access             tenants, users, roles, credentials, revocations, lockouts
    POST /admin/access/revoke      revoke one token (what a vendor's admin console does)
    GET|PUT /admin/quota           the dialect's API quota limits and current usage
    GET  /admin/stats              counters, record counts, search and webhook state
    POST /admin/reset              back to the state right after start (Sandbox.reset)

A vendor dialect adds its own admin endpoints (webhook registration, where the vendor
registers webhooks in a console rather than by API). The admin API is never faulted:
it is how a test turns the faults off again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel
from starlette.responses import JSONResponse, Response

from ..engine import Sandbox
from ..store import TABLES
from .common import Endpoint, Handler, Inputs
from .models import Body, FaultsPatch, RevokeAdmin, SettingsPatch, partial

__all__ = ["endpoints"]


class NoQuota(Body):
    """The native dialect meters no API quota."""


def settings_view(sb: Sandbox) -> dict[str, Any]:
    return {"token_ttl_s": sb.settings.token_ttl, "login_max_failures": sb.logins.max_failures,
            "login_window_s": sb.logins.window, "login_lockout_s": sb.logins.lockout}


def access_view(sb: Sandbox) -> dict[str, Any]:
    """Who exists and what they may do; passwords and tokens are named, never shown."""
    revoked_static = sorted({t for t in sb.revoked if t in sb.static_tokens})
    return {
        "tenants": [{"id": t.id, "name": t.name} for t in sb.tenants.values()],
        "users": [{"id": u.id, "login": u.login, "tenant": u.tenant, "role": u.role,
                   "password_login": u.password is not None} for u in sb.settings.users],
        "static_tokens": [{"via": p.via, "user": p.user.login, "revoked": t in sb.revoked}
                          for t, p in sb.static_tokens.items()],
        "revoked": {"static": len(revoked_static), "issued": len(sb.revoked) - len(revoked_static)},
        "logins": sb.logins.snapshot(),
    }


def endpoints(sb: Sandbox, extra: Iterable[Endpoint] = ()) -> list[Endpoint]:
    quota_patch = partial(sb.meters.model or NoQuota, "QuotaPatch")
    quota_patch.unknown = "unknown quota limit"

    async def get_faults(inputs: Inputs) -> Response:
        return JSONResponse(sb.faults.as_dict())

    async def put_faults(inputs: Inputs) -> Response:
        sb.set_faults(inputs.body.model_dump(exclude_unset=True))
        return JSONResponse(sb.faults.as_dict())

    async def clear_faults(inputs: Inputs) -> Response:
        sb.set_faults(sb.healthy_faults().as_dict())
        return JSONResponse(sb.faults.as_dict())

    async def get_settings(inputs: Inputs) -> Response:
        return JSONResponse(settings_view(sb))

    async def put_settings(inputs: Inputs) -> Response:
        body: SettingsPatch = inputs.body
        if body.token_ttl_s is not None:
            sb.settings.token_ttl = float(body.token_ttl_s)
        if body.login_max_failures is not None:
            sb.logins.max_failures = body.login_max_failures
        if body.login_window_s is not None:
            sb.logins.window = float(body.login_window_s)
        if body.login_lockout_s is not None:
            sb.logins.lockout = float(body.login_lockout_s)
        return JSONResponse(settings_view(sb))

    async def get_access(inputs: Inputs) -> Response:
        return JSONResponse(access_view(sb))

    async def revoke_one(inputs: Inputs) -> Response:
        body: RevokeAdmin = inputs.body
        return JSONResponse({"revoked": sb.revoke(body.token)})

    async def get_quota(inputs: Inputs) -> Response:
        return JSONResponse({"dialect": sb.settings.dialect, **sb.meters.describe()})

    async def put_quota(inputs: Inputs) -> Response:
        if sb.meters.limits is not None:
            for key, value in inputs.body.model_dump(exclude_unset=True).items():
                setattr(sb.meters.limits, key, value)
        return JSONResponse({"dialect": sb.settings.dialect, **sb.meters.describe()})

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
        admin("GET", "/admin/access", get_access, "Tenants, users, roles, credentials, lockouts",
              "who exists and what they may do", "get_access"),
        admin("POST", "/admin/access/revoke", revoke_one, "Revoke one token",
              "whether it was a token the sandbox knows", "revoke_token", RevokeAdmin),
        admin("GET", "/admin/quota", get_quota, "API quota limits and usage", "limits and usage",
              "get_quota"),
        admin("PUT", "/admin/quota", put_quota, "Change API quota limits (a partial update merges)",
              "limits and usage, after the change", "set_quota", quota_patch),
        admin("GET", "/admin/stats", stats, "Counters and state", "counters and state",
              "stats"),
        admin("POST", "/admin/reset", reset, "Back to the state right after start",
              "the knobs and record counts after the reset", "reset"),
        *extra,
    ]

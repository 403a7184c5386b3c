"""The layers every dialect's HTTP surface runs behind: faults, body limit, credentials.

    request -> FaultLayer -> BodyLimitLayer -> AuthLayer -> the dialect's routes

A dialect describes itself with a ``Policy``: which of its paths are API, token,
admin or public (``zone``), how its errors look (``ErrorStyle``) and whose
credentials a request carries (``authenticate``). The layers do the rest with the
engine, so an injected outage, a body limit or a revoked token means the same thing
behind every dialect, each answering in its own vendor's words.

    app = Starlette(routes=..., middleware=layers(sandbox, policy))
"""

from __future__ import annotations

import asyncio
import enum
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .engine import Sandbox

__all__ = ["AuthLayer", "BodyLimitLayer", "ErrorStyle", "FaultLayer", "Policy", "Zone",
           "exception_handlers", "layers"]

_ZONE_KEY = "crmpulse.sandbox.zone"


class Zone(enum.Enum):
    """What kind of path a request is for; each layer acts on some kinds only."""

    PUBLIC = "public"  # health, API description: no faults, no credentials
    TOKEN = "token"    # where credentials are exchanged for tokens: faults, no credentials
    API = "api"        # the CRM's API: faults and credentials
    ADMIN = "admin"    # the sandbox's admin API: its own token, never faulted


class ErrorStyle:
    """How a dialect words the errors the shared layers answer with.

    The layers call ``error`` with one of these codes: ``unavailable`` (injected
    outage), ``rate_limited`` (429), ``overloaded`` (capacity queue full),
    ``internal_error`` (injected error), ``unauthorized`` (no valid API or admin
    credentials), ``too_large`` (413), ``bad_request`` (400), ``not_found`` and
    ``method_not_allowed`` (routing). This base class
    answers in the native dialect's shape, ``{"error": code, "message": text}``; a vendor
    dialect overrides ``error`` with its vendor's shape and codes.
    """

    def error(self, status: int, code: str, message: str,
              headers: Mapping[str, str] | None = None) -> Response:
        return JSONResponse({"error": code, "message": message}, status_code=status,
                            headers=dict(headers) if headers else None)


@dataclass(frozen=True)
class Policy:
    """What a dialect tells the shared layers about itself."""

    zone: Callable[[str], Zone]
    authenticate: Callable[[Headers], dict[str, Any] | None]
    errors: ErrorStyle = field(default_factory=ErrorStyle)
    challenge: Mapping[str, str] = field(
        default_factory=lambda: {"WWW-Authenticate": 'Bearer realm="sandbox"'})


def layers(sandbox: Sandbox, policy: Policy) -> list[Middleware]:
    """The shared layers, outermost first, for ``Starlette(middleware=...)``."""
    return [Middleware(FaultLayer, sandbox=sandbox, policy=policy),
            Middleware(BodyLimitLayer, sandbox=sandbox, policy=policy),
            Middleware(AuthLayer, sandbox=sandbox, policy=policy)]


def exception_handlers(policy: Policy) -> dict[Any, Callable[..., Any]]:
    """Routing errors (no such path, method not allowed) in the dialect's error shape."""
    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            code, message = "not_found", f"no route {request.method} {request.url.path[:200]}"
        elif exc.status_code == 405:
            code, message = "method_not_allowed", f"{request.method} is not served here"
        else:
            code, message = "bad_request", str(exc.detail)
        return policy.errors.error(exc.status_code, code, message, exc.headers)
    return {HTTPException: http_error}


def zone_of(scope: Scope, policy: Policy) -> Zone:
    zone = scope.get(_ZONE_KEY)
    if zone is None:
        zone = scope[_ZONE_KEY] = policy.zone(scope["path"])
    return zone


class FaultLayer:
    """Counts API and token requests and applies the request fault knobs to them.

    In order: outage, rate limit (429 + Retry-After), capacity (wait for a service
    slot, 503 when the queue is full), added latency and jitter, injected errors; all
    only for paths under ``path_prefix``. Adds HSTS to answers over HTTPS.
    """

    def __init__(self, app: ASGIApp, sandbox: Sandbox, policy: Policy) -> None:
        self.app, self.sb, self.policy = app, sandbox, policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or zone_of(scope, self.policy) not in (Zone.API, Zone.TOKEN):
            await self.app(scope, receive, send)
            return
        sb, f, errors = self.sb, self.sb.faults, self.policy.errors
        sb.stats.requests += 1
        refusal: Response | None = None
        if f.applies_to(scope["path"]):
            if f.outage:
                refusal = errors.error(f.outage_status, "unavailable",
                                       "the CRM is down (injected outage)")
            elif f.rate_limit_rps > 0 and not sb.bucket.allow(f.rate_limit_rps):
                sb.stats.throttled += 1
                refusal = errors.error(429, "rate_limited", "too many requests",
                                       {"Retry-After": str(f.retry_after_s)})
            elif f.capacity_rps > 0 and not await sb.capacity.admit(f.capacity_rps,
                                                                    f.capacity_queue):
                sb.stats.overloaded += 1
                refusal = errors.error(503, "overloaded",
                                       "the CRM is at capacity and its queue is full",
                                       {"Retry-After": "1"})
            else:
                if f.latency_ms or f.jitter_ms:
                    await asyncio.sleep((f.latency_ms + random.uniform(0, f.jitter_ms)) / 1000)
                if f.error_rate and random.random() < f.error_rate:
                    sb.stats.injected_errors += 1
                    refusal = errors.error(f.error_status, "internal_error", "injected error")
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        if scope.get("scheme") == "https":
            send = self._with_hsts(send)
        await self.app(scope, receive, send)

    def _with_hsts(self, send: Send) -> Send:
        async def sender(message: Message) -> None:
            if message["type"] == "http.response.start" and self.sb.faults.hsts:
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"strict-transport-security",
                                                   b"max-age=31536000")]}
            await send(message)
        return sender


class BodyTooLarge(Exception):
    """Raised from ``receive`` when a body grows past the limit while it is read."""


class BodyLimitLayer:
    """Refuses bodies over ``settings.max_body`` before reading them, and while reading.

    A declared ``Content-Length`` over the limit is answered 413 at once, without
    reading a byte; a body without one (chunked) is counted as it arrives and cut
    off with 413 as soon as it passes the limit. Nothing past the limit is buffered.
    """

    def __init__(self, app: ASGIApp, sandbox: Sandbox, policy: Policy) -> None:
        self.app, self.sb, self.policy = app, sandbox, policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.sb.settings.max_body
        errors = self.policy.errors
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit():
                    await errors.error(400, "bad_request", "Content-Length must be a number of bytes"
                                       )(scope, receive, send)
                    return
                if int(value) > limit:
                    await self._too_large(scope, receive, send)
                    return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge:
            if started:
                raise
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.sb.settings.max_body
        await self.policy.errors.error(413, "too_large", f"bodies are limited to {limit} bytes"
                                       )(scope, receive, send)


class AuthLayer:
    """Lets API requests through with valid credentials, admin requests with the admin token.

    The principal a request authenticated as is left in ``request.state.principal``.
    With ``auth_enforced`` off (a broken protection, on purpose) API requests without
    credentials are served as ``anonymous``.
    """

    def __init__(self, app: ASGIApp, sandbox: Sandbox, policy: Policy) -> None:
        self.app, self.sb, self.policy = app, sandbox, policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        zone = zone_of(scope, self.policy) if scope["type"] == "http" else Zone.PUBLIC
        if zone is Zone.API:
            principal = self.policy.authenticate(Headers(scope=scope))
            if principal is None:
                if self.sb.faults.auth_enforced:
                    await self.policy.errors.error(
                        401, "unauthorized", "valid credentials are required",
                        self.policy.challenge)(scope, receive, send)
                    return
                principal = {"sub": "anonymous"}
            scope.setdefault("state", {})["principal"] = principal
        elif zone is Zone.ADMIN and not self.sb.is_admin_token(admin_token(Headers(scope=scope))):
            await self.policy.errors.error(401, "unauthorized",
                                           "the admin API needs X-Admin-Token"
                                           )(scope, receive, send)
            return
        await self.app(scope, receive, send)


def admin_token(headers: Headers) -> str:
    """The admin token a request carries: ``X-Admin-Token``, or any Authorization credential."""
    return headers.get("x-admin-token") or headers.get("authorization", "").partition(" ")[2]

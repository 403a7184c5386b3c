"""The layers every dialect's HTTP surface runs behind: faults, body limit, credentials, quota.

    request -> FaultLayer -> BodyLimitLayer -> AuthLayer -> QuotaLayer -> SlowLayer -> routes

The fault knobs act at two places: at the edge (outage, rate limit, capacity: before
credentials are even read, as a load balancer or gateway would refuse), and while the
request is served (added latency, injected errors: after credentials and quotas, so a
slow request holds its place in a vendor's concurrency and execution-time limits the
way a slow server's requests do).

A dialect describes itself with a ``Policy``: which of its paths are API, token,
admin or public (``zone``), how its errors look (``ErrorStyle``), whose credentials
a request carries (``authenticate``), how it refuses a request without them
(``refuse``) and how it meters its API quota (``Meter``). The layers do the rest with
the engine, so an injected outage, a body limit or a revoked token means the same
thing behind every dialect, each answering in its own vendor's words. The admin API
answers in the native dialect's words whatever the dialect.

    app = Starlette(routes=..., middleware=layers(sandbox, policy))
"""

from __future__ import annotations

import asyncio
import enum
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .access import Principal
from .engine import Sandbox

__all__ = ["AuthLayer", "BodyLimitLayer", "ErrorStyle", "FaultLayer", "Meter", "Metered", "Policy",
           "QuotaLayer", "SlowLayer", "Zone", "exception_handlers", "layers"]

_ZONE_KEY = "crmpulse.sandbox.zone"
_STARTED_KEY = "crmpulse.sandbox.started"


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


NATIVE_ERRORS = ErrorStyle()


@dataclass(frozen=True)
class Metered:
    """An API request the quota layer meters: who sent it, where, and when it began."""

    method: str
    path: str
    principal: Principal
    started: float


class Meter:
    """A dialect's API quota: it refuses a request past a limit (``admit``), counts the
    rest and names the vendor's usage headers when the answer starts (``headers``), and
    hears when the request is over (``finish``). This base meters nothing."""

    def admit(self, request: Metered) -> Response | None:
        return None

    def headers(self, request: Metered, elapsed: float) -> list[tuple[str, str]]:
        return []

    def finish(self, request: Metered) -> None:
        return None


@dataclass(frozen=True)
class Policy:
    """What a dialect tells the shared layers about itself."""

    zone: Callable[[str], Zone]
    authenticate: Callable[[Headers], Principal | None]
    errors: ErrorStyle = field(default_factory=ErrorStyle)
    challenge: Mapping[str, str] = field(
        default_factory=lambda: {"WWW-Authenticate": 'Bearer realm="sandbox"'})
    refuse: Callable[[Request], Response] | None = None  # the 401 without credentials
    meter: Meter = field(default_factory=Meter)

    def errors_for(self, scope: Scope) -> ErrorStyle:
        return NATIVE_ERRORS if zone_of(scope, self) is Zone.ADMIN else self.errors


def layers(sandbox: Sandbox, policy: Policy) -> list[Middleware]:
    """The shared layers, outermost first, for ``Starlette(middleware=...)``."""
    return [Middleware(FaultLayer, sandbox=sandbox, policy=policy),
            Middleware(BodyLimitLayer, sandbox=sandbox, policy=policy),
            Middleware(AuthLayer, sandbox=sandbox, policy=policy),
            Middleware(QuotaLayer, sandbox=sandbox, policy=policy),
            Middleware(SlowLayer, sandbox=sandbox, policy=policy)]


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
        return policy.errors_for(request.scope).error(exc.status_code, code, message, exc.headers)
    return {HTTPException: http_error}


def zone_of(scope: Scope, policy: Policy) -> Zone:
    zone = scope.get(_ZONE_KEY)
    if zone is None:
        zone = scope[_ZONE_KEY] = policy.zone(scope["path"])
    return zone


class FaultLayer:
    """Counts API and token requests and applies the edge's fault knobs to them.

    In order: outage, rate limit (429 + Retry-After), capacity (wait for a service
    slot, 503 when the queue is full); only for paths under ``path_prefix``. Adds HSTS to
    answers over HTTPS. Latency and injected errors are the ``SlowLayer``'s.
    """

    def __init__(self, app: ASGIApp, sandbox: Sandbox, policy: Policy) -> None:
        self.app, self.sb, self.policy = app, sandbox, policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or zone_of(scope, self.policy) not in (Zone.API, Zone.TOKEN):
            await self.app(scope, receive, send)
            return
        sb, f, errors = self.sb, self.sb.faults, self.policy.errors
        scope[_STARTED_KEY] = time.monotonic()
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


class SlowLayer:
    """Applies added latency and jitter, then injected errors, to API and token requests
    under ``path_prefix``, once credentials and quotas have let them in."""

    def __init__(self, app: ASGIApp, sandbox: Sandbox, policy: Policy) -> None:
        self.app, self.sb, self.policy = app, sandbox, policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or zone_of(scope, self.policy) not in (Zone.API, Zone.TOKEN):
            await self.app(scope, receive, send)
            return
        f = self.sb.faults
        if f.applies_to(scope["path"]):
            if f.latency_ms or f.jitter_ms:
                await asyncio.sleep((f.latency_ms + random.uniform(0, f.jitter_ms)) / 1000)
            if f.error_rate and random.random() < f.error_rate:
                self.sb.stats.injected_errors += 1
                await self.policy.errors.error(f.error_status, "internal_error", "injected error"
                                               )(scope, receive, send)
                return
        await self.app(scope, receive, send)


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
        errors = self.policy.errors_for(scope)
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not (value.isascii() and value.isdigit()):
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
        await self.policy.errors_for(scope).error(413, "too_large", f"bodies are limited to {limit} bytes"
                                                  )(scope, receive, send)


class AuthLayer:
    """Lets API requests through with valid credentials, admin requests with the admin token.

    The principal a request authenticated as is left in ``request.state.principal``.
    With ``auth_enforced`` off (a broken protection, on purpose) API requests without
    credentials are served as ``anonymous``, a full user of the first tenant.
    """

    def __init__(self, app: ASGIApp, sandbox: Sandbox, policy: Policy) -> None:
        self.app, self.sb, self.policy = app, sandbox, policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        zone = zone_of(scope, self.policy) if scope["type"] == "http" else Zone.PUBLIC
        if zone is Zone.API:
            principal = self.policy.authenticate(Headers(scope=scope))
            if principal is None:
                if self.sb.faults.auth_enforced:
                    if self.policy.refuse is not None:
                        refusal = self.policy.refuse(Request(scope))
                    else:
                        refusal = self.policy.errors.error(
                            401, "unauthorized", "valid credentials are required", self.policy.challenge)
                    await refusal(scope, receive, send)
                    return
                principal = self.sb.anonymous()
            scope.setdefault("state", {})["principal"] = principal
        elif zone is Zone.ADMIN and not self.sb.is_admin_token(admin_token(Headers(scope=scope))):
            await NATIVE_ERRORS.error(401, "unauthorized", "the admin API needs X-Admin-Token"
                                      )(scope, receive, send)
            return
        await self.app(scope, receive, send)


class QuotaLayer:
    """Meters authenticated API requests with the dialect's ``Meter``.

    It runs after credentials (quotas belong to a tenant, an app or a user) and inside
    the edge's fault layer, so a request an outage or the capacity queue refused is not
    counted; the time a request spends waiting for capacity and in the ``SlowLayer``
    (added latency) counts toward its execution time, and it holds its place among the
    requests in flight meanwhile.
    """

    def __init__(self, app: ASGIApp, sandbox: Sandbox, policy: Policy) -> None:
        self.app, self.sb, self.meter = app, sandbox, policy.meter
        self.policy = policy
        self.active = type(policy.meter) is not Meter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (not self.active or scope["type"] != "http"
                or zone_of(scope, self.policy) is not Zone.API):
            await self.app(scope, receive, send)
            return
        request = Metered(scope["method"], scope["path"], scope["state"]["principal"],
                          scope.get(_STARTED_KEY, time.monotonic()))
        refusal = self.meter.admit(request)
        if refusal is not None:
            await refusal(scope, receive, send)
            return

        async def metered_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = self.meter.headers(request, time.monotonic() - request.started)
                message = {**message, "headers": [*message.get("headers", []),
                                                  *((k.lower().encode("latin-1"), v.encode("latin-1"))
                                                    for k, v in extra)]}
            await send(message)

        try:
            await self.app(scope, receive, metered_send)
        finally:
            self.meter.finish(request)


def admin_token(headers: Headers) -> str:
    """The admin token a request carries: ``X-Admin-Token``, or any Authorization credential."""
    return headers.get("x-admin-token") or headers.get("authorization", "").partition(" ")[2]

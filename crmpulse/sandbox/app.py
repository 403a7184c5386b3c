"""Assemble a sandbox CRM: the engine, a dialect's routes, and the shared layers in front.

    app = create_app(SandboxSettings(seed=50))                        # the native API
    app = create_app(SandboxSettings(seed=50, dialect="salesforce"))  # a vendor's

The engine (engine.py) holds every record, the sync worker, webhooks, faults, access
rules and tokens; a dialect (api/ for the native one, dialects/ for the vendors') is its
HTTP surface; middleware.py applies faults, body limits, credentials and quotas the
same way for any dialect.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette

from .dialects import surface
from .engine import Sandbox, SandboxSettings
from .middleware import exception_handlers, layers

__all__ = ["Sandbox", "SandboxSettings", "create_app"]


def create_app(settings: SandboxSettings | None = None) -> Starlette:
    """Build the ASGI app; the sync worker and webhook deliverers run in its lifespan."""
    sb = Sandbox(settings or SandboxSettings())
    served = surface(sb)
    policy = served.policy

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        sb.start()
        try:
            yield
        finally:
            await sb.stop()

    app = Starlette(routes=served.routes, middleware=layers(sb, policy),
                    exception_handlers=exception_handlers(policy), lifespan=lifespan)
    app.router.redirect_slashes = False  # /api/v1/contacts/ is no route, not a redirect to one
    app.state.sandbox = sb
    return app

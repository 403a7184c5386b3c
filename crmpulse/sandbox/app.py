"""Assemble a sandbox CRM: the engine, a dialect's routes, and the shared layers in front.

    app = create_app(SandboxSettings(seed=50))   # an ASGI app; serve it with server.py

The engine (engine.py) holds every record, the sync worker, webhooks, faults and
tokens; the native dialect (api/) is its HTTP surface; middleware.py applies faults,
body limits and credentials the same way for any dialect.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette

from . import api
from .engine import Sandbox, SandboxSettings
from .middleware import exception_handlers, layers

__all__ = ["Sandbox", "SandboxSettings", "create_app"]


def create_app(settings: SandboxSettings | None = None) -> Starlette:
    """Build the ASGI app; the sync worker and webhook deliverers run in its lifespan."""
    sb = Sandbox(settings or SandboxSettings())
    policy = api.policy(sb)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        sb.start()
        try:
            yield
        finally:
            await sb.stop()

    app = Starlette(routes=api.routes(sb), middleware=layers(sb, policy),
                    exception_handlers=exception_handlers(policy), lifespan=lifespan)
    app.router.redirect_slashes = False  # /api/v1/contacts/ is no route, not a redirect to one
    app.state.sandbox = sb
    return app

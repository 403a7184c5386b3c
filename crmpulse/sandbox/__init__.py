"""The sandbox CRM: a realistic CRM on loopback for demos, tests and benchmarks.

It imports nothing from the rest of crmpulse: the toolkit reaches it only over HTTP,
exactly as it reaches a real CRM. See docs/sandbox.md for its API and admin knobs.

    engine.py      Sandbox: records (store.py), search index and sync worker (search.py),
                   webhooks (webhooks.py), fault knobs and throttles (faults.py), tokens
    middleware.py  the layers in front of any dialect: faults, body limit, credentials
    api/           the native dialect: one module per resource, inputs as pydantic models
    app.py         create_app(): engine + dialect + layers; server.py runs it with uvicorn
"""

from .app import create_app
from .engine import Sandbox, SandboxSettings
from .faults import Faults
from .server import SandboxServer

__all__ = ["Faults", "Sandbox", "SandboxServer", "SandboxSettings", "create_app"]

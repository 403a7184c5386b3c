"""The sandbox CRM: a realistic CRM on loopback for demos, tests and benchmarks.

It imports nothing from the rest of crmpulse: the toolkit reaches it only over HTTP,
exactly as it reaches a real CRM. See docs/sandbox.md for its API and admin knobs.
"""

from .app import Sandbox, SandboxSettings, create_app
from .faults import Faults
from .server import SandboxServer

__all__ = ["Faults", "Sandbox", "SandboxServer", "SandboxSettings", "create_app"]

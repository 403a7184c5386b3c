"""What a ``/probe`` request asks for, checked before anything is sent.

Whoever can reach the exporter can call ``/probe``, so its parameters are hostile
until checked: each must be given once and be of bounded size, ``target`` must be an
http(s) base URL (or the configured target's name) with a valid host and port and no
user-info, query or fragment, and its origin must be one the config names for the
module's credentials: the target's own, or one of ``probes.probe_hosts``. A module
with ``any_target: true`` may probe any origin, without credentials (blackbox_exporter's
model). Anything else is refused with 400 (a malformed request) or 403 (an origin the
credentials may not go to), before a single request leaves the exporter.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from crmpulse.config import Check, LoadedConfig
from crmpulse.origins import format_origin, origin_of

__all__ = ["MAX_MODULE", "MAX_TARGET", "ProbeRefused", "ProbeRequest", "parse_probe_request"]

MAX_TARGET = 2048
MAX_MODULE = 128
TIMEOUT_OFFSET = 0.5  # seconds kept back from Prometheus's scrape timeout, as blackbox does


class MultiParams(Protocol):
    def getlist(self, key: str) -> Sequence[str]: ...


@dataclass(frozen=True)
class ProbeRequest:
    check: Check
    base_url: str
    anonymous: bool  # any_target module probing an origin not configured: no credentials
    timeout: float
    debug: bool


class ProbeRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _one(params: MultiParams, name: str) -> str | None:
    values = params.getlist(name)
    if len(values) > 1:
        raise ProbeRefused(400, f"give the {name} parameter once, not {len(values)} times")
    return values[0] if values else None


def parse_probe_request(params: MultiParams, headers: Mapping[str, str],
                        loaded: LoadedConfig) -> ProbeRequest:
    """The probe to run, or ProbeRefused with the status and message to answer."""
    module, target, debug_text = _one(params, "module"), _one(params, "target"), _one(params, "debug")
    if not module or not target:
        raise ProbeRefused(400, "Both target and module parameters are required")
    if len(target) > MAX_TARGET:
        raise ProbeRefused(400, f"target is longer than {MAX_TARGET} characters")
    if len(module) > MAX_MODULE:
        raise ProbeRefused(400, f"module is longer than {MAX_MODULE} characters")
    if (debug_text or "false").lower() not in ("true", "false"):
        raise ProbeRefused(400, "debug must be true or false")
    checks = loaded.config.probes.checks
    check = next((c for c in checks if c.name == module), None)
    if check is None:
        known = ", ".join(c.name for c in checks)
        raise ProbeRefused(400, f"Unknown module {module!r} (the config's checks: {known})")
    base_url, anonymous = _base_url(target, check, loaded)
    return ProbeRequest(check, base_url, anonymous, _timeout(check.timeout, headers),
                        (debug_text or "").lower() == "true")


def _base_url(target: str, check: Check, loaded: LoadedConfig) -> tuple[str, bool]:
    if target == loaded.target.name:
        return loaded.target.base_url, False
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in target):
        raise ProbeRefused(400, "target must not contain spaces or control characters")
    url = target if "://" in target else f"http://{target}"
    try:
        parts = urlsplit(url)
        origin = origin_of(url)
    except ValueError:
        raise ProbeRefused(400, "target must be an http(s) URL with a valid host and port, or "
                           "the target's name") from None
    if parts.username is not None or parts.password is not None:
        raise ProbeRefused(400, "target must not carry user-info (user:password@): the module's "
                           "own credentials are used")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise ProbeRefused(400, "target must be a base URL, without a query or fragment")
    configured = loaded.target.credential_origins | set(
        origin_of(o) for o in loaded.config.probes.probe_hosts)
    base_url = f"{format_origin(origin)}{parts.path.rstrip('/')}"
    if origin in configured:
        return base_url, False
    if check.any_target:
        return base_url, True
    raise ProbeRefused(403, (
        f"target origin {format_origin(origin)} is not configured for module {check.name}'s "
        "credentials: add it to probes.probe_hosts to probe it with them, or set any_target: "
        "true on the module to probe any target without credentials"))


def _timeout(own: float, headers: Mapping[str, str]) -> float:
    header = headers.get("x-prometheus-scrape-timeout-seconds")
    if header is None:
        return own
    try:
        seconds = float(header)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise ProbeRefused(400, "X-Prometheus-Scrape-Timeout-Seconds must be a positive number "
                           "of seconds")
    return min(own, max(0.1, seconds - TIMEOUT_OFFSET))

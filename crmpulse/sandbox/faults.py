"""Fault-injection knobs the admin API turns, and the rate limiter behind one of them."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["Faults", "TokenBucket"]


@dataclass
class Faults:
    """Everything the admin API can break. Defaults are a healthy CRM.

    Latency, errors, outage and rate limiting apply to API and token requests whose
    path starts with ``path_prefix`` (all of them when empty); sync and webhook knobs
    act on the sync worker and webhook deliverer; ``auth_enforced`` and
    ``expose_sensitive`` break the CRM's protections on purpose.
    """

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_rate: float = 0.0
    error_status: int = 500
    outage: bool = False
    outage_status: int = 503
    rate_limit_rps: float = 0.0
    retry_after_s: int = 1
    path_prefix: str = ""
    sync_lag_ms: float = 0.0
    sync_jitter_ms: float = 0.0
    sync_stall: bool = False
    sync_max_rate: float = 0.0
    webhook_delay_ms: float = 0.0
    auth_enforced: bool = True
    expose_sensitive: bool = False
    hsts: bool = True

    _RANGES = {
        "latency_ms": (0, 600_000), "jitter_ms": (0, 600_000), "error_rate": (0, 1),
        "error_status": (400, 599), "outage_status": (400, 599), "rate_limit_rps": (0, 1e6),
        "retry_after_s": (0, 3600), "sync_lag_ms": (0, 3_600_000),
        "sync_jitter_ms": (0, 3_600_000), "sync_max_rate": (0, 1e6),
        "webhook_delay_ms": (0, 600_000),
    }

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def validate_patch(cls, patch: Any) -> list[dict[str, Any]]:
        """Field errors for a partial update, in the same shape as the API's 422s."""
        if not isinstance(patch, dict):
            return [{"loc": ["body"], "msg": "expected a JSON object of fault knobs"}]
        known = {f.name: f for f in fields(cls)}
        errors = []
        for key, value in patch.items():
            if key not in known:
                errors.append({"loc": ["body", key], "msg": "unknown fault knob"})
                continue
            kind = known[key].type
            if kind == "bool" and not isinstance(value, bool):
                errors.append({"loc": ["body", key], "msg": "expected true or false"})
            elif kind == "str" and not isinstance(value, str):
                errors.append({"loc": ["body", key], "msg": "expected a string"})
            elif kind in ("float", "int"):
                if isinstance(value, bool) or not isinstance(value, int | float):
                    errors.append({"loc": ["body", key], "msg": "expected a number"})
                    continue
                low, high = cls._RANGES[key]
                if not low <= value <= high:
                    errors.append({"loc": ["body", key], "msg": f"expected {low} to {high}"})
        return errors

    def apply(self, patch: dict[str, Any]) -> None:
        for key, value in patch.items():
            setattr(self, key, int(value) if key in ("error_status", "outage_status",
                                                     "retry_after_s") else value)


class TokenBucket:
    """Requests-per-second limiter with a burst of one second's worth."""

    def __init__(self) -> None:
        self.tokens = 0.0
        self.rate = 0.0
        self.stamp = time.monotonic()

    def allow(self, rate: float) -> bool:
        now = time.monotonic()
        if rate != self.rate:
            self.rate, self.tokens = rate, rate
        self.tokens = min(rate, self.tokens + (now - self.stamp) * rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

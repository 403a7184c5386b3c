"""Delete every record a load test created: each process's ledgers, then a sweep by marker.

Users record what they create (the profile's ``cleanup`` rules); when the test stops
each process deletes what its users left. Requests in flight at the moment of the stop
can still create records after that, and a worker may die before it cleans up, so the
master then lists every record carrying the run's marker (the profile's ``sweep``
section), deletes those whose marker matches **exactly** (:mod:`crmpulse.markers`: a
CRM's substring search never gets another run's records deleted), and lists once more
to count what is left (expected: 0). None of this traffic is in the statistics.

Both steps stop at a deadline, so that a SIGTERM's stop fits in the time Kubernetes
grants; what is left then is counted, and ``crmpulse sweep`` removes it.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from crmpulse import Client, LoadedConfig, TransportError
from crmpulse.client import Session
from crmpulse.markers import Marker, loadtest_targets, sweep

__all__ = ["CleanupTotals", "call_retrying", "clean_sessions", "sweep_run"]


@dataclass
class CleanupTotals:
    created: int = 0
    deleted: int = 0
    failed: int = 0
    swept: int = 0
    left: int = 0
    sweep_errors: list[str] = field(default_factory=list)

    def add(self, other: dict[str, Any]) -> None:
        for key in ("created", "deleted", "failed"):
            setattr(self, key, getattr(self, key) + int(other.get(key, 0)))


#: Pauses between cleanup rounds when the CRM throttles (429) or stumbles: the run may
#: have driven it into rate limiting, and cleanup must still finish.
RETRY_PAUSES = (0.5, 1.0, 2.0, 4.0, 8.0)


def _pause(result: Any, attempt: int) -> float:
    headers = result.headers or {}
    retry_after = headers.get("retry-after") or headers.get("Retry-After")
    try:
        return min(10.0, float(retry_after)) if retry_after else RETRY_PAUSES[attempt]
    except ValueError:
        return RETRY_PAUSES[attempt]


def call_retrying(client: Client, deadline: float | None = None) -> Any:
    """``client.call`` with retries on 429, 5xx, timeouts and refused connections."""

    def call(operation: str, max_pages: int = 1, **variables: Any) -> Any:
        result = None
        for attempt in range(len(RETRY_PAUSES) + 1):
            result = client.call(operation, max_pages=max_pages, **variables)
            retryable = result.status == 429 or result.status >= 500 or result.reason in (
                "timeout", "connect")
            if result.ok or not retryable or attempt == len(RETRY_PAUSES):
                return result
            pause = _pause(result, attempt)
            if deadline is not None and time.monotonic() + pause > deadline:
                return result
            time.sleep(pause)
        return result

    return call


def clean_sessions(loaded: LoadedConfig, sessions: list[Session],
                   deadline: float | None = None) -> dict[str, int]:
    """Delete what the users of this process left; returns created/deleted/failed counts."""
    created = deleted = failed = 0
    with Client(loaded) as client:
        for session in sessions:
            for pause in (0.0, *RETRY_PAUSES):
                if not session.ledger.pending or (deadline is not None and time.monotonic() > deadline):
                    break
                time.sleep(pause)
                with contextlib.suppress(TransportError):
                    client.run(session.cleanup())
            report = session.ledger.report
            created += report.created
            deleted += report.deleted
            failed += len(session.ledger.pending)
    return {"created": created, "deleted": deleted, "failed": failed}


def sweep_run(loaded: LoadedConfig, marker: Marker, totals: CleanupTotals,
              deadline: float | None = None) -> None:
    """Delete every record carrying exactly ``marker``; then count what is left."""

    def ours(found: set[Marker]) -> bool:
        return marker in found

    with Client(loaded) as client:
        call = call_retrying(client, deadline)
        variables = client.session.variables({})
        for target in loadtest_targets(loaded, marker, ours):
            result = sweep(call, target, variables)
            totals.swept += result.deleted
            totals.sweep_errors += result.errors[:5]
        left = 0
        for target in loadtest_targets(loaded, marker, ours):
            result = sweep(call, target, variables, dry_run=True)
            if result.errors:
                totals.sweep_errors.append(f"counting what is left: {result.errors[0]}")
                left = -1
                break
            left += result.matched
        totals.left = left

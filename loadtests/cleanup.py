"""Delete every record a load test created: each process's ledgers, then a sweep by marker.

Users record what they create (the profile's ``cleanup`` rules); when the test stops
each process deletes what its users left. Requests in flight at the moment of the stop
can still create records after that, so the master then lists every record carrying
the run's marker (the profile's ``sweep`` section) and deletes them, and lists once
more to count what is left (expected: 0). None of this traffic is in the statistics.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from crmpulse import Client, LoadedConfig, TransportError
from crmpulse.client import Session
from crmpulse.templates import render

__all__ = ["CleanupTotals", "clean_sessions", "sweep_marker"]


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
    retry_after = (result.headers or {}).get("retry-after") or (result.headers or {}).get("Retry-After")
    try:
        return min(10.0, float(retry_after)) if retry_after else RETRY_PAUSES[attempt]
    except ValueError:
        return RETRY_PAUSES[attempt]


def _call(client: Client, operation: str, max_pages: int = 1, **variables: Any) -> Any:
    """Call with retries on 429 and 5xx (honouring Retry-After)."""
    for attempt in range(len(RETRY_PAUSES) + 1):
        result = client.call(operation, max_pages=max_pages, **variables)
        retryable = result.status == 429 or result.status >= 500 or result.reason in (
            "timeout", "connect")
        if result.ok or not retryable or attempt == len(RETRY_PAUSES):
            return result
        time.sleep(_pause(result, attempt))
    return result


def clean_sessions(loaded: LoadedConfig, sessions: list[Session]) -> dict[str, int]:
    """Delete what the users of this process left; returns created/deleted/failed counts."""
    created = deleted = failed = 0
    with Client(loaded) as client:
        for session in sessions:
            for pause in (0.0, *RETRY_PAUSES):
                if not session.ledger.pending:
                    break
                time.sleep(pause)
                with contextlib.suppress(TransportError):
                    client.run(session.cleanup())
            report = session.ledger.report
            created += report.created
            deleted += report.deleted
            failed += len(session.ledger.pending)
    return {"created": created, "deleted": deleted, "failed": failed}


def _list(client: Client, spec: Any, marker: str) -> list[dict[str, Any]]:
    variables = render(spec.with_, {**client.session.variables({}), "marker": marker})
    result = _call(client, spec.operation, max_pages=spec.pages, **variables)
    if not result.ok:
        raise TransportError(result.message or f"{spec.operation} failed", result.reason or "status")
    return [item for item in result.items or [] if isinstance(item, dict)]


def sweep_marker(loaded: LoadedConfig, marker: str, totals: CleanupTotals) -> None:
    """Delete every record carrying ``marker``; then count what is left."""
    profile = loaded.profile
    with Client(loaded) as client:
        for spec in profile.sweep:
            try:
                for item in _list(client, spec, marker):
                    variables = render(spec.delete_with, {**item, "marker": marker})
                    result = _call(client, spec.delete, **variables)
                    if result.ok or result.status == 404:
                        totals.swept += 1
                    else:
                        totals.sweep_errors.append(f"{spec.delete}: {result.message}")
            except TransportError as exc:
                totals.sweep_errors.append(f"{spec.operation}: {exc}")
        try:
            totals.left = sum(len(_list(client, spec, marker)) for spec in profile.sweep)
        except TransportError as exc:
            totals.sweep_errors.append(f"counting what is left: {exc}")
            totals.left = -1

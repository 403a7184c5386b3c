"""The sandbox's engine: all of its state and behaviour, and nothing about HTTP.

    Sandbox
      settings   how it was started (SandboxSettings); token_ttl changes at run time
      store      records in SQLite, with the change log the sync worker reads (store.py)
      index      the search index; worker, the sync worker that feeds it (search.py)
      hooks      webhook registrations and their deliveries (webhooks.py)
      faults     the fault knobs; bucket and capacity, the throttles of two of them (faults.py)
      tokens     OAuth2 tokens issued, with whom they were issued to and when they expire
      stats      the counters GET /admin/stats reports

A dialect's HTTP surface (the native REST API in ``api/``) turns requests into calls
on this object, and the shared layers in ``middleware.py`` apply faults and
credentials with it, so every dialect serves the same records, sync path, webhooks
and faults.
"""

from __future__ import annotations

import hmac
import random
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from .faults import CapacityQueue, Faults, TokenBucket
from .search import SearchIndex, SyncWorker
from .seed import seed
from .store import TABLES, Store
from .webhooks import WebhookHub

__all__ = ["SINGULAR", "Sandbox", "SandboxSettings", "Stats"]

SINGULAR = {"contacts": "contact", "accounts": "account", "deals": "deal", "leads": "lead",
            "activities": "activity"}
Principal = dict[str, Any]


@dataclass
class SandboxSettings:
    """How to run the sandbox; every credential here is a public, documented test value."""

    db: str = ":memory:"
    seed: int = 200
    sync_lag_ms: float = 500.0
    token_ttl: float = 3600.0
    max_body: int = 1024 * 1024
    admin_token: str = "sandbox-admin"
    clients: dict[str, str] = field(default_factory=lambda: {"crmpulse": "sandbox-secret"})
    users: dict[str, str] = field(
        default_factory=lambda: {"rep@sandbox.example": "sandbox-password"})
    api_keys: dict[str, str] = field(default_factory=lambda: {"sandbox-api-key": "integration"})
    personal_tokens: dict[str, str] = field(default_factory=lambda: {"sandbox-pat": "pat-user"})


@dataclass
class Stats:
    """Request counters since start (or since the last reset)."""

    requests: int = 0
    injected_errors: int = 0
    throttled: int = 0
    overloaded: int = 0


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison that, unlike comparing str, accepts any text."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"),
                               expected.encode("utf-8", "surrogatepass"))


class Sandbox:
    """All of the sandbox's state: records, index, sync worker, webhooks, faults, tokens."""

    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings
        self.start_token_ttl = settings.token_ttl
        self.faults = self.healthy_faults()
        self.store = Store(settings.db)
        self.index = SearchIndex()
        if settings.seed and self.store.count("contacts") == 0:
            self._seed()
        self._index_everything()
        self.worker = SyncWorker(self.store, self.index, self.faults)
        self.hooks = WebhookHub(self.faults)
        self.bucket = TokenBucket()
        self.capacity = CapacityQueue()
        self.tokens: dict[str, tuple[Principal, float]] = {}
        self.stats = Stats()

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the sync worker and webhook deliverers (needs a running event loop)."""
        self.worker.start()
        self.hooks.start()

    async def stop(self) -> None:
        self.capacity.release()
        await self.worker.stop()
        await self.hooks.stop()
        self.store.close()

    def reset(self) -> None:
        """Back to the state right after start, for a clean test.

        Fault knobs and settings return to their start values, issued tokens and
        webhook registrations (with deliveries not yet made) are forgotten, counters
        restart at zero, and the records are replaced by the seed (the same records,
        ids included), already indexed for search.
        """
        self.set_faults(self.healthy_faults().as_dict())
        self.bucket = TokenBucket()
        self.settings.token_ttl = self.start_token_ttl
        self.tokens.clear()
        self.hooks.clear()
        self.store.clear()
        if self.settings.seed:
            self._seed()
        self.index.clear()
        self._index_everything()
        self.worker.skip_to(self.store.last_change())
        self.stats = Stats()

    def healthy_faults(self) -> Faults:
        return Faults(sync_lag_ms=self.settings.sync_lag_ms)

    def set_faults(self, patch: dict[str, Any]) -> None:
        """Apply validated knobs; waiting requests are let through when capacity changes."""
        self.faults.apply(patch)
        if "capacity_rps" in patch or "capacity_queue" in patch:
            self.capacity.release()
        self.worker.notify()

    def _seed(self) -> None:
        self.store.db.execute("BEGIN")
        try:
            seed(self.store, self.settings.seed)
        except BaseException:
            self.store.db.execute("ROLLBACK")
            raise
        self.store.db.execute("COMMIT")

    def _index_everything(self) -> None:
        for record in self.all("contacts"):  # what exists at start is already indexed
            self.index.upsert(record)

    # -- credentials -------------------------------------------------------------------

    def issue_token(self, principal: Principal) -> dict[str, Any]:
        now = time.time()
        if len(self.tokens) > 10_000:
            self.tokens = {t: v for t, v in self.tokens.items() if v[1] > now}
        token = secrets.token_urlsafe(24)
        self.tokens[token] = (principal, now + self.settings.token_ttl)
        return {"access_token": token, "token_type": "Bearer",
                "expires_in": int(self.settings.token_ttl), "scope": "crm"}

    def token_principal(self, token: str) -> Principal | None:
        """Who an issued, unexpired OAuth2 token belongs to."""
        entry = self.tokens.get(token)
        return entry[0] if entry and entry[1] > time.time() else None

    def personal_token_principal(self, token: str) -> Principal | None:
        for known, user in self.settings.personal_tokens.items():
            if _same(token, known):
                return {"sub": user, "via": "personal_token"}
        return None

    def api_key_principal(self, key: str) -> Principal | None:
        for known, owner in self.settings.api_keys.items():
            if _same(key, known):
                return {"sub": owner, "via": "api_key"}
        return None

    def user_ok(self, username: str, password: str) -> bool:
        expected = self.settings.users.get(username)
        return expected is not None and _same(password, expected)

    def client_ok(self, client_id: str, secret: str) -> bool:
        expected = self.settings.clients.get(client_id)
        return expected is not None and _same(secret, expected)

    def is_client(self, client_id: str) -> bool:
        return client_id in self.settings.clients

    def is_admin_token(self, given: str) -> bool:
        return bool(given) and _same(given, self.settings.admin_token)

    # -- records and their side effects --------------------------------------------------

    def all(self, table: str) -> list[dict[str, Any]]:
        out, after = [], None
        while True:
            page, after = self.store.select(table, {}, 1000, after)
            out += page
            if after is None:
                return out

    def get(self, table: str, record_id: str) -> dict[str, Any] | None:
        return self.store.get(table, record_id)

    def create(self, table: str, values: dict[str, Any]) -> dict[str, Any]:
        values = dict(values)
        if table == "contacts":
            values["tax_id"] = f"900-{random.randint(70, 99)}-{random.randint(0, 9999):04d}"
        record = self.store.insert(table, values)
        self._changed(table, "created", record)
        return record

    def update(self, table: str, record_id: str, values: dict[str, Any]) -> dict[str, Any] | None:
        record = self.store.update(table, record_id, values)
        if record is not None:
            self._changed(table, "updated", record)
        return record

    def delete(self, table: str, record_id: str) -> dict[str, Any] | None:
        record = self.store.get(table, record_id)
        if record is not None:
            self.store.delete(table, record_id)
            self._changed(table, "deleted", record)
        return record

    def public(self, table: str, record: dict[str, Any]) -> dict[str, Any]:
        """A record as the API shows it: contacts' tax_id only when exposed on purpose."""
        if table == "contacts" and not self.faults.expose_sensitive:
            return {k: v for k, v in record.items() if k != "tax_id"}
        return record

    def _changed(self, table: str, op: str, record: dict[str, Any]) -> None:
        if table == "contacts":
            self.worker.notify()
        self.hooks.emit(SINGULAR[table], op, self.public(table, record))

    def snapshot(self) -> dict[str, Any]:
        """What GET /admin/stats reports."""
        return {
            "requests": self.stats.requests, "injected_errors": self.stats.injected_errors,
            "throttled": self.stats.throttled, "overloaded": self.stats.overloaded,
            "records": {t: self.store.count(t) for t in TABLES},
            "search": {"indexed": len(self.index.docs), "backlog": self.worker.backlog(),
                       "applied": self.worker.applied, "last_lag_s": self.worker.last_lag},
            "webhooks": {"registered": len(self.hooks.hooks), "delivered": self.hooks.delivered,
                         "failed": self.hooks.failed, "queued": self.hooks.queue.qsize()},
            "capacity": {"waiting": self.capacity.waiting()},
            "tokens": len(self.tokens)}

"""The sandbox's engine: all of its state and behaviour, and nothing about HTTP.

    Sandbox
      settings   how it was started (SandboxSettings); token_ttl changes at run time
      store      records in SQLite, with the change log the sync worker reads (store.py)
      index      the search index; worker, the sync worker that feeds it (search.py)
      hooks      webhook registrations and their deliveries (webhooks.py)
      faults     the fault knobs; bucket and capacity, the throttles of two of them (faults.py)
      access     tenants, users and roles, and every access decision (access.py)
      logins     the lockout after failed passwords (access.py)
      tokens     OAuth2 tokens issued, with whom they were issued to and when they expire;
                 static_tokens, the bearer tokens that exist from the start; revoked
      meters     the dialect's API quota counters and limits (quota.py)
      stats      the counters GET /admin/stats reports

A dialect's HTTP surface (the native REST API in ``api/``, a vendor's in ``dialects/``)
turns requests into calls on this object, and the shared layers in ``middleware.py``
apply faults, credentials and quotas with it, so every dialect serves the same records,
sync path, webhooks, faults and access rules.
"""

from __future__ import annotations

import contextlib
import hmac
import random
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from .access import SENSITIVE_FIELDS, TENANT_1, TENANT_2, Access, LoginGuard, Principal, Tenant, User
from .access import default_users as _default_users
from .faults import CapacityQueue, Faults, TokenBucket
from .quota import Meters
from .search import SearchIndex, SyncWorker
from .seed import seed, sensitive_values
from .store import SINGULAR, TABLES, Store
from .webhooks import WebhookHub

__all__ = ["DIALECTS", "SINGULAR", "Sandbox", "SandboxSettings", "Stats"]

DIALECTS = ("native", "salesforce", "hubspot", "dynamics")
# Columns the native API never shows: who owns a record and in which tenant, and the vendor
# dialects' own fields. (Sensitive personal data is hidden too, unless a knob exposes it.)
_INTERNAL = frozenset({"owner_id", "tenant_id", "extra"})


@dataclass
class SandboxSettings:
    """How to run the sandbox; every credential here is a public, documented test value.

    ``clients`` map an OAuth2 client id to its secret and the user it acts as;
    ``personal_tokens`` and ``api_keys`` map a token to the ``sub`` that GET /api/v1/me
    shows and the user it acts as; ``integration_tokens`` are bearer tokens of a user
    that can be revoked (and are back after a reset).
    """

    db: str = ":memory:"
    seed: int = 200
    sync_lag_ms: float = 500.0
    token_ttl: float = 3600.0
    max_body: int = 1024 * 1024
    admin_token: str = "sandbox-admin"
    dialect: str = "native"
    users: list[User] = field(default_factory=_default_users)
    clients: dict[str, tuple[str, str]] = field(default_factory=lambda: {
        "crmpulse": ("sandbox-secret", "integration@sandbox.example"),
        "crmpulse-restricted": ("restricted-secret", "restricted@sandbox.example"),
        "crmpulse-tenant2": ("tenant2-secret", "admin@tenant2.example")})
    api_keys: dict[str, tuple[str, str]] = field(default_factory=lambda: {
        "sandbox-api-key": ("integration", "integration@sandbox.example")})
    personal_tokens: dict[str, tuple[str, str]] = field(default_factory=lambda: {
        "sandbox-pat": ("pat-user", "rep@sandbox.example"),
        "sandbox-pat-restricted": ("restricted-user", "restricted@sandbox.example"),
        "sandbox-pat-tenant2": ("tenant2-user", "admin@tenant2.example")})
    integration_tokens: dict[str, str] = field(default_factory=lambda: {
        "sandbox-integration-token": "integration@sandbox.example"})
    tenants: list[Tenant] = field(default_factory=lambda: [TENANT_1, TENANT_2])
    login_max_failures: int = 10
    login_window: float = 900.0
    login_lockout: float = 60.0


@dataclass
class Transaction:
    rollback: bool = False


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
        if settings.dialect not in DIALECTS:
            raise ValueError(f"unknown dialect {settings.dialect!r}: expected one of {DIALECTS}")
        self.settings = settings
        self.start_token_ttl = settings.token_ttl
        self.start_login = (settings.login_max_failures, settings.login_window,
                            settings.login_lockout)
        self.faults = self.healthy_faults()
        self.access = Access(self.faults)
        self.users = {u.login.lower(): u for u in settings.users}
        self.users_by_id = {u.id: u for u in settings.users}
        self.tenants = {t.id: t for t in settings.tenants}
        self.logins = LoginGuard(self.faults, *self.start_login)
        self.store = Store(settings.db)
        self.store.adopt(TENANT_1.id, self.default_owner().id)
        self.index = SearchIndex()
        if settings.seed and self.store.count("contacts") == 0:
            self._seed()
        self._index_everything()
        self.worker = SyncWorker(self.store, self.index, self.faults)
        self.hooks = WebhookHub(self.faults)
        self.bucket = TokenBucket()
        self.capacity = CapacityQueue()
        self.tokens: dict[str, tuple[Principal, float]] = {}
        self.static_tokens: dict[str, Principal] = {}
        self.revoked: set[str] = set()
        self.meters = Meters()
        self.on_reset: list[Callable[[], None]] = []  # a dialect's own state to forget on reset
        self._add_static_tokens()
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
        self.logins.max_failures, self.logins.window, self.logins.lockout = self.start_login
        self.logins.clear()
        self.tokens.clear()
        self.revoked.clear()
        self.meters.reset()
        self.hooks.clear()
        self.store.clear()
        if self.settings.seed:
            self._seed()
        self.index.clear()
        self._index_everything()
        self.worker.skip_to(self.store.last_change())
        self.worker.applied = 0
        self.hooks.delivered = self.hooks.failed = 0
        for forget in self.on_reset:
            forget()
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
            owners = [self.user("rep@sandbox.example") or self.default_owner(),
                      self.user("restricted@sandbox.example") or self.default_owner()]
            seed(self.store, self.settings.seed, tenant=TENANT_1.id, owners=[u.id for u in owners])
        except BaseException:
            self.store.db.execute("ROLLBACK")
            raise
        self.store.db.execute("COMMIT")

    def _index_everything(self) -> None:
        for record in self.all("contacts"):  # what exists at start is already indexed
            self.index.upsert(record)

    # -- users and credentials ---------------------------------------------------------

    def user(self, login: str) -> User | None:
        return self.users.get(login.lower())

    def default_owner(self) -> User:
        """Who owns records written before owners existed: the first full user of tenant 1."""
        return next(u for u in self.settings.users if u.tenant == TENANT_1.id and u.role == "full")

    def _add_static_tokens(self) -> None:
        for token, (sub, login) in self.settings.personal_tokens.items():
            self.add_static_token(token, Principal(sub, "personal_token", self.users[login]))
        for token, login in self.settings.integration_tokens.items():
            self.add_static_token(token, Principal(login, "integration_token", self.users[login]))

    def add_static_token(self, token: str, principal: Principal) -> None:
        """A bearer token that exists from the start (a dialect adds its vendor's kinds)."""
        self.static_tokens[token] = replace(principal, token=token)

    def issue_token(self, principal: Principal, ttl: float | None = None,
                    prefix: str = "") -> dict[str, Any]:
        """A new access token for ``principal`` (``prefix`` shapes it like a vendor's)."""
        now = time.time()
        if len(self.tokens) > 10_000:
            self.tokens = {t: v for t, v in self.tokens.items() if v[1] > now}
        token = prefix + secrets.token_urlsafe(24)
        ttl = self.settings.token_ttl if ttl is None else ttl
        self.tokens[token] = (replace(principal, token=token), now + ttl)
        return {"access_token": token, "token_type": "Bearer",
                "expires_in": int(ttl), "scope": "crm"}

    def token_principal(self, token: str) -> Principal | None:
        """Who an issued, unexpired, unrevoked OAuth2 token belongs to."""
        entry = self.tokens.get(token)
        if entry is None or entry[1] <= time.time() or not self._honoured(token):
            return None
        return entry[0]

    def token_expired(self, token: str) -> float | None:
        """Seconds since an issued token expired (None: unknown, revoked or still valid)."""
        entry = self.tokens.get(token)
        if entry is None or entry[1] > time.time() or not self._honoured(token):
            return None
        return time.time() - entry[1]

    def static_principal(self, token: str) -> Principal | None:
        """Who a static bearer token (personal, integration, a vendor's app token) belongs to."""
        for known, principal in self.static_tokens.items():
            if _same(token, known):
                return principal if self._honoured(known) else None
        return None

    def bearer_principal(self, token: str) -> Principal | None:
        return self.token_principal(token) or self.static_principal(token)

    def _honoured(self, token: str) -> bool:
        return token not in self.revoked or self.faults.ignore_revocation

    def revoke(self, token: str) -> bool:
        """Revoke an issued or static token; True when it was one (RFC 7009 answers 200 anyway)."""
        known = token in self.tokens or any(_same(token, t) for t in self.static_tokens)
        if known:
            if len(self.revoked) > 10_000:
                self.revoked = {t for t in self.revoked if t in self.tokens or t in self.static_tokens}
            self.revoked.add(token)
        return known

    def api_key_principal(self, key: str) -> Principal | None:
        for known, (sub, login) in self.settings.api_keys.items():
            if _same(key, known):
                return Principal(sub, "api_key", self.users[login])
        return None

    def password_user(self, login: str, password: str) -> User | None:
        """The user these credentials name, or None; failures count toward a lockout.

        A locked account is refused even with the right password (``login_locked`` says
        for how long).
        """
        user = self.user(login)
        if self.logins.locked(login):
            return None
        if user is None or user.password is None or not _same(password, user.password):
            self.logins.failed(login)
            return None
        self.logins.succeeded(login)
        return user

    def client_user(self, client_id: str, secret: str) -> User | None:
        entry = self.settings.clients.get(client_id)
        if entry is None or not _same(secret, entry[0]):
            return None
        return self.users[entry[1].lower()]

    def is_client(self, client_id: str) -> bool:
        return client_id in self.settings.clients

    def anonymous(self) -> Principal:
        """Whom a request without credentials is served as when ``auth_enforced`` is off."""
        return Principal("anonymous", "none", self.default_owner())

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

    def create(self, table: str, values: dict[str, Any], owner: User | None = None,
               record_id: str | None = None) -> dict[str, Any]:
        """Insert a record owned by ``owner`` (in the owner's tenant); contacts get synthetic
        sensitive values (a tax id, a card number, a national id, an IBAN) no API shows."""
        owner = owner or self.default_owner()
        values = {**values, "owner_id": owner.id, "tenant_id": owner.tenant}
        if table == "contacts":
            values.update(sensitive_values(random.Random()))
        record = self.store.insert(table, values, record_id=record_id)
        self._changed(table, "created", record, tuple(values))
        return record

    def update(self, table: str, record_id: str, values: dict[str, Any]) -> dict[str, Any] | None:
        record = self.store.update(table, record_id, values)
        if record is not None:
            self._changed(table, "updated", record, tuple(values))
        return record

    def delete(self, table: str, record_id: str) -> dict[str, Any] | None:
        record = self.store.get(table, record_id)
        if record is not None:
            self.store.delete(table, record_id)
            self._changed(table, "deleted", record, ())
        return record

    def public(self, table: str, record: dict[str, Any],
               principal: Principal | None = None) -> dict[str, Any]:
        """A record as the native API shows it: no internal columns, no field the reader's
        role may not read, and sensitive values only when a knob exposes them."""
        hidden = _INTERNAL | self.access.hidden(principal, table)
        if table == "contacts":
            hidden |= frozenset(SENSITIVE_FIELDS) - self.access.exposed()
        if table == "activities":
            hidden |= {"updated_at"}  # activities are logged once; the native API never had it
        return {k: v for k, v in record.items() if k not in hidden}

    def _changed(self, table: str, op: str, record: dict[str, Any],
                 changed: tuple[str, ...]) -> None:
        if table == "contacts":
            self.worker.notify()
        self.hooks.emit(table, op, record, tuple(c for c in changed if c not in _INTERNAL))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Writes that all happen or none do; webhooks go out only once they have happened.

            with sb.transaction() as tx:
                ...
                tx.rollback = True   # or raise: either undoes every write inside
        """
        tx = Transaction()
        self.store.db.execute("BEGIN")
        self.hooks.hold()
        try:
            yield tx
        except BaseException:
            self.store.db.execute("ROLLBACK")
            self.hooks.drop()
            raise
        if tx.rollback:
            self.store.db.execute("ROLLBACK")
            self.hooks.drop()
        else:
            self.store.db.execute("COMMIT")
            self.hooks.release()
        self.worker.notify()

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
            "tokens": len(self.tokens),
            "access": {"revoked": len(self.revoked), "locks": self.logins.locks}}

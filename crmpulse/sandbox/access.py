"""Who may do what in the sandbox: tenants, users, roles, and the credentials that name them.

    Tenant      an isolated customer of the CRM (a Salesforce org, a HubSpot portal, a
                Dataverse business unit); a user sees only its own tenant's records
    User        a login in one tenant with one role; records carry the id of their owner
    Role        ``full`` reads and writes every record of its tenant and deletes them;
                ``restricted`` reads and writes only the records it owns, never deletes,
                never sees ``phone`` of contacts, and cannot manage webhooks
    Principal   who a request authenticated as: the user, how (``via``), and the token
    LoginGuard  locks an account for a while after too many failed passwords

Every credential here is a public test value, documented in docs/sandbox.md. The
fault knobs that break these protections on purpose (``unfiltered_reads``,
``widen_role``, ``ignore_revocation``, ``login_throttle``) are read where the
decisions are made, in ``Access``.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from .faults import Faults

__all__ = ["READ_PATHS", "Access", "LoginGuard", "Principal", "Tenant", "User", "default_users"]

Role = Literal["full", "restricted"]
ReadPath = Literal["get", "list", "search", "export"]
READ_PATHS: tuple[ReadPath, ...] = ("get", "list", "search", "export")
# Fields a restricted user never reads nor writes (field-level security), by table.
RESTRICTED_FIELDS: dict[str, frozenset[str]] = {"contacts": frozenset({"phone"})}
SENSITIVE_FIELDS = ("tax_id", "card_number", "national_id", "iban")


@dataclass(frozen=True)
class Tenant:
    id: str
    name: str


@dataclass(frozen=True)
class User:
    """A login; ``password`` None means it signs in only through a client or a token."""

    id: str
    login: str
    first_name: str
    last_name: str
    tenant: str
    role: Role
    password: str | None = None


TENANT_1 = Tenant("ten_00000000000005a1", "Sandbox Org")
TENANT_2 = Tenant("ten_00000000000005a2", "Second Org")


def default_users() -> list[User]:
    """The sandbox's users: every password is a documented test value."""
    t1, t2 = TENANT_1.id, TENANT_2.id
    return [
        User("usr_0000000000000a01", "rep@sandbox.example", "Riley", "Rep", t1, "full",
             "sandbox-password"),
        User("usr_0000000000000a02", "integration@sandbox.example", "Integration", "User", t1,
             "full"),
        User("usr_0000000000000a03", "restricted@sandbox.example", "Robin", "Restricted", t1,
             "restricted", "restricted-password"),
        User("usr_0000000000000a04", "canary@sandbox.example", "Casey", "Canary", t1,
             "restricted", "canary-password"),
        User("usr_0000000000000b01", "admin@tenant2.example", "Taylor", "Second", t2, "full",
             "tenant2-password"),
    ]


@dataclass(frozen=True)
class Principal:
    """Who a request authenticated as. ``sub`` and ``via`` are what GET /api/v1/me showed first."""

    sub: str
    via: str
    user: User
    token: str | None = None
    scopes: frozenset[str] | None = None  # None: the role decides alone (HubSpot tokens have scopes)
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def describe(self) -> dict[str, Any]:
        """What GET /api/v1/me answers: the first two keys as before, then whose and what role."""
        return {"sub": self.sub, "via": self.via, "user": self.user.login,
                "tenant": self.user.tenant, "role": self.user.role}


class Access:
    """Every access decision, made in one place so one knob breaks one protection everywhere.

    A full user reads and writes its tenant's records; a restricted user only the records
    it owns. ``scope()`` is the filter a read path applies (as column equalities); the
    ``unfiltered_reads`` knob empties it for the paths it names, ``widen_role`` makes a
    restricted user full.
    """

    def __init__(self, faults: Faults) -> None:
        self.faults = faults

    def role(self, principal: Principal) -> Role:
        if self.faults.widen_role:
            return "full"
        return principal.user.role

    def scope(self, principal: Principal, path: ReadPath) -> dict[str, str]:
        """Column equalities a read must match: tenant, and owner for a restricted user."""
        if path in self.faults.unfiltered_reads:
            return {}
        scope = {"tenant_id": principal.user.tenant}
        if self.role(principal) == "restricted":
            scope["owner_id"] = principal.user.id
        return scope

    def sees(self, principal: Principal, path: ReadPath, record: dict[str, Any]) -> bool:
        return all(record.get(k) == v for k, v in self.scope(principal, path).items())

    def can_write(self, principal: Principal, record: dict[str, Any]) -> bool:
        """May change this record (reads are checked first; writes always keep the filter)."""
        if record.get("tenant_id") != principal.user.tenant:
            return False
        return self.role(principal) == "full" or record.get("owner_id") == principal.user.id

    def can_delete(self, principal: Principal) -> bool:
        return self.role(principal) == "full"

    def can_manage(self, principal: Principal) -> bool:
        """May register webhooks and the like."""
        return self.role(principal) == "full"

    def hidden(self, principal: Principal | None, table: str) -> frozenset[str]:
        """Fields this principal never reads or writes (field-level security)."""
        if principal is None or self.role(principal) == "full":
            return frozenset()
        return RESTRICTED_FIELDS.get(table, frozenset())

    def exposed(self) -> frozenset[str]:
        """Sensitive fields the API returns by mistake (the exposure knobs)."""
        if self.faults.expose_sensitive:
            return frozenset(SENSITIVE_FIELDS)
        return frozenset(self.faults.exposed_fields)


class LoginGuard:
    """Locks an account after ``max_failures`` wrong passwords within ``window`` seconds.

    While locked, even the right password is refused, for ``lockout`` seconds. A success
    clears the account's failures. The ``login_throttle`` knob off disables all of it.
    Memory is bounded: at most ``MAX_ACCOUNTS`` accounts are tracked at once.
    """

    MAX_ACCOUNTS = 10_000

    def __init__(self, faults: Faults, max_failures: int = 10, window: float = 900.0,
                 lockout: float = 60.0) -> None:
        self.faults = faults
        self.max_failures, self.window, self.lockout = max_failures, window, lockout
        self.failures: dict[str, deque[float]] = {}
        self.locked_until: dict[str, float] = {}
        self.locks = 0

    def locked(self, login: str) -> float:
        """Seconds this account stays locked (0: it is not)."""
        if not self.faults.login_throttle:
            return 0.0
        left = self.locked_until.get(login.lower(), 0.0) - time.time()
        return max(0.0, left)

    def failed(self, login: str) -> None:
        key, now = login.lower(), time.time()
        if len(self.failures) >= self.MAX_ACCOUNTS and key not in self.failures:
            self._forget_old(now)
        seen = self.failures.setdefault(key, deque())
        seen.append(now)
        while seen and seen[0] < now - self.window:
            seen.popleft()
        if len(seen) >= self.max_failures and self.faults.login_throttle:
            self.locked_until[key] = now + self.lockout
            self.locks += 1
            seen.clear()

    def succeeded(self, login: str) -> None:
        self.failures.pop(login.lower(), None)

    def clear(self) -> None:
        self.failures.clear()
        self.locked_until.clear()
        self.locks = 0

    def _forget_old(self, now: float) -> None:
        for key in [k for k, seen in self.failures.items() if not seen or seen[-1] < now - self.window]:
            del self.failures[key]
        if len(self.failures) >= self.MAX_ACCOUNTS:
            self.failures.clear()

    def snapshot(self) -> dict[str, Any]:
        now = time.time()
        return {"max_failures": self.max_failures, "window_s": self.window,
                "lockout_s": self.lockout, "locks": self.locks,
                "locked": sorted(k for k, t in self.locked_until.items() if t > now)}

"""Webhook registrations and their delivery: every change is POSTed to subscribers.

Deliveries go only to loopback addresses: the sandbox is a test target on a laptop
or CI machine, and a registration pointing elsewhere is far more likely a mistake
(or abuse) than a test. A hook receives only its own tenant's changes, rendered in
its dialect's words (``native_render`` here; the vendor dialects bring theirs), and
is retried the way its vendor retries (natively: three times, after 0.5, 1 and 2 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from .faults import Faults
from .store import SINGULAR, now_iso

__all__ = ["EVENT_TYPES", "MAX_HOOKS", "Delivery", "Hook", "Retry", "WebhookHub",
           "loopback_url_error", "native_render"]

EVENT_TYPES = sorted(f"{e}.{op}" for e in SINGULAR.values() for op in ("created", "updated", "deleted"))
MAX_HOOKS = 100
_RETRY_DELAYS = (0.5, 1.0, 2.0)


def loopback_url_error(url: str) -> str | None:
    """Why the sandbox would not deliver to ``url``, or None when it would."""
    try:
        parts = urlsplit(url)
        httpx.URL(url)
        if parts.port is not None and not 0 < parts.port < 65536:
            raise ValueError
    except (ValueError, httpx.InvalidURL):
        return "expected an http(s) URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "expected an http(s) URL"
    host = parts.hostname
    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass
    return "the sandbox delivers webhooks to loopback addresses only (127.0.0.1, ::1, localhost)"


@dataclass(frozen=True)
class Delivery:
    """One POST a change turns into: its body and headers, and a URL when the hook's own
    URL gets something added (Dataverse's ``?code=`` key)."""

    body: bytes
    headers: dict[str, str]
    url: str | None = None


def _accepted(response: httpx.Response) -> bool:
    return response.status_code < 300


@dataclass(frozen=True)
class Retry:
    """How a vendor retries: the delays between attempts, which answers are final, which
    count as delivered, and how long one attempt may take."""

    delays: tuple[float, ...] = _RETRY_DELAYS
    final: frozenset[int] = frozenset()        # failed answers never retried
    only: frozenset[int] | None = None         # when set, only these answers are retried
    accept: Callable[[httpx.Response], bool] = _accepted
    timeout: float = 5.0

    def again(self, status: int | None) -> bool:
        if status is None:  # no answer at all: a connection failure or a timeout
            return self.only is None
        if status in self.final:
            return False
        return self.only is None or status in self.only


Render = Callable[["Hook", str, str, dict[str, Any], tuple[str, ...]], list[Delivery]]


@dataclass
class Hook:
    """A subscription: where to POST, what to, in whose tenant, and in which vendor's words.

    ``render(hook, table, op, record, changed)`` turns a change into deliveries (none when
    the hook does not subscribe to it); ``options`` holds what the vendor's format needs.
    """

    id: str
    url: str
    tenant: str
    render: Render
    events: list[str] = field(default_factory=list)
    secret: str | None = None
    retry: Retry = field(default_factory=Retry)
    kind: str = "native"
    options: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=now_iso)

    def shown(self) -> dict[str, Any]:
        """The subscription as the APIs show it: never its secret."""
        out = {"id": self.id, "url": self.url, "events": self.events, "created_at": self.created_at}
        if self.kind != "native":
            out.update({"kind": self.kind, "tenant": self.tenant,
                        **{k: v for k, v in self.options.items() if k not in ("secret", "value", "session")}})
        return out


class WebhookHub:
    def __init__(self, faults: Faults, workers: int = 4) -> None:
        self.faults = faults
        self.hooks: dict[str, Hook] = {}
        self.queue: asyncio.Queue[tuple[Hook, Delivery, float]] = asyncio.Queue()
        self.delivered = 0
        self.failed = 0
        self._workers = workers
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None
        self._held: list[tuple[str, str, dict[str, Any], tuple[str, ...]]] | None = None

    def hold(self) -> None:
        """Keep changes back until ``release`` (a transaction commits) or ``drop`` (it rolls back)."""
        self._held = []

    def release(self) -> None:
        held, self._held = self._held or [], None
        for change in held:
            self.emit(*change)

    def drop(self) -> None:
        self._held = None

    def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=5.0, trust_env=False)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._deliver_forever()) for _ in range(self._workers)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client:
            await self._client.aclose()

    def add(self, hook: Hook) -> Hook:
        self.hooks[hook.id] = hook
        return hook

    def register(self, url: str, events: list[str], secret: str | None, tenant: str,
                 render: Render) -> Hook:
        """A native subscription (the native API's POST /api/v1/webhooks)."""
        return self.add(Hook(f"wh_{secrets.token_hex(6)}", url, tenant, render, events, secret))

    def clear(self) -> None:
        """Forget every registration and drop deliveries not yet made."""
        self.hooks.clear()
        while not self.queue.empty():
            self.queue.get_nowait()
            self.queue.task_done()

    def emit(self, table: str, op: str, record: dict[str, Any], changed: tuple[str, ...]) -> None:
        """Queue a change for every hook of the record's tenant that subscribes to it."""
        if self._held is not None:
            self._held.append((table, op, record, changed))
            return
        occurred = time.time()
        for hook in list(self.hooks.values()):
            if hook.tenant != record.get("tenant_id"):
                continue
            for delivery in hook.render(hook, table, op, record, changed):
                self.queue.put_nowait((hook, delivery, occurred))

    async def _deliver_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            item = await self.queue.get()
            hook, delivery, occurred = item
            try:
                # A held delivery never occupies a worker: it goes back to the queue when due,
                # re-reading the knob each time, so lifting the delay releases it promptly
                # and a long delay cannot block the deliveries behind it.
                wait = occurred + self.faults.webhook_delay_ms / 1000 - time.time()
                if wait > 0 and hook.id in self.hooks:
                    loop.call_later(min(wait, 0.1), self.queue.put_nowait, item)
                    continue
                await self._deliver(hook, delivery)
            finally:
                self.queue.task_done()

    async def _deliver(self, hook: Hook, delivery: Delivery) -> None:
        assert self._client is not None
        retry = hook.retry
        for attempt, delay in enumerate((0.0, *retry.delays)):
            if delay:
                await asyncio.sleep(delay)
            if hook.id not in self.hooks:
                return
            status = None
            try:
                response = await self._client.post(delivery.url or hook.url, content=delivery.body,
                                                    headers=delivery.headers, timeout=retry.timeout)
                if retry.accept(response):
                    self.delivered += 1
                    return
                status = response.status_code
            except (httpx.HTTPError, httpx.InvalidURL):
                pass
            if attempt == len(retry.delays) or not retry.again(status):
                self.failed += 1
                return


def native_render(public: Callable[[str, dict[str, Any]], dict[str, Any]]) -> Render:
    """The native format: ``{"id", "type", "occurred_at", "occurred_at_unix", "data"}``,
    signed ``X-Sandbox-Signature: sha256=HMAC(secret, body)`` when the hook has a secret."""
    def render(hook: Hook, table: str, op: str, record: dict[str, Any],
               changed: tuple[str, ...]) -> list[Delivery]:
        event_type = f"{SINGULAR[table]}.{op}"
        if hook.events and event_type not in hook.events:
            return []
        body = json.dumps({"id": f"evt_{secrets.token_hex(8)}", "type": event_type,
                           "occurred_at": now_iso(), "occurred_at_unix": time.time(),
                           "data": public(table, record)}).encode()
        headers = {"Content-Type": "application/json"}
        if hook.secret:
            digest = hmac.new(hook.secret.encode(), body, hashlib.sha256).hexdigest()
            headers["X-Sandbox-Signature"] = f"sha256={digest}"
        return [Delivery(body, headers)]
    return render

"""Webhook registrations and their delivery: every change is POSTed to subscribers.

Deliveries go only to loopback addresses: the sandbox is a test target on a laptop
or CI machine, and a registration pointing elsewhere is far more likely a mistake
(or abuse) than a test. A failed delivery is retried three times with backoff.
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
from typing import Any
from urllib.parse import urlsplit

import httpx

from .faults import Faults
from .store import now_iso

__all__ = ["EVENT_TYPES", "MAX_HOOKS", "WebhookHub", "loopback_url_error"]

EVENT_TYPES = sorted(f"{e}.{op}" for e in ("contact", "account", "deal", "lead", "activity")
                     for op in ("created", "updated", "deleted"))
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


class WebhookHub:
    def __init__(self, faults: Faults, workers: int = 4) -> None:
        self.faults = faults
        self.hooks: dict[str, dict[str, Any]] = {}
        self.queue: asyncio.Queue[tuple[dict[str, Any], bytes, float]] = asyncio.Queue()
        self.delivered = 0
        self.failed = 0
        self._workers = workers
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None

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

    def register(self, url: str, events: list[str], secret: str | None) -> dict[str, Any]:
        hook_id = f"wh_{secrets.token_hex(6)}"
        hook = {"id": hook_id, "url": url, "events": events, "secret": secret,
                "created_at": now_iso()}
        self.hooks[hook_id] = hook
        return hook

    def clear(self) -> None:
        """Forget every registration and drop deliveries not yet made."""
        self.hooks.clear()
        while not self.queue.empty():
            self.queue.get_nowait()
            self.queue.task_done()

    def emit(self, entity: str, op: str, record: dict[str, Any]) -> None:
        event_type = f"{entity}.{op}"
        targets = [h for h in self.hooks.values() if not h["events"] or event_type in h["events"]]
        if not targets:
            return
        occurred = time.time()
        body = json.dumps({"id": f"evt_{secrets.token_hex(8)}", "type": event_type,
                           "occurred_at": now_iso(), "occurred_at_unix": occurred,
                           "data": record}).encode()
        for hook in targets:
            self.queue.put_nowait((hook, body, occurred))

    async def _deliver_forever(self) -> None:
        while True:
            hook, body, occurred = await self.queue.get()
            try:
                await self._deliver(hook, body, occurred)
            finally:
                self.queue.task_done()

    async def _deliver(self, hook: dict[str, Any], body: bytes, occurred: float) -> None:
        assert self._client is not None
        wait = occurred + self.faults.webhook_delay_ms / 1000 - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        headers = {"Content-Type": "application/json"}
        if hook["secret"]:
            digest = hmac.new(hook["secret"].encode(), body, hashlib.sha256).hexdigest()
            headers["X-Sandbox-Signature"] = f"sha256={digest}"
        for attempt, delay in enumerate((0.0, *_RETRY_DELAYS)):
            if delay:
                await asyncio.sleep(delay)
            if hook["id"] not in self.hooks:
                return
            try:
                response = await self._client.post(hook["url"], content=body, headers=headers)
                if response.status_code < 300:
                    self.delivered += 1
                    return
            except (httpx.HTTPError, httpx.InvalidURL):
                pass
            if attempt == len(_RETRY_DELAYS):
                self.failed += 1

"""The sandbox's search index and the asynchronous sync worker that feeds it.

The index is a separate store from SQLite: a record is searchable only once the sync
worker has read its change from the change log and indexed it. The worker applies
each change when ``change time + sync lag (+ jitter)`` has passed, in log order, so
the lag a probe measures is the lag of a real queue, not a sleep in the read handler.
A stall stops the worker entirely (changes pile up); ``sync_max_rate`` caps how many
changes per second it applies (a slow consumer).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
from typing import Any

from .faults import Faults
from .store import Store

__all__ = ["SearchIndex", "SyncWorker"]

_TOKEN = re.compile(r"[a-z0-9]+")
SEARCH_FIELDS = ("id", "first_name", "last_name", "email", "phone", "title", "account_id",
                 "tags", "custom", "created_at", "updated_at", "owner_id", "tenant_id", "extra")


def _tokens(text: str) -> set[str]:
    return set(_TOKEN.findall(text.lower()))


class SearchIndex:
    """An inverted index of contacts, independent of the database."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.terms: dict[str, set[str]] = {}

    def upsert(self, record: dict[str, Any]) -> None:
        doc_id: str = record["id"]
        self.remove(doc_id)
        doc = {k: record.get(k) for k in SEARCH_FIELDS}
        doc["indexed_at"] = time.time()
        self.docs[doc_id] = doc
        for term in self._doc_terms(doc):
            self.terms.setdefault(term, set()).add(doc_id)

    def clear(self) -> None:
        self.docs.clear()
        self.terms.clear()

    def matching(self, q: str) -> list[dict[str, Any]]:
        """Documents holding every word of ``q`` (all of them for no words)."""
        candidates: set[str] | None = None
        for term in _tokens(q):
            ids = self.terms.get(term, set())
            candidates = set(ids) if candidates is None else candidates & ids
        return [self.docs[i] for i in (set(self.docs) if candidates is None else candidates)]

    def remove(self, doc_id: str) -> None:
        doc = self.docs.pop(doc_id, None)
        if doc is None:
            return
        for term in self._doc_terms(doc):
            ids = self.terms.get(term)
            if ids is not None:
                ids.discard(doc_id)
                if not ids:
                    del self.terms[term]

    def search(self, q: str = "", tag: str | None = None, email: str | None = None,
               limit: int = 20, scope: dict[str, str] | None = None
               ) -> tuple[list[dict[str, Any]], int]:
        """Documents matching every word of ``q``, ``tag`` and ``email``, within ``scope``
        (column equalities such as the reader's tenant), newest first."""
        candidates: set[str] | None = None
        for term in _tokens(q):
            ids = self.terms.get(term, set())
            candidates = set(ids) if candidates is None else candidates & ids
        if candidates is None:
            candidates = set(self.docs) if (tag or email) else set()
        hits = [self.docs[i] for i in candidates]
        if scope:
            hits = [d for d in hits if all(d.get(k) == v for k, v in scope.items())]
        if tag:
            hits = [d for d in hits if tag in (d.get("tags") or [])]
        if email:
            hits = [d for d in hits if (d.get("email") or "").lower() == email.lower()]
        hits.sort(key=lambda d: (d.get("updated_at") or "", d["id"]), reverse=True)
        return hits[:limit], len(hits)

    @staticmethod
    def _doc_terms(doc: dict[str, Any]) -> set[str]:
        parts = [str(doc.get(k) or "") for k in ("first_name", "last_name", "email", "title")]
        parts += [str(t) for t in doc.get("tags") or []]
        parts += [str(v) for v in (doc.get("custom") or {}).values()]
        return _tokens(" ".join(parts))


class SyncWorker:
    """Moves changes from the store's change log into the search index, with the lag set."""

    def __init__(self, store: Store, index: SearchIndex, faults: Faults) -> None:
        self.store, self.index, self.faults = store, index, faults
        self.applied_seq = store.last_change()
        self.applied = 0
        self.last_lag = 0.0
        self.wake = asyncio.Event()
        self._pending: list[Any] = []
        self._jitter: tuple[int, float] = (-1, 0.0)
        self._last_apply = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def notify(self) -> None:
        self.wake.set()

    def skip_to(self, seq: int) -> None:
        """Treat every change up to ``seq`` as applied (the index was rebuilt)."""
        self._pending = []
        self.applied_seq = seq
        self.store.trim_changes(seq)
        self.notify()

    def backlog(self) -> int:
        return max(0, self.store.last_change() - self.applied_seq)

    async def _sleep(self, seconds: float | None) -> None:
        """Sleep until ``seconds`` pass or a write/knob change wakes us to re-check."""
        self.wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), seconds)

    async def _run(self) -> None:
        while True:
            if self.faults.sync_stall:
                await self._sleep(None)
                continue
            if not self._pending:
                self._pending = list(self.store.changes_after(self.applied_seq))
                if not self._pending:
                    await self._sleep(None)
                    continue
            change = self._pending[0]
            if self._jitter[0] != change["seq"]:
                self._jitter = (change["seq"], random.uniform(0, self.faults.sync_jitter_ms))
            due = change["at"] + (self.faults.sync_lag_ms + self._jitter[1]) / 1000
            if self.faults.sync_max_rate > 0:
                due = max(due, self._last_apply + 1 / self.faults.sync_max_rate)
            delay = due - time.time()
            if delay > 0:
                await self._sleep(delay)
                continue
            self._apply(change)

    def _apply(self, change: Any) -> None:
        self._pending.pop(0)
        record = self.store.get("contacts", change["entity_id"])
        if record is None:
            self.index.remove(change["entity_id"])
        else:
            self.index.upsert(record)
        self.applied_seq = change["seq"]
        self.applied += 1
        self._last_apply = time.time()
        self.last_lag = self._last_apply - change["at"]
        if self.applied % 1000 == 0:
            self.store.trim_changes(self.applied_seq)

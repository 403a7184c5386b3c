"""Sync-lag probes: how long a write on the CRM takes to become visible elsewhere.

Three modes (docs/synclag.md says when to choose which):

- **heartbeat**: one long-lived marker record is stamped with the probe's clock every
  interval; the read side is polled and lag = now - the newest stamp visible there.
  Both timestamps come from the probe's clock, and the gauge is computed at scrape
  time, so it keeps growing while a stall lasts.
- **canary**: each run creates a uniquely marked record, polls the read side
  (fast at first, then backing off) until it appears or the SLA passes, records the
  lag, and deletes the record. Past the SLA the canary is lost (and still deleted).
- **webhook**: each run creates a record and waits for the CRM's change event on the
  exporter's own ``/-/webhook/<pair>`` endpoint; lag = write -> delivery. With
  ``webhook.signature``, a delivery whose HMAC-SHA256 does not verify is refused (401),
  counted by reason and never measured. While the subscription is not in place no record
  is written, so a lost record means a late or missing delivery, never our credential.

Every record a sync probe writes carries the pair's marker
(``crmpulse-<target>-sync-<pair>``, :mod:`crmpulse.markers`). After each run it is
deleted (retried with backoff); a sweeper lists marked records at start-up and every
``sweep_every`` and deletes those older than ``sweep_after``, so a crash, a kill or a
failing delete never leaves junk for long. The sweeper touches only records that carry
the pair's marker exactly: a CRM whose search matches substrings may list another
pair's records (``search`` and ``search_heartbeat``), and those are left alone.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import logging
import math
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry

from crmpulse import TransportError, contract, redact
from crmpulse._types import compile_jsonpath, first_match
from crmpulse.client import Session
from crmpulse.config import SyncPair, WebhookSignature
from crmpulse.contract import FAILURE_REASONS, SUBSCRIPTION_STATES, SYNC_STAGES, WEBHOOK_REJECT_REASONS
from crmpulse.markers import carries, pair_marker
from crmpulse.profile import OperationResult, loads_json
from crmpulse.templates import MISSING, render

from .checks import TargetRunner
from .metrics import make

__all__ = ["SweepReport", "SyncMetrics", "SyncPairRunner", "marker_for"]

log = logging.getLogger("crmpulse.sync")
DELETE_RETRIES = (0.5, 1.0, 2.0)


def marker_for(target: str, pair: str) -> str:
    """The marker every record of a pair carries: it names crmpulse, the target and the pair."""
    return str(pair_marker(target, pair))


def parse_time(value: Any) -> float | None:
    """Unix seconds from a number, a numeric string or an ISO 8601 timestamp."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


class SyncMetrics:
    """The sync metrics of the contract, registered once per exporter registry."""

    def __init__(self, registry: CollectorRegistry, buckets: tuple[float, ...]) -> None:
        c = contract
        self.buckets = buckets
        self.lag = make(c.SYNC_LAG, registry)
        self.observed = make(c.SYNC_LAG_OBSERVED, registry, buckets=buckets)
        self.created = make(c.SYNC_CREATED, registry)
        self.seen = make(c.SYNC_SEEN, registry)
        self.lost = make(c.SYNC_LOST, registry)
        self.in_flight = make(c.SYNC_IN_FLIGHT, registry)
        self.last_success = make(c.SYNC_LAST_SUCCESS, registry)
        self.deleted = make(c.SYNC_DELETED, registry)
        self.orphans_found = make(c.SYNC_ORPHANS_FOUND, registry)
        self.orphans_deleted = make(c.SYNC_ORPHANS_DELETED, registry)
        self.delete_failures = make(c.SYNC_DELETE_FAILURES, registry)
        self.errors = make(c.SYNC_ERRORS, registry)
        self.webhook_rejected = make(c.SYNC_WEBHOOK_REJECTED, registry)
        self.subscription = make(c.SYNC_SUBSCRIPTION, registry)

    def prepare_webhook(self, target: str, pair: str, subscribes: bool) -> None:
        for reason in WEBHOOK_REJECT_REASONS:
            self.webhook_rejected.labels(target, pair, reason)
        if subscribes:
            for state in SUBSCRIPTION_STATES:
                self.subscription.labels(target, pair, state).set(state == "pending")

    def prepare(self, target: str, pair: str) -> None:
        for metric in (self.observed, self.created, self.seen, self.lost, self.in_flight,
                       self.last_success, self.deleted, self.orphans_found, self.orphans_deleted,
                       self.delete_failures):
            metric.labels(target, pair)
        for stage in SYNC_STAGES:
            for reason in FAILURE_REASONS:
                self.errors.labels(target, pair, stage, reason)

    def forget(self, target: str, pair: str) -> None:
        for metric in (self.lag, self.observed, self.created, self.seen, self.lost, self.in_flight,
                       self.last_success, self.deleted, self.orphans_found, self.orphans_deleted,
                       self.delete_failures):
            with contextlib.suppress(KeyError):
                metric.remove(target, pair)
        for stage in SYNC_STAGES:
            for reason in FAILURE_REASONS:
                with contextlib.suppress(KeyError):
                    self.errors.remove(target, pair, stage, reason)
        for metric, values in ((self.webhook_rejected, WEBHOOK_REJECT_REASONS),
                               (self.subscription, SUBSCRIPTION_STATES)):
            for value in values:
                with contextlib.suppress(KeyError):
                    metric.remove(target, pair, value)


@dataclass
class SweepReport:
    pair: str
    listed: int = 0
    orphans: int = 0
    deleted: int = 0
    failed: int = 0
    error: str = ""


class SyncPairRunner:
    """Runs one sync pair: its mode's loop, the deletes, and its sweeper."""

    def __init__(self, pair: SyncPair, write: TargetRunner, read: TargetRunner,
                 metrics: SyncMetrics, target: str, receiver_url: str | None = None) -> None:
        self.pair, self.write, self.read, self.metrics = pair, write, read, metrics
        self.target = target
        self.labels = (target, pair.name)
        self.marker = marker_for(target, pair.name)
        self.receiver_url = (pair.webhook.url if pair.webhook and pair.webhook.url
                             else receiver_url)
        self.active: set[str] = set()  # records in use: never swept
        self.heartbeat_id: str | None = None
        self.newest_visible: float | None = None
        self.pending_stamps: list[tuple[float, float]] = []  # (stamp, write time, monotonic)
        self.in_flight: dict[str, float] = {}  # record id -> write time (unix)
        # write time of the oldest record lost since a later-written one was last seen: the
        # lag keeps counting from it, so a stall keeps the gauge growing past the SLA
        self.unconfirmed_since: float | None = None
        self.last_lag = 0.0
        self.started = time.time()
        self.waiters: dict[str, asyncio.Future[float]] = {}
        self.early: OrderedDict[str, float] = OrderedDict()  # events that beat the create's reply
        self.subscription: Session | None = None
        self.leftovers: list[Session] = []  # runs whose deletes failed: retried at stop
        self.observations: deque[float] = deque(maxlen=100)  # recent lags, for the landing page
        self.tasks: set[asyncio.Task[Any]] = set()
        self.loop_task: asyncio.Task[None] | None = None
        self.max_in_flight = math.ceil(pair.sla / pair.interval) + 1
        signature = pair.webhook.signature if pair.webhook else None
        self.signing_secret: bytes | None = (
            signature.secret.get_secret_value().encode() if signature and signature.secret else None)
        self.subscription_state = "pending"
        metrics.prepare(*self.labels)
        if pair.webhook is not None:
            metrics.prepare_webhook(*self.labels, subscribes=pair.webhook.subscribe is not None)
        metrics.lag.labels(*self.labels).set_function(self.current_lag)
        metrics.in_flight.labels(*self.labels).set_function(lambda: len(self.in_flight))

    # -- what the gauges read at scrape time -------------------------------------------

    def current_lag(self) -> float:
        now = time.time()
        if self.pair.mode == "heartbeat":
            return max(0.0, now - (self.newest_visible or self.started))
        waiting = list(self.in_flight.values())
        if self.unconfirmed_since is not None:
            waiting.append(self.unconfirmed_since)
        return max(self.last_lag, now - min(waiting, default=now))

    def _lost(self, written_at: float) -> None:
        """A record never showed up: the lag counts from it until a later one does."""
        if self.unconfirmed_since is None or written_at < self.unconfirmed_since:
            self.unconfirmed_since = written_at

    def _seen(self, written_at: float) -> None:
        """A record showed up: sync has caught up past every record lost before it."""
        if self.unconfirmed_since is not None and written_at >= self.unconfirmed_since:
            self.unconfirmed_since = None

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        await self.sweep(adopt=True)
        if self.pair.mode == "webhook":
            await self._subscribe()
        self.loop_task = asyncio.get_running_loop().create_task(self._loop(),
                                                                name=f"sync:{self.pair.name}")

    async def stop(self) -> None:
        """Stop, then delete what is in flight, the heartbeat marker and the subscription."""
        if self.loop_task:
            self.loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.loop_task
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=30)
        if self.heartbeat_id is not None:
            await self._delete_record(self.heartbeat_id, {"id": self.heartbeat_id})
            self.heartbeat_id = None
        for session in self.leftovers:  # one more try; what still fails is the sweeper's
            with contextlib.suppress(TransportError, asyncio.TimeoutError):
                async with asyncio.timeout(10):
                    before = len(session.ledger.pending)
                    await self.write.client.run(session.cleanup())
                    self.metrics.deleted.labels(*self.labels).inc(before - len(session.ledger.pending))
        self.leftovers = []
        if self.subscription is not None:
            with contextlib.suppress(TransportError, asyncio.TimeoutError):
                async with asyncio.timeout(10):
                    await self.write.client.run(self.subscription.cleanup())
            self.subscription = None

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _loop(self) -> None:
        next_sweep = time.monotonic() + self.pair.sweep_every
        tick = time.monotonic()
        while True:
            if self.pair.mode == "heartbeat":
                await self.heartbeat_once()
            elif len(self.tasks) < self.max_in_flight:
                self._spawn(self.canary_once() if self.pair.mode == "canary" else self.webhook_once())
            else:
                log.warning("sync pair %s: %d records in flight, skipping a run", self.pair.name,
                            len(self.tasks))
            if time.monotonic() >= next_sweep:
                self._spawn(self.sweep())
                next_sweep = time.monotonic() + self.pair.sweep_every
            tick += self.pair.interval
            await asyncio.sleep(max(0.0, tick - time.monotonic()))

    # -- helpers ---------------------------------------------------------------------------

    def _error(self, stage: str, reason: str) -> None:
        self.metrics.errors.labels(*self.labels, stage, reason or "assertion").inc()

    async def _call(self, runner: TargetRunner, session: Session, operation: str,
                    variables: dict[str, Any], stage: str, max_pages: int = 1) -> OperationResult | None:
        try:
            result: OperationResult = await runner.client.run(
                session.call(operation, variables, max_pages))
        except TransportError as exc:
            self._error(stage, exc.reason)
            return None
        if not result.ok:
            self._error(stage, result.reason)
            return None
        return result

    def _context(self, session: Session, **extra: Any) -> dict[str, Any]:
        return {**session.variables({}), "marker": self.marker, **extra}

    async def _create(self, **extra: Any) -> tuple[Session, dict[str, Any], float] | None:
        """Create the pair's record; return its session (ledger), values, and write time."""
        session = self.write.session()
        context = self._context(session, canary=secrets.token_hex(4), **extra)
        variables = render(self.pair.create.with_, context)
        start = time.monotonic()
        result = await self._call(self.write, session, self.pair.create.operation, variables, "write")
        written = (start + time.monotonic()) / 2
        if result is None:
            return None
        self.metrics.created.labels(*self.labels).inc()
        return session, {**context, **variables, **result.values}, written

    def _observe(self, lag: float) -> None:
        self.observations.append(max(0.0, lag))
        self.metrics.observed.labels(*self.labels).observe(max(0.0, lag))
        self.metrics.seen.labels(*self.labels).inc()
        self.metrics.last_success.labels(*self.labels).set(time.time())
        self.last_lag = max(0.0, lag)

    async def _read(self, session: Session, variables: dict[str, Any]) -> Any:
        """One read of the read side; the parsed JSON body, or None when the read failed."""
        assert self.pair.read is not None
        result = await self._call(self.read, session, self.pair.read.operation, variables, "read")
        if result is None:
            return None
        try:
            return json.loads(result.body) if result.body else {}
        except ValueError:
            self._error("read", "assertion")
            return None

    def _next_poll(self, elapsed: float) -> float:
        # Poll fast at first and back off in proportion to the time waited, so the
        # measurement error (half a poll gap) stays near 1 % of the lag.
        return min(self.pair.poll_max, max(self.pair.poll_min, elapsed * 0.02))

    async def _delete(self, session: Session) -> None:
        """Delete what a run created, retrying with backoff; the sweeper gets the rest."""
        for attempt, delay in enumerate((0.0, *DELETE_RETRIES)):
            if not session.ledger.pending:
                return
            if delay:
                await asyncio.sleep(delay)
            before = len(session.ledger.pending)
            with contextlib.suppress(TransportError):
                await self.write.client.run(session.cleanup())
            gone = before - len(session.ledger.pending)
            if gone:
                self.metrics.deleted.labels(*self.labels).inc(gone)
            if session.ledger.pending:
                self.metrics.delete_failures.labels(*self.labels).inc(len(session.ledger.pending))
                self._error("cleanup", "status")
                if attempt == len(DELETE_RETRIES):
                    log.warning("sync pair %s: %d record(s) not deleted; the sweeper will retry",
                                self.pair.name, len(session.ledger.pending))
                    self.leftovers.append(session)

    async def _delete_record(self, record_id: str, item: dict[str, Any]) -> bool:
        """Delete one listed record through the create operation's cleanup rule."""
        cleanup = self.write.loaded.profile.operation(self.pair.create.operation).cleanup
        assert cleanup is not None  # load_config insists on it
        session = self.write.session()
        variables = render(cleanup.with_, {**self._context(session), **item, "id": record_id})
        try:
            result = await self.write.client.run(session.call(cleanup.operation, variables))
        except TransportError as exc:
            self._error("sweep", exc.reason)
            return False
        if result.ok or result.status == 404:
            return True
        self._error("sweep", result.reason)
        return False

    # -- the modes ------------------------------------------------------------------------

    async def canary_once(self) -> float | None:
        """Create, wait until visible (or the SLA passes), delete. Returns the lag or None."""
        created = await self._create()
        if created is None:
            return None
        session, context, written = created
        record_id = self._in_flight(context, written)
        written_at = self.in_flight[record_id]
        try:
            lag = await self._poll_visible(context, written)
            if lag is None:
                self.metrics.lost.labels(*self.labels).inc()
                self._lost(written_at)
                log.info("sync pair %s: canary not visible within %gs", self.pair.name, self.pair.sla)
            else:
                self._observe(lag)
                self._seen(written_at)
            return lag
        finally:
            await self._done(record_id, session)

    def _in_flight(self, context: dict[str, Any], written: float) -> str:
        """Track a record from its write until it is visible (or lost): never swept meanwhile."""
        record_id = str(context.get("id", ""))
        self.active.add(record_id)
        self.in_flight[record_id] = time.time() - (time.monotonic() - written)
        return record_id

    async def _done(self, record_id: str, session: Session) -> None:
        self.in_flight.pop(record_id, None)
        await self._delete(session)
        self.active.discard(record_id)

    async def _poll_visible(self, context: dict[str, Any], written: float) -> float | None:
        assert self.pair.read is not None and self.pair.read.found is not None
        found = compile_jsonpath(self.pair.read.found)
        session = self.read.session()
        variables = render(self.pair.read.with_, {**session.variables({}), **context})
        last_miss = written
        deadline = written + self.pair.sla
        while True:
            before = time.monotonic()
            document = await self._read(session, variables)
            after = time.monotonic()
            middle = (before + after) / 2
            if document is not None:
                if found.find(document):
                    return (last_miss + middle) / 2 - written
                last_miss = middle
            if after >= deadline:
                return None
            await asyncio.sleep(min(self._next_poll(after - written), max(0.0, deadline - after)))

    async def heartbeat_once(self) -> None:
        """Stamp the marker record, then poll until the stamp is visible or the interval ends."""
        assert self.pair.update is not None and self.pair.read is not None
        if self.heartbeat_id is None:
            created = await self._create()
            if created is None:
                return
            session, context, _ = created
            session.ledger.pending.clear()  # the marker is long-lived; stop() deletes it
            self.heartbeat_id = str(context.get("id", ""))
            self.active.add(self.heartbeat_id)
        session = self.write.session()
        stamp = time.time()
        variables = render(self.pair.update.with_, self._context(
            session, id=self.heartbeat_id, heartbeat=f"{stamp:.6f}"))
        start = time.monotonic()
        try:
            result = await self.write.client.run(session.call(self.pair.update.operation, variables))
        except TransportError as exc:
            self._error("write", exc.reason)
            return
        written = (start + time.monotonic()) / 2
        if not result.ok:
            self._error("write", result.reason)
            if result.status == 404:  # the marker is gone: make a new one next time
                self.active.discard(self.heartbeat_id)
                self.heartbeat_id = None
            return
        self.metrics.created.labels(*self.labels).inc()
        self.pending_stamps.append((stamp, written))
        await self._poll_stamps(written, deadline=written + self.pair.interval * 0.9)

    async def _poll_stamps(self, written: float, deadline: float) -> None:
        assert self.pair.read is not None and self.pair.read.value is not None
        path = compile_jsonpath(self.pair.read.value)
        session = self.read.session()
        variables = render(self.pair.read.with_, self._context(session, id=self.heartbeat_id))
        last_miss = written
        while self.pending_stamps:
            before = time.monotonic()
            document = await self._read(session, variables)
            after = time.monotonic()
            middle = (before + after) / 2
            if document is not None:
                matches = path.find(document)
                visible = parse_time(matches[0].value) if matches else None
                if visible is not None:
                    self.newest_visible = max(self.newest_visible or 0.0, visible)
                seen = [p for p in self.pending_stamps if visible is not None and p[0] <= visible + 1e-6]
                for _, stamp_written in seen:
                    # each stamp became visible between the last miss and this read
                    self._observe((max(last_miss, stamp_written) + middle) / 2 - stamp_written)
                self.pending_stamps = [p for p in self.pending_stamps if p not in seen]
                last_miss = middle
            expired = [p for p in self.pending_stamps if after - p[1] > self.pair.sla]
            if expired:
                self.metrics.lost.labels(*self.labels).inc(len(expired))
                self.pending_stamps = [p for p in self.pending_stamps if p not in expired]
            if after >= deadline or not self.pending_stamps:
                return
            await asyncio.sleep(min(self._next_poll(after - written), max(0.0, deadline - after)))

    async def _subscribe(self) -> None:
        webhook = self.pair.webhook
        if webhook is None or webhook.subscribe is None:
            return
        session = self.write.session()
        made = secrets.token_hex(32)  # {{ webhook_secret }}: the CRM signs with it
        redact.register(made)
        variables = render(webhook.subscribe.with_, self._context(
            session, url=self.receiver_url, webhook_secret=made))
        try:
            result: OperationResult = await self.write.client.run(
                session.call(webhook.subscribe.operation, variables))
        except TransportError as exc:
            result = OperationResult(webhook.subscribe.operation, ok=False, reason=exc.reason,
                                     message=str(exc))
        if not result.ok:
            self._error("subscribe", result.reason)
            self._set_subscription("auth_failed" if result.reason == "auth" else "failed",
                                   result.message or result.reason)
            return
        signature = webhook.signature
        if signature is not None and signature.secret is None:
            secret = made
            if signature.secret_from is not None:
                try:
                    found = first_match(signature.secret_from, loads_json(result.body))
                except ValueError:
                    found = MISSING
                if not isinstance(found, str) or not found:
                    with contextlib.suppress(TransportError, asyncio.TimeoutError):
                        async with asyncio.timeout(10):  # useless without its secret: undo it
                            await self.write.client.run(session.cleanup())
                    self._error("subscribe", "assertion")
                    self._set_subscription("failed", f"the subscribe response carries no secret at "
                                           f"{signature.secret_from}")
                    return
                secret = found
                redact.register(secret)
            self.signing_secret = secret.encode()
        self.subscription = session
        self._set_subscription("subscribed", f"receiving webhooks at {self.receiver_url}")

    def _set_subscription(self, state: str, why: str) -> None:
        """Record the subscription's state; log it once per change, with the reason."""
        if state == self.subscription_state:
            return
        self.subscription_state = state
        for known in SUBSCRIPTION_STATES:
            self.metrics.subscription.labels(*self.labels, known).set(known == state)
        level = logging.INFO if state == "subscribed" else logging.WARNING
        log.log(level, "sync pair %s: webhook subscription %s: %s", self.pair.name, state, why)

    def _rejected(self, body: bytes, headers: Mapping[str, str]) -> str | None:
        """Why a delivery's signature does not verify (a WEBHOOK_REJECT_REASONS value), or None."""
        assert self.pair.webhook is not None
        signature: WebhookSignature | None = self.pair.webhook.signature
        if signature is None:
            return None
        wanted = signature.header.lower()
        value = next((v for k, v in headers.items() if k.lower() == wanted), None)
        if value is None:
            return "missing"
        if not value.startswith(signature.prefix):
            return "malformed"
        text = value[len(signature.prefix):].strip()
        try:
            given = bytes.fromhex(text) if signature.encoding == "hex" else \
                base64.b64decode(text, validate=True)
        except (ValueError, binascii.Error):
            return "malformed"
        if self.signing_secret is None:
            return "mismatch"  # no subscription yet: nothing can be verified
        expected = hmac.new(self.signing_secret, body, hashlib.sha256).digest()
        return None if hmac.compare_digest(given, expected) else "mismatch"

    def receive(self, body: bytes, headers: Mapping[str, str] | None = None) -> int:
        """Called by the exporter for each event POSTed to /-/webhook/<pair>; returns the status.

        401 for a delivery whose signature does not verify: counted, never measured.
        """
        received = time.monotonic()
        assert self.pair.webhook is not None
        reason = self._rejected(body, headers or {})
        if reason is not None:
            self.metrics.webhook_rejected.labels(*self.labels, reason).inc()
            return 401
        try:
            matches = compile_jsonpath(self.pair.webhook.match).find(json.loads(body))
        except ValueError:
            return 204
        if not matches:
            return 204
        record_id = str(matches[0].value)
        waiter = self.waiters.get(record_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(received)
            return 204
        self.early[record_id] = received
        while len(self.early) > 1000:
            self.early.popitem(last=False)
        return 204

    async def webhook_once(self) -> float | None:
        """Create a record and wait for its change event. Returns the lag or None when lost."""
        if self.subscription is None and self.pair.webhook and self.pair.webhook.subscribe:
            await self._subscribe()
            if self.subscription is None:
                return None  # no record while unsubscribed: a lost one must mean a late delivery
        start = time.monotonic()
        created = await self._create()
        if created is None:
            return None
        session, context, _ = created
        record_id = self._in_flight(context, start)
        written_at = self.in_flight[record_id]
        try:
            received = self.early.pop(record_id, None)
            if received is None:
                waiter = asyncio.get_running_loop().create_future()
                self.waiters[record_id] = waiter
                remaining = start + self.pair.sla - time.monotonic()
                try:
                    received = await asyncio.wait_for(waiter, max(0.0, remaining))
                except TimeoutError:
                    received = None
                finally:
                    self.waiters.pop(record_id, None)
            if received is None:
                self.metrics.lost.labels(*self.labels).inc()
                self._lost(written_at)
                return None
            # the event can only have been sent after the write began
            lag = received - start
            self._observe(lag)
            self._seen(written_at)
            return lag
        finally:
            await self._done(record_id, session)

    # -- the sweeper --------------------------------------------------------------------

    async def sweep(self, adopt: bool = False, older_than: float | None = None,
                    include_active: bool = False) -> SweepReport:
        """Delete marked records older than ``sweep_after`` (or ``older_than``).

        With ``adopt`` (at start-up) a heartbeat pair takes over the newest marked record
        as its marker instead of creating one. A heartbeat pair's other marked records are
        orphans at any age: only one marker is ever in use.
        """
        report = SweepReport(self.pair.name)
        sweep = self.pair.sweep
        session = self.write.session()
        variables = render(sweep.with_, self._context(session))
        result = await self._call(self.write, session, sweep.operation, variables, "sweep",
                                  max_pages=sweep.pages)
        if result is None:
            report.error = "listing marked records failed"
            return report
        marker = pair_marker(self.target, self.pair.name)
        # the list may have matched a substring: only records carrying our marker exactly
        items = [i for i in (result.items if result.items is not None else [])
                 if isinstance(i, dict) and carries(i, marker)]
        report.listed = len(items)
        threshold = self.pair.sweep_after if older_than is None else older_than
        now = time.time()
        if adopt and self.pair.mode == "heartbeat" and self.heartbeat_id is None and items:
            newest = max(items, key=lambda i: parse_time(i.get(sweep.created_at)) or 0.0)
            self.heartbeat_id = str(newest.get(sweep.id))
            self.active.add(self.heartbeat_id)
        for item in items:
            record_id = str(item.get(sweep.id, ""))
            if not record_id or (record_id in self.active and not include_active):
                continue
            created = parse_time(item.get(sweep.created_at))
            # while a heartbeat pair runs, only its marker is in use: others are orphans at any age
            spare_marker = self.pair.mode == "heartbeat" and older_than is None and \
                self.heartbeat_id is not None
            orphan = spare_marker or created is None or now - created >= threshold
            if not orphan:
                continue
            report.orphans += 1
            self.metrics.orphans_found.labels(*self.labels).inc()
            if await self._delete_record(record_id, item):
                report.deleted += 1
                self.metrics.orphans_deleted.labels(*self.labels).inc()
                self.active.discard(record_id)
                if record_id == self.heartbeat_id:
                    self.heartbeat_id = None
            else:
                report.failed += 1
                self.metrics.delete_failures.labels(*self.labels).inc()
        if report.orphans:
            log.info("sync pair %s: sweeper found %d orphan(s), deleted %d, failed %d",
                     self.pair.name, report.orphans, report.deleted, report.failed)
        return report

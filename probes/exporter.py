"""The probe exporter: scheduled checks on /metrics, on-demand probes on /probe.

    crmpulse probe --config crmpulse.yaml            # serves on probes.listen (127.0.0.1:9687)

Endpoints:

- ``/metrics``: results of scheduled checks and the exporter's own health; answered
  from the last results, never waiting for a check.
- ``/probe?target=URL&module=CHECK[&debug=true]``: the multi-target exporter pattern with
  blackbox_exporter's metric names; honours ``X-Prometheus-Scrape-Timeout-Seconds``.
- ``/-/healthy``, ``/-/ready``, ``/-/reload`` (POST; SIGHUP too): an invalid new config
  is rejected, logged and counted, and the old one keeps running.
- ``/``: a landing page listing checks, their last result and links.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import html
import logging
import signal
import ssl
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from crmpulse import ConfigError, LoadedConfig, Problem, load_config
from crmpulse.config import Check
from crmpulse.contract import (
    DEFAULT_SYNC_BUCKETS,
    FAILURE_REASONS,
    PHASES,
    Metric,
    duration_buckets,
)
from crmpulse.origins import origin_of
from crmpulse.redact import redact

from . import transport
from .checks import Outcome, TargetRunner
from .exposition import CheckStore
from .memory import trim, tune_allocator
from .metrics import ProbeMetrics
from .probeparams import ProbeRefused, parse_probe_request
from .quota import QuotaCollector, watch_limits
from .scheduler import Scheduler
from .sharding import shard_of
from .synclag import SweepReport, SyncMetrics, SyncPairRunner

__all__ = ["Exporter", "ProbeRejected", "RunningSet", "create_app"]

log = logging.getLogger("crmpulse.probe")
TRIM_AFTER = 8 * 1024 * 1024  # response bytes read by probes before idle memory is trimmed


def slo_buckets(loaded: LoadedConfig) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Histogram buckets for check durations and sync lags, each with its SLO thresholds."""
    def thresholds(kind: str) -> list[float]:
        return [s.threshold for s in loaded.config.slos if s.kind == kind and s.threshold is not None]
    return (duration_buckets(thresholds("latency")),
            duration_buckets(thresholds("sync_lag"), base=DEFAULT_SYNC_BUCKETS))


def system_config(loaded: LoadedConfig, name: str) -> LoadedConfig:
    """A LoadedConfig whose target and profile are those of downstream system ``name``."""
    system, profile = loaded.systems[name]
    return LoadedConfig(loaded.config.model_copy(update={"target": system}), profile, loaded.path)


@dataclass
class RunningSet:
    """One config's runners, built completely before they replace the running ones.

    Built means: the target's and downstream systems' clients with their TLS contexts
    and files loaded, every sync pair constructed, the schedule of this shard's checks
    ready to start. A failure while building leaves the running set untouched.
    """

    loaded: LoadedConfig
    shard: tuple[int, int]
    checks: list[Check]
    runner: TargetRunner
    system_runners: dict[str, TargetRunner]
    pairs: dict[str, SyncPairRunner]
    scheduler: Scheduler

    def runners(self) -> list[TargetRunner]:
        return [self.runner, *self.system_runners.values()]

    def pairs_not_running(self) -> list[str]:
        """The sync pairs whose loop never started or died."""
        return [name for name, p in self.pairs.items() if p.loop_task is None or p.loop_task.done()]

    def pairs_running(self) -> int:
        return len(self.pairs) - len(self.pairs_not_running())


class ProbeRejected(Exception):
    """A /probe request was refused before running (``reason`` is a bounded label)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Exporter:
    """The running state: config, metrics, the running set of runners and its scheduler."""

    def __init__(self, config_path: Path, loaded: LoadedConfig, spread: bool = True,
                 listen: str | None = None, shard: tuple[int, int] | None = None) -> None:
        self.path = config_path
        self.loaded = loaded
        self.spread = spread
        self.listen = listen or loaded.config.probes.listen
        self.shard_override = shard
        #: the origin of every check's ticks for the process's whole life (scheduler.py)
        self.epoch = time.monotonic()
        check_buckets, sync_buckets = slo_buckets(loaded)
        self.metrics = ProbeMetrics(CollectorRegistry(), check_buckets)
        # sync metrics live in a registry of their own, forwarded into the exporter's, so a
        # reload that changes their buckets swaps them without touching the rest
        self.sync_registry, self.sync_metrics = _sync_metrics(sync_buckets)
        self.metrics.registry.register(_Forward(lambda: self.sync_registry))
        self.metrics.registry.register(QuotaCollector(
            lambda: (self.target, self.runner.quota) if self.runner is not None else None))
        self.current: RunningSet | None = None
        self.pending: RunningSet | None = None
        self.probe_runners: OrderedDict[str, TargetRunner] = OrderedDict()
        self.quota_task: asyncio.Task[None] | None = None  # reads the profile's limits operations
        self.lock = asyncio.Lock()
        self.started = time.time()
        self.probes_running = 0
        self.trimmed_at = 0  # transport bytes read when memory was last trimmed
        self.metrics.probes_in_flight.set_function(lambda: self.probes_running)

    # -- views of the running set (the landing page, the webhook receiver, benches) -------

    @property
    def target(self) -> str:
        return self.loaded.target.name

    @property
    def runner(self) -> TargetRunner | None:
        return self.current.runner if self.current else None

    @property
    def pairs(self) -> dict[str, SyncPairRunner]:
        return self.current.pairs if self.current else {}

    @property
    def scheduler(self) -> Scheduler | None:
        return self.current.scheduler if self.current else None

    @property
    def checks(self) -> list[Check]:
        """The checks this exporter runs: its shard's share of the config's."""
        return self.current.checks if self.current else []

    def shard_for(self, loaded: LoadedConfig) -> tuple[int, int]:
        if self.shard_override is not None:
            return self.shard_override
        shard = loaded.config.probes.shard
        return shard.index, shard.count

    # -- building ------------------------------------------------------------------------

    def build(self, loaded: LoadedConfig | None = None,
              sync_metrics: SyncMetrics | None = None) -> RunningSet:
        """Build every runner of ``loaded`` (default: the current config) without starting it.

        Raises ConfigError naming what could not be built (a CA file that is missing or
        not a certificate, a client key that does not load).
        """
        loaded = loaded or self.loaded
        index, count = self.shard_for(loaded)
        probes = loaded.config.probes
        problems: list[Problem] = []

        def runner_for(config: LoadedConfig, key: str) -> TargetRunner | None:
            try:
                runner = TargetRunner(config)
            except (OSError, ssl.SSLError, ValueError) as exc:
                problems.append(Problem(str(loaded.path), 0, key, _tls_problem(config, exc)))
                return None
            return runner

        runner = runner_for(loaded, "target.tls")
        checks = [c for c in probes.checks if shard_of(c.name, count) == index]
        pairs = [p for p in probes.sync if shard_of(p.name, count) == index]
        systems: dict[str, TargetRunner] = {}
        names = [s.name for s in loaded.config.systems]
        for pair in pairs:
            system = pair.read.system if pair.read is not None else None
            if system is not None and system not in systems:
                made = runner_for(system_config(loaded, system),
                                  f"systems[{names.index(system)}].tls")
                if made is not None:
                    systems[system] = made
        if problems or runner is None:
            # nothing to close: a runner opens no connection before its first request
            raise ConfigError(problems)
        target = loaded.target.name
        receiver = f"http://{self.listen}/-/webhook/"
        metrics = sync_metrics or self.sync_metrics
        pair_runners = {
            p.name: SyncPairRunner(p, runner, systems.get(p.read.system or "", runner)
                                   if p.read is not None else runner,
                                   metrics, target, receiver + p.name)
            for p in pairs}
        scheduler = Scheduler(runner, checks, probes.concurrency, self._record, self._overrun,
                              spread=self.spread, epoch=self.epoch, context=loaded.target.base_url)
        return RunningSet(loaded, (index, count), checks, runner, systems, pair_runners, scheduler)

    async def sweep_only(self, older_than: float | None) -> list[SweepReport]:
        """Run every pair's sweeper once (``crmpulse probe --sweep-only``)."""
        running = self.build()
        try:
            return [await p.sweep(older_than=older_than) for p in running.pairs.values()]
        finally:
            await _close(running.runners())

    # -- starting, stopping, reloading -----------------------------------------------------

    async def start(self) -> None:
        """Build (unless :meth:`build` already did) and start the current config's set."""
        tune_allocator()
        running = self.pending or self.build()
        self.pending = None
        self._activate(running)
        if self.quota_task is None:  # follows the running set across reloads
            self.quota_task = asyncio.create_task(watch_limits(lambda: self.runner))
        await self._start_pairs(running)
        _settle()
        self.metrics.reloaded(True)
        log.info("started target=%s checks=%d of %d (shard %d/%d) sync_pairs=%d", self.target,
                 len(running.checks), len(self.loaded.config.probes.checks), *running.shard,
                 len(running.pairs))

    def _activate(self, running: RunningSet, previous: Scheduler | None = None,
                  store: CheckStore | None = None) -> None:
        """Make ``running`` the running set and start its checks (the old ones, scheduled by
        ``previous`` and counted in ``store``, are stopped). A check the reload did not change
        keeps its pace and its last results; the others run within seconds, as after a start."""
        self.loaded, self.current = running.loaded, running
        target = self.target
        phase_default = running.loaded.config.probes.phase_series
        same = running.scheduler.carry(previous) if previous is not None else set()
        for check in running.checks:
            self.metrics.prepare(target, check, phase_default if check.phase_series is None
                                 else check.phase_series, same=check.name in same, previous=store)
        self.metrics.keep({(target, c.name) for c in running.checks})
        self.metrics.configured.labels(target).set(len(running.loaded.config.probes.checks))
        self.metrics.running.labels(target).set_function(running.scheduler.running)
        self.metrics.pairs_configured.labels(target).set(len(running.loaded.config.probes.sync))
        self.metrics.pairs_running.labels(target).set_function(running.pairs_running)
        index, count = running.shard
        self.metrics.shard.info({"index": str(index), "count": str(count)})
        running.scheduler.start()

    async def _start_pairs(self, running: RunningSet) -> None:
        """Start the sync pairs (their old runners, holding the same markers, are stopped)."""
        for pair in running.pairs.values():
            try:
                await pair.start()
            except Exception:  # one pair's bad start must not keep the others from running
                log.exception("sync pair %s did not start", pair.pair.name)

    async def stop(self) -> None:
        task, self.quota_task = self.quota_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        running, self.current = self.current, None
        if running is not None:
            await running.scheduler.stop()
            for pair in running.pairs.values():
                await pair.stop()
            await _close(running.runners())
        await _close(list(self.probe_runners.values()))
        self.probe_runners.clear()

    def _record(self, outcome: Outcome) -> None:
        self.metrics.record(self.target, outcome)

    def _overrun(self, check: Check, missed: int) -> None:
        self.metrics.overrun(self.target, check.name, missed)
        log.warning("check overran its interval check=%s missed=%d", check.name, missed)

    def _reject_reload(self, problems: list[str]) -> list[str]:
        for problem in problems:
            log.error("reload rejected: %s", problem)
        log.error("reload rejected: the running config keeps running (%d checks)",
                  len(self.checks))
        self.metrics.reloaded(False)
        return problems

    async def reload(self) -> list[str]:
        """Load, validate and build the config again, then swap it in; on any problem keep
        running the old one and return the problems (blackbox_exporter's reload)."""
        async with self.lock:
            try:
                new = load_config(self.path)
            except ConfigError as exc:
                return self._reject_reload([str(p) for p in exc.problems])
            check_buckets, sync_buckets = slo_buckets(new)
            buckets_changed = (check_buckets, sync_buckets) != (self.metrics.buckets,
                                                                self.sync_metrics.buckets)
            sync_registry, sync_metrics = (_sync_metrics(sync_buckets) if buckets_changed
                                           else (self.sync_registry, self.sync_metrics))
            old = self.current
            try:
                running = self.build(new, sync_metrics)
            except ConfigError as exc:
                return self._reject_reload([str(p) for p in exc.problems])
            except Exception as exc:  # never lose the running set to a bug while building
                if old is not None:  # a pair built halfway may have taken its gauges
                    for pair in old.pairs.values():
                        self.sync_metrics.lag.labels(*pair.labels).set_function(pair.current_lag)
                log.exception("building the new config failed")
                return self._reject_reload([f"{self.path}: building the new config failed: "
                                            f"{exc.__class__.__name__}"])
            old_target = self.target
            if old is not None:
                await old.scheduler.stop()
            store = self.metrics.checks  # the last results a kept check's new series take over
            if buckets_changed:
                log.info("SLO thresholds changed: histograms start afresh")
                self.metrics.buckets = check_buckets
                self.metrics.checks = CheckStore(check_buckets, self.metrics.checks.level)
                self.sync_registry, self.sync_metrics = sync_registry, sync_metrics
            if old_target != new.target.name:
                for metric in (self.metrics.configured, self.metrics.running,
                               self.metrics.pairs_configured, self.metrics.pairs_running):
                    with contextlib.suppress(KeyError):
                        metric.remove(old_target)
                self.metrics.keep(set())
            self.current = None
            gc.unfreeze()
            # a check of the same target and definition goes on at its pace; the pairs follow
            self._activate(running, old.scheduler if old is not None and old_target == new.target.name
                           else None, store)
            if old is not None:
                # an old pair stops (deleting its records) before the new one of the same
                # name starts: a new heartbeat must not adopt a record about to be deleted
                for pair in old.pairs.values():
                    await pair.stop()
                    if pair.pair.name not in running.pairs or old_target != self.target:
                        self.sync_metrics.forget(old_target, pair.pair.name)
            await self._start_pairs(running)
            if old is not None:
                await _close(old.runners())
            old = None
            _settle()
            await _close(list(self.probe_runners.values()))
            self.probe_runners.clear()
            self.metrics.reloaded(True)
        log.info("config reloaded from %s: %d checks of %d (shard %d/%d)", self.path,
                 len(running.checks), len(new.config.probes.checks), *running.shard)
        return []

    def readiness(self) -> tuple[bool, str]:
        """Whether every check and sync pair of the running config is actually running."""
        running = self.current
        if running is None:
            return False, "checks are not running (starting, or stopped)"
        alive = running.scheduler.running()
        stuck = running.pairs_not_running()
        index, count = running.shard
        shard = f" (shard {index}/{count})" if count > 1 else ""
        if alive < len(running.checks) or stuck:
            return False, (f"{alive} of {len(running.checks)} checks running{shard}"
                           + (f"; sync pairs not running: {', '.join(stuck)}" if stuck else ""))
        return True, f"{alive} checks and {len(running.pairs)} sync pairs running{shard}"

    # -- rendering and /probe --------------------------------------------------------------

    def render(self, accept: str = "", compress: bool = False) -> tuple[bytes, str]:
        """The /metrics body for these request headers, gzipped when ``compress``.

        On the loop, not a thread: a thread would wait for the GIL between pieces
        (measured: 100-250 ms scrapes), while the few ms here delay no probe's timing
        (transport.py stamps arrivals in the kernel).
        """
        return self.metrics.render(accept, compress)

    def check_named(self, name: str) -> Check | None:
        return next((c for c in self.loaded.config.probes.checks if c.name == name), None)

    def probe_runner(self, base_url: str, anonymous: bool = False) -> TargetRunner:
        """One runner per probed base URL (cached); its credentials may go where the config says.

        The target's credentials may go to its own origin and to ``probes.probe_hosts``;
        an ``anonymous`` runner (an ``any_target`` module on another origin) has none.
        """
        key = f"{'anonymous ' if anonymous else ''}{base_url}"
        runner = self.probe_runners.get(key)
        if runner is None:
            target = self.loaded.target.with_credential_origins(
                origin_of(o) for o in self.loaded.config.probes.probe_hosts)
            if anonymous:
                target = target.anonymous()
            loaded = replace(self.loaded, config=self.loaded.config.model_copy(update={"target": target}))
            runner = TargetRunner(loaded, base_url=base_url)
            self.probe_runners[key] = runner
            if len(self.probe_runners) > 64:
                _, oldest = self.probe_runners.popitem(last=False)
                asyncio.get_running_loop().create_task(oldest.aclose())
        else:
            self.probe_runners.move_to_end(key)
        return runner

    async def run_probe(self, base_url: str, check: Check, timeout: float, debug: bool = False,
                        anonymous: bool = False) -> Outcome:
        """Run one /probe; raises ProbeRejected when too many are running already."""
        limit = self.loaded.config.probes.max_concurrent_probes
        if self.probes_running >= limit:
            self.metrics.probes_rejected.labels("concurrency").inc()
            raise ProbeRejected("concurrency", f"{limit} probes are running already "
                                "(probes.max_concurrent_probes); retry later")
        self.probes_running += 1
        try:
            runner = self.probe_runner(base_url, anonymous=anonymous)
            return await runner.run(check, timeout=timeout, debug=debug)
        finally:
            self.probes_running -= 1
            # a burst just ended: hand the memory its answers took back to the system
            if self.probes_running == 0 and transport.received - self.trimmed_at > TRIM_AFTER \
                    and trim():
                self.trimmed_at = transport.received


def _sync_metrics(buckets: tuple[float, ...]) -> tuple[CollectorRegistry, SyncMetrics]:
    registry = CollectorRegistry()
    return registry, SyncMetrics(registry, buckets)


class _Forward:
    """A collector that yields whatever a registry, looked up at each scrape, holds."""

    def __init__(self, registry: Callable[[], CollectorRegistry]) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Any]:
        yield from self.registry().collect()


def _tls_problem(config: LoadedConfig, exc: Exception) -> str:
    """Which TLS file did not load, and why (never the file's content)."""
    tls = config.target.tls
    files = [(name, path) for name, path in (("ca_file", tls.ca_file), ("client_cert",
             tls.client_cert), ("client_key", tls.client_key)) if path]
    if isinstance(exc, ssl.SSLError):
        detail = f"not a usable certificate or key ({exc.reason or exc.__class__.__name__})"
    else:
        detail = getattr(exc, "strerror", None) or exc.__class__.__name__
    for name, path in files:
        try:
            Path(path).read_bytes()
        except OSError as missing:
            return f'cannot load {name} "{path}": {missing.strerror}'
    named = ", ".join(f'{name} "{path}"' for name, path in files) or "the default trust store"
    return f"cannot load {named}: {detail}"


def _settle() -> None:
    """Collect garbage once, then keep what is running out of the collector's walks.

    A full collection walks every object: at thousands of checks that stops the loop for
    100+ ms, often in the middle of a scrape. The running set lives until the next reload,
    so it is frozen (reference counting still frees it); each reload unfreezes first and
    runs this only once the old set is dropped, so cycles in the old set are collected.
    What parsing and building the config left free goes back to the system.
    """
    gc.collect()
    gc.freeze()
    trim(min_interval=0)


async def _close(runners: list[TargetRunner]) -> None:
    for runner in runners:
        with contextlib.suppress(Exception):
            await runner.aclose()


def probe_exposition(outcome: Outcome) -> str:
    """The metrics /probe answers with, named as blackbox_exporter names them.

    Written as exposition text directly rather than through a throw-away registry:
    building and rendering eight prometheus_client objects per probe cost more CPU
    than the probe itself (bench/probe_vs_blackbox.py).
    """
    from crmpulse import contract as c

    lines: list[str] = []

    def family(metric: Metric, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {metric.name} {metric.help}")
        lines.append(f"# TYPE {metric.name} gauge")
        for labels, value in samples:
            lines.append(f"{metric.name}{labels} {float(value)!r}")

    family(c.PROBE_SUCCESS, [("", 1 if outcome.success else 0)])
    family(c.PROBE_DURATION, [("", outcome.duration + outcome.auth_duration)])
    family(c.PROBE_HTTP_DURATION,
           [(f'{{phase="{p}"}}', outcome.phases.get(p, 0.0)) for p in PHASES])
    family(c.PROBE_DNS_LOOKUP, [("", outcome.phases.get("resolve", 0.0))])
    family(c.PROBE_HTTP_STATUS, [("", outcome.status)])
    failed = "" if outcome.success else outcome.reason
    family(c.PROBE_FAILURE, [(f'{{reason="{r}"}}', 1 if r == failed else 0) for r in FAILURE_REASONS])
    if outcome.tls_expiry is not None:
        family(c.PROBE_SSL_EXPIRY, [("", outcome.tls_expiry)])
    if outcome.steps:
        family(c.PROBE_STEP_DURATION, [(f'{{step="{_escape(s.name)}"}}', s.duration)
                                       for s in outcome.steps])
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _accepts_gzip(header: str) -> bool:
    for token in header.split(","):
        name, _, params = token.strip().partition(";")
        if name.strip().lower() in ("gzip", "*"):
            q = params.strip().removeprefix("q=")
            try:
                return not params or float(q) > 0
            except ValueError:
                return True
    return False


def create_app(exporter: Exporter) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await exporter.start()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(exporter.reload()))
        try:
            yield
        finally:
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                loop.remove_signal_handler(signal.SIGHUP)
            await exporter.stop()

    async def metrics(request: Request) -> Response:
        compress = _accepts_gzip(request.headers.get("accept-encoding", ""))
        body, content_type = exporter.render(request.headers.get("accept", ""), compress)
        headers = {"Vary": "Accept-Encoding"}
        if compress:
            headers["Content-Encoding"] = "gzip"
        return Response(body, headers=headers, media_type=content_type)

    async def probe(request: Request) -> Response:
        try:
            wanted = parse_probe_request(request.query_params, request.headers, exporter.loaded)
        except ProbeRefused as refused:
            return PlainTextResponse(refused.message + "\n", refused.status)
        check, base_url, timeout = wanted.check, wanted.base_url, wanted.timeout
        try:
            outcome = await exporter.run_probe(base_url, check, timeout, wanted.debug,
                                               anonymous=wanted.anonymous)
        except ProbeRejected as exc:
            return PlainTextResponse(f"{exc}\n", 503, headers={"Retry-After": "1"})
        text = probe_exposition(outcome)
        if wanted.debug:
            lines = [f"Logs for the probe (module {check.name}, target {base_url}, timeout {timeout:g}s"
                     + (", without credentials" if wanted.anonymous else "") + "):"]
            lines += outcome.log or ["(no requests)"]
            lines.append(f"Probe {'succeeded' if outcome.success else 'failed'}"
                         + ("" if outcome.success else f": reason={outcome.reason} {outcome.message}"))
            lines += ["", "Metrics that would have been returned:", text]
            return PlainTextResponse(redact("\n".join(lines) + "\n"))
        return Response(text, media_type=CONTENT_TYPE_LATEST)

    async def webhook(request: Request) -> Response:
        runner = exporter.pairs.get(request.path_params["pair"])
        if runner is None or runner.pair.mode != "webhook":
            return PlainTextResponse("no webhook sync pair by that name\n", 404)
        body = await request.body()
        if len(body) > 1024 * 1024:
            return PlainTextResponse("event too large\n", 413)
        if runner.receive(body, request.headers) == 401:  # signature missing or wrong
            return PlainTextResponse("signature does not verify\n", 401)
        return Response(status_code=204)

    async def healthy(request: Request) -> Response:
        return PlainTextResponse("Healthy\n")

    async def ready(request: Request) -> Response:
        ok, detail = exporter.readiness()
        return PlainTextResponse(f"Ready: {detail}\n" if ok else f"Not ready: {detail}\n",
                                 200 if ok else 503)

    async def reload(request: Request) -> Response:
        problems = await exporter.reload()
        if problems:
            return PlainTextResponse("failed to reload config:\n" + "\n".join(problems) + "\n", 500)
        return PlainTextResponse("config reloaded\n")

    async def landing(request: Request) -> Response:
        rows = []
        last = exporter.scheduler.last if exporter.scheduler else {}
        for check in exporter.checks:
            outcome = last.get(check.name)
            if outcome is None:
                state, detail, when = "pending", "", ""
            else:
                state = "ok" if outcome.success else "FAILED"
                detail = "" if outcome.success else f"{outcome.reason}: {outcome.message}"
                when = time.strftime("%H:%M:%S", time.localtime(outcome.finished_at))
            probe_link = (f"/probe?target={exporter.target}&module={check.name}&debug=true")
            rows.append(
                f"<tr><td>{html.escape(check.name)}</td><td>{check.kind}</td>"
                f"<td>{check.interval:g}s</td><td class='{state.lower()}'>{state}</td>"
                f"<td>{html.escape(detail)}</td><td>{when}</td>"
                f"<td><a href='{html.escape(probe_link)}'>probe now</a></td></tr>")
        pair_rows = [
            f"<tr><td>{html.escape(name)}</td><td>{p.pair.mode}</td><td>{p.pair.interval:g}s</td>"
            f"<td>{p.current_lag():.2f}s</td><td>{len(p.in_flight)}</td><td>{p.last_lag:.3f}s</td></tr>"
            for name, p in exporter.pairs.items()]
        index, count = exporter.current.shard if exporter.current else (0, 1)
        shard = (f" Shard {index} of {count}: {len(exporter.checks)} of the config's "
                 f"{len(exporter.loaded.config.probes.checks)} checks run here."
                 if count > 1 else "")
        ok, detail = exporter.readiness()
        readiness = ("Ready: " if ok else "Not ready: ") + detail
        page = f"""<!doctype html><html><head><title>crmpulse probe</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.3em .8em;text-align:left}}
.ok{{color:#1a7f37}}.failed{{color:#cf222e;font-weight:bold}}.pending{{color:#888}}</style></head>
<body><h1>crmpulse probe exporter</h1>
<p>Target <b>{html.escape(exporter.target)}</b> at {html.escape(exporter.loaded.target.base_url)},
config {html.escape(str(exporter.path))}.{shard}</p>
<p>{html.escape(readiness)}</p>
<p><a href="/metrics">Metrics</a> · <a href="/-/healthy">Health</a> ·
<code>POST /-/reload</code> reloads the config</p>
<table><tr><th>check</th><th>kind</th><th>interval</th><th>last result</th><th>reason</th>
<th>at</th><th></th></tr>{"".join(rows)}</table>
<h2>Sync pairs</h2>
<table><tr><th>pair</th><th>mode</th><th>interval</th><th>current lag</th><th>in flight</th>
<th>last lag measured</th></tr>{"".join(pair_rows)}</table></body></html>"""
        return HTMLResponse(page)

    routes = [
        Route("/", landing),
        Route("/metrics", metrics),
        Route("/probe", probe),
        Route("/-/healthy", healthy, methods=["GET", "HEAD"]),
        Route("/-/ready", ready, methods=["GET", "HEAD"]),
        Route("/-/reload", reload, methods=["POST", "PUT"]),
        Route("/-/webhook/{pair}", webhook, methods=["POST"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)

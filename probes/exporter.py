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
import html
import logging
import signal
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from crmpulse import ConfigError, LoadedConfig, load_config
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

from .checks import Outcome, TargetRunner
from .metrics import ProbeMetrics
from .probeparams import ProbeRefused, parse_probe_request
from .quota import QuotaCollector, watch_limits
from .scheduler import Scheduler
from .synclag import SweepReport, SyncMetrics, SyncPairRunner

__all__ = ["Exporter", "create_app"]

log = logging.getLogger("crmpulse.probe")


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


class Exporter:
    """The running state: config, metrics, the target runner and the scheduler."""

    def __init__(self, config_path: Path, loaded: LoadedConfig, spread: bool = True,
                 listen: str | None = None) -> None:
        self.path = config_path
        self.loaded = loaded
        self.spread = spread
        self.listen = listen or loaded.config.probes.listen
        self._build_metrics(loaded)
        self.runner: TargetRunner | None = None
        self.system_runners: dict[str, TargetRunner] = {}
        self.pairs: dict[str, SyncPairRunner] = {}
        self.scheduler: Scheduler | None = None
        self.probe_runners: OrderedDict[str, TargetRunner] = OrderedDict()
        self.quota_task: asyncio.Task[None] | None = None  # reads the profile's limits operations
        self.lock = asyncio.Lock()
        self.started = time.time()

    @property
    def target(self) -> str:
        return self.loaded.target.name

    def _build_metrics(self, loaded: LoadedConfig) -> None:
        check_buckets, sync_buckets = slo_buckets(loaded)
        registry = CollectorRegistry()
        self.metrics = ProbeMetrics(registry, check_buckets)
        self.sync_metrics = SyncMetrics(registry, sync_buckets)
        registry.register(QuotaCollector(
            lambda: (self.target, self.runner.quota) if self.runner is not None else None))

    def _pair_runners(self) -> dict[str, SyncPairRunner]:
        assert self.runner is not None
        pairs = {}
        for pair in self.loaded.config.probes.sync:
            read = self.runner
            if pair.read is not None and pair.read.system is not None:
                if pair.read.system not in self.system_runners:
                    self.system_runners[pair.read.system] = TargetRunner(
                        system_config(self.loaded, pair.read.system))
                read = self.system_runners[pair.read.system]
            receiver = f"http://{self.listen}/-/webhook/{pair.name}"
            pairs[pair.name] = SyncPairRunner(pair, self.runner, read, self.sync_metrics,
                                              self.target, receiver)
        return pairs

    async def sweep_only(self, older_than: float | None) -> list[SweepReport]:
        """Run every pair's sweeper once (``crmpulse probe --sweep-only``)."""
        self.runner = TargetRunner(self.loaded)
        try:
            self.pairs = self._pair_runners()
            return [await p.sweep(older_than=older_than) for p in self.pairs.values()]
        finally:
            await self.stop()

    async def start(self) -> None:
        self.runner = TargetRunner(self.loaded)
        self.pairs = self._pair_runners()
        for runner in self.pairs.values():
            await runner.start()
        for check in self.loaded.config.probes.checks:
            self.metrics.prepare(self.target, check)
        self.metrics.configured.labels(self.target).set(len(self.loaded.config.probes.checks))
        self.scheduler = Scheduler(self.runner, list(self.loaded.config.probes.checks),
                                   self.loaded.config.probes.concurrency, self._record,
                                   self._overrun, spread=self.spread)
        self.scheduler.start()
        if self.runner.quota.from_operation:
            self.quota_task = asyncio.create_task(watch_limits(self.runner))
        self.metrics.reloaded(True)
        log.info("started target=%s checks=%d", self.target, len(self.loaded.config.probes.checks))

    async def stop(self) -> None:
        if self.scheduler:
            await self.scheduler.stop()
        task, self.quota_task = self.quota_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for pair in self.pairs.values():
            await pair.stop()
        self.pairs = {}
        for runner in self.system_runners.values():
            await runner.aclose()
        self.system_runners = {}
        if self.runner:
            await self.runner.aclose()
        for runner in self.probe_runners.values():
            await runner.aclose()
        self.probe_runners.clear()

    def _record(self, outcome: Outcome) -> None:
        self.metrics.record(self.target, outcome)

    def _overrun(self, check: Check, missed: int) -> None:
        self.metrics.overruns.labels(self.target, check.name).inc(missed)
        log.warning("check overran its interval check=%s missed=%d", check.name, missed)

    async def reload(self) -> list[str]:
        """Load the config again; on problems keep running the old one and return them."""
        try:
            new = load_config(self.path)
        except ConfigError as exc:
            problems = [str(p) for p in exc.problems]
            for problem in problems:
                log.error("reload rejected: %s", problem)
            self.metrics.reloaded(False)
            return problems
        async with self.lock:
            await self.stop()
            old_checks = {c.name for c in self.loaded.config.probes.checks}
            old_pairs = {p.name for p in self.loaded.config.probes.sync}
            old_target = self.target
            if slo_buckets(new) != (self.metrics.buckets, self.sync_metrics.buckets):
                log.info("SLO thresholds changed: histograms start afresh")
                self._build_metrics(new)
            else:
                for name in old_checks:
                    self.metrics.forget(old_target, name)
                for name in old_pairs:
                    self.sync_metrics.forget(old_target, name)
                with contextlib.suppress(KeyError):
                    self.metrics.configured.remove(old_target)
            self.loaded = new
            await self.start()
        log.info("config reloaded from %s", self.path)
        return []

    def render(self) -> bytes:
        start = time.perf_counter()
        body = generate_latest(self.metrics.registry)
        self.metrics.scrape.observe(time.perf_counter() - start)
        return body

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
        return Response(exporter.render(), media_type=CONTENT_TYPE_LATEST)

    async def probe(request: Request) -> Response:
        try:
            wanted = parse_probe_request(request.query_params, request.headers, exporter.loaded)
        except ProbeRefused as refused:
            return PlainTextResponse(refused.message + "\n", refused.status)
        check, base_url, timeout = wanted.check, wanted.base_url, wanted.timeout
        runner = exporter.probe_runner(base_url, anonymous=wanted.anonymous)
        outcome = await runner.run(check, timeout=timeout, debug=wanted.debug)
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
        return PlainTextResponse("Ready\n")

    async def reload(request: Request) -> Response:
        problems = await exporter.reload()
        if problems:
            return PlainTextResponse("failed to reload config:\n" + "\n".join(problems) + "\n", 500)
        return PlainTextResponse("config reloaded\n")

    async def landing(request: Request) -> Response:
        rows = []
        last = exporter.scheduler.last if exporter.scheduler else {}
        for check in exporter.loaded.config.probes.checks:
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
        page = f"""<!doctype html><html><head><title>crmpulse probe</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.3em .8em;text-align:left}}
.ok{{color:#1a7f37}}.failed{{color:#cf222e;font-weight:bold}}.pending{{color:#888}}</style></head>
<body><h1>crmpulse probe exporter</h1>
<p>Target <b>{html.escape(exporter.target)}</b> at {html.escape(exporter.loaded.target.base_url)},
config {html.escape(str(exporter.path))}.</p>
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

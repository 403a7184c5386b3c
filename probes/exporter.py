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
from pathlib import Path
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from crmpulse import ConfigError, LoadedConfig, load_config
from crmpulse.config import Check
from crmpulse.contract import FAILURE_REASONS, PHASES, Metric, duration_buckets

from .checks import Outcome, TargetRunner
from .metrics import ProbeMetrics
from .scheduler import Scheduler

__all__ = ["Exporter", "create_app"]

log = logging.getLogger("crmpulse.probe")
TIMEOUT_OFFSET = 0.5  # seconds kept back from Prometheus's scrape timeout, as blackbox does


def slo_buckets(loaded: LoadedConfig) -> tuple[float, ...]:
    return duration_buckets([s.threshold for s in loaded.config.slos
                             if s.kind == "latency" and s.threshold is not None])


class Exporter:
    """The running state: config, metrics, the target runner and the scheduler."""

    def __init__(self, config_path: Path, loaded: LoadedConfig, spread: bool = True) -> None:
        self.path = config_path
        self.loaded = loaded
        self.spread = spread
        self.metrics = ProbeMetrics(CollectorRegistry(), slo_buckets(loaded))
        self.runner: TargetRunner | None = None
        self.scheduler: Scheduler | None = None
        self.probe_runners: OrderedDict[str, TargetRunner] = OrderedDict()
        self.lock = asyncio.Lock()
        self.started = time.time()

    @property
    def target(self) -> str:
        return self.loaded.target.name

    async def start(self) -> None:
        self.runner = TargetRunner(self.loaded)
        for check in self.loaded.config.probes.checks:
            self.metrics.prepare(self.target, check)
        self.metrics.configured.labels(self.target).set(len(self.loaded.config.probes.checks))
        self.scheduler = Scheduler(self.runner, list(self.loaded.config.probes.checks),
                                   self.loaded.config.probes.concurrency, self._record,
                                   self._overrun, spread=self.spread)
        self.scheduler.start()
        self.metrics.reloaded(True)
        log.info("started target=%s checks=%d", self.target, len(self.loaded.config.probes.checks))

    async def stop(self) -> None:
        if self.scheduler:
            await self.scheduler.stop()
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
            old_target = self.target
            if slo_buckets(new) != self.metrics.buckets:
                log.info("latency thresholds changed: histograms start afresh")
                self.metrics = ProbeMetrics(CollectorRegistry(), slo_buckets(new))
            else:
                for name in old_checks:
                    self.metrics.forget(old_target, name)
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

    def probe_runner(self, base_url: str) -> TargetRunner:
        """One runner per probed origin (cached), sharing config and credentials handling."""
        runner = self.probe_runners.get(base_url)
        if runner is None:
            runner = TargetRunner(self.loaded, base_url=base_url)
            self.probe_runners[base_url] = runner
            if len(self.probe_runners) > 64:
                _, oldest = self.probe_runners.popitem(last=False)
                asyncio.get_running_loop().create_task(oldest.aclose())
        else:
            self.probe_runners.move_to_end(base_url)
        return runner

    def allowed_probe_host(self, host: str) -> bool:
        own = urlsplit(self.loaded.target.base_url).hostname
        return host == own or host in self.loaded.config.probes.probe_hosts


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
        params = request.query_params
        module, target = params.get("module"), params.get("target")
        if not module or not target:
            return PlainTextResponse("Both target and module parameters are required\n", 400)
        check = exporter.check_named(module)
        if check is None:
            known = ", ".join(c.name for c in exporter.loaded.config.probes.checks)
            return PlainTextResponse(f"Unknown module {module!r} (the config's checks: {known})\n", 400)
        if target == exporter.target:
            base_url = exporter.loaded.target.base_url
        else:
            parts = urlsplit(target if "://" in target else f"http://{target}")
            if parts.scheme not in ("http", "https") or not parts.hostname:
                return PlainTextResponse("target must be an http(s) URL or the target's name\n", 400)
            if not exporter.allowed_probe_host(parts.hostname):
                return PlainTextResponse(
                    f"target host {parts.hostname} is not allowed: credentials would be sent "
                    "there; add it to probes.probe_hosts\n", 403)
            # the target is the base URL the module's operations and paths are relative to
            base_url = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        timeout = check.timeout
        header = request.headers.get("x-prometheus-scrape-timeout-seconds")
        if header:
            with contextlib.suppress(ValueError):
                timeout = min(timeout, max(0.1, float(header) - TIMEOUT_OFFSET))
        debug = params.get("debug", "").lower() == "true"
        outcome = await exporter.probe_runner(base_url).run(check, timeout=timeout, debug=debug)
        text = probe_exposition(outcome)
        if debug:
            lines = [f"Logs for the probe (module {module}, target {base_url}, timeout {timeout:g}s):"]
            lines += outcome.log or ["(no requests)"]
            lines.append(f"Probe {'succeeded' if outcome.success else 'failed'}"
                         + ("" if outcome.success else f": reason={outcome.reason} {outcome.message}"))
            lines += ["", "Metrics that would have been returned:", text]
            return PlainTextResponse("\n".join(lines) + "\n")
        return Response(text, media_type=CONTENT_TYPE_LATEST)

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
        page = f"""<!doctype html><html><head><title>crmpulse probe</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.3em .8em;text-align:left}}
.ok{{color:#1a7f37}}.failed{{color:#cf222e;font-weight:bold}}.pending{{color:#888}}</style></head>
<body><h1>crmpulse probe exporter</h1>
<p>Target <b>{html.escape(exporter.target)}</b> at {html.escape(exporter.loaded.target.base_url)},
config {html.escape(str(exporter.path))}.</p>
<p><a href="/metrics">Metrics</a> · <a href="/-/healthy">Health</a> ·
<code>POST /-/reload</code> reloads the config</p>
<table><tr><th>check</th><th>kind</th><th>interval</th><th>last result</th><th>reason</th>
<th>at</th><th></th></tr>{"".join(rows)}</table></body></html>"""
        return HTMLResponse(page)

    routes = [
        Route("/", landing),
        Route("/metrics", metrics),
        Route("/probe", probe),
        Route("/-/healthy", healthy, methods=["GET", "HEAD"]),
        Route("/-/ready", ready, methods=["GET", "HEAD"]),
        Route("/-/reload", reload, methods=["POST", "PUT"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)

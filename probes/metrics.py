"""Prometheus metrics for scheduled checks, built from the core contract.

The registry is passed in (a fresh ``CollectorRegistry()`` per test). Every label
child a check can produce is created when the check is configured, so series such
as ``crmpulse_check_failures_total{reason="timeout"}`` exist at 0 before the first
failure and ``rate()``/``increase()`` see the first one.
"""

from __future__ import annotations

import contextlib
import platform
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)

from crmpulse import __version__, contract
from crmpulse.config import Check, JourneyCheck, ProtectionCheck, TLSCheck
from crmpulse.contract import FAILURE_REASONS, PHASES, PROTECTIONS, Metric

from .access_metrics import AccessMetrics
from .checks import Outcome

__all__ = ["ProbeMetrics", "make"]

# `*_created` samples double the series count and no dashboard or alert reads them.
disable_created_metrics()


def make(metric: Metric, registry: CollectorRegistry, **kwargs: Any) -> Any:
    """Create the prometheus_client object for a contract entry."""
    cls = {"counter": Counter, "gauge": Gauge, "histogram": Histogram, "info": Info}[metric.kind]
    labels = [] if metric.kind == "info" else list(metric.labels)  # Info takes them from .info()
    return cls(metric.name, metric.help, labels, registry=registry, **kwargs)


def _protections(check: ProtectionCheck) -> list[str]:
    wanted = {"require_auth": check.require_auth, "https_redirect": check.https_redirect,
              "hsts": check.hsts, "forbidden_patterns": bool(check.forbidden_patterns)}
    return [p for p in PROTECTIONS if wanted[p]]


class ProbeMetrics:
    """The exporter's metrics: checks' results and the exporter's own health."""

    def __init__(self, registry: CollectorRegistry, duration_buckets: Iterable[float]) -> None:
        self.registry = registry
        self.buckets = tuple(duration_buckets)
        m = contract
        self.success = make(m.CHECK_SUCCESS, registry)
        self.runs = make(m.CHECK_RUNS, registry)
        self.failures = make(m.CHECK_FAILURES, registry)
        self.duration = make(m.CHECK_DURATION, registry, buckets=self.buckets)
        self.phase = make(m.CHECK_PHASE, registry)
        self.last_run = make(m.CHECK_LAST_RUN, registry)
        self.status_code = make(m.CHECK_STATUS_CODE, registry)
        self.overruns = make(m.CHECK_OVERRUNS, registry)
        self.step_duration = make(m.JOURNEY_STEP_DURATION, registry, buckets=self.buckets)
        self.step_failures = make(m.JOURNEY_STEP_FAILURES, registry)
        self.auth_duration = make(m.JOURNEY_AUTH_DURATION, registry)
        self.tls_expiry = make(m.TLS_EXPIRY, registry)
        self.tls_valid = make(m.TLS_CHAIN_VALID, registry)
        self.protection = make(m.PROTECTION_HOLDS, registry)
        self.build = make(m.BUILD_INFO, registry)
        self.build.info({"version": __version__, "python": platform.python_version()})
        self.reload_ok = make(m.CONFIG_RELOAD_OK, registry)
        self.reload_time = make(m.CONFIG_RELOAD_TIME, registry)
        self.reloads = make(m.CONFIG_RELOADS, registry)
        for result in ("success", "failure"):
            self.reloads.labels(result)
        self.scrape = make(m.SCRAPE_DURATION, registry,
                           buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0))
        self.configured = make(m.CHECKS_CONFIGURED, registry)
        self.access = AccessMetrics(registry)
        self._children: dict[tuple[str, str], list[tuple[Any, tuple[str, ...]]]] = {}

    def reloaded(self, ok: bool) -> None:
        self.reloads.labels("success" if ok else "failure").inc()
        self.reload_ok.set(1 if ok else 0)
        if ok:
            self.reload_time.set(time.time())

    def prepare(self, target: str, check: Check) -> None:
        """Create every series the check can produce, at zero."""
        base = (target, check.name)
        children: list[tuple[Any, tuple[str, ...]]] = []

        def child(metric: Any, *labels: str) -> Any:
            children.append((metric, (*base, *labels)))
            return metric.labels(*base, *labels)

        child(self.success)
        child(self.runs)
        child(self.duration)
        child(self.last_run)
        child(self.status_code)
        child(self.overruns)
        for reason in FAILURE_REASONS:
            child(self.failures, reason)
        for phase in PHASES:
            child(self.phase, phase)
        if isinstance(check, JourneyCheck):
            child(self.auth_duration)
            for step in check.steps:
                child(self.step_duration, step.label)
                for reason in FAILURE_REASONS:
                    child(self.step_failures, step.label, reason)
        if isinstance(check, TLSCheck):
            child(self.tls_expiry)
            child(self.tls_valid)
        if isinstance(check, ProtectionCheck):
            for protection in _protections(check):
                child(self.protection, protection).set(1)
        self._children[base] = children
        self.access.prepare(target, check)

    def forget(self, target: str, check_name: str) -> None:
        """Remove a check's series (it left the configuration)."""
        for metric, labels in self._children.pop((target, check_name), []):
            with contextlib.suppress(KeyError):
                metric.remove(*labels)
        self.access.forget(target, check_name)

    def record(self, target: str, outcome: Outcome) -> None:
        base = (target, outcome.check)
        self.runs.labels(*base).inc()
        self.success.labels(*base).set(1 if outcome.success else 0)
        if not outcome.success:
            self.failures.labels(*base, outcome.reason).inc()
        self.duration.labels(*base).observe(outcome.duration)
        for phase, value in outcome.phases.items():
            self.phase.labels(*base, phase).set(value)
        self.status_code.labels(*base).set(outcome.status)
        self.last_run.labels(*base).set(outcome.finished_at or time.time())
        if outcome.kind == "journey":
            self.auth_duration.labels(*base).set(outcome.auth_duration)
            for step in outcome.steps:
                self.step_duration.labels(*base, step.name).observe(step.duration)
                if not step.success:
                    self.step_failures.labels(*base, step.name, step.reason or "assertion").inc()
        if outcome.tls_expiry is not None:
            self.tls_expiry.labels(*base).set(outcome.tls_expiry)
        if outcome.tls_chain_valid is not None:
            self.tls_valid.labels(*base).set(1 if outcome.tls_chain_valid else 0)
        for protection, holds in outcome.protections.items():
            self.protection.labels(*base, protection).set(1 if holds else 0)
        self.access.record(target, outcome)

"""The incremental exposition writes exactly what prometheus_client writes for the same runs."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.parser import text_string_to_metric_families
from pydantic import TypeAdapter

from crmpulse import contract as m
from crmpulse.config import Check, JourneyCheck, ProtectionCheck, TLSCheck
from crmpulse.contract import FAILURE_REASONS, PHASES, duration_buckets
from crmpulse.probes.checks import Outcome, StepOutcome
from crmpulse.probes.exposition import GROUP, CheckStore, series_per_check
from crmpulse.probes.metrics import ProbeMetrics, make
from crmpulse.probes.scheduler import phase_of

CHECKS: list[Check] = [TypeAdapter(Check).validate_python(c) for c in [
    {"name": "api_read", "kind": "http", "operation": "list_accounts"},
    {"name": "journey", "kind": "journey", "steps": [
        {"operation": "authenticate"}, {"operation": "search_contacts", "with": {"q": "x"}},
        {"operation": "get_contact", "name": 'odd "step"\\name at 100%s'}]},
    {"name": "cert", "kind": "tls"},
    {"name": "guard", "kind": "protection", "hsts": True, "forbidden_patterns": ["ssn"]},
]]
BUCKETS = duration_buckets([0.8, 0.3])


class Reference:
    """The exporter's metrics as prometheus_client objects: what the store must equal."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.success, self.runs = make(m.CHECK_SUCCESS, r), make(m.CHECK_RUNS, r)
        self.failures = make(m.CHECK_FAILURES, r)
        self.duration = make(m.CHECK_DURATION, r, buckets=BUCKETS)
        self.phase, self.last_run = make(m.CHECK_PHASE, r), make(m.CHECK_LAST_RUN, r)
        self.status, self.overruns = make(m.CHECK_STATUS_CODE, r), make(m.CHECK_OVERRUNS, r)
        self.step_duration = make(m.JOURNEY_STEP_DURATION, r, buckets=BUCKETS)
        self.step_failures = make(m.JOURNEY_STEP_FAILURES, r)
        self.auth = make(m.JOURNEY_AUTH_DURATION, r)
        self.tls_expiry, self.tls_valid = make(m.TLS_EXPIRY, r), make(m.TLS_CHAIN_VALID, r)
        self.protection = make(m.PROTECTION_HOLDS, r)

    def prepare(self, check: Check) -> None:
        base = ("crm", check.name)
        for metric in (self.success, self.runs, self.duration, self.last_run, self.status,
                       self.overruns):
            metric.labels(*base)
        for reason in FAILURE_REASONS:
            self.failures.labels(*base, reason)
        for phase in PHASES:
            self.phase.labels(*base, phase)
        if isinstance(check, JourneyCheck):
            self.auth.labels(*base)
            for step in check.steps:
                self.step_duration.labels(*base, step.label)
                for reason in FAILURE_REASONS:
                    self.step_failures.labels(*base, step.label, reason)
        if isinstance(check, TLSCheck):
            self.tls_expiry.labels(*base)
            self.tls_valid.labels(*base)
        if isinstance(check, ProtectionCheck):
            for protection in ("require_auth", "hsts", "forbidden_patterns"):
                self.protection.labels(*base, protection).set(1)

    def record(self, o: Outcome) -> None:
        base = ("crm", o.check)
        self.runs.labels(*base).inc()
        self.success.labels(*base).set(1 if o.success else 0)
        if not o.success:
            self.failures.labels(*base, o.reason).inc()
        self.duration.labels(*base).observe(o.duration)
        for phase, value in o.phases.items():
            self.phase.labels(*base, phase).set(value)
        self.status.labels(*base).set(o.status)
        self.last_run.labels(*base).set(o.finished_at)
        if o.kind == "journey":
            self.auth.labels(*base).set(o.auth_duration)
            for step in o.steps:
                self.step_duration.labels(*base, step.name).observe(step.duration)
                if not step.success:
                    self.step_failures.labels(*base, step.name, step.reason).inc()
        if o.tls_expiry is not None:
            self.tls_expiry.labels(*base).set(o.tls_expiry)
        if o.tls_chain_valid is not None:
            self.tls_valid.labels(*base).set(1 if o.tls_chain_valid else 0)
        for protection, holds in o.protections.items():
            self.protection.labels(*base, protection).set(1 if holds else 0)


def outcomes() -> list[Outcome]:
    step_names = [s.label for s in CHECKS[1].steps]  # type: ignore[union-attr]
    return [
        Outcome("api_read", "http", duration=0.0123, status=200, finished_at=1700000000.5,
                phases={"resolve": 0.0, "connect": 0.001, "tls": 0.0, "processing": 0.01,
                        "transfer": 1e-05}),
        Outcome("api_read", "http", success=False, reason="timeout", duration=5.0,
                finished_at=1700000030.25),
        Outcome("api_read", "http", duration=0.8, status=503, finished_at=1700000060.0),
        Outcome("journey", "journey", duration=0.25, auth_duration=0.1, status=200,
                finished_at=1700000001.0,
                steps=[StepOutcome(step_names[0], True, 0.1), StepOutcome(step_names[1], True, 0.05),
                       StepOutcome(step_names[2], False, 31.0, "status")],
                success=False, reason="status"),
        Outcome("cert", "tls", duration=0.004, tls_expiry=1800000000.0, tls_chain_valid=False,
                success=False, reason="tls", finished_at=1700000002.0),
        Outcome("guard", "protection", duration=0.3, protections={"hsts": False,
                                                                   "forbidden_patterns": True},
                success=False, reason="protection", finished_at=1700000003.0),
    ]


def both() -> tuple[CheckStore, Reference]:
    store, reference = CheckStore(BUCKETS), Reference()
    for check in CHECKS:
        store.prepare("crm", check)
    # the store writes checks in the order of their phase in the interval
    for check in sorted(CHECKS, key=lambda c: (phase_of(c.name), c.name)):
        reference.prepare(check)
    return store, reference


@pytest.mark.parametrize("runs", [0, 1, 6])
def test_the_store_writes_what_prometheus_client_writes_in_both_formats(runs: int) -> None:
    store, reference = both()
    for outcome in outcomes()[:runs]:
        store.record("crm", outcome)
        reference.record(outcome)
    assert store.render(openmetrics=False) == generate_latest(reference.registry)
    assert store.render(openmetrics=True) + b"# EOF\n" == generate_openmetrics(reference.registry)


def test_a_run_rerenders_its_check_and_leaves_the_others_cached() -> None:
    store, _ = both()
    store.render()
    cached = {key: series.parts() for key, series in store.series.items()}
    store.record("crm", outcomes()[0])
    assert store.series[("crm", "api_read")].parts() is not cached[("crm", "api_read")]
    assert all(store.series[key].parts() is parts for key, parts in cached.items()
               if key != ("crm", "api_read"))


def many(count: int) -> tuple[CheckStore, list[Check]]:
    checks = [TypeAdapter(Check).validate_python({"name": f"c{i:04d}", "kind": "http",
                                                  "request": {"path": "/"}}) for i in range(count)]
    store = CheckStore(BUCKETS)
    for check in checks:
        store.prepare("crm", check)
    return store, checks


@pytest.mark.parametrize("openmetrics", [False, True])
def test_the_gzipped_exposition_is_the_plain_one_after_any_runs(openmetrics: bool) -> None:
    import gzip

    metrics = ProbeMetrics(CollectorRegistry(), BUCKETS)
    metrics.checks, checks = many(5 * GROUP)
    accept = "application/openmetrics-text" if openmetrics else ""
    for round_ in range(4):
        for check in checks[round_ * 37:round_ * 37 + 50]:
            metrics.record("crm", Outcome(check.name, "http", duration=round_ / 10, finished_at=1.0))
        packed, _ = metrics.render(accept, compress=True)
        plain, _ = metrics.render(accept)

        def steady(text: bytes) -> list[bytes]:  # the scrape timer counts the render itself
            return [line for line in text.split(b"\n") if b"scrape_duration_seconds_" not in line]
        assert steady(gzip.decompress(packed)) == steady(plain)


def test_a_scrape_compresses_only_the_blocks_whose_checks_ran() -> None:
    store, checks = many(8 * GROUP)
    before = [piece for _, piece in store.deflated()]
    ran = checks[100]
    store.record("crm", Outcome(ran.name, "http", duration=0.1, finished_at=1.0))
    after = [piece for _, piece in store.deflated()]
    changed = sum(1 for old, new in zip(before, after, strict=True) if old is not new)
    family_blocks = [n for n, (plain, _) in enumerate(store.deflated()) if ran.name.encode() in plain]
    assert changed == len(family_blocks) and changed > 0  # one block per family, no more


def test_overruns_are_counted_and_rendered() -> None:
    store, _ = both()
    store.render()
    store.overrun("crm", "cert", 3)
    assert b'crmpulse_check_overruns_total{check="cert",target="crm"} 3.0\n' in store.render()


def samples(text: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for f in text_string_to_metric_families(text.decode()) for s in f.samples}


def test_phase_series_can_be_left_out_per_check_and_the_budget_counts_them() -> None:
    lean = CheckStore(BUCKETS)
    for check in CHECKS:
        lean.prepare("crm", check, phase_series=check.name != "api_read")
    text = samples(lean.render())
    assert not [k for k in text if k[0] == m.CHECK_PHASE.name and ("check", "api_read") in k[1]]
    assert [k for k in text if k[0] == m.CHECK_PHASE.name and ("check", "journey") in k[1]]
    for check in CHECKS:
        mine = [k for k in text if ("check", check.name) in k[1]]
        assert len(mine) == series_per_check(check, len(BUCKETS), check.name != "api_read")
    assert series_per_check(CHECKS[0], 12) == 33  # the figure docs/probes.md gives


def test_a_reload_keeps_the_counters_of_a_check_whose_shape_is_unchanged() -> None:
    store, _ = both()
    store.record("crm", outcomes()[0])
    store.prepare("crm", CHECKS[0])
    assert store.series[("crm", "api_read")].runs == 1
    store.prepare("crm", CHECKS[0], phase_series=False)
    assert store.series[("crm", "api_read")].runs == 0
    store.keep({("crm", "cert")})
    assert list(store.series) == [("crm", "cert")]


def test_collect_yields_the_same_samples_as_the_rendered_text() -> None:
    store, _ = both()
    for outcome in outcomes():
        store.record("crm", outcome)
    registry = CollectorRegistry()
    registry.register(store)  # type: ignore[arg-type]
    assert samples(generate_latest(registry)) == samples(store.render())
    value: Any = registry.get_sample_value("crmpulse_check_failures_total",
                                           {"target": "crm", "check": "api_read", "reason": "timeout"})
    assert value == 1.0

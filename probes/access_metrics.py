"""The access checks' series: whether each protection holds per path, and counts.

Built from the contract (``ACCESS_METRICS``) in the exporter's registry. Every series an
access check can produce is created when the check is configured: ``holds`` at 1 (as
protections are: a check that has not run yet has found nothing broken), counts at 0.
A path a run could not judge keeps its last value; the run itself fails with its reason.
"""

from __future__ import annotations

import contextlib
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from crmpulse import contract as c
from crmpulse.config import (
    ACCESS_CHECKS,
    BruteforceCheck,
    Check,
    ExposureCheck,
    RevocationCheck,
    access_paths,
)

from .access import detector_names

__all__ = ["AccessMetrics"]


def _gauge(metric: c.Metric, registry: CollectorRegistry) -> Gauge:
    return Gauge(metric.name, metric.help, list(metric.labels), registry=registry)


class AccessMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.holds = _gauge(c.ACCESS_HOLDS, registry)
        self.exposed = _gauge(c.ACCESS_EXPOSED, registry)
        self.revocation = _gauge(c.ACCESS_REVOCATION, registry)
        self.login_attempts = _gauge(c.ACCESS_LOGIN_ATTEMPTS, registry)
        self._children: dict[tuple[str, str], list[tuple[Gauge, tuple[str, ...]]]] = {}

    def prepare(self, target: str, check: Check) -> None:
        """Create every series of an access check (nothing for other kinds).

        Series the check already has keep their values across a reload: a finding stands
        until a run judges the path again (a broken protection is not reset to holding).
        New series start at their initial values; series it no longer has are removed.
        """
        wanted: list[tuple[Gauge, tuple[str, ...], float]] = []
        if isinstance(check, ACCESS_CHECKS):
            base = (target, check.name)
            wanted += [(self.holds, (*base, check.kind, path), 1.0) for path in access_paths(check)]
            if isinstance(check, ExposureCheck):
                wanted += [(self.exposed, (*base, path, detector), 0.0)
                           for path in dict.fromkeys(r.operation for r in check.reads)
                           for detector in detector_names(check)]
            if isinstance(check, RevocationCheck) and check.revoke is not None:
                wanted.append((self.revocation, base, 0.0))
            if isinstance(check, BruteforceCheck):
                wanted.append((self.login_attempts, base, 0.0))
        old = set(self._children.pop((target, check.name), []))
        new = [(gauge, labels) for gauge, labels, _ in wanted]
        for gauge, labels in old - set(new):
            with contextlib.suppress(KeyError):
                gauge.remove(*labels)
        for gauge, labels, initial in wanted:
            if (gauge, labels) not in old:
                gauge.labels(*labels).set(initial)
        if new:
            self._children[(target, check.name)] = new

    def keep(self, keys: set[tuple[str, str]]) -> None:
        """Remove the series of every check not in ``keys`` (it left the config or this shard)."""
        for key in [k for k in self._children if k not in keys]:
            self.forget(*key)

    def forget(self, target: str, check_name: str) -> None:
        for gauge, labels in self._children.pop((target, check_name), []):
            with contextlib.suppress(KeyError):
                gauge.remove(*labels)

    def record(self, target: str, outcome: Any) -> None:
        findings = outcome.access
        if findings is None or (target, outcome.check) not in self._children:
            return
        base = (target, outcome.check)
        for path, holds in findings.holds.items():
            self.holds.labels(*base, findings.kind, path).set(1 if holds else 0)
        for (path, detector), count in findings.exposed.items():
            self.exposed.labels(*base, path, detector).set(count)
        if findings.revocation_seconds is not None:
            self.revocation.labels(*base).set(findings.revocation_seconds)
        if findings.login_attempts is not None:
            self.login_attempts.labels(*base).set(findings.login_attempts)

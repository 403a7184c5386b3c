"""The scheduled checks' series, kept as plain numbers and rendered incrementally.

    store = CheckStore(buckets)
    store.prepare("crm", check)              # every series of the check, at zero
    store.record("crm", outcome)             # only this check's lines are rendered again
    body = store.render(openmetrics=False)   # the families of every check, joined

Why not prometheus_client objects, as the exporter's own metrics use: they render every
series afresh on each scrape, which at 2,000 checks (66,000 series, 5.4 MB) took 577 ms
and most of the exporter's CPU (issue 16). Here each check keeps its values and the
text of its lines; a run marks the check dirty, and a scrape re-renders only the checks
that ran since the last one, then joins cached bytes family by family (the exposition
formats want every family's lines together). The output is exactly what
prometheus_client would write for the same values, in the classic text format and in
OpenMetrics (tests/unit/test_exposition.py compares them byte for byte).

Series per check (the budget docs/probes.md explains): success, runs, last run, status,
overruns (5); failures by reason (8); the duration histogram (buckets + 3); phases (5,
unless ``phase_series: false``); journeys add the token time (1) and per step a
histogram and failures by reason; TLS checks 2; protection checks one per protection.
"""

from __future__ import annotations

import struct
import time
import zlib
from collections.abc import Iterable, Iterator
from itertools import chain, repeat
from typing import Any

from prometheus_client.metrics_core import Metric as Family
from prometheus_client.utils import floatToGoString

from crmpulse import contract as c
from crmpulse.config import Check, JourneyCheck, ProtectionCheck, TLSCheck
from crmpulse.contract import FAILURE_REASONS, PHASES, PROTECTIONS, Metric

from .checks import Outcome
from .scheduler import phase_of

__all__ = ["FAMILIES", "GROUP", "CheckSeries", "CheckStore", "deflate", "gzip_join",
           "series_per_check"]

#: The families of scheduled checks, in the order they are written.
FAMILIES: tuple[Metric, ...] = (
    c.CHECK_SUCCESS, c.CHECK_RUNS, c.CHECK_FAILURES, c.CHECK_DURATION, c.CHECK_PHASE,
    c.CHECK_LAST_RUN, c.CHECK_STATUS_CODE, c.CHECK_OVERRUNS, c.JOURNEY_STEP_DURATION,
    c.JOURNEY_STEP_FAILURES, c.JOURNEY_AUTH_DURATION, c.TLS_EXPIRY, c.TLS_CHAIN_VALID,
    c.PROTECTION_HOLDS)
(SUCCESS, RUNS, FAILURES, DURATION, PHASE, LAST_RUN, STATUS, OVERRUNS, STEP_DURATION,
 STEP_FAILURES, AUTH, TLS_EXPIRY, TLS_VALID, PROTECTION) = range(len(FAMILIES))


def _escape_label(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _header(metric: Metric, openmetrics: bool) -> bytes:
    if openmetrics:
        help_text = metric.help.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
        return f"# HELP {metric.name} {help_text}\n# TYPE {metric.name} {metric.kind}\n".encode()
    help_text = metric.help.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {metric.series} {help_text}\n# TYPE {metric.series} {metric.kind}\n".encode()


_HEADERS = {om: [_header(m, om) for m in FAMILIES] for om in (False, True)}


def _protections(check: ProtectionCheck) -> list[str]:
    wanted = {"require_auth": check.require_auth, "https_redirect": check.https_redirect,
              "hsts": check.hsts, "forbidden_patterns": bool(check.forbidden_patterns)}
    return [p for p in PROTECTIONS if wanted[p]]


def series_per_check(check: Check, buckets: int, phase_series: bool = True) -> int:
    """How many series ``check`` exports with ``buckets`` histogram buckets (without +Inf)."""
    histogram = buckets + 3  # +Inf, _count, _sum
    count = 5 + len(FAILURE_REASONS) + histogram + (len(PHASES) if phase_series else 0)
    if isinstance(check, JourneyCheck):
        count += 1 + len(check.steps) * (histogram + len(FAILURE_REASONS))
    if isinstance(check, TLSCheck):
        count += 2
    if isinstance(check, ProtectionCheck):
        count += len(_protections(check))
    return count


class _Histogram:
    __slots__ = ("counts", "sum")

    def __init__(self, size: int) -> None:
        self.counts = [0] * (size + 1)  # per bucket, the last one +Inf; cumulated when written
        self.sum = 0.0

    def observe(self, bounds: tuple[float, ...], value: float) -> None:
        for i, bound in enumerate(bounds):
            if value <= bound:
                self.counts[i] += 1
                break
        else:
            self.counts[-1] += 1
        self.sum += value


def _number(value: float) -> bytes:
    """``value`` as prometheus_client writes it (Python's repr, Go's spelling for big ones)."""
    text = repr(value)
    if text.find(".") > 6 or "n" in text:  # >= 1e6 with a dot, inf, nan: floatToGoString's cases
        text = floatToGoString(value)
    return text.encode()


_TEMPLATES: dict[tuple[Any, ...], list[bytes]] = {}
_CHECK, _TARGET = "\x00check\x00", "\x00target\x00"


def _templates(series: CheckSeries) -> list[bytes]:
    """Per family, the bytes of its lines with ``%s`` for check, target and value of each.

    Shared by every check of the same shape (all http checks, typically): a check keeps
    only its values and its rendered lines. Labels are sorted as prometheus_client sorts
    them, so ``check`` comes first and ``target`` last on every line.
    """
    templates = _TEMPLATES.get(series.shape)
    if templates is None:
        templates = []
        for family in series._lines(_CHECK, _TARGET):
            text = ""
            for name, labels in family:
                pairs = ",".join(f'{k}="{_escape_label(v) if v not in (_CHECK, _TARGET) else v}"'
                                 for k, v in sorted(labels.items()))
                text += f"{name}{{{pairs}}} \x00value\x00\n"
            text = text.replace("%", "%%")
            for marker in (_CHECK, _TARGET, "\x00value\x00"):
                text = text.replace(marker, "%s")
            templates.append(text.encode())
        _TEMPLATES[series.shape] = templates
    return templates


class CheckSeries:
    """Every series of one check: its values, and the text of its lines until they change."""

    def __init__(self, target: str, check: Check, buckets: tuple[float, ...],
                 phase_series: bool = True) -> None:
        self.target, self.name, self.kind = target, check.name, check.kind
        self.buckets = buckets
        self.phase_series = phase_series
        self.steps = [s.label for s in check.steps] if isinstance(check, JourneyCheck) else []
        self.protections = _protections(check) if isinstance(check, ProtectionCheck) else []
        self.tls = isinstance(check, TLSCheck)
        self.success = 0.0
        self.runs = 0
        self.failures = dict.fromkeys(FAILURE_REASONS, 0)
        self.duration = _Histogram(len(buckets))
        self.phases = dict.fromkeys(PHASES, 0.0)
        self.last_run = 0.0
        self.status = 0.0
        self.overruns = 0
        self.auth = 0.0
        self.step_duration = {s: _Histogram(len(buckets)) for s in self.steps}
        self.step_failures = {(s, r): 0 for s in self.steps for r in FAILURE_REASONS}
        self.tls_expiry = 0.0
        self.tls_valid = 0.0
        self.protection = dict.fromkeys(self.protections, 1.0)
        self._labels = (_escape_label(self.name).encode(), _escape_label(self.target).encode())
        self._templates = _templates(self)
        # tuples of bytes, not lists: the collector stops tracking them, so thousands of
        # checks' cached text adds nothing to its full collections
        self._parts: tuple[bytes, ...] | None = None

    @property
    def shape(self) -> tuple[Any, ...]:
        """What must match for a reload to keep this check's series (and counters)."""
        return (self.kind, tuple(self.steps), tuple(self.protections), self.tls,
                self.phase_series, self.buckets)

    def adopt(self, old: CheckSeries) -> None:
        """Take over the last results (the gauges) of the same check's series, rebuilt by a
        reload; counters and histograms stay at zero, as after a restart."""
        self.success, self.last_run, self.status = old.success, old.last_run, old.status
        self.auth, self.tls_expiry, self.tls_valid = old.auth, old.tls_expiry, old.tls_valid
        self.phases.update(old.phases)
        self.protection.update((k, v) for k, v in old.protection.items() if k in self.protection)
        self._parts = None

    # -- recording -----------------------------------------------------------------------

    def record(self, outcome: Outcome, finished_at: float) -> None:
        self.runs += 1
        self.success = 1.0 if outcome.success else 0.0
        if not outcome.success:
            self.failures[outcome.reason if outcome.reason in self.failures else "assertion"] += 1
        self.duration.observe(self.buckets, outcome.duration)
        for phase, value in outcome.phases.items():
            if phase in self.phases:
                self.phases[phase] = value
        self.status = float(outcome.status)
        self.last_run = finished_at
        if self.steps:
            self.auth = outcome.auth_duration
            for step in outcome.steps:
                if step.name in self.step_duration:
                    self.step_duration[step.name].observe(self.buckets, step.duration)
                    if not step.success:
                        reason = step.reason if step.reason in FAILURE_REASONS else "assertion"
                        self.step_failures[(step.name, reason)] += 1
        if outcome.tls_expiry is not None:
            self.tls_expiry = outcome.tls_expiry
        if outcome.tls_chain_valid is not None:
            self.tls_valid = 1.0 if outcome.tls_chain_valid else 0.0
        for protection, holds in outcome.protections.items():
            if protection in self.protection:
                self.protection[protection] = 1.0 if holds else 0.0
        self._parts = None

    def overrun(self, missed: int) -> None:
        self.overruns += missed
        self._parts = None

    # -- rendering -----------------------------------------------------------------------

    def _lines(self, check: str | None = None, target: str | None = None,
               ) -> list[list[tuple[str, dict[str, str]]]]:
        """Per family, each line's sample name and labels, in the order values are written."""
        les = [floatToGoString(b) for b in self.buckets] + ["+Inf"]
        base = {"target": self.target if target is None else target,
                "check": self.name if check is None else check}

        def line(metric: Metric, suffix: str = "", **extra: str) -> tuple[str, dict[str, str]]:
            return metric.name + suffix, {**base, **extra}

        def histogram(metric: Metric, **extra: str) -> list[tuple[str, dict[str, str]]]:
            return ([line(metric, "_bucket", le=le, **extra) for le in les]
                    + [line(metric, "_count", **extra), line(metric, "_sum", **extra)])

        lines: list[list[tuple[str, dict[str, str]]]] = [[] for _ in FAMILIES]
        lines[SUCCESS] = [line(c.CHECK_SUCCESS)]
        lines[RUNS] = [line(c.CHECK_RUNS, "_total")]
        lines[FAILURES] = [line(c.CHECK_FAILURES, "_total", reason=r) for r in FAILURE_REASONS]
        lines[DURATION] = histogram(c.CHECK_DURATION)
        if self.phase_series:
            lines[PHASE] = [line(c.CHECK_PHASE, phase=p) for p in PHASES]
        lines[LAST_RUN] = [line(c.CHECK_LAST_RUN)]
        lines[STATUS] = [line(c.CHECK_STATUS_CODE)]
        lines[OVERRUNS] = [line(c.CHECK_OVERRUNS, "_total")]
        if self.steps:
            lines[STEP_DURATION] = [x for s in self.steps
                                    for x in histogram(c.JOURNEY_STEP_DURATION, step=s)]
            lines[STEP_FAILURES] = [line(c.JOURNEY_STEP_FAILURES, "_total", step=s, reason=r)
                                    for s in self.steps for r in FAILURE_REASONS]
            lines[AUTH] = [line(c.JOURNEY_AUTH_DURATION)]
        if self.tls:
            lines[TLS_EXPIRY] = [line(c.TLS_EXPIRY)]
            lines[TLS_VALID] = [line(c.TLS_CHAIN_VALID)]
        lines[PROTECTION] = [line(c.PROTECTION_HOLDS, protection=p) for p in self.protections]
        return lines

    def _values(self) -> list[list[float]]:
        def histogram(h: _Histogram) -> list[float]:
            cumulative, total = [], 0
            for count in h.counts:
                total += count
                cumulative.append(float(total))
            return [*cumulative, float(total), h.sum]

        values: list[list[float]] = [[] for _ in FAMILIES]
        values[SUCCESS] = [self.success]
        values[RUNS] = [float(self.runs)]
        values[FAILURES] = [float(self.failures[r]) for r in FAILURE_REASONS]
        values[DURATION] = histogram(self.duration)
        if self.phase_series:
            values[PHASE] = [self.phases[p] for p in PHASES]
        values[LAST_RUN] = [self.last_run]
        values[STATUS] = [self.status]
        values[OVERRUNS] = [float(self.overruns)]
        if self.steps:
            values[STEP_DURATION] = [v for s in self.steps for v in histogram(self.step_duration[s])]
            values[STEP_FAILURES] = [float(self.step_failures[(s, r)])
                                     for s in self.steps for r in FAILURE_REASONS]
            values[AUTH] = [self.auth]
        if self.tls:
            values[TLS_EXPIRY] = [self.tls_expiry]
            values[TLS_VALID] = [self.tls_valid]
        values[PROTECTION] = [self.protection[p] for p in self.protections]
        return values

    def parts(self) -> tuple[bytes, ...]:
        """This check's lines of each family (cached until the next run)."""
        if self._parts is None:
            check, target = self._labels
            self._parts = tuple(
                template % tuple(chain.from_iterable(zip(repeat(check), repeat(target),
                                                         map(_number, values))))
                for template, values in zip(self._templates, self._values(), strict=True))
        return self._parts

    def samples(self) -> Iterator[tuple[int, str, dict[str, str], float]]:
        """(family index, sample name, labels, value) of every series, for collect()."""
        for index, (lines, values) in enumerate(zip(self._lines(), self._values(), strict=True)):
            for (name, labels), value in zip(lines, values, strict=True):
                yield index, name, labels, value


GROUP = 64  # checks per cached block
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, mtime 0


def deflate(data: bytes, level: int) -> bytes:
    """``data`` as raw deflate blocks that end on a byte boundary and refer to nothing
    before them: such pieces, concatenated, are one valid deflate stream."""
    packer = zlib.compressobj(level, zlib.DEFLATED, -15)
    return packer.compress(data) + packer.flush(zlib.Z_SYNC_FLUSH)


def gzip_join(pieces: Iterable[tuple[bytes, bytes]]) -> bytes:
    """One gzip member from (plain, deflated) pieces in order (the CRC covers the plain)."""
    crc = size = 0
    packed = []
    for plain, deflated in pieces:
        if plain:
            crc = zlib.crc32(plain, crc)
            size += len(plain)
            packed.append(deflated)
    return b"".join([_GZIP_HEADER, *packed, b"\x03\x00",  # an empty final block
                     struct.pack("<II", crc, size & 0xFFFFFFFF)])


class CheckStore:
    """The series of every scheduled check, by (target, check name).

    Checks are laid out in the order of their phase in the interval (the scheduler runs
    each at a phase fixed by its name) and cut into blocks of :data:`GROUP`: the checks
    that ran since the last scrape sit in a few neighbouring blocks. For each family and
    block the store keeps the joined lines and, once asked for, their deflated form; a
    run marks its block dirty, and a scrape renders and compresses only dirty blocks,
    then joins cached bytes (and a CRC over them). So the Python work and the
    compression follow what changed, and the rest is C-speed copying.
    """

    def __init__(self, buckets: Iterable[float], level: int = 1) -> None:
        self.buckets = tuple(buckets)
        self.level = level
        self.series: dict[tuple[str, str], CheckSeries] = {}
        self._groups: list[list[tuple[str, str]]] | None = None
        self._group_of: dict[tuple[str, str], int] = {}
        self._blocks: list[list[tuple[bytes, bytes]]] = []  # per family, group: (plain, deflated)
        self._dirty: set[int] = set()
        self._headers: dict[bool, list[tuple[bytes, bytes]]] = {}

    def prepare(self, target: str, check: Check, phase_series: bool = True) -> CheckSeries:
        """Create the check's series at zero; a check whose shape is unchanged keeps its own."""
        new = CheckSeries(target, check, self.buckets, phase_series)
        old = self.series.get((target, check.name))
        if old is not None and old.shape == new.shape:
            return old
        self.series[(target, check.name)] = new
        self._groups = None
        return new

    def keep(self, keys: set[tuple[str, str]]) -> None:
        """Drop every check not in ``keys`` (it left the configuration or this shard)."""
        for key in [k for k in self.series if k not in keys]:
            del self.series[key]
            self._groups = None

    def record(self, target: str, outcome: Outcome) -> None:
        series = self.series.get((target, outcome.check))
        if series is not None:
            series.record(outcome, outcome.finished_at or time.time())
            self._touch((target, outcome.check))

    def overrun(self, target: str, name: str, missed: int) -> None:
        series = self.series.get((target, name))
        if series is not None:
            series.overrun(missed)
            self._touch((target, name))

    def _touch(self, key: tuple[str, str]) -> None:
        group = self._group_of.get(key)
        if group is not None:
            self._dirty.add(group)

    def _refresh(self) -> None:
        if self._groups is None:
            order = sorted(self.series, key=lambda key: (phase_of(key[1]), key))
            self._groups = [order[i:i + GROUP] for i in range(0, len(order), GROUP)]
            self._group_of = {key: n // GROUP for n, key in enumerate(order)}
            self._blocks = [[(b"", b"") for _ in self._groups] for _ in FAMILIES]
            self._dirty = set(range(len(self._groups)))
        for group in self._dirty:
            parts = [self.series[key].parts() for key in self._groups[group]]
            for family, blocks in enumerate(self._blocks):
                blocks[group] = (b"".join([p[family] for p in parts]), b"")
        self._dirty.clear()

    def chunks(self, openmetrics: bool = False) -> list[bytes]:
        """The exposition of every check: each family's header, then its blocks."""
        self._refresh()
        out: list[bytes] = []
        for header, blocks in zip(_HEADERS[openmetrics], self._blocks, strict=True):
            out.append(header)
            out.extend(block[0] for block in blocks)
        return out

    def deflated(self, openmetrics: bool = False) -> list[tuple[bytes, bytes]]:
        """The same pieces as :meth:`chunks`, each with its deflated form (see :func:`gzip_join`)."""
        self._refresh()
        headers = self._headers.get(openmetrics)
        if headers is None:
            headers = self._headers[openmetrics] = [(h, deflate(h, self.level))
                                                    for h in _HEADERS[openmetrics]]
        out: list[tuple[bytes, bytes]] = []
        for header, blocks in zip(headers, self._blocks, strict=True):
            out.append(header)
            for group, (plain, deflated) in enumerate(blocks):
                if plain and not deflated:
                    deflated = deflate(plain, self.level)
                    blocks[group] = (plain, deflated)
                out.append((plain, deflated))
        return out

    def render(self, openmetrics: bool = False) -> bytes:
        """Every family's header and every check's lines of it (OpenMetrics without ``# EOF``)."""
        return b"".join(self.chunks(openmetrics))

    def collect(self) -> Iterator[Family]:
        """The same series as prometheus_client metric families (a registry collector)."""
        families = [Family(m.name, m.help, m.kind) for m in FAMILIES]
        for series in self.series.values():
            for index, name, labels, value in series.samples():
                families[index].add_sample(name, labels, value)
        yield from families

"""The latest API-quota readings of one target, as every response and limits call reports them.

A profile's ``quota:`` specs say where a CRM reports how much of an API quota is spent
(:class:`crmpulse.profile.QuotaSpec`). A :class:`QuotaBook` holds the latest checked
reading of each quota: :class:`crmpulse.client.Session` hands it every reply it
receives (probes, sync pairs, load-test users, the CLI), and a spec that names a limits
operation is read from that operation's answers, which :meth:`QuotaBook.due` says when
to fetch (at most every ``every`` of the spec).

    book = QuotaBook(profile.quota)
    book.observe("list_accounts", 200, {"Sforce-Limit-Info": "api-usage=12/100000"}, b"")
    book.get("daily_api_requests").remaining        # 99988.0

What a CRM sends is hostile until checked: a figure that is not a finite number from 0
to :data:`MAX_FIGURE`, a limit of 0, or a reset time that is not within a day before to
:data:`MAX_RESET_AHEAD` after now is refused (the reading, or only its reset time), and
counted in :attr:`QuotaBook.refused`. The book is thread-safe: Locust's users, the
exporter's checks and a limits poll may report at once.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .profile import QuotaReading, QuotaSpec, loads_json
from .units import format_duration

__all__ = ["MAX_FIGURE", "MAX_RESET_AHEAD", "Quota", "QuotaBook", "parse_reset", "window_label"]

#: The largest figure a quota reading may hold; above it the reading is refused (no CRM
#: counts 10^12 API calls in a window, and a float that large loses whole units).
MAX_FIGURE = 1e12
#: The furthest ahead a reset time may be (a monthly quota resets within 31 days; a year
#: leaves room); further, or more than a day ago, and the reset time is dropped.
MAX_RESET_AHEAD = 366 * 86400.0


@dataclass(frozen=True)
class Quota:
    """One checked reading: how much of the quota ``name`` is spent, as of ``observed_at``."""

    name: str
    window: str  # the label value: "24h", "5m", or "unknown"
    used: float
    limit: float
    resets_at: float | None  # unix seconds, when the CRM says
    observed_at: float  # unix seconds
    load_test: bool = True  # whether load tests keep within it (QuotaSpec.load_test)
    window_seconds: float | None = None

    @property
    def remaining(self) -> float:
        return max(0.0, self.limit - self.used)


def window_label(spec: QuotaSpec) -> str:
    return format_duration(spec.window) if spec.window else "unknown"


def parse_reset(value: Any, now: float) -> float | None:
    """A reset time as unix seconds, from ISO 8601 text or a unix time (milliseconds when
    above 10^11); None when absent, unreadable or implausible."""
    if value is None or isinstance(value, bool):
        return None
    moment: float | None = None
    if isinstance(value, int | float):
        moment = float(value)
    elif isinstance(value, str) and len(value) <= 64:
        text = value.strip()
        if text.isascii() and text.replace(".", "", 1).isdigit():
            moment = float(text)
        else:
            try:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                return None
            if parsed.tzinfo is None:  # a reset time without a zone: UTC, as the vendors write
                return None
            moment = parsed.timestamp()
    if moment is None or not math.isfinite(moment):
        return None
    if moment > 1e11:
        moment /= 1000.0
    if not now - 86400.0 <= moment <= now + MAX_RESET_AHEAD:
        return None
    return moment


def _figure(value: float) -> bool:
    return math.isfinite(value) and 0.0 <= value <= MAX_FIGURE


class QuotaBook:
    """The latest reading of each quota a profile declares; see the module docstring."""

    def __init__(self, specs: Sequence[QuotaSpec], clock: Callable[[], float] = time.time) -> None:
        self.specs = list(specs)
        self.clock = clock
        self.from_headers = [s for s in self.specs if s.operation is None]
        self.from_operation: dict[str, list[QuotaSpec]] = {}
        for spec in self.specs:
            if spec.operation is not None:
                self.from_operation.setdefault(spec.operation, []).append(spec)
        self.refused = 0  # readings (or reset times) refused as implausible
        self._latest: dict[str, Quota] = {}
        self._polled: dict[str, float] = {}  # limits operation -> when it was last due
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self.specs)

    def observe(self, operation: str, status: int, headers: Mapping[str, str], body: bytes = b"") -> None:
        """Take what one reply of ``operation`` says about every quota; never raises."""
        specs = self.from_operation.get(operation)
        if not self.from_headers and not specs:
            return
        readings: list[tuple[QuotaSpec, QuotaReading | None]] = []
        for spec in self.from_headers:
            readings.append((spec, _read(spec, headers, None)))
        if specs and 200 <= status < 300:
            try:
                document = loads_json(body)
            except (ValueError, RecursionError):
                document = None
            if document is not None:
                readings += [(spec, _read(spec, {}, document)) for spec in specs]
        now = self.clock()
        for spec, reading in readings:
            if reading is not None:
                self._take(spec, reading, now)

    def _take(self, spec: QuotaSpec, reading: QuotaReading, now: float) -> None:
        if not (_figure(reading.used) and _figure(reading.limit) and reading.limit > 0):
            with self._lock:
                self.refused += 1
            return
        resets = parse_reset(reading.resets_at, now)
        quota = Quota(spec.name, window_label(spec), reading.used, reading.limit, resets, now,
                      spec.load_test, spec.window)
        with self._lock:
            if reading.resets_at is not None and resets is None:
                self.refused += 1
            self._latest[spec.name] = quota

    def put(self, quota: Quota) -> None:
        """Keep ``quota`` unless a newer reading of it is here (a worker's, on the master)."""
        if not (_figure(quota.used) and _figure(quota.limit) and quota.limit > 0):
            return
        with self._lock:
            known = self._latest.get(quota.name)
            if known is None or known.observed_at <= quota.observed_at:
                self._latest[quota.name] = quota

    def get(self, name: str) -> Quota | None:
        with self._lock:
            return self._latest.get(name)

    def readings(self) -> list[Quota]:
        """Every quota read so far, in the profile's order."""
        with self._lock:
            return [self._latest[s.name] for s in self.specs if s.name in self._latest]

    def due(self, force: bool = False) -> list[str]:
        """The limits operations to call now (each at most every ``every`` of its specs); the
        caller calls them, and the replies reach :meth:`observe` through the session."""
        now = self.clock()
        out = []
        with self._lock:
            for operation, specs in self.from_operation.items():
                every = min(s.every for s in specs)
                last = self._polled.get(operation)
                if force or last is None or now - last >= every:
                    self._polled[operation] = now
                    out.append(operation)
        return out


def _read(spec: QuotaSpec, headers: Mapping[str, str], document: Any) -> QuotaReading | None:
    try:
        return spec.read(headers, document)
    except (ValueError, TypeError, OverflowError):  # a hostile value no parse rule expected
        return None

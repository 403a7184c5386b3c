"""SLO math: SLIs as PromQL, multi-window multi-burn-rate pairs for any SLO window, detection.

Each SLO becomes an error ratio (bad events / all events) built from the metric
contract: availability from check runs and failures, latency from the duration
histogram's bucket at the threshold, sync lag from the lag histogram plus lost
canaries.

Burn-rate alerts compare that ratio over a long and a short window to
``factor x error budget`` (the SRE workbook, chapter 5). The factors are the
workbook's, fixed for every SLO window: 14.4 and 6 page, 3 and 1 ticket. The
windows scale with the SLO window (``long = long at 30 d x window / 30 d``, the
short window a twelfth of the long one, as Pyrra scales its windows), so each pair
keeps its meaning at any window: the page pairs fire once 2 % and 5 % of the
budget burn within their long window, the ticket pairs once 10 % do. Short windows
have a floor (5 minutes, and four intervals of the slowest member check) so a rate
always has enough samples. At 30 days this is exactly the workbook's and Sloth's
table: 1h/5m, 6h/30m, 1d/2h, 3d/6h.

Fixed factors are what keeps steady errors at or under the budget from ever
alerting: a pair with a factor below 1 (what rescaling the factors instead of the
windows gives for short SLO windows, and Sloth's 28-day default) tickets on an SLO
that is being met. Budgets and thresholds are computed in decimal and written out
exactly (``0.001``, not ``0.0009999999999999432``), for the same reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property

from prometheus_client.utils import floatToGoString

from crmpulse import ConfigError, LoadedConfig, Problem, contract
from crmpulse.config import SLO
from crmpulse.units import format_duration

__all__ = ["MAX_WINDOW", "MIN_WINDOW", "TIERS", "BurnPair", "SLOSpec", "Tier", "detection",
           "prom_duration", "slo_specs"]

DAY = 86400.0
MIN_WINDOW, MAX_WINDOW = 1 * DAY, 90 * DAY
BASE_WINDOW = 30 * DAY
SHORT_FLOOR = 300.0  # the workbook's and Sloth's shortest window


@dataclass(frozen=True)
class Tier:
    """One of the workbook's four pairs, as defined for a 30-day SLO window."""

    name: str  # page-quick, page-slow, ticket-quick, ticket-slow
    severity: str  # critical pages, warning tickets
    long30: float  # seconds
    factor: Decimal

    @property
    def budget_share(self) -> float:
        """Share of the budget burnt within the long window at exactly this factor (30 d)."""
        return float(self.factor) * self.long30 / BASE_WINDOW


#: The SRE workbook's pairs (chapter 5, tables 5-6 and 5-8, plus its 1d/2h ticket
#: rule): 2 % of the budget in 1 h and 5 % in 6 h page; 10 % in 1 d and in 3 d ticket.
TIERS = (Tier("page-quick", "critical", 3600.0, Decimal("14.4")),
         Tier("page-slow", "critical", 6 * 3600.0, Decimal("6")),
         Tier("ticket-quick", "warning", DAY, Decimal("3")),
         Tier("ticket-slow", "warning", 3 * DAY, Decimal("1")))


@dataclass(frozen=True)
class BurnPair:
    """A long and a short window that must both burn faster than ``factor``."""

    tier: Tier
    long: float  # seconds
    short: float
    floored: bool  # a window was raised to the floor: the budget share differs from the tier's

    @property
    def severity(self) -> str:
        return self.tier.severity

    @property
    def factor(self) -> Decimal:
        return self.tier.factor

    def budget_share(self, slo_window: float) -> float:
        return float(self.factor) * self.long / slo_window

    @property
    def label(self) -> str:
        return f"{format_duration(self.long)}/{format_duration(self.short)}"


def prom_duration(seconds: float) -> str:
    """A Prometheus duration (integer units, descending): 5400 -> "1h30m", 4.8 -> "4s800ms"."""
    ms = round(seconds * 1000)
    if ms <= 0:
        raise ValueError(f"not a positive duration: {seconds}")
    out = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        n, ms = divmod(ms, size)
        if n:
            out.append(f"{n}{unit}")
    return "".join(out)


def _to_minute(seconds: float, up: bool = False) -> float:
    minutes = seconds / 60
    return 60.0 * (math.ceil(minutes - 1e-9) if up else math.floor(minutes + 0.5))


def pairs_for(window: float, floor: float = SHORT_FLOOR) -> tuple[BurnPair, ...]:
    """The four pairs for an SLO window: the 30-day windows scaled by window / 30 d."""
    out = []
    for tier in TIERS:
        long = _to_minute(tier.long30 * window / BASE_WINDOW)
        short = max(_to_minute(long / 12), floor)
        floored = short > _to_minute(long / 12) or long < short
        out.append(BurnPair(tier, max(long, short), short, floored))
    return tuple(out)


KIND_TITLE = {"availability": "Availability", "latency": "Latency", "sync_lag": "SyncLag"}
KIND_NOUN = {"availability": "probe runs that succeed",
             "latency": "probe runs faster than {threshold}",
             "sync_lag": "records visible on the other side within {threshold}"}


@dataclass(frozen=True)
class SLOSpec:
    slo: SLO
    target: str
    members: tuple[str, ...]  # the checks (or, for sync_lag, the pairs) the SLO covers
    member_interval: float = 60.0  # the slowest member's interval: short windows hold 4 of them

    @property
    def member_label(self) -> str:
        return "pair" if self.slo.kind == "sync_lag" else "check"

    @property
    def selector(self) -> str:
        """The label matchers for the SLO's checks or pairs."""
        return f'target="{self.target}",{self.member_label}=~"{"|".join(self.members)}"'

    @property
    def le(self) -> str:
        """The histogram bucket bound at the threshold, as the exporter writes it."""
        return floatToGoString(self.slo.threshold)

    @property
    def name(self) -> str:
        return self.slo.name

    @property
    def window(self) -> float:
        return self.slo.window

    @cached_property
    def budget_exact(self) -> Decimal:
        """1 - objective, exactly (99.9 -> 0.001): no float error to make a threshold undercut it."""
        return (Decimal(100) - Decimal(repr(self.slo.objective))) / Decimal(100)

    @property
    def budget(self) -> float:
        return float(self.budget_exact)

    def threshold(self, pair: BurnPair) -> str:
        """``factor x budget`` as an exact decimal literal for PromQL."""
        return decimal_text(pair.factor * self.budget_exact)

    @property
    def budget_text(self) -> str:
        return decimal_text(self.budget_exact)

    @cached_property
    def pairs(self) -> tuple[BurnPair, ...]:
        floor = max(SHORT_FLOOR, _to_minute(4 * self.member_interval, up=True))
        return pairs_for(self.slo.window, floor)

    @property
    def windows(self) -> tuple[float, ...]:
        """Every window a recording rule computes the ratio over, shortest first."""
        return tuple(sorted({w for p in self.pairs for w in (p.long, p.short)}))

    @property
    def labels(self) -> dict[str, str]:
        return {"slo": self.slo.name, "target": self.target, "kind": self.slo.kind}

    @property
    def matchers(self) -> str:
        return f'slo="{self.slo.name}",target="{self.target}"'

    @property
    def alert_prefix(self) -> str:
        return f"Crm{KIND_TITLE[self.slo.kind]}"

    @property
    def what(self) -> str:
        """What the objective counts, in words: "probe runs faster than 800ms"."""
        threshold = format_duration(self.slo.threshold) if self.slo.threshold else ""
        return KIND_NOUN[self.slo.kind].format(threshold=threshold)

    def rates(self, window: str) -> tuple[str, str]:
        """(bad events per second, all events per second) over ``window``."""
        s, c = self.selector, contract
        if self.slo.kind == "availability":
            return (f"sum(rate({c.CHECK_FAILURES.series}{{{s}}}[{window}]))",
                    f"sum(rate({c.CHECK_RUNS.series}{{{s}}}[{window}]))")
        le = self.le
        if self.slo.kind == "latency":
            total = f"sum(rate({c.CHECK_DURATION.count()}{{{s}}}[{window}]))"
            good = f'sum(rate({c.CHECK_DURATION.bucket()}{{{s},le="{le}"}}[{window}]))'
            return f"({total} - {good})", total
        count = f"sum(rate({c.SYNC_LAG_OBSERVED.count()}{{{s}}}[{window}]))"
        good = f'sum(rate({c.SYNC_LAG_OBSERVED.bucket()}{{{s},le="{le}"}}[{window}]))'
        lost = f"sum(rate({c.SYNC_LOST.series}{{{s}}}[{window}]))"
        return f"({count} - {good} + {lost})", f"({count} + {lost})"

    def ratio(self, window: str) -> str:
        bad, total = self.rates(window)
        return f"{bad} / {total}"


def decimal_text(value: Decimal) -> str:
    """A decimal as plain digits: Decimal("0.0144") -> "0.0144", never "1.44E-2"."""
    text = format(value.normalize(), "f")
    return text


def slo_specs(loaded: LoadedConfig) -> list[SLOSpec]:
    """One spec per SLO; raises ConfigError (before any file is written) on what cannot work."""
    config = loaded.config
    target = config.target.name
    problems: list[Problem] = []
    specs = []
    where = str(loaded.path)
    for i, slo in enumerate(config.slos):
        if not MIN_WINDOW <= slo.window <= MAX_WINDOW:
            problems.append(Problem(where, 0, f"slos[{i}].window", (
                f"expected an SLO window from 1d to 90d, got {format_duration(slo.window)}: burn-rate "
                "alert windows scale with it, and outside that range they are either too short to "
                "hold enough samples or longer than Prometheus keeps data by default")))
        if slo.kind == "sync_lag":
            chosen = slo.pairs or [p.name for p in config.probes.sync]
            if not chosen:
                problems.append(Problem(where, 0, f"slos[{i}]", "a sync_lag SLO needs sync pairs "
                                        "(probes.sync)"))
                continue
            intervals = [p.interval for p in config.probes.sync if p.name in chosen]
            members = tuple(chosen)
        else:
            checks = slo.checks or [c.name for c in config.probes.checks if c.kind in ("http", "journey")]
            if not checks:
                problems.append(Problem(where, 0, f"slos[{i}]", f"an {slo.kind} SLO needs http or "
                                        "journey checks (probes.checks)"))
                continue
            intervals = [c.interval for c in config.probes.checks if c.name in checks]
            members = tuple(checks)
        specs.append(SLOSpec(slo, target, members, max(intervals, default=60.0)))
    if problems:
        raise ConfigError(problems)
    return specs


def detection(spec: SLOSpec, error_ratio: float) -> dict[str, float | None]:
    """Minutes from the start of a constant error ratio until page and ticket, in theory.

    A window's error ratio after ``t`` minutes of errors is ``e * min(t, W) / W``; a
    pair fires once both its windows exceed ``factor x budget``.
    """
    out: dict[str, float | None] = {}
    for severity in ("critical", "warning"):
        times = []
        for pair in (p for p in spec.pairs if p.severity == severity):
            threshold = float(pair.factor) * spec.budget
            if error_ratio <= threshold:
                continue
            times.append(max(w / 60 * threshold / error_ratio for w in (pair.long, pair.short)))
        out[severity] = min(times) if times else None
    return out

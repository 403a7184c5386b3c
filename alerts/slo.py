"""SLO math: SLIs as PromQL, the SRE workbook's multi-window multi-burn-rate pairs, detection.

Each SLO becomes an error ratio (bad events / all events) built from the metric
contract: availability from check runs and failures, latency from the duration
histogram's bucket at the threshold, sync lag from the lag histogram plus lost
canaries. Burn-rate alerts compare that ratio over a long and a short window to
``factor x error budget``; factors are the workbook's for a 30-day period and are
rescaled for other periods so each pair still means "this share of the budget
spent in the long window".
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.utils import floatToGoString

from crmpulse import ConfigError, LoadedConfig, Problem, contract
from crmpulse.config import SLO
from crmpulse.units import format_duration, parse_duration

__all__ = ["PAIRS", "BurnPair", "SLOSpec", "detection", "slo_specs"]

RECORD = contract.SLO_ERROR_RATIO_RATE.name + "{window}"


@dataclass(frozen=True)
class BurnPair:
    severity: str  # critical pages, warning tickets
    long: str
    short: str
    budget_share: float  # of the whole period's budget spent in `long` at this burn rate

    def factor(self, period: float) -> float:
        return round(self.budget_share * period / parse_duration(self.long), 4)


#: The SRE workbook's pairs (chapter 5): 2 % of a 30-day budget in 1 h, 5 % in 6 h page;
#: 10 % in 1 d and 10 % in 3 d ticket.
PAIRS = (BurnPair("critical", "1h", "5m", 0.02), BurnPair("critical", "6h", "30m", 0.05),
         BurnPair("warning", "1d", "2h", 0.10), BurnPair("warning", "3d", "6h", 0.10))
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
KIND_TITLE = {"availability": "Availability", "latency": "Latency", "sync_lag": "SyncLag"}


@dataclass(frozen=True)
class SLOSpec:
    slo: SLO
    target: str
    members: tuple[str, ...]  # the checks (or, for sync_lag, the pairs) the SLO covers

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
    def budget(self) -> float:
        return round(1 - self.slo.objective / 100, 10)

    @property
    def labels(self) -> dict[str, str]:
        return {"slo": self.slo.name, "target": self.target, "kind": self.slo.kind}

    @property
    def matchers(self) -> str:
        return f'slo="{self.slo.name}",target="{self.target}"'

    @property
    def alert_prefix(self) -> str:
        return f"Crm{KIND_TITLE[self.slo.kind]}"

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


def slo_specs(loaded: LoadedConfig) -> list[SLOSpec]:
    """One spec per SLO; raises ConfigError (before any file is written) on what cannot work."""
    config = loaded.config
    target = config.target.name
    problems: list[Problem] = []
    specs = []
    where = str(loaded.path)
    for i, slo in enumerate(config.slos):
        if slo.window < parse_duration(PAIRS[-1].long):
            problems.append(Problem(where, 0, f"slos[{i}].window", (
                f"the longest alert window ({PAIRS[-1].long}) is longer than the SLO window "
                f"({format_duration(slo.window)}); use a window of at least 3d")))
        if slo.kind == "sync_lag":
            pairs = slo.pairs or [p.name for p in config.probes.sync]
            if not pairs:
                problems.append(Problem(where, 0, f"slos[{i}]", "a sync_lag SLO needs sync pairs "
                                        "(probes.sync)"))
                continue
            members = tuple(pairs)
        else:
            checks = slo.checks or [c.name for c in config.probes.checks if c.kind in ("http", "journey")]
            if not checks:
                problems.append(Problem(where, 0, f"slos[{i}]", f"an {slo.kind} SLO needs http or "
                                        "journey checks (probes.checks)"))
                continue
            members = tuple(checks)
        specs.append(SLOSpec(slo, target, members))
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
        for pair in (p for p in PAIRS if p.severity == severity):
            threshold = pair.factor(spec.slo.window) * spec.budget
            if error_ratio <= threshold:
                continue
            times.append(max(parse_duration(w) / 60 * threshold / error_ratio
                             for w in (pair.long, pair.short)))
        out[severity] = min(times) if times else None
    return out

"""Load shapes: ramp, step, spike, soak and peak season, as Locust LoadTestShape stages.

Every shape is a list of stages (end time, users, spawn rate, optional target
request rate). ``peak_season`` replays a day of hourly traffic, from a CSV of
historical counts (``hour,requests``) or a typical business day, compressed into
the run's duration and scaled so that the busiest hour runs at ``multiple`` times
the normal peak (``users``).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from locust import LoadTestShape

from crmpulse import ConfigError, Problem
from crmpulse.config import Shape

__all__ = ["CRMShape", "StagePlan", "plan_stages", "scale_stages", "stage_at"]

#: A typical business day's relative traffic per hour (00:00 to 23:00): quiet nights,
#: a morning ramp, a lunch dip, an afternoon peak, an evening tail.
BUSINESS_DAY = (5, 3, 2, 2, 3, 8, 20, 45, 75, 95, 100, 90, 70, 85, 98, 100, 90, 70, 45, 30,
                20, 15, 10, 7)


@dataclass(frozen=True)
class StagePlan:
    end: float  # seconds since the start of the run
    users: int
    spawn_rate: float
    rps: float | None = None


def _hourly(shape: Shape, base_dir: Path) -> list[float]:
    if not shape.csv:
        return [float(v) for v in BUSINESS_DAY]
    path = Path(shape.csv) if Path(shape.csv).is_absolute() else base_dir / shape.csv
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except OSError:
        raise ConfigError([Problem(str(path), 0, "loadtest.shape.csv", "cannot read the file")]) from None
    values = []
    for number, row in enumerate(rows, 1):
        if not row or row[0].strip().lower() in ("hour", "#") or row[0].startswith("#"):
            continue
        try:
            values.append(float(row[-1]))
        except ValueError:
            raise ConfigError([Problem(str(path), number, "loadtest.shape.csv",
                                       f"expected hour,requests rows, got {','.join(row)!r}")]) from None
    if not values or max(values) <= 0:
        raise ConfigError([Problem(str(path), 0, "loadtest.shape.csv", "expected traffic counts")])
    return values


def plan_stages(shape: Shape, base_dir: Path = Path()) -> list[StagePlan]:
    """The stages a shape runs, with cumulative end times."""
    if shape.stages:
        stages, end = [], 0.0
        for stage in shape.stages:
            end += stage.duration
            stages.append(StagePlan(end, stage.users, stage.spawn_rate or shape.spawn_rate, stage.rps))
        return stages
    d, u, rate = shape.duration, shape.users, shape.spawn_rate
    peak = max(1, round(u * shape.multiple)) if shape.kind == "peak_season" else u
    parts: list[tuple[float, int]]  # (fraction of the duration, users)
    if shape.kind == "ramp":
        parts = [(1.0, u)]
        rate = max(u / d, 0.1)
    elif shape.kind == "step":
        parts = [(0.25, math.ceil(u * k / 4)) for k in range(1, 5)]
    elif shape.kind == "spike":
        base = max(1, u // 4)
        parts = [(0.4, base), (0.2, u), (0.4, base)]
        rate = max(rate, u / max(1.0, d * 0.05))  # reach the spike fast
    elif shape.kind == "soak":
        parts = [(1.0, u)]
    else:  # peak_season
        hourly = _hourly(shape, base_dir)
        top = max(hourly)
        parts = [(1 / len(hourly), max(1, round(peak * v / top))) for v in hourly]
    stages, end = [], 0.0
    for fraction, users in parts:
        end += d * fraction
        rps = shape.rps * users / max(p[1] for p in parts) if shape.rps else None
        stages.append(StagePlan(round(end, 3), users, rate, rps))
    return stages


def scale_stages(stages: list[StagePlan], duration: float | None = None, users: float = 1.0,
                 rate: float = 1.0) -> list[StagePlan]:
    """The stages stretched to ``duration`` seconds, users and target rates multiplied.

    What ``--duration``, ``--users`` and ``--rate`` do: the shape keeps its form (a peak
    season stays a day of traffic, compressed into the new duration).
    """
    if not stages:
        return stages
    stretch = duration / stages[-1].end if duration else 1.0
    scaled = []
    for stage in stages:
        people = 0 if stage.users == 0 else max(1, round(stage.users * users))
        spawn = stage.spawn_rate * users / stretch if stretch > 0 else stage.spawn_rate
        scaled.append(StagePlan(round(stage.end * stretch, 3), people, max(spawn, 0.1),
                                stage.rps * rate if stage.rps else stage.rps))
    return scaled


def stage_at(stages: list[StagePlan], run_time: float) -> StagePlan | None:
    for stage in stages:
        if run_time < stage.end:
            return stage
    return None


class CRMShape(LoadTestShape):
    """Runs the configured stages; the run object gives them in ``events.init``.

    Past the last stage, or when the run object sets ``finish_now`` (an abort, a signal),
    it returns None: Locust then stops the users and quits on this one path, and the run
    object's ``test_stop`` listener cleans up (and, on a master, waits for every worker's
    cleanup report) before Locust goes on to quit.
    """

    abstract = True

    def __init__(self) -> None:
        super().__init__()
        self.stages: list[StagePlan] = []
        self.override: tuple[int, float] | None = None  # the capacity finder drives users
        self.finish_now = False  # the run object ends the run: Locust then stops and quits

    def tick(self) -> tuple[int, float] | None:
        if not self.stages or self.finish_now:
            return None
        if self.override is not None:
            return self.override
        stage = stage_at(self.stages, self.get_run_time())
        return None if stage is None else (stage.users, stage.spawn_rate)

    @property
    def end(self) -> float:
        return self.stages[-1].end if self.stages else 0.0

    def target_rps(self) -> float | None:
        stage = stage_at(self.stages, self.get_run_time())
        return stage.rps if stage else None

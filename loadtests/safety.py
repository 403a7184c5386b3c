"""Safety rails and the plan a dry run prints.

A load test runs only against a target that allows it explicitly, on allow-listed
hosts, within the target's caps on users and request rate. The rate cap is also
enforced while running (every request takes a token from the pacer).
"""

from __future__ import annotations

from dataclasses import dataclass

from crmpulse import LoadedConfig
from crmpulse.callers import needs
from crmpulse.origins import request_hosts
from crmpulse.units import format_duration

from .driver import CRMUser
from .journeys import JOURNEYS
from .shapes import StagePlan

__all__ = ["Plan", "check", "journey_problems", "make_plan"]

#: What one request takes on top of think time, for the estimate. None is assumed: in the
#: closed model the estimate is then what a fast CRM would get (an upper bound; a slow CRM
#: means fewer iterations), and in the open model the rate decides anyway.
REQUEST_SECONDS = 0.0
#: Template variables every render provides (crmpulse.templates)
BUILTIN_VARIABLES = frozenset({"unique", "now", "now_unix"})


@dataclass
class Plan:
    stages: list[StagePlan]
    duration: float
    peak_users: int
    peak_rps: float | None
    rate_cap: float
    hosts: list[str]
    requests: int
    records: int
    journeys: dict[str, int]

    def describe(self, target: str, marker: str) -> str:
        lines = [f"Load test plan for target {target} (records marked {marker}):",
                 f"  hosts it will hit: {', '.join(self.hosts)}",
                 f"  duration {format_duration(self.duration)}, peak {self.peak_users} users, "
                 + (f"target rate up to {self.peak_rps:g} req/s" if self.peak_rps
                    else "closed model (users with think time)")
                 + f", hard cap {self.rate_cap:g} req/s",
                 "  journeys (weight): " + ", ".join(f"{k} ({v})" for k, v in self.journeys.items()),
                 f"  about {self.requests:,} requests; about {self.records:,} records created, "
                 "every one deleted at the end",
                 "  stages (until, users, spawn rate, target rate):"]
        start = 0.0
        shown = self.stages
        if len(shown) > 12:  # a day of hourly stages: show the shape, not every hour
            lines[-1] = f"  {len(shown)} stages; users by stage: " + " ".join(
                str(s.users) for s in shown)
            shown = []
        for stage in shown:
            rps = f"{stage.rps:g} req/s" if stage.rps else "-"
            lines.append(f"    {format_duration(start):>7} - {format_duration(stage.end):<7} "
                         f"{stage.users:5d} users  {stage.spawn_rate:6.2f}/s  {rps}")
            start = stage.end
        return "\n".join(lines)


def _distribute(users: int, weights: dict[str, int]) -> dict[str, int]:
    """Users per journey for ``users`` in all, in the order Locust's dispatcher spawns them."""
    counts = dict.fromkeys(weights, 0)
    try:  # the same sequence Locust's dispatcher follows, so small runs are estimated right
        from locust.dispatch import _kl_generator

        sequence = _kl_generator((JOURNEYS[k].__name__, float(w)) for k, w in weights.items())
        by_class = {JOURNEYS[k].__name__: k for k in weights}
        for _ in range(users):
            counts[by_class[str(next(sequence))]] += 1
        return counts
    except (ImportError, KeyError):
        total = sum(weights.values()) or 1
        return {k: round(users * w / total) for k, w in weights.items()}


def make_plan(loaded: LoadedConfig, stages: list[StagePlan]) -> Plan:
    """What the run will do: peak users and rate, and about how many requests and records.

    Users ramp at each stage's spawn rate; each spawned user runs its journey's start
    (which may create a record), then iterations of think time plus its requests; no
    stage sends more than its target rate, or the cap.
    """
    lt = loaded.config.loadtest
    weights = {k: v for k, v in lt.journeys.items() if v > 0}
    cap = loaded.target.safety.max_rps
    requests = records = 0.0
    previous, start, peak_users = 0, 0.0, 0
    for stage in stages:
        length = max(0.0, stage.end - start)
        ramp = min(length, abs(stage.users - previous) / max(stage.spawn_rate, 1e-9))
        mean_users = (stage.users * (length - ramp) + (stage.users + previous) / 2 * ramp) / max(length, 1e-9)
        before, after = _distribute(previous, weights), _distribute(stage.users, weights)
        stage_requests = stage_records = 0.0
        for name in weights:
            journey: type[CRMUser] | None = JOURNEYS.get(name)
            if journey is None:
                continue
            users = mean_users * after[name] / max(stage.users, 1) if stage.users else 0.0
            iteration = lt.think_time + journey.requests * REQUEST_SECONDS
            iterations = users * length / max(iteration, 1e-3)
            stage_requests += iterations * journey.requests
            at_start, per_iteration = journey.creates
            stage_records += max(0, after[name] - before[name]) * at_start + iterations * per_iteration
        limit = min(stage.rps or cap, cap) * length
        if stage_requests > limit > 0:  # paced: the rate, not the users, sets the pace
            stage_records *= limit / stage_requests
            stage_requests = limit
        requests += stage_requests
        records += stage_records
        peak_users = max(peak_users, stage.users)
        previous, start = stage.users, stage.end
    rps_values = [s.rps for s in stages if s.rps]
    return Plan(stages, start, peak_users, max(rps_values) if rps_values else None, cap,
                request_hosts(loaded), int(requests), int(records), weights)


def journey_problems(loaded: LoadedConfig, names: list[str]) -> list[str]:
    """Why a weighted journey could not run against this profile: a missing operation, or a
    variable an operation needs that neither the journey nor the config provides."""
    profile, problems = loaded.profile, []
    provided = BUILTIN_VARIABLES | set(profile.variables) | set(loaded.target.variables)
    for name in names:
        journey = JOURNEYS.get(name)
        if journey is None:
            continue
        for operation, passed in journey.calls.items():
            op = profile.operations.get(operation)
            if op is None:
                if operation == "authenticate":
                    continue  # a token-only CRM has no login: the Session fetches or skips
                if operation not in journey.optional:
                    problems.append(f"journey {name} needs operation {operation}, which profile "
                                    f"{profile.name} does not define (set loadtest.journeys.{name}: 0, "
                                    "or add the operation to the profile)")
                continue
            if operation == "authenticate" and op.auth is False:
                continue  # the auth provider sends the grant's own fields
            # as check-config reckons it (crmpulse.callers): a fallback needs any one of its names
            needed = [v.replace('" or "', "' or '") for v in needs(op.templates, {*passed, *provided})]
            for variable in needed:
                problems.append(f"journey {name}: operation {operation} needs variable "
                                f"'{variable}', which the journey does not pass; define it in "
                                "target.variables (or the profile's variables), or make it "
                                f"optional ('{{{{ {variable}? }}}}')")
    return problems


def check(loaded: LoadedConfig, plan: Plan, known_journeys: list[str]) -> list[str]:
    """Every reason this load test must not run; empty when it may."""
    target, safety = loaded.target, loaded.target.safety
    problems = []
    if not safety.allow_loadtest:
        problems.append(f"target {target.name} does not allow load tests: set "
                        "target.safety.allow_loadtest: true (only for a CRM you may load)")
    for host in plan.hosts:  # the target's, its token URL's, absolute URLs in the profile
        if host not in safety.allowed_hosts:
            problems.append(f"host {host} is not in target.safety.allowed_hosts "
                            f"({', '.join(safety.allowed_hosts) or 'empty'})")
    if plan.peak_users > safety.max_users:
        problems.append(f"the shape peaks at {plan.peak_users} users, above "
                        f"target.safety.max_users ({safety.max_users})")
    if plan.peak_rps and plan.peak_rps > safety.max_rps:
        problems.append(f"the shape asks for {plan.peak_rps:g} req/s, above "
                        f"target.safety.max_rps ({safety.max_rps:g})")
    for name in loaded.config.loadtest.journeys:
        if name not in known_journeys:
            problems.append(f'loadtest.journeys: unknown journey "{name}" '
                            f"(known: {', '.join(known_journeys)})")
    if not any(w > 0 for w in loaded.config.loadtest.journeys.values()):
        problems.append("loadtest.journeys: every weight is 0")
    problems += journey_problems(loaded, [n for n, w in loaded.config.loadtest.journeys.items()
                                          if w > 0 and n in known_journeys])
    if not loaded.profile.sweep:
        problems.append(f"profile {loaded.profile.name} has no sweep section: records a load "
                        "test creates could not be found and deleted after a crash")
    return problems

"""Safety rails and the plan a dry run prints.

A load test runs only against a target that allows it explicitly, on allow-listed
hosts, within the target's caps on users and request rate. The rate cap is also
enforced while running (every request takes a token from the pacer).
"""

from __future__ import annotations

from dataclasses import dataclass

from crmpulse import LoadedConfig
from crmpulse.origins import request_hosts
from crmpulse.units import format_duration

from .shapes import StagePlan

__all__ = ["Plan", "check", "make_plan"]

#: Records each journey creates: (at user start, per iteration)
CREATES = {"sales_rep": (1, 1), "support_agent": (1, 0), "marketing_import": (0, 5),
           "integration_sync": (0, 0), "manager_reporting": (0, 0)}
#: Requests per iteration, roughly, to estimate totals
REQUESTS = {"sales_rep": 5, "support_agent": 3, "marketing_import": 5, "integration_sync": 3,
            "manager_reporting": 5}


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


def make_plan(loaded: LoadedConfig, stages: list[StagePlan]) -> Plan:
    lt = loaded.config.loadtest
    weights = {k: v for k, v in lt.journeys.items() if v > 0}
    total_weight = sum(weights.values()) or 1
    user_seconds, start, peak_users = 0.0, 0.0, 0
    for stage in stages:
        user_seconds += stage.users * (stage.end - start)
        peak_users = max(peak_users, stage.users)
        start = stage.end
    iterations = user_seconds / max(lt.think_time + 0.05, 0.05)
    requests = records = 0.0
    for name, weight in weights.items():
        share = weight / total_weight
        requests += iterations * share * REQUESTS.get(name, 3)
        at_start, per_iteration = CREATES.get(name, (0, 0))
        records += peak_users * share * at_start + iterations * share * per_iteration
    rps_values = [s.rps for s in stages if s.rps]
    cap = loaded.target.safety.max_rps
    starts = [0.0, *(s.end for s in stages[:-1])]
    # each stage sends at most its target rate (or the cap, when it sets none)
    requests = min(requests, sum(min(s.rps or cap, cap) * (s.end - b)
                                 for s, b in zip(stages, starts, strict=True)))
    return Plan(stages, start, peak_users, max(rps_values) if rps_values else None, cap,
                request_hosts(loaded), int(requests), int(records), weights)


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
    if not loaded.profile.sweep:
        problems.append(f"profile {loaded.profile.name} has no sweep section: records a load "
                        "test creates could not be found and deleted after a crash")
    return problems

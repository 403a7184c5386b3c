"""The config model: one ``crmpulse.yaml`` describes one CRM deployment.

Sections: ``target`` (where the CRM is, how to authenticate, TLS, safety limits),
``profile`` (which operations file describes its API), ``slos``, ``probes`` and
``loadtest``. Every consumer (probes, load tests, dashboards, alerts) reads this
model; nothing re-types what it says.

The model is strict: unknown keys, wrong types and bad units are errors, and all
problems are reported together, each located by file, line and key path:

    crmpulse.yaml:14 probes.checks[2].interval: expected a duration like "30s", got "fast"

    config = load_config("crmpulse.yaml")      # raises ConfigError listing every problem
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from ._exceptions import ConfigError, Problem
from ._types import URL, Duration, JSONPathStr, Name, Percent, Ratio, Regex, Secret
from ._validate import validate_document
from ._yamlfile import KeyPath, LineMap, load_yaml
from .profile import Profile, load_profile
from .steps import Expect, Step

__all__ = [
    "Config",
    "LoadedConfig",
    "load_config",
]

class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# -- target --------------------------------------------------------------------------


class NoAuth(Model):
    type: Literal["none"]


class BasicAuth(Model):
    type: Literal["basic"]
    username: str
    password: Secret


class BearerAuth(Model):
    type: Literal["bearer"]
    token: Secret


class APIKeyAuth(Model):
    type: Literal["api_key"]
    header: str = "X-API-Key"
    key: Secret


class OAuth2ClientCredentials(Model):
    type: Literal["oauth2_client_credentials"]
    token_url: str | None = Field(
        None, description="absolute, or relative to base_url; default: the profile's "
        "authenticate operation")
    client_id: str
    client_secret: Secret
    scope: str | None = None
    refresh_before: Duration = Field(30.0, description="refresh this long before expiry")


class OAuth2Password(Model):
    type: Literal["oauth2_password"]
    token_url: str | None = None
    client_id: str | None = None
    client_secret: Secret | None = None
    username: str
    password: Secret
    scope: str | None = None
    refresh_before: Duration = 30.0


Auth = Annotated[
    NoAuth | BasicAuth | BearerAuth | APIKeyAuth | OAuth2ClientCredentials | OAuth2Password,
    Field(discriminator="type"),
]


class TLS(Model):
    verify: bool = True
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None


class Safety(Model):
    """Rails for load tests: a target must opt in, and is capped."""

    allow_loadtest: bool = False
    allowed_hosts: list[str] = Field(
        ["127.0.0.1", "localhost", "::1"], description="hosts a load test may send to")
    max_users: int = Field(50, ge=1)
    max_rps: float = Field(200.0, gt=0)


class Target(Model):
    name: Name
    base_url: URL
    auth: Auth = NoAuth(type="none")
    tls: TLS = TLS()
    timeout: Duration = 10.0
    headers: dict[str, str] = {}
    variables: dict[str, Any] = Field(
        {}, description="values operations may use, e.g. a known contact's id")
    safety: Safety = Safety()


# -- SLOs ------------------------------------------------------------------------------


class SLO(Model):
    name: Name
    kind: Literal["availability", "latency", "sync_lag"]
    objective: Percent
    window: Duration = 30 * 86400.0
    threshold: Duration | None = Field(None, validate_default=True,
                                       description="latency and sync_lag SLOs")
    checks: list[str] = Field([], description="checks this SLO covers (default: all)")
    pairs: list[str] = Field([], description="sync pairs a sync_lag SLO covers (default: all)")
    description: str = ""

    @field_validator("threshold", mode="after")
    @classmethod
    def _threshold_fits_kind(cls, value: float | None, info: ValidationInfo) -> float | None:
        kind = info.data.get("kind")
        if kind == "availability" and value is not None:
            raise ValueError("an availability SLO has no threshold; remove it")
        if kind in ("latency", "sync_lag") and value is None:
            raise ValueError(f'a {kind} SLO needs a threshold like "800ms"')
        return value


# -- probes ----------------------------------------------------------------------------


class RawRequest(Model):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] = "GET"
    path: str = Field(description="relative to target.base_url, or an absolute URL")
    headers: dict[str, str] = {}
    body: str | None = None
    auth: bool = True


class _CheckBase(Model):
    name: Name
    interval: Duration = 30.0
    timeout: Duration = 10.0
    jitter: Ratio = 10.0
    phase_series: bool | None = Field(
        None, description="export the five per-phase durations of the last run "
        "(default: probes.phase_series)")


class HTTPCheck(_CheckBase):
    kind: Literal["http"]
    operation: str | None = None
    with_: dict[str, Any] = Field({}, alias="with")
    request: RawRequest | None = None
    expect: Expect = Expect()

    @model_validator(mode="after")
    def _one_request(self) -> HTTPCheck:
        if (self.operation is None) == (self.request is None):
            raise ValueError("give either operation or request")
        return self


class JourneyCheck(_CheckBase):
    kind: Literal["journey"]
    steps: list[Step] = Field(min_length=1)


class TLSCheck(_CheckBase):
    kind: Literal["tls"]
    host: str | None = Field(None, description="default: the target's host")
    port: int = Field(443, ge=1, le=65535)


class ProtectionCheck(_CheckBase):
    kind: Literal["protection"]
    operation: str = "list_contacts"
    with_: dict[str, Any] = Field({}, alias="with")
    require_auth: bool = Field(True, description="no or bad credentials must get 401/403")
    https_redirect: bool = Field(False, description="plain HTTP must redirect to HTTPS")
    http_url: URL | None = Field(None, description="where plain HTTP is served "
                                 "(default: base_url with http:// and port 80)")
    hsts: bool = Field(False, description="responses must carry Strict-Transport-Security")
    forbidden_patterns: list[Regex] = Field(
        [], description="regexes an authenticated response must never match")


Check = Annotated[HTTPCheck | JourneyCheck | TLSCheck | ProtectionCheck,
                  Field(discriminator="kind")]


class SyncRead(Model):
    """Where a write must become visible: an operation on the target or a downstream system."""

    operation: str
    with_: dict[str, Any] = Field({}, alias="with")
    system: Name | None = Field(None, description="a downstream system from `systems` "
                                "(default: the target itself)")
    found: JSONPathStr | None = Field(None, description="canary: the record is visible "
                                      "when this matches the read's response")
    value: JSONPathStr | None = Field(None, description="heartbeat: the timestamp visible "
                                      "on the read side")


class SyncSweep(Model):
    """How the sweeper finds records this pair marked (paginated list by marker)."""

    operation: str
    with_: dict[str, Any] = Field({}, alias="with")
    id: str = Field("id", description="field of each listed record holding its id")
    created_at: str = Field("created_at", description="field holding its creation time "
                            "(ISO 8601 or unix seconds)")
    pages: int = Field(20, ge=1, le=1000)


class SyncWebhook(Model):
    subscribe: Step | None = Field(None, description="operation that subscribes the probe's "
                                  "receiver ({{ url }} is its address); its cleanup unsubscribes")
    url: URL | None = Field(None, description="where the CRM must deliver events (default: the "
                            "exporter's listen address + /-/webhook/<pair>)")
    match: JSONPathStr = Field("$.data.id", description="where an event carries the record id")


class SyncPair(Model):
    name: Name
    mode: Literal["heartbeat", "canary", "webhook"]
    create: Step = Field(description="canary/webhook: the record written each run; "
                         "heartbeat: the long-lived marker record, created once")
    update: Step | None = Field(None, description="heartbeat: stamps the marker record "
                                "with {{ heartbeat }} each interval")
    read: SyncRead | None = None
    webhook: SyncWebhook | None = None
    sweep: SyncSweep
    interval: Duration = 30.0
    sla: Duration = 60.0
    sweep_after: Duration = Field(3600.0, description="marked records older than this are orphans")
    sweep_every: Duration = 600.0
    poll_min: Duration = 0.025
    poll_max: Duration = 1.0

    @model_validator(mode="after")
    def _mode_needs(self) -> SyncPair:
        if self.mode == "heartbeat" and (self.update is None or self.read is None
                                         or self.read.value is None):
            raise ValueError("a heartbeat pair needs update and read.value")
        if self.mode == "canary" and (self.read is None or self.read.found is None):
            raise ValueError("a canary pair needs read.found")
        if self.mode == "webhook" and self.webhook is None:
            raise ValueError("a webhook pair needs webhook")
        return self


class System(Target):
    """A downstream system (search, ERP, marketing, reporting) with its own API."""

    profile: str


DEFAULT_PROBE_LISTEN = "127.0.0.1:9687"


class Shard(Model):
    """Which share of the checks and sync pairs this exporter runs (docs/probes.md, sizing)."""

    index: int = Field(0, ge=0)
    count: int = Field(1, ge=1, le=1024)

    @model_validator(mode="after")
    def _index_below_count(self) -> Shard:
        if self.index >= self.count:
            raise ValueError(f"expected an index below count ({self.count}), got {self.index}")
        return self


class Probes(Model):
    listen: str = Field(DEFAULT_PROBE_LISTEN, description="host:port the exporter serves on")
    probe_hosts: list[str] = Field(
        [], description="hosts /probe?target= may name besides the target's own; credentials "
        "are sent to these too")
    concurrency: int = Field(16, ge=1, le=1024)
    max_concurrent_probes: int = Field(
        16, ge=1, le=4096, description="/probe requests running at once; more get 503")
    phase_series: bool = Field(True, description="export per-phase durations (5 series per "
                               "check); a check's phase_series overrides it")
    shard: Shard = Field(Shard(), description="run only this share of the checks and sync "
                         "pairs (--shard overrides it)")
    checks: list[Check] = []
    sync: list[SyncPair] = []


# -- load tests ------------------------------------------------------------------------


class Gate(Model):
    p50: Duration | None = None
    p95: Duration | None = None
    p99: Duration | None = None
    error_ratio: Ratio | None = None
    min_rps: float | None = Field(None, ge=0)


class Gates(Model):
    global_: Gate = Field(Gate(), alias="global")
    operations: dict[str, Gate] = {}
    journeys: dict[str, Gate] = {}


class Stage(Model):
    duration: Duration
    users: int = Field(ge=0)
    spawn_rate: float | None = Field(None, gt=0)
    rps: float | None = Field(None, ge=0)


class Shape(Model):
    kind: Literal["ramp", "step", "spike", "soak", "peak_season"] = "ramp"
    users: int = Field(10, ge=1)
    duration: Duration = 60.0
    spawn_rate: float = Field(5.0, gt=0)
    rps: float | None = Field(None, gt=0, description="open model: target request rate")
    stages: list[Stage] = []
    csv: str | None = Field(None, description="historical hourly traffic to shape from")
    multiple: float = Field(1.0, gt=0, description="peak as a multiple of normal traffic")


class LoadTest(Model):
    journeys: dict[str, int] = Field(
        {"sales_rep": 5, "support_agent": 3, "marketing_import": 1, "integration_sync": 1,
         "manager_reporting": 1})
    shape: Shape = Shape()
    gates: Gates = Gates()
    abort_on_breach: bool = Field(False, description="stop the run when a gate is breached "
                                  "after the grace period")
    grace: Duration = 30.0
    abort_error_ratio: Ratio = Field(50.0, description="safety: stop the run when this share "
                                     "of requests fails")
    honour_retry_after: bool = True
    max_retry_after: Duration = Field(30.0, description="longest Retry-After a user waits")
    metrics_listen: str = Field("127.0.0.1:9688", description="host:port of the live metrics")
    think_time: Duration = Field(1.0, description="mean pause between a user's tasks "
                                 "(closed model)")


class Alerting(Model):
    """How generated alerts point people at help."""

    runbook_base_url: str = Field(
        "https://github.com/crmpulse/crmpulse/blob/main/alerts/runbooks",
        description="runbook_url = this + /<AlertName>.md")
    dashboard_url: str = Field("/d/crmpulse-overview", description="linked from descriptions")
    stall_for: Duration = Field(300.0, description="sync lag above threshold this long: page")
    absent_for: Duration = Field(300.0, description="no probe results this long: page")


class Config(Model):
    version: Literal[1] = 1
    target: Target
    profile: str = "sandbox"
    systems: list[System] = []
    slos: list[SLO] = []
    probes: Probes = Probes()
    loadtest: LoadTest = LoadTest()
    alerting: Alerting = Alerting()


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config with its resolved profile and where it came from."""

    config: Config
    profile: Profile
    path: Path
    systems: dict[str, tuple[System, Profile]] = field(default_factory=dict)

    @property
    def target(self) -> Target:
        return self.config.target


def load_config(path: str | Path) -> LoadedConfig:
    """Read, resolve and validate ``path`` and its profile; raise ConfigError listing all problems."""
    path = Path(path)
    doc, problems = load_yaml(path)
    if doc is None:
        raise ConfigError(problems)
    if not isinstance(doc.data, dict):
        raise ConfigError([Problem(str(path), 1, "", "expected a mapping of sections "
                                   "(target, profile, slos, probes, loadtest)")])
    config, more = validate_document(Config, doc)
    problems += more
    if config is None:
        raise ConfigError(problems)
    profile = _load_profile(config.profile, ("profile",), path, doc.lines, problems)
    systems: dict[str, tuple[System, Profile]] = {}
    for i, system in enumerate(config.systems):
        loaded_profile = _load_profile(system.profile, ("systems", i, "profile"), path, doc.lines,
                                       problems)
        if loaded_profile is not None:
            systems[system.name] = (system, loaded_profile)
    if profile is not None:
        problems += _cross_check(config, profile, systems, doc.lines)
    if problems or profile is None:
        raise ConfigError(problems)
    return LoadedConfig(config, profile, path, systems)


def _load_profile(ref: str, where: KeyPath, path: Path, lines: LineMap,
                  problems: list[Problem]) -> Profile | None:
    try:
        return load_profile(ref, base_dir=path.parent)
    except ConfigError as exc:
        if any(p.message == "file not found" for p in exc.problems):
            problems.append(lines.problem(
                where, f'expected a built-in profile (sandbox) or a profile file, got "{ref}" (not found)'))
        else:
            problems += exc.problems
        return None


def _cross_check(config: Config, profile: Profile, systems: dict[str, tuple[System, Profile]],
                 lines: LineMap) -> list[Problem]:
    """What a schema cannot see: names that must exist in the profile, unique names."""
    problems: list[Problem] = []

    def need_op(name: str, where: KeyPath) -> None:
        if name not in profile.operations:
            problems.append(lines.problem(where, _unknown_operation(profile, name)))

    def unique(items: list[Any], section: KeyPath) -> None:
        seen: set[str] = set()
        for i, item in enumerate(items):
            if item.name in seen:
                problems.append(lines.problem((*section, i, "name"),
                                              f'name "{item.name}" is used twice'))
            seen.add(item.name)

    unique(config.slos, ("slos",))
    unique(config.probes.checks, ("probes", "checks"))
    unique(config.probes.sync, ("probes", "sync"))
    for i, check in enumerate(config.probes.checks):
        base: KeyPath = ("probes", "checks", i)
        if isinstance(check, HTTPCheck | ProtectionCheck) and check.operation:
            need_op(check.operation, (*base, "operation"))
        if isinstance(check, JourneyCheck):
            for j, step in enumerate(check.steps):
                need_op(step.operation, (*base, "steps", j, "operation"))
        if check.timeout > check.interval:
            problems.append(lines.problem((*base, "timeout"),
                                          "expected a timeout no longer than the interval"))
    unique(config.systems, ("systems",))
    for i, pair in enumerate(config.probes.sync):
        base = ("probes", "sync", i)
        need_op(pair.create.operation, (*base, "create", "operation"))
        create_op = profile.operations.get(pair.create.operation)
        if create_op is not None and create_op.cleanup is None:
            problems.append(lines.problem(
                (*base, "create", "operation"),
                f"operation {pair.create.operation} declares no cleanup in profile {profile.name}: "
                "records a probe creates must be deletable"))
        if pair.update:
            need_op(pair.update.operation, (*base, "update", "operation"))
        need_op(pair.sweep.operation, (*base, "sweep", "operation"))
        if pair.webhook and pair.webhook.subscribe:
            need_op(pair.webhook.subscribe.operation, (*base, "webhook", "subscribe", "operation"))
        if pair.read:
            if pair.read.system is None:
                need_op(pair.read.operation, (*base, "read", "operation"))
            elif pair.read.system not in systems:
                if pair.read.system not in {s.name for s in config.systems}:
                    problems.append(lines.problem((*base, "read", "system"),
                                                  f'expected the name of a system, got "{pair.read.system}"'))
            elif pair.read.operation not in systems[pair.read.system][1].operations:
                problems.append(lines.problem((*base, "read", "operation"), _unknown_operation(
                    systems[pair.read.system][1], pair.read.operation)))
    check_names = {c.name for c in config.probes.checks}
    pair_names = {p.name for p in config.probes.sync}
    for i, slo in enumerate(config.slos):
        for j, name in enumerate(slo.checks):
            if name not in check_names:
                problems.append(lines.problem(("slos", i, "checks", j),
                                              f'expected the name of a check, got "{name}"'))
        for j, name in enumerate(slo.pairs):
            if name not in pair_names:
                problems.append(lines.problem(("slos", i, "pairs", j),
                                              f'expected the name of a sync pair, got "{name}"'))
    for name in config.loadtest.gates.operations:
        need_op(name, ("loadtest", "gates", "operations", name))
    if config.target.variables:
        used = {n for op in profile.operations.values() for n, _ in op.variables()}
        for name in config.target.variables:
            if name not in used and name not in profile.variables:
                problems.append(lines.problem(("target", "variables", name),
                                              f'no operation of profile {profile.name} uses "{name}"'))
    return problems


def _unknown_operation(profile: Profile, name: str) -> str:
    close = difflib.get_close_matches(name, list(profile.operations), n=1)
    hint = (f' (did you mean "{close[0]}"?)' if close
            else f" (it has: {', '.join(sorted(profile.operations))})")
    return f'expected an operation of profile {profile.name}, got "{name}"{hint}'

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
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from . import redact
from ._exceptions import ConfigError, Problem
from ._files import ca_problem, cert_pair_problem, resolve, traffic_csv_problems
from ._types import (
    URL,
    Duration,
    HeaderFields,
    JSONPathStr,
    Listen,
    ListenOrOff,
    Name,
    OriginURL,
    Percent,
    PositiveDuration,
    Ratio,
    Regex,
    Secret,
)
from ._validate import validate_document
from ._yamlfile import KeyPath, LineMap, SecretValue, load_yaml
from .callers import check_callers
from .origins import Origin, absolute_urls, fixed_origin, format_origin, origin_of
from .profile import Profile, load_profile
from .steps import Expect, Step
from .templates import placeholders
from .units import format_duration

__all__ = [
    "Config",
    "LoadedConfig",
    "load_config",
]

class Model(BaseModel):
    # allow_inf_nan: YAML reads ".inf" and ".nan" as numbers; no rate or limit may be either
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True,
                              allow_inf_nan=False)


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


def _check_token_url(value: str | None) -> str | None:
    if value is not None and value.lower().startswith(("http://", "https://")):
        try:
            origin_of(value)
        except ValueError:
            raise ValueError(f'expected an absolute http(s) URL or a path, got "{value}"') from None
        if urlsplit(value).username is not None:
            raise ValueError("expected a URL without user:password@")
    return value


class OAuth2ClientCredentials(Model):
    type: Literal["oauth2_client_credentials"]
    token_url: str | None = Field(
        None, description="absolute, or relative to base_url; default: the profile's "
        "authenticate operation")

    @field_validator("token_url")
    @classmethod
    def _token_url(cls, value: str | None) -> str | None:
        return _check_token_url(value)
    client_id: str
    client_secret: Secret
    scope: str | None = None
    refresh_before: Duration = Field(30.0, description="refresh this long before expiry")


class OAuth2Password(Model):
    type: Literal["oauth2_password"]
    token_url: str | None = None

    @field_validator("token_url")
    @classmethod
    def _token_url(cls, value: str | None) -> str | None:
        return _check_token_url(value)
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


_SECRET_HEADER = re.compile(r"auth|token|secret|key|cookie|session|password|signature", re.I)


class Target(Model):
    """Where the CRM is and how to authenticate; its credentials go only to its origins.

    The origin is fixed when the target is validated (the base URL's) and survives
    ``model_copy``: a copy pointed at another base URL, as ``/probe`` makes, does not
    take the credentials' permission along. (A token request may also go to an absolute
    token URL: see crmpulse.auth.)
    """

    name: Name
    base_url: URL
    auth: Auth = NoAuth(type="none")
    tls: TLS = TLS()
    timeout: PositiveDuration = 10.0
    headers: HeaderFields = {}
    variables: dict[str, Any] = Field(
        {}, description="values operations may use, e.g. a known contact's id")
    safety: Safety = Safety()
    credentials: dict[Name, Auth] = Field(
        {}, description="named credentials besides auth, each with its own token and renewal; "
        "a profile operation picks one with `auth: NAME`")
    _origins: frozenset[Origin] = PrivateAttr(frozenset())
    _anonymous: bool = PrivateAttr(False)

    @model_validator(mode="before")
    @classmethod
    def _credentials_from_url(cls, data: Any) -> Any:
        """``http://user:${env:X}@host`` becomes basic auth, so the URL shown anywhere has none."""
        url = data.get("base_url") if isinstance(data, dict) else None
        if not isinstance(url, SecretValue) or "@" not in url:
            return data
        try:
            parts = urlsplit(url)
        except ValueError:
            return data
        auth = data.get("auth")
        if parts.password is None or (auth is not None and not (
                isinstance(auth, dict) and auth.get("type") == "none")):
            return data  # the field's own check says what is wrong
        netloc = parts.netloc.rpartition("@")[2]
        stripped = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
        password = SecretValue(unquote(parts.password), url.reference)
        return {**data, "base_url": SecretValue(stripped, url.reference),
                "auth": {"type": "basic", "username": unquote(parts.username or ""),
                         "password": password}}

    @field_validator("base_url", mode="before")
    @classmethod
    def _no_credentials_left_in_url(cls, value: Any) -> Any:
        if not isinstance(value, str) or "@" not in value:
            return value
        try:
            parts = urlsplit(value)
        except ValueError:
            return value
        if parts.password is not None and isinstance(value, SecretValue):
            raise ValueError("the URL carries credentials and target.auth is set too: "
                             "give them in one place")
        if parts.password is not None:
            raise ValueError("expected the password in the URL as a reference, like "
                             "http://user:${env:CRM_PASSWORD}@host: secrets are never written "
                             "in the file, which ends up in git and in tickets")
        return value

    def model_post_init(self, __context: Any) -> None:
        self._origins = frozenset({origin_of(self.base_url)})
        for name, value in self.headers.items():
            if _SECRET_HEADER.search(name):  # written in the file, but still not for outputs
                redact.register(value)

    @property
    def credential_origins(self) -> frozenset[Origin]:
        """Origins this target's credentials may be sent to (fixed at validation)."""
        return self._origins

    def with_credential_origins(self, origins: Iterable[Origin]) -> Target:
        """A copy whose credentials may also go to ``origins`` (ones the config names for them)."""
        copy = self.model_copy()
        copy._origins = self._origins | frozenset(origins)
        return copy

    def anonymous(self) -> Target:
        """A copy that sends no credentials and no ``headers`` (``/probe`` of any target).

        Named credentials go too, and ``is_anonymous`` tells crmpulse.auth not to fetch the
        profile's own (an operation that needs one fails instead of being sent).
        """
        copy = self.model_copy(update={"auth": NoAuth(type="none"), "headers": {}, "credentials": {}})
        copy._anonymous = True
        return copy

    @property
    def is_anonymous(self) -> bool:
        return self._anonymous


# -- SLOs ------------------------------------------------------------------------------


class SLO(Model):
    name: Name
    kind: Literal["availability", "latency", "sync_lag"]
    objective: Percent
    window: PositiveDuration = 30 * 86400.0
    threshold: PositiveDuration | None = Field(None, validate_default=True,
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
    headers: HeaderFields = {}
    body: str | None = None
    auth: bool = True


class _CheckBase(Model):
    name: Name
    interval: PositiveDuration = 30.0
    timeout: PositiveDuration = 10.0
    jitter: Ratio = 10.0
    any_target: bool = Field(
        False, description="/probe may name any target for this module, which is then probed "
        "without credentials (blackbox_exporter's model)")
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
    port: int | None = Field(None, ge=1, le=65535, description="default: the target's port "
                             "when it is https and host is not given, else 443")


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


# -- access checks (crmpulse.probes.access) ----------------------------------------------
# Each acts as named credentials (target.credentials) besides the target's own, creates
# its own marked records with synthetic values, and reports paths and counts only.

#: What an access check's record is made of unless its create says otherwise: synthetic
#: values only, the nonce so the record can be recognized in any response, the marker so
#: a sweep can find it.
SYNTHETIC_RECORD: dict[str, Any] = {
    "first_name": "Crmpulse", "last_name": "Access {{ nonce }}", "email": "{{ email }}",
    "tags": ["{{ marker }}"]}


class AccessCall(Model):
    """One operation an access check calls, with its variables (templates allowed)."""

    operation: str
    with_: dict[str, Any] = Field({}, alias="with")
    pages: int = Field(1, ge=1, le=100, description="pages to read when it paginates")


class AccessCreate(Model):
    """The record an access check creates for itself, deleted after the run."""

    operation: str = "create_contact"
    with_: dict[str, Any] = Field(SYNTHETIC_RECORD, alias="with")


class IsolationRead(AccessCall):
    within: Duration = Field(0.0, description="how long the owner may take to see its own "
                             "record on this path (a search index that lags behind writes)")


class DeniedCall(AccessCall):
    status: list[Annotated[int, Field(ge=400, le=499)]] = Field(
        [403, 404], min_length=1, description="what a refusal answers")


class HiddenFields(AccessCall):
    fields: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(min_length=1)


class Allowance(Model):
    detector: str
    path: str = Field(description='a normalized JSON path ("$.data[*].email"), "$..email" for the '
                      'key at any depth, "csv.<column>" for a CSV column, or "$body" for other text')

    @field_validator("path")
    @classmethod
    def _a_path(cls, value: str) -> str:
        if not re.fullmatch(r"\$[^\s]*|csv\.[A-Za-z0-9_]+", value):
            raise ValueError(f'expected a path like "$.data[*].email", "$..email" or "csv.email", '
                             f'got "{value}"')
        return value


class _AccessBase(_CheckBase):
    interval: PositiveDuration = 300.0
    timeout: PositiveDuration = 60.0


class IsolationCheck(_AccessBase):
    """A record ``owner`` creates must be invisible to ``observer`` on every read path."""

    kind: Literal["isolation"]
    owner: Name | None = Field(None, description="the credential that creates the record "
                               "(default: target.auth)")
    observer: Name = Field(description="the credential that must not see it (another tenant)")
    create: AccessCreate = AccessCreate()
    reads: dict[Literal["get", "list", "search", "global_search", "export", "report"],
                IsolationRead] = Field(min_length=1)


class RoleScopeCheck(_AccessBase):
    """A restricted credential is refused what it may not do and never sees hidden fields."""

    kind: Literal["role_scope"]
    credential: Name = Field(description="the restricted credential")
    owner: Name | None = Field(None, description="creates the record another owner holds "
                               "(default: target.auth)")
    create: AccessCreate | None = Field(AccessCreate(), description="another owner's record: "
                                        "{{ other_id }}")
    own: AccessCreate | None = Field(None, description="a record the restricted credential "
                                     "creates: {{ own_id }}")
    denied: list[DeniedCall] = []
    hidden_fields: list[HiddenFields] = []

    @model_validator(mode="after")
    def _something_to_judge(self) -> RoleScopeCheck:
        if not self.denied and not self.hidden_fields:
            raise ValueError("give denied operations or hidden_fields (or both)")
        return self


class ExposureCheck(_AccessBase):
    """Responses to ``credential`` hold no personal data beyond what ``allow`` lets through."""

    kind: Literal["exposure"]
    credential: Name | None = Field(None, description="whose responses are scanned "
                                    "(default: target.auth)")
    create: AccessCreate = AccessCreate()
    reads: list[AccessCall] = Field(min_length=1)
    detectors: list[Literal["email", "phone", "card_number", "iban", "national_id"]] = [
        "email", "phone", "card_number", "iban", "national_id"]
    patterns: dict[Name, Regex] = Field({}, description="custom detectors: name -> regex")
    allow: list[Allowance] = []
    scan: Literal["own_records", "whole_response"] = Field(
        "own_records", description="own_records: only the records this check created (those "
        "carrying its nonce); whole_response: everything the read answers")

    @model_validator(mode="after")
    def _allowances_name_detectors(self) -> ExposureCheck:
        known = {*self.detectors, *self.patterns}
        for allowance in self.allow:
            if allowance.detector not in known:
                raise ValueError(f'allow names detector "{allowance.detector}", which this check '
                                 f"does not run ({', '.join(sorted(known))})")
        clash = set(self.patterns) & {"email", "phone", "card_number", "iban", "national_id"}
        if clash:
            raise ValueError(f"patterns may not reuse a built-in detector's name: {', '.join(sorted(clash))}")
        return self


class RevocationCheck(_AccessBase):
    """A revoked token is refused: one the check revokes itself, or one an admin revoked."""

    kind: Literal["revocation"]
    credential: Name = Field(description="with revoke: an OAuth2 credential the check fetches a "
                             "fresh token for and revokes; without: a credential already revoked")
    revoke: AccessCall | None = Field(None, description="the operation that revokes a token "
                                      "({{ token }}); without it the credential must be refused now")
    read: AccessCall = Field(description="a request the token must be refused on")
    within: PositiveDuration = Field(30.0, description="refused this soon after revocation")
    refused_status: list[Annotated[int, Field(ge=400, le=499)]] = Field([401, 403], min_length=1)


class BruteforceCheck(_AccessBase):
    """Wrong passwords against a canary account are throttled or lock it within ``attempts``."""

    kind: Literal["bruteforce"]
    interval: PositiveDuration = 3600.0
    credential: Name = Field(description="the canary's credential (oauth2_password or basic) in "
                             "target.credentials")
    account: str = Field(min_length=1, description="the canary's username, written out: the check "
                         "refuses to run unless it is the credential's")
    attempts: int = Field(10, ge=1, le=100, description="throttled or locked within this many "
                          "wrong passwords")
    throttled_status: list[Annotated[int, Field(ge=400, le=599)]] = [429, 423]
    login: AccessCall | None = Field(None, description="an operation that signs in with "
                                     "{{ username }} and {{ password }} (a sign-in form's endpoint); "
                                     "without it an oauth2_password credential signs in at its token "
                                     "URL and a basic one through read")
    read: AccessCall | None = Field(None, description="basic credentials without login: the request "
                                    "that signs in")


#: Check kinds that act as named credentials (crmpulse.probes.access).
ACCESS_CHECKS = (IsolationCheck, RoleScopeCheck, ExposureCheck, RevocationCheck, BruteforceCheck)


def access_paths(check: Any) -> list[str]:
    """The ``path`` label values an access check reports (contract.ACCESS_HOLDS); [] for others."""
    if isinstance(check, IsolationCheck):
        return list(check.reads)
    if isinstance(check, RoleScopeCheck):
        return ([c.operation for c in check.denied]
                + [f"fields:{c.operation}" for c in check.hidden_fields])
    if isinstance(check, ExposureCheck):
        return list(dict.fromkeys(c.operation for c in check.reads))
    if isinstance(check, RevocationCheck):
        return ["revoke" if check.revoke is not None else "revoked"]
    if isinstance(check, BruteforceCheck):
        return ["login"]
    return []

Check = Annotated[HTTPCheck | JourneyCheck | TLSCheck | ProtectionCheck | IsolationCheck
                  | RoleScopeCheck | ExposureCheck | RevocationCheck | BruteforceCheck,
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


class WebhookSignature(Model):
    """How the CRM signs deliveries: an HMAC-SHA256 of the raw body, in a header.

    The secret comes from the config (``secret``), from the subscribe response
    (``secret_from``), or, with neither, crmpulse makes one per subscription and gives
    it to the subscribe operation as ``{{ webhook_secret }}``.
    """

    header: str = Field(pattern=r"^[A-Za-z0-9-]{1,64}$", description="e.g. X-Hub-Signature-256")
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str = Field("", max_length=32, description='text before the digest, e.g. "sha256="')
    secret: Secret | None = None
    secret_from: JSONPathStr | None = Field(None, description="where the subscribe response "
                                            "carries the signing secret")

    @model_validator(mode="after")
    def _one_secret(self) -> WebhookSignature:
        if self.secret is not None and self.secret_from is not None:
            raise ValueError("give secret or secret_from, not both")
        return self


class SyncWebhook(Model):
    subscribe: Step | None = Field(None, description="operation that subscribes the probe's "
                                  "receiver ({{ url }} is its address); its cleanup unsubscribes")
    url: URL | None = Field(None, description="where the CRM must deliver events (default: the "
                            "exporter's listen address + /-/webhook/<pair>)")
    match: JSONPathStr = Field("$.data.id", description="where an event carries the record id")
    signature: WebhookSignature | None = Field(
        None, description="verify deliveries; without it, any delivery to the receiver counts")

    @model_validator(mode="after")
    def _secret_has_a_source(self) -> SyncWebhook:
        signature = self.signature
        if signature is None or signature.secret is not None:
            return self
        if self.subscribe is None:
            raise ValueError("signature needs a secret: without a subscribe operation, give "
                             "signature.secret")
        if signature.secret_from is None and "webhook_secret" not in {
                name.split(".")[0] for name, _ in placeholders(self.subscribe.with_)}:
            raise ValueError("signature has no secret: pass {{ webhook_secret }} (made by "
                             "crmpulse) in subscribe.with, or give secret or secret_from")
        return self


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
    interval: PositiveDuration = 30.0
    sla: PositiveDuration = 60.0
    sweep_after: Duration = Field(3600.0, description="marked records older than this are orphans")
    sweep_every: PositiveDuration = 600.0
    poll_min: PositiveDuration = 0.025
    poll_max: PositiveDuration = 1.0

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
    listen: Listen = Field(DEFAULT_PROBE_LISTEN, description="host:port the exporter serves on")
    probe_hosts: list[OriginURL] = Field(
        [], description="origins (scheme://host[:port]) /probe?target= may name besides the "
        "target's own; the target's credentials are sent to these too")
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
    p50: PositiveDuration | None = None
    p95: PositiveDuration | None = None
    p99: PositiveDuration | None = None
    error_ratio: Ratio | None = None
    min_rps: float | None = Field(None, ge=0)


class Gates(Model):
    global_: Gate = Field(Gate(), alias="global")
    operations: dict[str, Gate] = {}
    journeys: dict[str, Gate] = {}


class Stage(Model):
    duration: PositiveDuration
    users: int = Field(ge=0)
    spawn_rate: float | None = Field(None, gt=0)
    rps: float | None = Field(None, ge=0)


class Shape(Model):
    kind: Literal["ramp", "step", "spike", "soak", "peak_season"] = "ramp"
    users: int = Field(10, ge=1)
    duration: PositiveDuration = 60.0
    spawn_rate: float = Field(5.0, gt=0)
    rps: float | None = Field(None, gt=0, description="open model: target request rate")
    stages: list[Stage] = []
    csv: str | None = Field(None, description="historical hourly traffic to shape from")
    multiple: float = Field(1.0, gt=0, description="peak as a multiple of normal traffic")


class LoadTestQuota(Model):
    """How a load test keeps within the CRM's API quotas (the profile's ``quota:``; docs/loadtests.md)."""

    max_share: Ratio = Field(20.0, description="refuse a plan whose estimated requests exceed this "
                             "share of what is left of a quota when the run starts")
    floor: Ratio = Field(10.0, description="abort the run when what is left of a quota falls "
                         "under this share of its limit")
    read_with: str | None = Field(None, description="the operation that reads the quota before the "
                                  "run when no quota spec names a limits operation (default: "
                                  "whoami, list_accounts or list_contacts, the first the profile has)")


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
    metrics_listen: ListenOrOff = Field(
        "127.0.0.1:9688", description="host:port of the live metrics, or off")
    think_time: Duration = Field(1.0, description="mean pause between a user's tasks "
                                 "(closed model)")
    quota: LoadTestQuota = LoadTestQuota()


class Alerting(Model):
    """How generated alerts point people at help."""

    runbook_base_url: str = Field(
        "https://github.com/crmpulse/crmpulse/blob/main/alerts/runbooks",
        description="runbook_url = this + /<AlertName>.md")
    dashboard_url: str | None = Field(
        None, description="Grafana's URL (https://grafana.example.com); when set, every alert "
        "carries a dashboard_url annotation: a link to the panel that shows what fired, over the "
        "alert's time range")
    stall_for: Duration = Field(300.0, description="sync lag above threshold this long: page")
    absent_for: Duration = Field(300.0, description=(
        "no probe results, or fewer checks and sync pairs running than configured (a shard "
        "down), this long: page"))

    @field_validator("dashboard_url", mode="after")
    @classmethod
    def _grafana_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not (value.startswith(("http://", "https://", "/")) and " " not in value):
            raise ValueError(f'expected Grafana\'s URL like "https://grafana.example.com", got "{value}"')
        return value.rstrip("/")


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
    lines: LineMap | None = None  # where each key is in the file, for problems found later

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
        problems += check_callers(config, profile, systems, doc.lines)
    config, more = _check_files(config, path.parent, doc.lines)
    problems += more
    if problems or profile is None:
        raise ConfigError(problems)
    return LoadedConfig(config, profile, path, systems, doc.lines)


def _check_files(config: Config, base_dir: Path, lines: LineMap) -> tuple[Config, list[Problem]]:
    """Files the config names exist and load; TLS paths become absolute (relative to the config)."""
    problems: list[Problem] = []

    def tls(target: Target, where: KeyPath) -> Target:
        spec = target.tls
        paths = {key: resolve(value, base_dir) for key in ("ca_file", "client_cert", "client_key")
                 if (value := getattr(spec, key))}
        if spec.ca_file and (message := ca_problem(paths["ca_file"], spec.ca_file)):
            problems.append(lines.problem((*where, "tls", "ca_file"), message))
        if spec.client_key and not spec.client_cert:
            problems.append(lines.problem((*where, "tls", "client_key"),
                                          "a client_key needs its client_cert"))
        if spec.client_cert and (message := cert_pair_problem(
                paths["client_cert"], paths.get("client_key"), spec.client_cert, spec.client_key)):
            problems.append(lines.problem((*where, "tls", "client_cert"), message))
        if not paths:
            return target
        return target.model_copy(update={"tls": spec.model_copy(update={
            key: str(value) for key, value in paths.items()})})

    target = tls(config.target, ("target",))
    systems = [tls(system, ("systems", i)) for i, system in enumerate(config.systems)]
    shape_csv = config.loadtest.shape.csv
    if shape_csv:
        csv_path = resolve(shape_csv, base_dir)
        located, _ = traffic_csv_problems(csv_path, shape_csv)
        for line, message in located:
            problems.append(lines.problem(("loadtest", "shape", "csv"), message) if line == 0
                            else Problem(str(csv_path), line, "loadtest.shape.csv", message))
    if target is config.target and all(a is b for a, b in zip(systems, config.systems, strict=True)):
        return config, problems
    return config.model_copy(update={"target": target, "systems": systems}), problems


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
        # `authenticate` works with every profile: without the operation it fetches the
        # target's token (OAuth2) or does nothing (credentials that ride with each request)
        if name not in profile.operations and name != "authenticate":
            problems.append(lines.problem(where, _unknown_operation(profile, name)))

    def unique(items: list[Any], section: KeyPath) -> None:
        seen: set[str] = set()
        for i, item in enumerate(items):
            if item.name in seen:
                problems.append(lines.problem((*section, i, "name"),
                                              f'name "{item.name}" is used twice'))
            seen.add(item.name)

    unique(config.slos, ("slos",))
    if config.loadtest.quota.read_with is not None:
        need_op(config.loadtest.quota.read_with, ("loadtest", "quota", "read_with"))
    unique(config.probes.checks, ("probes", "checks"))
    unique(config.probes.sync, ("probes", "sync"))
    for i, check in enumerate(config.probes.checks):
        base: KeyPath = ("probes", "checks", i)
        if isinstance(check, HTTPCheck | ProtectionCheck) and check.operation:
            need_op(check.operation, (*base, "operation"))
        if isinstance(check, JourneyCheck):
            for j, step in enumerate(check.steps):
                need_op(step.operation, (*base, "steps", j, "operation"))
        if isinstance(check, TLSCheck) and check.host is None and \
                not config.target.base_url.lower().startswith("https://"):
            problems.append(lines.problem(
                (*base, "kind"), f"a tls check needs TLS: target.base_url is "
                f"{config.target.base_url.split('://')[0]}://, so give this check a host "
                "(and port) that serves TLS"))
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
    problems += _credential_destinations(config, profile, lines)
    problems += _credential_names(config, profile, lines)
    problems += _access_problems(config, profile, lines)
    if config.target.variables:
        used = {n for op in profile.operations.values() for n, _ in op.variables()}
        used |= {n for credential in profile.credentials.values()
                 for n, _ in placeholders(credential.with_)}
        for name in config.target.variables:
            if name not in used and name not in profile.variables:
                problems.append(lines.problem(("target", "variables", name),
                                              f'no operation of profile {profile.name} uses "{name}"'))
    return problems


def _credential_destinations(config: Config, profile: Profile, lines: LineMap) -> list[Problem]:
    """Absolute URLs that would carry the target's credentials somewhere not configured for them."""
    allowed = set(config.target.credential_origins)
    oauth = isinstance(config.target.auth, OAuth2ClientCredentials | OAuth2Password)
    checks = {c.name: i for i, c in enumerate(config.probes.checks)}
    problems = []
    for kind, name, url, credentials in absolute_urls(config, profile):
        origin = fixed_origin(url)
        if not credentials or origin is None or origin in allowed or (
                oauth and kind == "operation" and name == "authenticate"):
            continue  # (an OAuth2 token request goes where the token URL says)
        where: KeyPath = ("profile",) if kind == "operation" else \
            ("probes", "checks", checks[name], "request", "path")
        problems.append(lines.problem(where, (
            f"{kind} {name} " if kind == "operation" else "") +
            f"sends target {config.target.name}'s credentials to {format_origin(origin)}, which "
            f"is not an origin configured for them ({_origins(allowed)}): give it auth: false, "
            "or reach that API as a system of its own"))
    return problems


def _credential_names(config: Config, profile: Profile, lines: LineMap) -> list[Problem]:
    """Every ``auth: NAME`` of the profile names one credential; OAuth2 knows its token URL."""
    problems: list[Problem] = []
    target = config.target
    named = {**dict.fromkeys(profile.credentials, "profile"), **dict.fromkeys(target.credentials, "target")}
    for name in sorted(set(profile.credentials) & set(target.credentials)):
        problems.append(lines.problem(("target", "credentials", name), (
            f'profile {profile.name} defines a credential "{name}" too: give this one another name')))
    for op_name, op in profile.operations.items():
        if isinstance(op.auth, str) and op.auth not in named:
            known = ", ".join(sorted(named)) or "none"
            problems.append(lines.problem(("target", "credentials") if target.credentials else ("profile",), (
                f'operation {op_name} of profile {profile.name} is sent with credential "{op.auth}", '
                f"which neither target.credentials nor the profile defines (defined: {known})")))
    specs: list[tuple[KeyPath, Any]] = [(("target", "auth"), target.auth)]
    specs += [(("target", "credentials", name), spec) for name, spec in target.credentials.items()]
    for where, spec in specs:
        if isinstance(spec, OAuth2ClientCredentials | OAuth2Password) and not spec.token_url and \
                "authenticate" not in profile.operations:
            problems.append(lines.problem((*where, "type"), (
                f"profile {profile.name} has no authenticate operation to fetch tokens from: "
                "give token_url")))
    return problems


def _access_calls(check: Any) -> list[tuple[KeyPath, str]]:
    """(key path under the check, operation) of every call an access check makes."""
    calls: list[tuple[KeyPath, str]] = []
    for key in ("create", "own", "revoke", "read", "login"):
        call = getattr(check, key, None)
        if call is not None:
            calls.append(((key, "operation"), call.operation))
    if isinstance(check, IsolationCheck):
        calls += [(("reads", path, "operation"), read.operation) for path, read in check.reads.items()]
    if isinstance(check, ExposureCheck):
        calls += [(("reads", i, "operation"), read.operation) for i, read in enumerate(check.reads)]
    if isinstance(check, RoleScopeCheck):
        calls += [(("denied", i, "operation"), call.operation) for i, call in enumerate(check.denied)]
        calls += [(("hidden_fields", i, "operation"), call.operation)
                  for i, call in enumerate(check.hidden_fields)]
    return calls


def _access_credentials(check: Any) -> list[tuple[str, str]]:
    """(key, credential name) of every named credential an access check acts as."""
    return [(key, name) for key in ("owner", "observer", "credential")
            if isinstance(name := getattr(check, key, None), str)]


def _access_problems(config: Config, profile: Profile, lines: LineMap) -> list[Problem]:
    """Access checks name credentials and operations that exist, records they can delete, and
    a bruteforce target that is a canary no other check relies on, named twice on purpose."""
    problems: list[Problem] = []
    credentials = config.target.credentials
    users: dict[str, list[str]] = {}  # credential -> checks acting as it
    for i, check in enumerate(config.probes.checks):
        if not isinstance(check, ACCESS_CHECKS):
            continue
        base: KeyPath = ("probes", "checks", i)
        for key, name in _access_credentials(check):
            users.setdefault(name, []).append(check.name)
            if name not in credentials:
                known = ", ".join(sorted(credentials)) or "none"
                problems.append(lines.problem((*base, key), (
                    f'expected the name of a credential in target.credentials, got "{name}" '
                    f"(defined: {known})")))
        for where, operation in _access_calls(check):
            if operation not in profile.operations:
                problems.append(lines.problem((*base, *where), _unknown_operation(profile, operation)))
        for key in ("create", "own"):
            call = getattr(check, key, None)
            op = profile.operations.get(call.operation) if call is not None else None
            if call is not None and op is not None and op.cleanup is None:
                problems.append(lines.problem((*base, key, "operation"), (
                    f"operation {call.operation} declares no cleanup in profile {profile.name}: "
                    "records a probe creates must be deletable")))
        waits: list[tuple[KeyPath, float]] = []
        if isinstance(check, RevocationCheck) and check.revoke is not None:
            waits.append((("within",), check.within))
        if isinstance(check, IsolationCheck):
            waits += [(("reads", path, "within"), read.within) for path, read in check.reads.items()]
        for where, wait in waits:
            if wait >= check.timeout:
                problems.append(lines.problem((*base, *where), (
                    f"expected less than the check's timeout ({format_duration(check.timeout)}): the "
                    "run must outlast its wait, or it ends as a timeout instead of a verdict")))
        if isinstance(check, RevocationCheck) and check.revoke is not None:
            spec = credentials.get(check.credential)
            if spec is not None and not isinstance(spec, OAuth2ClientCredentials | OAuth2Password):
                problems.append(lines.problem((*base, "credential"), (
                    f"credential {check.credential} is {spec.type}: a check that revokes a token "
                    "fetches a fresh one, so it needs an oauth2_client_credentials or "
                    "oauth2_password credential (without revoke, name a token already revoked)")))
    for i, check in enumerate(config.probes.checks):
        if isinstance(check, BruteforceCheck):
            problems += _canary_problems(config, check, ("probes", "checks", i), users, lines)
    return problems


def _canary_problems(config: Config, check: BruteforceCheck, base: KeyPath,
                     users: dict[str, list[str]], lines: LineMap) -> list[Problem]:
    """A bruteforce check locks an account on purpose: only a canary named twice, used by nothing else."""
    spec = config.target.credentials.get(check.credential)
    if spec is None:
        return []  # reported as an unknown credential
    if not isinstance(spec, OAuth2Password | BasicAuth):
        return [lines.problem((*base, "credential"), (
            f"credential {check.credential} is {spec.type}: a bruteforce check signs in with a "
            "password, so it needs an oauth2_password or basic credential"))]
    problems = []
    if check.account != spec.username:
        problems.append(lines.problem((*base, "account"), (
            f'refusing to lock an account not named explicitly: account is "{check.account}", '
            f'credential {check.credential} signs in as "{spec.username}"; write the canary\'s '
            "username here to confirm it may be locked")))
    own = config.target.auth
    if isinstance(own, OAuth2Password | BasicAuth) and own.username == spec.username:
        problems.append(lines.problem((*base, "account"), (
            f'"{spec.username}" is the target\'s own account: locking it would stop every probe')))
    same = [name for name, other in config.target.credentials.items()
            if getattr(other, "username", None) == spec.username]  # the account, by any name
    others = sorted({name for credential in same for name in users.get(credential, [])
                     if name != check.name})
    if others:
        problems.append(lines.problem((*base, "credential"), (
            f'account "{spec.username}" is also used by {", ".join(others)}: a canary this check '
            "locks must serve nothing else")))
    return problems


def _origins(origins: set[Origin]) -> str:
    return ", ".join(sorted(format_origin(o) for o in origins))


def _unknown_operation(profile: Profile, name: str) -> str:
    close = difflib.get_close_matches(name, list(profile.operations), n=1)
    hint = (f' (did you mean "{close[0]}"?)' if close
            else f" (it has: {', '.join(sorted(profile.operations))})")
    return f'expected an operation of profile {profile.name}, got "{name}"{hint}'

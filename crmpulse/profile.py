"""A CRM's API as data: abstract operations mapped to HTTP requests.

A profile is a YAML file (built-in ones live in ``crmpulse/profiles/``) whose
``operations`` map names such as ``create_contact`` to a method, a path template,
query, headers, a JSON or form body template, the statuses that mean success, what
to extract from the response, and how to follow pagination. Journeys, load tests
and probes are written against operation names, so supporting a new CRM is one file.

Rendering an operation gives a :class:`RenderedRequest` any client can send;
:meth:`Operation.interpret` turns the response into an :class:`OperationResult`. Both
are pure, so the async probes and the Locust load tests share them.

    profile = load_profile("sandbox")
    request = profile.operation("get_contact").render("http://127.0.0.1:8085", {"id": "c1"})
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urljoin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    model_validator,
)

from ._exceptions import ConfigError, OperationError, Problem
from ._types import (
    Duration,
    HeaderFields,
    JSONPathStr,
    Name,
    Regex,
    compile_jsonpath,
    first_match,
    simple_steps,
)
from ._validate import validate_document
from ._yamlfile import LineMap, load_yaml
from .steps import Step
from .templates import (
    BUILTIN_FILTERS,
    MISSING,
    Filters,
    compile_path,
    compile_template,
    filter_names,
    map_filter,
    placeholders,
    syntax_problems,
)
from .units import format_duration

__all__ = [
    "BUILTIN_PROFILES",
    "REQUIRED_OPERATIONS",
    "Extract",
    "Operation",
    "OperationCredential",
    "OperationResult",
    "Profile",
    "QuotaSpec",
    "RenderedRequest",
    "SweepSpec",
    "ThrottleRule",
    "compile_jsonpath",
    "load_profile",
    "loads_json",
]

BUILTIN_DIR = Path(__file__).parent / "profiles"
BUILTIN_PROFILES = sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))

#: Operations every profile must define: the journeys, probes and demo rely on them.
#: (``authenticate`` is optional: a CRM reached with a token alone has no login operation.)
REQUIRED_OPERATIONS = (
    "create_contact", "get_contact", "update_contact", "delete_contact",
    "search_contacts", "list_contacts", "list_accounts", "create_deal", "log_activity",
)


def _check_extractor(value: str) -> str:
    if value in ("status", "body") or value.startswith("header:"):
        return value
    compile_jsonpath(value)
    return value


Extractor = Annotated[str, AfterValidator(_check_extractor)]


def _check_one_group(value: str) -> str:
    if re.compile(value).groups != 1:
        raise ValueError(f"expected a regular expression with one group (the value), got {value!r}")
    return value


class Extract(BaseModel):
    """Where a value is in a response, and optionally the part of it a regex's group picks.

    Written as a string (``$.id``, ``header:Location``, ``status``, ``body``) or as a mapping
    when only part of the text is the value:
    ``{from: "header:OData-EntityId", match: '\\(([0-9a-f-]+)\\)$'}``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    from_: Extractor = Field(alias="from")
    match: Annotated[Regex, AfterValidator(_check_one_group)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        return {"from": data} if isinstance(data, str) else data

    @property
    def in_header(self) -> str | None:
        return self.from_[7:].strip().lower() if self.from_.startswith("header:") else None

    @property
    def needs_json(self) -> bool:
        return self.from_ not in ("status", "body") and self.in_header is None

    def pick(self, value: Any) -> Any:
        """The regex's group of ``value`` (MISSING when it does not match)."""
        if self.match is None or value is MISSING:
            return value
        found = re.search(self.match, value if isinstance(value, str) else str(value))
        return found.group(1) if found else MISSING
_STATUS_RANGE = re.compile(r"[1-5]xx")


def _check_status(value: int | str) -> int | str:
    if isinstance(value, int) and 100 <= value <= 599:
        return value
    if isinstance(value, str) and _STATUS_RANGE.fullmatch(value):
        return value
    raise ValueError(f'expected an HTTP status like 200 or "2xx", got {value!r}')


Status = Annotated[int | str, AfterValidator(_check_status)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True,
                              allow_inf_nan=False)


class Pagination(_Model):
    """How to get the next page: a cursor from the body, a next link, or page/offset numbers."""

    style: Literal["cursor", "link", "page", "offset"]
    items: JSONPathStr = Field(description="where the page's records are, e.g. $.data")
    next: JSONPathStr | None = Field(
        None, description="cursor/link styles: the cursor or next URL in the body "
        "(link style falls back to the Link header)")
    param: str | None = Field(None, description="query parameter that carries the cursor/page/offset")
    in_: Literal["query", "json"] = Field(
        "query", alias="in", description="where param goes: the query string, or a top-level key "
        "of the JSON body (a search that is a POST, like HubSpot's)")
    start: int = Field(1, description="page style: number of the first page")
    page_size: int = Field(50, ge=1, description="offset style: step between pages")


class Cleanup(_Model):
    """How to undo a create: another operation, called with the values the create extracted."""

    operation: str
    with_: dict[str, Any] = Field({}, alias="with")


_CREDENTIAL_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")


def _credential_choice(value: Any) -> bool | str:
    if isinstance(value, bool) or (isinstance(value, str) and _CREDENTIAL_NAME.fullmatch(value)):
        return value
    shown = f'"{value}"' if isinstance(value, str) else repr(value)
    raise ValueError("expected true, false or the name of a credential (lowercase letters, digits "
                     f'and "_", starting with a letter), got {shown}')


CredentialChoice = Annotated[bool | str, BeforeValidator(_credential_choice)]


class ThrottleRule(_Model):
    """A response that means "slow down": a status, and a body pattern when the status is shared."""

    status: Status
    body_regex: Regex | None = Field(None, description="the body must match this too "
                                     "(Salesforce's 403 REQUEST_LIMIT_EXCEEDED)")

    def matches(self, status: int, body: bytes) -> bool:
        if not (self.status == status or (isinstance(self.status, str)
                                          and str(status)[0] == self.status[0])):
            return False
        return self.body_regex is None or re.search(
            self.body_regex, body[:65536].decode("utf-8", "replace")) is not None


class Operation(_Model):
    """One abstract CRM operation as an HTTP request template."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    path: str
    query: dict[str, Any] = {}
    headers: HeaderFields = {}
    json_body: Any = Field(None, alias="json")
    form: dict[str, Any] | None = None
    expect: list[Status] = ["2xx"]
    extract: dict[str, Extract] = {}
    paginate: Pagination | None = None
    cleanup: Cleanup | None = Field(
        None, description="for operations that create a record: how to delete it")
    auth: CredentialChoice = Field(True, description="true: the target's credentials "
                                   "(target.auth); false: none; a name: that named credential")
    description: str = ""

    # name is filled in by Profile so results and Locust stats group by operation
    name: str = Field("", exclude=True)
    _needs_headers: bool = PrivateAttr(True)
    _filters: Filters = PrivateAttr(BUILTIN_FILTERS)
    _throttled: tuple[ThrottleRule, ...] = PrivateAttr(())
    _plan: _Plan | None = PrivateAttr(None)

    @property
    def templates(self) -> list[Any]:
        return [self.path, self.query, self.headers, self.json_body, self.form]

    def variables(self) -> set[tuple[str, bool]]:
        return placeholders(self.templates)

    @property
    def plan(self) -> _Plan:
        """The operation compiled for sending and judging it (made once; Profile makes it at load)."""
        plan = self._plan
        if plan is None:
            plan = _Plan(self)
            object.__setattr__(self, "_plan", plan)
        return plan

    def render(self, base_url: str, variables: dict[str, Any]) -> RenderedRequest:
        """Build the request; raise OperationError when a required variable is missing."""
        plan = self._plan or self.plan
        try:  # in this order, so the first missing variable named is the same as ever
            path = plan.path(variables)
            query = plan.query(variables) if plan.query is not None else {}
            headers = plan.headers(variables) if plan.headers is not None else {}
            body = plan.json(variables) if plan.json is not None else None
            form = plan.form(variables) if plan.form is not None else None
        except OperationError as exc:
            raise OperationError(f"operation {self.name}: {exc}") from None
        if path.startswith(("http://", "https://")):
            url = path
        else:  # plain concatenation: urljoin is slow on a hot path, and paths are relative
            url = base_url.rstrip("/") + "/" + path.lstrip("/")
        return RenderedRequest(
            operation=self.name, method=self.method, url=url, params=query,
            headers={k: str(v) for k, v in headers.items()} if headers else {},
            json=body, form=form, auth=self.auth)

    def accepts(self, status: int) -> bool:
        for expected in self.expect:
            if expected == status or (isinstance(expected, str)
                                      and str(status)[0] == expected[0]):
                return True
        return False

    def throttled(self, status: int, body: bytes) -> bool:
        """Whether the CRM answered "slow down" (the profile's ``throttled`` rules)."""
        return any(rule.matches(status, body) for rule in self._throttled)

    def interpret(self, status: int, headers: Mapping[str, str], body: bytes) -> OperationResult:
        """Turn a response into an OperationResult: success, extracted values, next page."""
        plan = self._plan or self.plan
        result = OperationResult(operation=self.name, status=status)
        if status not in plan.accepted and str(status)[0] not in plan.accepted_classes:
            result.ok = False
            expected = ", ".join(str(e) for e in self.expect)
            result.message = f"{self.name}: expected status {expected}, got {status}"
            if self.throttled(status, body):
                # a quota or rate limit, not a broken login: Salesforce's daily limit is a 403
                result.reason, result.throttled = "status", True
                result.message = f"throttled: {result.message}"
                result.retry_after = _retry_after(headers)
            else:
                result.reason = "auth" if status in (401, 403) else "status"
            return result
        document: Any = None
        if plan.needs_json:  # parsed only when a value is extracted from it or a page follows
            try:
                document = loads_json(body) if body else None
            except ValueError:
                result.ok = False
                result.reason = "assertion"
                result.message = (f"{self.name}: expected a JSON body, "
                                  f"got {len(body)} bytes of other content")
                return result
        lower_headers = ({k.lower(): v for k, v in headers.items()} if self._needs_headers
                         else {})
        for name, spec, extractor, header, steps in plan.extract:
            if extractor == "status":
                found: Any = status
            elif extractor == "body":
                found = body.decode("utf-8", "replace")
            elif header is not None:
                found = lower_headers.get(header)
                if found is None:
                    return result.fail("assertion",
                                       f"{self.name}: expected header {extractor[7:]}, none sent")
            elif steps is not None:  # a plain path ($.data[0].id): first_match's walk, inlined
                found = document
                for step in steps:
                    if isinstance(step, int):
                        if not isinstance(found, list) or step >= len(found):
                            found = MISSING
                            break
                    elif not isinstance(found, dict) or step not in found:
                        found = MISSING
                        break
                    found = found[step]
            else:
                # A value that is absent is simply not extracted (an empty search is a
                # valid answer); the step that needs it fails when it tries to save it.
                found = first_match(extractor, document)
            if spec.match is not None:
                found = spec.pick(found)
            if found is not MISSING:
                result.values[name] = found
        if self.paginate is not None:
            items = first_match(self.paginate.items, document)
            if not isinstance(items, list):
                return result.fail("assertion", f"{self.name}: expected a list at {self.paginate.items}")
            result.items = items
            result.next_page = self._next_page(document, lower_headers, result.items)
        return result

    def _next_page(self, document: Any, headers: dict[str, str], items: list[Any]) -> NextPage | None:
        p = self.paginate
        assert p is not None
        if p.style in ("cursor", "link"):
            value = None
            if p.next:
                value = first_match(p.next, document)
                value = None if value is MISSING else value
            if value is None and p.style == "link":
                value = _link_next(headers.get("link", ""))
            if value in (None, ""):
                return None
            if p.style == "link":
                return NextPage(url=str(value))
            return NextPage(params={p.param or "cursor": value})
        if not items:
            return None
        return NextPage(advance=1 if p.style == "page" else p.page_size)


class _Plan:
    """An operation compiled once: its templates as functions, what judging a reply needs.

    Load tests send an operation thousands of times a second; this keeps the template
    parsing, the walk of its trees and the look-ups of its settings out of every request.
    The results are the same as rendering and interpreting from the model each time.
    """

    __slots__ = ("accepted", "accepted_classes", "extract", "form", "headers", "json", "needs_json",
                 "path", "query")

    def __init__(self, op: Operation) -> None:
        filters = op._filters
        self.path = compile_path(op.path, filters)
        self.query = compile_template(op.query, filters) if op.query else None
        self.headers = compile_template(op.headers, filters) if op.headers else None
        self.json = compile_template(op.json_body, filters) if op.json_body is not None else None
        self.form = compile_template(op.form, filters) if op.form is not None else None
        self.accepted = frozenset(e for e in op.expect if isinstance(e, int))
        self.accepted_classes = frozenset(e[0] for e in op.expect if isinstance(e, str))
        self.needs_json = any(e.needs_json for e in op.extract.values()) or op.paginate is not None
        # (name, spec, extractor, lower-case header or None, steps of a plain JSON path or None)
        self.extract = tuple((name, spec, spec.from_, spec.in_header,
                              simple_steps(spec.from_) if spec.needs_json else None)
                             for name, spec in op.extract.items())


@dataclass
class NextPage:
    """Where the next page is: extra query params, a whole URL, or a page/offset step."""

    params: dict[str, Any] = field(default_factory=dict)
    url: str | None = None
    advance: int = 0


@dataclass
class RenderedRequest:
    """A request ready to send with any HTTP client.

    ``auth`` says which credentials to add: True the target's, False none, a name one of
    the named credentials (``target.credentials`` or the profile's ``credentials``).
    """

    operation: str
    method: str
    url: str
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None
    form: dict[str, Any] | None = None
    auth: bool | str = True
    content: str | bytes | None = None

    def next(self, page: NextPage, paginate: Pagination) -> RenderedRequest:
        """The request for the page after this one."""
        in_body = paginate.in_ == "json" and isinstance(self.json, dict)
        params: dict[str, Any] = dict(self.json) if in_body else dict(self.params)
        url = self.url
        if page.url:
            url = urljoin(self.url, page.url)
            params = {}
        elif page.advance:
            key = paginate.param or ("page" if paginate.style == "page" else "offset")
            first = paginate.start if paginate.style == "page" else 0
            params[key] = int(params.get(key, first)) + page.advance
        params.update(page.params)
        if in_body and not page.url:
            return RenderedRequest(self.operation, self.method, url, dict(self.params),
                                   dict(self.headers), params, self.form, self.auth)
        return RenderedRequest(self.operation, self.method, url, params, dict(self.headers),
                               self.json, self.form, self.auth)


@dataclass
class OperationResult:
    """What an operation's response meant. ``reason`` is a bounded label when not ok."""

    operation: str
    status: int = 0
    ok: bool = True
    reason: str = ""
    message: str = ""
    values: dict[str, Any] = field(default_factory=dict)
    items: list[Any] | None = None
    next_page: NextPage | None = None
    elapsed: float = 0.0
    pages: int = 1
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    throttled: bool = False  # the CRM said "slow down" (429, or a profile's throttled rule)
    retry_after: float | None = None  # seconds, when it said how long

    def fail(self, reason: str, message: str) -> OperationResult:
        self.ok, self.reason, self.message = False, reason, message
        return self


class SweepSpec(_Model):
    """Find records carrying a marker (``{{ marker }}``) and delete each one."""

    operation: str = Field(description="a paginated list operation filtered by the marker")
    with_: dict[str, Any] = Field({}, alias="with")
    delete: str = Field(description="the operation that deletes one listed record")
    delete_with: dict[str, Any] = Field({"id": "{{ id }}"}, description="its variables, "
                                        "rendered with the listed record's fields")
    pages: int = Field(50, ge=1, le=10_000)


class OperationCredential(_Model):
    """A named credential whose token an operation of the profile fetches, and renews.

    For an API that wants, say, a short-lived JWT instead of the personal access token:
    ``operation`` is called (with its own ``auth``, often the target's token), ``token``
    says where the answer carries the new token, ``expires_in`` its lifetime in seconds
    (else ``lifetime``); the token is sent as ``header: prefix + token``, reused until
    ``refresh_before`` its expiry, and fetched again after a 401.
    """

    type: Literal["operation"]
    operation: str
    with_: dict[str, Any] = Field({}, alias="with")
    token: Extract = Field(description="where the answer carries the token, e.g. $.token")
    expires_in: Extract | None = Field(None, description="its lifetime in seconds")
    lifetime: Duration = Field(3600.0, description="when expires_in is not given or not found")
    header: str = Field("Authorization", pattern=r"^[A-Za-z0-9-]{1,64}$")
    prefix: str = Field("Bearer ", max_length=32)
    refresh_before: Duration = 30.0


QuotaValue = Extract | int


def _scalar(value: Any) -> Any:
    if isinstance(value, str | int | float | bool):
        return value
    raise ValueError(f"expected text, a number or true/false, got {_kind(value)}")


def _kind(value: Any) -> str:
    return "a list" if isinstance(value, list) else "a mapping" if isinstance(value, dict) else \
        "nothing" if value is None else type(value).__name__


MapValue = Annotated[Any, AfterValidator(_scalar)]


class QuotaSpec(_Model):
    """Where the CRM says how much of one API quota is spent (crmpulse reads it; see docs).

    Either from the headers of every response (each value a ``header:NAME`` extractor,
    with ``match`` to pick a number out of it), or from a limits ``operation`` whose body
    the values are JSONPaths into. ``limit`` may be a fixed number when the CRM never says.
    """

    name: Name
    window: Duration | None = Field(None, description="the quota's window (24h, 5m), as documented")
    operation: str | None = Field(None, description="a limits operation (else: response headers)")
    used: QuotaValue | None = None
    remaining: QuotaValue | None = None
    limit: QuotaValue
    resets_at: Extract | None = Field(None, description="when the window resets (ISO 8601 or unix)")
    every: Duration = Field(300.0, description="with an operation: read it at most this often")
    load_test: bool = Field(True, description="load tests keep within this quota (its share and "
                            "floor); false for a limit the load test's own app or user has to itself")

    @model_validator(mode="after")
    def _readable(self) -> QuotaSpec:
        if self.used is None and self.remaining is None:
            raise ValueError("a quota needs used or remaining (with limit)")
        if self.every < 10:
            raise ValueError(f'every: expected at least "10s" (each read spends quota too), '
                             f'got "{format_duration(self.every)}"')
        if self.operation is None:
            for key in ("used", "remaining", "limit", "resets_at"):
                value = getattr(self, key)
                if isinstance(value, Extract) and value.in_header is None:
                    raise ValueError(f"{key}: without an operation, quota values come from "
                                     f'response headers: expected "header:NAME", got "{value.from_}"')
        return self

    def read(self, headers: Mapping[str, str], document: Any = None) -> QuotaReading | None:
        """What one response says about this quota; None when it says nothing."""
        lower = {k.lower(): v for k, v in headers.items()}

        def value(spec: QuotaValue | None) -> Any:
            if spec is None:
                return None
            if isinstance(spec, int):
                return spec
            header = spec.in_header
            found = lower.get(header, MISSING) if header is not None else (
                first_match(spec.from_, document) if document is not None else MISSING)
            found = spec.pick(found)
            return None if found is MISSING else found

        def number(spec: QuotaValue | None) -> float | None:
            found = value(spec)
            if isinstance(found, bool) or found is None:
                return None
            text = str(found).replace(",", "").strip()
            if len(text) > 40 or not text.isascii() or "_" in text:
                return None  # float() also reads "1_000" and non-ASCII digits
            try:
                figure = float(text)
            except ValueError:
                return None
            return figure if figure == figure and abs(figure) != float("inf") else None

        limit, used, remaining = number(self.limit), number(self.used), number(self.remaining)
        if limit is None or (used is None and remaining is None):
            return None
        if used is None and remaining is not None:
            used = max(0.0, limit - remaining)
        resets = value(self.resets_at)
        return QuotaReading(self.name, float(used or 0.0), limit, resets)


@dataclass(frozen=True)
class QuotaReading:
    name: str
    used: float
    limit: float
    resets_at: Any = None


class Profile(_Model):
    """A CRM described as operations; see docs/profiles.md."""

    name: str
    description: str = ""
    variables: dict[str, Any] = Field({}, description="defaults every operation can use")
    maps: dict[Name, dict[str, MapValue]] = Field(
        {}, description="value maps used as template filters: crmpulse's words -> the CRM's")
    credentials: dict[Name, OperationCredential] = Field(
        {}, description="named credentials an operation fetches (its `auth: NAME` picks one)")
    instance_url: JSONPathStr | None = Field(
        None, description="where a token response names the base URL later requests must "
        "use (Salesforce's $.instance_url); it must be an origin of the target's credentials")
    throttled: list[ThrottleRule] = Field(
        [ThrottleRule(status=429)], description="responses that mean the CRM is throttling")
    quota: list[QuotaSpec] = Field([], description="where the CRM reports its API quotas")
    operations: dict[str, Operation]
    smoke: list[Step] = Field(
        [], description="steps `crmpulse demo` runs to exercise every operation once")
    sweep: list[SweepSpec] = Field(
        [], description="how to find and delete marked records (load-test sweeps)")
    _filters: Filters = PrivateAttr(BUILTIN_FILTERS)

    def model_post_init(self, __context: Any) -> None:
        filters: dict[str, Any] = dict(BUILTIN_FILTERS)
        filters.update({name: map_filter(name, table) for name, table in self.maps.items()})
        self._filters = filters
        throttled = tuple(self.throttled)
        for name, op in self.operations.items():
            object.__setattr__(op, "name", name)
            object.__setattr__(op, "_filters", filters)
            object.__setattr__(op, "_throttled", throttled)
            object.__setattr__(op, "_needs_headers", any(
                e.in_header is not None for e in op.extract.values()) or bool(
                op.paginate and op.paginate.style == "link"))
            object.__setattr__(op, "_plan", _Plan(op))  # with this profile's filters

    @property
    def filters(self) -> Filters:
        """The template filters of this profile: the built-ins and its value maps."""
        return self._filters

    def operation(self, name: str) -> Operation:
        try:
            return self.operations[name]
        except KeyError:
            raise OperationError(f"profile {self.name} has no operation {name!r}") from None


def load_profile(ref: str, base_dir: Path | None = None) -> Profile:
    """Load a built-in profile by name or a user's profile file; raise ConfigError."""
    if ref in BUILTIN_PROFILES and not ref.endswith((".yaml", ".yml")):
        path, display = BUILTIN_DIR / f"{ref}.yaml", f"<builtin profile {ref}>"
    else:
        path = Path(ref).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        display = str(path)
    doc, problems = load_yaml(path, display)
    if doc is None:
        raise ConfigError(problems)
    profile, more = validate_document(Profile, doc)
    problems += more
    declared = doc.data.get("operations") if isinstance(doc.data, dict) else None
    if isinstance(declared, dict):
        for name in REQUIRED_OPERATIONS:
            if name not in declared:
                problems.append(doc.lines.problem(("operations",),
                                                  f"required operation {name} is missing"))
    if profile is not None:
        problems += _template_syntax(profile, doc.lines)
        problems += _references(profile, doc.lines)
        for name, op in profile.operations.items():
            if op.cleanup and op.cleanup.operation not in profile.operations:
                problems.append(doc.lines.problem(
                    ("operations", name, "cleanup", "operation"),
                    f'expected an operation of this profile, got "{op.cleanup.operation}"'))
        for i, spec in enumerate(profile.sweep):
            for key, name in (("operation", spec.operation), ("delete", spec.delete)):
                if name not in profile.operations:
                    problems.append(doc.lines.problem(
                        ("sweep", i, key), f'expected an operation of this profile, got "{name}"'))
        for i, step in enumerate(profile.smoke):
            if step.operation not in profile.operations and step.operation != "authenticate":
                problems.append(doc.lines.problem(
                    ("smoke", i, "operation"),
                    f'expected an operation of this profile, got "{step.operation}"'))
    if problems or profile is None:
        raise ConfigError(problems)
    return profile


def _template_syntax(profile: Profile, lines: LineMap) -> list[Problem]:
    """A malformed placeholder anywhere in the profile (``{{ id``) is refused at load."""
    return [lines.problem(where, message) for path, tree in _trees(profile)
            for where, message in syntax_problems(tree, path)]


def _references(profile: Profile, lines: LineMap) -> list[Problem]:
    """Names a profile uses that must exist in it: filters (maps), credentials' operations."""
    problems: list[Problem] = []
    known = set(profile.filters)
    for name in profile.maps:
        if name in BUILTIN_FILTERS:
            problems.append(lines.problem(("maps", name), f'"{name}" is a built-in filter; '
                                          "give the map another name"))
    for where, tree in _trees(profile):
        for name in sorted(filter_names(tree) - known):
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f'did you mean "{close[0]}"?' if close else f"known: {', '.join(sorted(known))}"
            problems.append(lines.problem(where, f'unknown filter "{name}" ({hint}; a value map '
                                          "is declared under maps:)"))
    for name, credential in profile.credentials.items():
        op = profile.operations.get(credential.operation)
        if op is None:
            problems.append(lines.problem(("credentials", name, "operation"),
                                          f'expected an operation of this profile, got '
                                          f'"{credential.operation}"'))
        elif op.auth == name:
            problems.append(lines.problem(("credentials", name, "operation"),
                                          f"operation {credential.operation} fetches credential "
                                          f"{name} and cannot itself be sent with it"))
        elif isinstance(op.auth, str) and op.auth in profile.credentials:
            problems.append(lines.problem(("credentials", name, "operation"),
                                          f"operation {credential.operation} is sent with credential "
                                          f"{op.auth}, itself fetched by an operation: fetch tokens "
                                          "with the target's credentials or a target.credentials one"))
    for i, spec in enumerate(profile.quota):
        if spec.operation is not None and spec.operation not in profile.operations:
            problems.append(lines.problem(("quota", i, "operation"), f"expected an operation of "
                                          f'this profile, got "{spec.operation}"'))
    return problems


def _trees(profile: Profile) -> list[tuple[tuple[str | int, ...], Any]]:
    trees: list[tuple[tuple[str | int, ...], Any]] = []
    for name, op in profile.operations.items():
        trees += [(("operations", name, "path"), op.path), (("operations", name, "query"), op.query),
                  (("operations", name, "headers"), op.headers), (("operations", name, "json"), op.json_body),
                  (("operations", name, "form"), op.form)]
        if op.cleanup:
            trees.append((("operations", name, "cleanup", "with"), op.cleanup.with_))
    for name, credential in profile.credentials.items():
        trees.append((("credentials", name, "with"), credential.with_))
    for i, spec in enumerate(profile.sweep):
        trees += [(("sweep", i, "with"), spec.with_), (("sweep", i, "delete_with"), spec.delete_with)]
    for i, step in enumerate(profile.smoke):
        trees.append((("smoke", i, "with"), step.with_))
    return trees


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds form), else None."""
    for key, value in headers.items():
        if key.lower() == "retry-after":
            try:
                seconds = float(str(value).strip())
            except ValueError:
                return None
            return seconds if 0 <= seconds <= 86400 else None
    return None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# json.loads(body, parse_constant=...) builds a new decoder on every call; this one is
# built once, and loads_json does what json.loads does around it.
_DECODER = json.JSONDecoder(parse_constant=_no_constant)


def loads_json(body: bytes | str) -> Any:
    """Parse JSON strictly: NaN and Infinity, which Python's json accepts, are refused.

    Raises ValueError for anything that is not JSON, including JSON nested deeper than
    Python's parser goes (a CRM's ``[[[[...`` would otherwise raise RecursionError).
    """
    try:
        if isinstance(body, str):
            if body.startswith("\ufeff"):
                raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", body, 0)
            return _DECODER.decode(body)
        if not isinstance(body, bytes | bytearray):
            return json.loads(body, parse_constant=_no_constant)  # its TypeError, as before
        return _DECODER.decode(body.decode(json.detect_encoding(body), "surrogatepass"))
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _link_next(header: str) -> str | None:
    for part in header.split(","):
        match = re.search(r'<([^>]+)>\s*;\s*rel="?next"?', part)
        if match:
            return match.group(1)
    return None

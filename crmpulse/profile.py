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

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urljoin

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr

from ._exceptions import ConfigError, OperationError, Problem
from ._types import JSONPathStr, compile_jsonpath, first_match
from ._validate import validate_document
from ._yamlfile import LineMap, load_yaml
from .steps import Step
from .templates import MISSING, placeholders, render, render_path, syntax_problems

__all__ = [
    "BUILTIN_PROFILES",
    "REQUIRED_OPERATIONS",
    "Operation",
    "OperationResult",
    "Profile",
    "RenderedRequest",
    "SweepSpec",
    "compile_jsonpath",
    "load_profile",
    "loads_json",
]

BUILTIN_DIR = Path(__file__).parent / "profiles"
BUILTIN_PROFILES = sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))

#: Operations every profile must define: the journeys, probes and demo rely on them.
REQUIRED_OPERATIONS = (
    "authenticate", "create_contact", "get_contact", "update_contact", "delete_contact",
    "search_contacts", "list_contacts", "list_accounts", "create_deal", "log_activity",
)


def _check_extractor(value: str) -> str:
    if value in ("status", "body") or value.startswith("header:"):
        return value
    compile_jsonpath(value)
    return value


Extractor = Annotated[str, AfterValidator(_check_extractor)]
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
    start: int = Field(1, description="page style: number of the first page")
    page_size: int = Field(50, ge=1, description="offset style: step between pages")


class Cleanup(_Model):
    """How to undo a create: another operation, called with the values the create extracted."""

    operation: str
    with_: dict[str, Any] = Field({}, alias="with")


class Operation(_Model):
    """One abstract CRM operation as an HTTP request template."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    path: str
    query: dict[str, Any] = {}
    headers: dict[str, str] = {}
    json_body: Any = Field(None, alias="json")
    form: dict[str, Any] | None = None
    expect: list[Status] = ["2xx"]
    extract: dict[str, Extractor] = {}
    paginate: Pagination | None = None
    cleanup: Cleanup | None = Field(
        None, description="for operations that create a record: how to delete it")
    auth: bool = Field(True, description="send the target's credentials")
    description: str = ""

    # name is filled in by Profile so results and Locust stats group by operation
    name: str = Field("", exclude=True)
    _needs_headers: bool = PrivateAttr(True)

    def variables(self) -> set[tuple[str, bool]]:
        return placeholders([self.path, self.query, self.headers, self.json_body, self.form])

    def render(self, base_url: str, variables: dict[str, Any]) -> RenderedRequest:
        """Build the request; raise OperationError when a required variable is missing."""
        try:
            path = render_path(self.path, variables)
            query = render(self.query, variables) if self.query else {}
            headers = render(self.headers, variables) if self.headers else {}
            body = render(self.json_body, variables) if self.json_body is not None else None
            form = render(self.form, variables) if self.form is not None else None
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

    def interpret(self, status: int, headers: Mapping[str, str], body: bytes) -> OperationResult:
        """Turn a response into an OperationResult: success, extracted values, next page."""
        result = OperationResult(operation=self.name, status=status)
        if not self.accepts(status):
            result.ok = False
            result.reason = "auth" if status in (401, 403) else "status"
            expected = ", ".join(str(e) for e in self.expect)
            result.message = f"{self.name}: expected status {expected}, got {status}"
            return result
        needs_json = any(e not in ("status", "body") and not e.startswith("header:")
                         for e in self.extract.values()) or self.paginate is not None
        document: Any = None
        if needs_json:
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
        for name, extractor in self.extract.items():
            if extractor == "status":
                result.values[name] = status
            elif extractor == "body":
                result.values[name] = body.decode("utf-8", "replace")
            elif extractor.startswith("header:"):
                value = lower_headers.get(extractor[7:].strip().lower())
                if value is None:
                    return result.fail("assertion",
                                       f"{self.name}: expected header {extractor[7:]}, none sent")
                result.values[name] = value
            else:
                # A value that is absent is simply not extracted (an empty search is a
                # valid answer); the step that needs it fails when it tries to save it.
                found = first_match(extractor, document)
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


@dataclass
class NextPage:
    """Where the next page is: extra query params, a whole URL, or a page/offset step."""

    params: dict[str, Any] = field(default_factory=dict)
    url: str | None = None
    advance: int = 0


@dataclass
class RenderedRequest:
    """A request ready to send with any HTTP client; ``auth`` says whether to add credentials."""

    operation: str
    method: str
    url: str
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None
    form: dict[str, Any] | None = None
    auth: bool = True
    content: str | bytes | None = None

    def next(self, page: NextPage, paginate: Pagination) -> RenderedRequest:
        """The request for the page after this one."""
        params = dict(self.params)
        url = self.url
        if page.url:
            url = urljoin(self.url, page.url)
            params = {}
        elif page.advance:
            key = paginate.param or ("page" if paginate.style == "page" else "offset")
            first = paginate.start if paginate.style == "page" else 0
            params[key] = int(params.get(key, first)) + page.advance
        params.update(page.params)
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


class Profile(_Model):
    """A CRM described as operations; see docs/profiles.md."""

    name: str
    description: str = ""
    variables: dict[str, Any] = Field({}, description="defaults every operation can use")
    operations: dict[str, Operation]
    smoke: list[Step] = Field(
        [], description="steps `crmpulse demo` runs to exercise every operation once")
    sweep: list[SweepSpec] = Field(
        [], description="how to find and delete marked records (load-test sweeps)")

    def model_post_init(self, __context: Any) -> None:
        for name, op in self.operations.items():
            object.__setattr__(op, "name", name)
            object.__setattr__(op, "_needs_headers", any(
                e.startswith("header:") for e in op.extract.values()) or bool(
                op.paginate and op.paginate.style == "link"))

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
            if step.operation not in profile.operations:
                problems.append(doc.lines.problem(
                    ("smoke", i, "operation"),
                    f'expected an operation of this profile, got "{step.operation}"'))
    if problems or profile is None:
        raise ConfigError(problems)
    return profile


def _template_syntax(profile: Profile, lines: LineMap) -> list[Problem]:
    """A malformed placeholder anywhere in the profile (``{{ id``) is refused at load."""
    trees: list[tuple[tuple[str | int, ...], Any]] = []
    for name, op in profile.operations.items():
        trees += [(("operations", name, "path"), op.path), (("operations", name, "query"), op.query),
                  (("operations", name, "headers"), op.headers), (("operations", name, "json"), op.json_body),
                  (("operations", name, "form"), op.form)]
        if op.cleanup:
            trees.append((("operations", name, "cleanup", "with"), op.cleanup.with_))
    for i, spec in enumerate(profile.sweep):
        trees += [(("sweep", i, "with"), spec.with_), (("sweep", i, "delete_with"), spec.delete_with)]
    for i, step in enumerate(profile.smoke):
        trees.append((("smoke", i, "with"), step.with_))
    return [lines.problem(where, message) for path, tree in trees
            for where, message in syntax_problems(tree, path)]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads_json(body: bytes | str) -> Any:
    """Parse JSON strictly: NaN and Infinity, which Python's json accepts, are refused."""
    return json.loads(body, parse_constant=_no_constant)


def _link_next(header: str) -> str | None:
    for part in header.split(","):
        match = re.search(r'<([^>]+)>\s*;\s*rel="?next"?', part)
        if match:
            return match.group(1)
    return None

"""What every resource of the native API shares: errors, input parsing, the endpoint table.

An ``Endpoint`` names its method, path, handler and the models of its query and body;
``routes()`` turns the table into Starlette routes that parse and validate those
inputs before the handler runs, and ``openapi.py`` describes the same table, so the
document is what the server enforces. Problems become ``ApiError``s carrying the
response to send: malformed JSON a 400, invalid fields a 422 in the documented shape
``{"error", "message", "detail": [{"loc": [...], "msg": ...}]}``.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from annotated_types import Ge, Le
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..access import Principal
from ..engine import SINGULAR, Sandbox
from ..middleware import ErrorStyle
from ..store import decode_cursor, encode_cursor
from .models import Body, CursorPage, Explain, Query

__all__ = [
    "ApiError", "Endpoint", "Inputs", "Resource", "error", "forbidden", "invalid", "parse_json",
    "record_endpoints", "routes",
]

ERRORS = ErrorStyle()
MAX_ID = 64


class ApiError(Exception):
    """A request that cannot be served, with the answer that says why."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def error(status: int, code: str, message: str,
          headers: Mapping[str, str] | None = None) -> Response:
    return ERRORS.error(status, code, message, headers)


def invalid(errors: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse({"error": "validation_failed", "message": "the request has invalid fields",
                         "detail": errors}, status_code=422)


# -- JSON bodies --------------------------------------------------------------------------

class MalformedJSON(ValueError):
    """The body is not JSON the sandbox accepts; the message says why."""


def _no_constants(name: str) -> Any:
    raise MalformedJSON(f"the body is not valid JSON: {name} is not a JSON number (RFC 8259)")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise MalformedJSON(f"the body is not valid JSON: {text[:40]} is too large for a number")
    return value


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


# The vendor dialects refuse deeper bodies up front: their handlers recurse after the parser
# (composite references, echoing a body back, re-encoding), and a body the parser just
# managed at 900 levels ended as a 500 there (found by the Salesforce composite fuzzing). No
# payload a dialect serves is deeper than a handful of levels. The native API keeps its own
# answer: the models it validates against say which field is too deep (a 422).
MAX_DEPTH = 64


def _too_deep(value: Any, max_depth: int) -> bool:
    """Whether a parsed JSON value nests lists and objects more than ``max_depth`` levels."""
    level: list[Any] = [value]
    for _ in range(max_depth):
        level = [child for item in level if isinstance(item, dict | list)
                 for child in (item.values() if isinstance(item, dict) else item)]
        if not level:
            return False
    return any(isinstance(item, dict | list) for item in level)


def parse_json(raw: bytes, max_depth: int | None = None) -> Any:
    """Parse a body as strict JSON (RFC 8259): UTF-8, no NaN or Infinity, no lone surrogates.

    Raises ``MalformedJSON`` with a message fit for a client.
    """
    if not raw.strip():
        raise MalformedJSON("the body is empty; expected JSON")
    try:
        text = raw.decode("utf-8")  # the only encoding JSON may travel in (RFC 8259 8.1)
    except UnicodeDecodeError:
        raise MalformedJSON("the body is not valid UTF-8") from None
    try:
        value = json.loads(text, parse_constant=_no_constants, parse_float=_finite)
    except MalformedJSON:
        raise
    except RecursionError:
        raise MalformedJSON("the body is not valid JSON: it is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and integers too long to convert
        raise MalformedJSON(f"the body is not valid JSON: {str(exc)[:200]}") from None
    if max_depth is not None and _too_deep(value, max_depth):
        raise MalformedJSON(f"the body is not valid JSON: it is nested more than {max_depth} levels deep")
    if _SURROGATE_ESCAPE.search(raw):  # a lone surrogate escape is not text anyone can store
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise MalformedJSON("the body holds a lone surrogate escape (\\ud800-\\udfff), "
                                "which is not Unicode text") from None
    return value


async def read_body(request: Request) -> bytes:
    """The whole body; its size is bounded by the body-limit layer as it streams in."""
    try:
        return await request.body()
    except ClientDisconnect:
        raise ApiError(error(400, "bad_request", "the client went away mid-body")) from None


async def json_body(request: Request) -> Any:
    try:
        return parse_json(await read_body(request))
    except MalformedJSON as exc:
        raise ApiError(error(400, "malformed_json", str(exc))) from None


def validate(model: type[BaseModel], data: Any, where: Literal["body", "query"],
             unknown: str = "") -> Any:
    if where == "body" and not isinstance(data, dict):
        raise ApiError(invalid([{"loc": ["body"], "msg": "expected a JSON object"}]))
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(invalid(field_errors(
            exc, model, where, unknown or getattr(model, "unknown", "unknown field")))) from None


def field_errors(exc: ValidationError, model: type[BaseModel], where: str,
                 unknown: str = "unknown field") -> list[dict[str, Any]]:
    """pydantic's errors as the API's: one per field, in words the field's type chose."""
    out: list[dict[str, Any]] = []
    seen: set[Any] = set()
    for problem in exc.errors(include_url=False, include_input=False):
        name = problem["loc"][0] if problem["loc"] else None
        if name in seen:
            continue
        seen.add(name)
        out.append({"loc": [where] if name is None else [where, name],
                    "msg": _message(problem, model, name, unknown)})
    return out


_GENERIC = {
    "string_type": "expected a string", "int_type": "expected a whole number",
    "int_parsing": "expected a whole number", "float_type": "expected a number",
    "bool_type": "expected true or false", "list_type": "expected a list",
    "dict_type": "expected an object", "finite_number": "expected a finite number",
}


def _message(problem: Any, model: type[BaseModel], name: Any, unknown: str) -> str:
    kind = problem["type"]
    if kind == "missing":
        return "field required"
    if kind == "extra_forbidden":
        return unknown
    info = model.model_fields.get(name) if isinstance(name, str) else None
    for meta in info.metadata if info else ():
        if isinstance(meta, Explain):
            return meta.text
    if kind == "crm":
        return str(problem["msg"])
    ctx = problem.get("ctx") or {}
    if kind in ("greater_than_equal", "less_than_equal"):
        low = next((m.ge for m in info.metadata if isinstance(m, Ge)), None) if info else None
        high = next((m.le for m in info.metadata if isinstance(m, Le)), None) if info else None
        if low is not None and high is not None:
            return f"expected {low:g} to {high:g}"
        return f"expected at least {ctx['ge']}" if "ge" in ctx else f"expected at most {ctx['le']}"
    if kind == "string_too_long":
        return f"expected at most {ctx.get('max_length')} characters"
    return _GENERIC.get(kind, str(problem["msg"]))


def query_params(request: Request, model: type[Query]) -> Any:
    """The query string as ``model``: each parameter at most once, none unknown."""
    items = request.query_params.multi_items()
    counts = Counter(key for key, _ in items)
    repeated = [{"loc": ["query", k], "msg": f"expected one value, got {n}"}
                for k, n in counts.items() if n > 1]
    if repeated:
        raise ApiError(invalid(repeated))
    return validate(model, dict(items), "query", model.unknown)


# -- the endpoint table -------------------------------------------------------------------

@dataclass(frozen=True)
class Inputs:
    """What a handler receives: validated query and body, and the path's parameters."""

    request: Request
    query: Any = None
    body: Any = None

    @property
    def path(self) -> Mapping[str, str]:
        return self.request.path_params

    @property
    def principal(self) -> Principal:
        """Who the request authenticated as (set by the credentials layer)."""
        principal: Principal = self.request.state.principal
        return principal


Handler = Callable[[Inputs], Awaitable[Response]]
Access = Literal["api", "token", "admin", "public"]


@dataclass(frozen=True)
class Endpoint:
    """One operation of the API: the route, its inputs, and what it answers."""

    method: str
    path: str
    handler: Handler
    summary: str
    query: type[Query] | None = None
    body: type[BaseModel] | None = None
    access: Access = "api"
    responses: Mapping[int, str] = field(default_factory=dict)
    operation_id: str = ""
    form: bool = False  # the body may also be a form (the OAuth2 token endpoint)


def routes(endpoints: Iterable[Endpoint]) -> list[Route]:
    """One Starlette route per path, dispatching on the method."""
    by_path: dict[str, dict[str, Endpoint]] = {}
    for endpoint in endpoints:
        by_path.setdefault(endpoint.path, {})[endpoint.method] = endpoint
    return [Route(path, _dispatcher(methods), methods=list(methods))
            for path, methods in by_path.items()]


def _dispatcher(methods: dict[str, Endpoint]) -> Callable[[Request], Awaitable[Response]]:
    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        endpoint = methods[method]
        try:
            query = query_params(request, endpoint.query) if endpoint.query else None
            body = None
            if endpoint.body is not None and not endpoint.form:
                body = validate(endpoint.body, await json_body(request), "body")
            return await endpoint.handler(Inputs(request, query, body))
        except ApiError as exc:
            return exc.response
    return dispatch


# -- records: the same list, create, get, update and delete for every kind -----------------

@dataclass(frozen=True)
class Resource:
    """A kind of record and the models of its inputs."""

    table: str
    create: type[Body]
    patch: type[Body] | None  # None: records of this kind cannot be changed
    filters: type[Query]
    references: Mapping[str, str] = field(default_factory=dict)  # field -> table it points into
    paging: Literal["cursor", "page"] = "cursor"
    can_delete: bool = True


def forbidden(message: str) -> Response:
    return error(403, "forbidden", message)


def record_endpoints(sb: Sandbox, res: Resource) -> list[Endpoint]:
    """``GET|POST /api/v1/<table>`` and ``GET|PATCH|DELETE /api/v1/<table>/{id}``.

    Every read sees only what the reader's tenant and role allow (``sb.access``): other
    tenants' records and, for a restricted user, other owners' records are a 404, like
    records that do not exist. A restricted user may not delete (403) nor read or write
    the fields its role hides.
    """
    one = SINGULAR[res.table]
    collection, item = f"/api/v1/{res.table}", f"/api/v1/{res.table}/{{id}}"
    access = sb.access

    def check_references(values: Mapping[str, Any], who: Principal) -> None:
        missing = [{"loc": ["body", key], "msg": f"no such {SINGULAR[table]}"}
                   for key, table in res.references.items()
                   if values.get(key) is not None and not visible(table, values[key], who)]
        if missing:
            raise ApiError(invalid(missing))

    def visible(table: str, record_id: str, who: Principal) -> dict[str, Any] | None:
        record = sb.get(table, record_id) if len(record_id) <= MAX_ID else None
        return record if record is not None and access.sees(who, "get", record) else None

    def check_fields(values: Mapping[str, Any], who: Principal) -> None:
        hidden = sorted(access.hidden(who, res.table) & values.keys())
        if hidden:
            raise ApiError(forbidden(f"your role may not write {', '.join(hidden)}"))

    def not_found(record_id: str) -> Response:
        shown = record_id if len(record_id) <= MAX_ID else record_id[:MAX_ID] + "..."
        return error(404, "not_found", f"no {one} {shown}")

    async def list_cursor(inputs: Inputs) -> Response:
        q: CursorPage = inputs.query
        after = decode_cursor(q.cursor) if q.cursor else None
        chosen = q.model_dump(exclude={"limit", "cursor"}, exclude_none=True)
        who = inputs.principal
        rows, last = sb.store.select(res.table, {**chosen, **access.scope(who, "list")}, q.limit, after)
        return JSONResponse({"data": [sb.public(res.table, r, who) for r in rows],
                             "next_cursor": encode_cursor(last) if last else None})

    async def list_pages(inputs: Inputs) -> Response:
        q = inputs.query
        who = inputs.principal
        rows, total = sb.store.page(res.table, q.page, q.per_page, access.scope(who, "list"))
        return JSONResponse({"data": [sb.public(res.table, r, who) for r in rows], "page": q.page,
                             "per_page": q.per_page, "total": total})

    async def create(inputs: Inputs) -> Response:
        values = inputs.body.model_dump()
        who = inputs.principal
        check_fields(inputs.body.model_dump(exclude_unset=True), who)
        check_references(values, who)
        if res.table == "activities" and values.get("occurred_at") is None:
            values["occurred_at"] = datetime.now().astimezone().isoformat(timespec="seconds")
        record = sb.create(res.table, values, who.user)
        return JSONResponse(sb.public(res.table, record, who), status_code=201,
                            headers={"Location": f"{collection}/{record['id']}"})

    async def get(inputs: Inputs) -> Response:
        record_id = inputs.path["id"]
        record = sb.get(res.table, record_id) if len(record_id) <= MAX_ID else None
        who = inputs.principal
        if record is None or not access.sees(who, "get", record):
            return not_found(record_id)
        return JSONResponse(sb.public(res.table, record, who))

    async def update(inputs: Inputs) -> Response:
        record_id = inputs.path["id"]
        who = inputs.principal
        record = sb.get(res.table, record_id) if len(record_id) <= MAX_ID else None
        if record is None or not access.can_write(who, record):
            return not_found(record_id)
        values = inputs.body.model_dump(exclude_unset=True)
        check_fields(values, who)
        check_references(values, who)
        changed = sb.update(res.table, record_id, values)
        return JSONResponse(sb.public(res.table, changed, who)) if changed else not_found(record_id)

    async def delete(inputs: Inputs) -> Response:
        record_id = inputs.path["id"]
        who = inputs.principal
        record = sb.get(res.table, record_id) if len(record_id) <= MAX_ID else None
        if record is None or not access.can_write(who, record):
            return not_found(record_id)
        if not access.can_delete(who):
            return forbidden(f"your role may not delete {res.table}")
        sb.delete(res.table, record_id)
        return Response(status_code=204)

    plural = res.table
    lister = list_cursor if res.paging == "cursor" else list_pages
    out = [
        Endpoint("GET", collection, lister, f"List {plural}", query=res.filters,
                 responses={200: f"a page of {plural}"}, operation_id=f"list_{plural}"),
        Endpoint("POST", collection, create, f"Create a {one}", body=res.create,
                 responses={201: f"the new {one}"}, operation_id=f"create_{one}"),
        Endpoint("GET", item, get, f"Get a {one}", responses={200: f"the {one}", 404: "no such id"},
                 operation_id=f"get_{one}"),
    ]
    if res.patch is not None:
        out.append(Endpoint("PATCH", item, update, f"Change some fields of a {one}", body=res.patch,
                            responses={200: f"the changed {one}", 404: "no such id"},
                            operation_id=f"update_{one}"))
    if res.can_delete:
        out.append(Endpoint("DELETE", item, delete, f"Delete a {one}",
                            responses={204: "deleted", 403: "your role may not delete",
                                       404: "no such id"},
                            operation_id=f"delete_{one}"))
    return out

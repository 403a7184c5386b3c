"""HubSpot's CRM v3 endpoints (research/hubspot.md sections 2-8).

    GET|POST         /crm/v3/objects/{type}            list (limit, after, properties,
                                                       associations, archived) | create: 201
    POST             /crm/v3/objects/{type}/search     filterGroups, sorts, query: {total, results}
    GET|PATCH|DELETE /crm/v3/objects/{type}/{id}       read (idProperty=email) | 200 | 204
    GET              /crm/v3/owners[/{id}]             the account's users
    GET              /crm/v3/pipelines/deals           the default pipeline and its stages
    GET              /account-info/v3/api-usage/daily/private-apps, /account-info/v3/details

``{type}`` is a name or a type id (``0-1``). Records are ``{id, properties, createdAt,
updatedAt, archived}`` with string values, properties without a value left out. A
DELETE archives: ``archived=true`` lists what was deleted since the last reset (the
sandbox keeps the last 1,000 of each object per account). Search on contacts reads the
search index, so a new contact is found only after the sync lag, as HubSpot's search
lags writes; search on the other objects reads the store. Access: records of another
account (portal) do not exist for a token; a token's scopes decide what it may call
(403 ``MISSING_SCOPES``); HubSpot applies no owner filter to API tokens, so neither does
this dialect.
"""

from __future__ import annotations

import json
import math
import uuid
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ...access import Principal, User
from ...api.common import MAX_DEPTH, MalformedJSON, parse_json, read_body
from ...engine import Sandbox
from ...quota import DailyWindow
from ...store import decode_cursor, encode_cursor
from ..common import origin
from ..fields import Field, ObjectMap
from ..query import And, Cmp, Node, Not, Or, QueryError, matches, order_sql, to_sql
from .auth import HubSpotAuth, hs_error
from .limits import HubSpotMeter
from .objects import (
    ASSOCIATIONS,
    DEFAULTS,
    OBJECTS,
    SEARCHABLE,
    STAGE_LABELS,
    from_wire_id,
    iso,
    object_named,
    owner_id,
    portal_id,
    to_wire,
)

__all__ = ["Crm"]

SCOPE_OF = {"contacts": "contacts", "tasks": "contacts", "notes": "contacts", "companies": "companies",
            "deals": "deals", "leads": "leads"}
OPERATORS = {"EQ": "eq", "NEQ": "ne", "LT": "lt", "LTE": "le", "GT": "gt", "GTE": "ge", "IN": "in",
             "NOT_IN": "notin", "HAS_PROPERTY": "has", "NOT_HAS_PROPERTY": "nothas",
             "CONTAINS_TOKEN": "contains", "NOT_CONTAINS_TOKEN": "notcontains", "BETWEEN": "between"}
JSON_TYPE = "application/json;charset=utf-8"


class Failed(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def ok(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=JSON_TYPE,
                        headers={"X-HubSpot-Correlation-Id": str(uuid.uuid4())})


def not_found() -> Failed:
    return Failed(hs_error(404, "resource not found"))


def invalid(problems: list[tuple[str, str, str]], portal: int) -> Failed:
    """400 VALIDATION_ERROR for (property, code, message) triples, in HubSpot's double form."""
    inner = [{"isValid": False, "message": m, "error": c, "name": p, "localizedErrorMessage": m,
              "portalId": portal}
             for p, c, m in problems]
    return Failed(hs_error(400, f"Property values were not valid: {json.dumps(inner)}", "VALIDATION_ERROR",
                           errors=[{"message": m, "code": c, "context": {"propertyName": [p]}}
                                   for p, c, m in problems]))


def bad_input(message: str) -> Failed:
    return Failed(hs_error(400, message, "VALIDATION_ERROR"))


def _ms_or_iso(text: str) -> datetime | None:
    try:
        if (text.isascii() and text.isdigit()) and len(text) <= 16:
            return datetime.fromtimestamp(int(text) / 1000, UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None


class Crm:
    def __init__(self, sb: Sandbox, auth: HubSpotAuth, meter: HubSpotMeter) -> None:
        self.sb, self.auth, self.meter = sb, auth, meter
        self.archive: dict[tuple[str, str], deque[dict[str, Any]]] = {}
        sb.on_reset.append(self.archive.clear)

    # -- helpers ------------------------------------------------------------------------

    def object(self, name: str) -> ObjectMap:
        found = object_named(name)
        if found is None:
            raise bad_input(f"Unable to infer object type from: {name[:100]}")
        return found

    def need(self, who: Principal, obj: ObjectMap | str, write: bool) -> None:
        kind = obj if isinstance(obj, str) else SCOPE_OF[obj.name]
        access = "write" if write else "read"
        scope = kind if kind == "oauth" or "." in kind else f"crm.objects.{kind}.{access}"
        if not self.auth.allowed(who, scope, self.sb.faults.widen_role):
            raise Failed(hs_error(
                403, "This app hasn't been granted all required scopes to make this call. Read more about "
                "required scopes here: https://developers.hubspot.com/scopes.", "MISSING_SCOPES",
                errors=[{"message": "One or more of the following scopes are required.",
                         "context": {"requiredGranularScopes": [scope]}}],
                links={"scopes": "https://developers.hubspot.com/scopes"}))

    def shown(self, f: Field) -> bool:
        return not f.sensitive or f.column in self.sb.access.exposed()

    def render(self, obj: ObjectMap, record: dict[str, Any], props: list[str] | None,
               associations: list[str] | None = None, archived_at: str | None = None) -> dict[str, Any]:
        names = props if props is not None else list(DEFAULTS[obj.name])
        properties = {}
        for name in names:
            f = obj.field(name)
            if f is None or not self.shown(f):
                continue  # unknown property names are ignored
            value = to_wire(f, f.get(record), self.sb.users_by_id)
            if value is not None:
                properties[f.name] = value
        out: dict[str, Any] = {"id": to_wire(obj.key, record["id"], self.sb.users_by_id),
                               "properties": properties, "createdAt": iso(record.get("created_at")),
                               "updatedAt": iso(record.get("updated_at") or record.get("created_at")),
                               "archived": archived_at is not None}
        if archived_at is not None:
            out["archivedAt"] = archived_at
        if associations:
            linked = {kind: {"results": results} for kind in associations
                      if (results := self.associated(obj, record, kind))}
            if linked:
                out["associations"] = linked
        return out

    def associated(self, obj: ObjectMap, record: dict[str, Any], kind: str) -> list[dict[str, str]]:
        target = object_named(kind)
        if target is None:
            return []
        singular = {"contacts": "contact", "companies": "company", "deals": "deal", "tasks": "task",
                    "notes": "note", "leads": "lead"}
        label = f"{singular[obj.name]}_to_{singular[target.name]}"
        ids: list[str] = []
        for (source, _), (dest, column) in ASSOCIATIONS.items():  # this record points at the target
            if source == obj.name and dest == target.name and record.get(column):
                ids = [record[column]]
                break
        else:
            for (source, _), (dest, column) in ASSOCIATIONS.items():  # the target points at this record
                if source == target.name and dest == obj.name:
                    rows = self.sb.store.find(target.table, f"{column} = ? AND tenant_id = ?"
                                              + (f" AND ({target.where})" if target.where else ""),
                                              [record["id"], record.get("tenant_id")], limit=500)
                    ids = [r["id"] for r in rows]
                    break
            if obj.name == "leads" and target.name == "contacts":
                ids = [c for c in [(record.get("extra") or {}).get("contact")] if c]
        return [{"id": to_wire(target.key, i, self.sb.users_by_id) or "", "type": label}
                for i in dict.fromkeys(ids)]

    def properties_param(self, request: Request) -> list[str] | None:
        raw = request.query_params.get("properties")
        return [p.strip() for p in raw.split(",") if p.strip()][:200] if raw else None

    def lookup(self, obj: ObjectMap, raw_id: str, who: Principal, request: Request, path: str = "get"
               ) -> dict[str, Any]:
        prop = request.query_params.get("idProperty")
        record = None
        if prop and prop not in ("hs_object_id", "id"):
            f = obj.field(prop)
            if f is None or f.column is None or prop != "email":
                raise bad_input(f"{prop[:80]} is not a unique property of {obj.name}")
            scope = self.sb.access.scope(who, "get")
            rows = self.sb.store.find(obj.table, " AND ".join([f"{f.column} = ? COLLATE NOCASE",
                                                                *(f"{k} = ?" for k in scope)]),
                                      [raw_id, *scope.values()], limit=1)
            record = rows[0] if rows else None
        else:
            native = from_wire_id(raw_id, obj.table)
            if native is None:
                raise Failed(hs_error(404, "Object not found.  objectId are usually numeric.",
                                      "OBJECT_NOT_FOUND",
                                      context={"id": [raw_id[:80]]}))
            record = self.sb.get(obj.table, native)
        if record is None or not obj.member(record):
            raise not_found()
        allowed = self.sb.access.can_write(who, record) if path == "write" else \
            self.sb.access.sees(who, "get", record)
        if not allowed:
            raise not_found()
        return record

    async def body(self, request: Request) -> Any:
        try:
            return parse_json(await read_body(request), MAX_DEPTH)
        except MalformedJSON as exc:
            raise bad_input(f"Invalid input JSON on line 1, column 1: {exc}") from None

    # -- values -------------------------------------------------------------------------

    def parse(self, obj: ObjectMap, props: Any, who: Principal, creating: bool) -> dict[str, Any]:
        portal = portal_id(who.user.tenant)
        if not isinstance(props, dict):
            raise bad_input("Invalid input JSON: properties must be an object of strings")
        out: dict[str, Any] = {}
        problems: list[tuple[str, str, str]] = []
        for name, raw in props.items():
            f = obj.field(name)
            if f is None or not self.shown(f):
                problems.append((name[:100], "PROPERTY_DOESNT_EXIST",
                                 f'Property "{name[:100]}" does not exist'))
                continue
            if not f.writable or f.derived:
                problems.append((name, "READ_ONLY_VALUE",
                                 f"{name} is a read only property; its value cannot be set."))
                continue
            try:
                out[f.name] = self.value(f, raw, who)
            except ValueError as exc:
                problems.append((name, *exc.args))
        if creating:
            problems += [(f.name, "REQUIRED_PROPERTY", f"{f.name} is required")
                         for f in obj.fields if f.required and out.get(f.name) is None]
        if problems:
            raise invalid(problems, portal)
        return out

    def value(self, f: Field, raw: Any, who: Principal) -> Any:
        if raw is None or raw == "":
            return None  # an empty string clears a property
        if isinstance(raw, bool):
            text = "true" if raw else "false"
        elif isinstance(raw, int | float | str):
            text = raw if isinstance(raw, str) else (str(int(raw)) if float(raw).is_integer() else repr(raw))
        else:
            raise ValueError("INVALID_VALUE", f"{f.name} expects a string value")
        if len(text) > (f.max_length or 65536):
            raise ValueError("INVALID_VALUE", f"{f.name} is longer than {f.max_length or 65536} characters")
        if f.kind == "number":
            try:
                number = float(text)
            except ValueError:
                raise ValueError("INVALID_DOUBLE", f"{text[:80]} is not a valid number") from None
            if not math.isfinite(number) or abs(number) > 1e15:
                raise ValueError("INVALID_DOUBLE", f"{text[:80]} is not a valid number")
            return number
        if f.kind in ("datetime", "date"):
            moment = _ms_or_iso(text)
            if moment is None:
                raise ValueError("INVALID_DATE", f"{text[:80]} is not a valid date")
            moment = moment.astimezone(UTC)
            if f.kind == "date":
                return moment.date().isoformat()
            return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if f.kind == "owner":
            for user in self.sb.users_by_id.values():
                if owner_id(user) == text and user.tenant == who.user.tenant:
                    return user.id
            raise ValueError("INVALID_OPTION", f"{text[:80]} was not one of the allowed options")
        if f.choices is not None and text not in f.choices:
            raise ValueError("INVALID_OPTION", f"{text[:80]} was not one of the allowed options: "
                             f"{', '.join(map(str, f.choices))}")
        if f.name == "email" and ("@" not in text or "." not in text.rsplit("@", 1)[-1] or " " in text):
            raise ValueError("INVALID_EMAIL", f"Email address {text[:80]} is invalid")
        return text

    def associations(self, obj: ObjectMap, raw: Any, who: Principal) -> dict[str, Any]:
        """Store columns the create's ``associations`` set (a contact's company, a task's deal)."""
        if raw is None:
            return {}
        if not isinstance(raw, list) or len(raw) > 100:
            raise bad_input("Invalid input JSON: associations must be a list")
        out: dict[str, Any] = {}
        for item in raw:
            try:
                target_id = str(item["to"]["id"])
                types = [int(t["associationTypeId"]) for t in item["types"]]
            except (KeyError, TypeError, ValueError):
                raise bad_input("Invalid input JSON: each association needs to.id and types") from None
            for type_id in types:
                if obj.name == "leads":
                    target, column = "contacts", "extra.contact"
                elif (obj.name, type_id) in ASSOCIATIONS:
                    target, column = ASSOCIATIONS[(obj.name, type_id)]
                else:
                    raise bad_input(f"{type_id} is not a valid association type from {obj.name}")
                target_obj = OBJECTS[target]
                native = from_wire_id(target_id, target_obj.table)
                record = self.sb.get(target_obj.table, native) if native else None
                if record is None or not target_obj.member(record) or not self.sb.access.sees(who, "get",
                                                                                              record):
                    raise bad_input(f"One or more associations are invalid: no {target} {target_id[:40]}")
                out[column] = native
                if obj.name == "leads":
                    out.update({"first_name": record.get("first_name"), "last_name": record.get("last_name"),
                                "email": record.get("email")})
        return out

    def conflict(self, obj: ObjectMap, email: str | None, who: Principal,
                 record_id: str | None = None) -> None:
        if obj.name != "contacts" or not email:
            return
        rows = self.sb.store.find("contacts", "email = ? COLLATE NOCASE AND tenant_id = ?"
                                  + (" AND id <> ?" if record_id else ""),
                                  [email, who.user.tenant, *([record_id] if record_id else [])], limit=1)
        if rows:
            existing = to_wire(obj.key, rows[0]["id"], {})
            raise Failed(hs_error(409, f"Contact already exists. Existing ID: {existing}",
                                  "CONFLICT"))

    # -- objects ------------------------------------------------------------------------

    async def collection(self, request: Request) -> Response:
        who: Principal = request.state.principal
        try:
            obj = self.object(request.path_params["type"])
            if request.method == "POST":
                return await self.create(obj, request, who)
            return self.listing(obj, request, who)
        except Failed as exc:
            return exc.response

    def listing(self, obj: ObjectMap, request: Request, who: Principal) -> Response:
        self.need(who, obj, write=False)
        params = request.query_params
        limit_text = params.get("limit", "10")
        if not (limit_text.isascii() and limit_text.isdigit()) or not 1 <= int(limit_text) <= 100:
            raise bad_input(f"limit must be a number from 1 to 100, got {limit_text[:20]}")
        limit = int(limit_text)
        props = self.properties_param(request)
        associations = [a.strip() for a in params.get("associations", "").split(",") if a.strip()][:10]
        after_text = params.get("after")
        if params.get("archived") == "true":
            archived = list(self.archive.get((obj.name, who.user.tenant), ()))
            start = int(after_text) if after_text and (after_text.isascii() and after_text.isdigit()) else 0
            page = archived[start:start + limit]
            body: dict[str, Any] = {"results": [self.render(obj, r, props, associations, r["archivedAt"])
                                                for r in page]}
            if start + limit < len(archived):
                body["paging"] = {"next": {"after": str(start + limit)}}
            return ok(body)
        after = decode_cursor(after_text) if after_text else None
        if after_text and after is None:
            raise bad_input(f"after is not a valid paging cursor: {after_text[:40]}")
        scope = self.sb.access.scope(who, "list")
        where = [f"{k} = ?" for k in scope] + ([f"({obj.where})"] if obj.where else [])
        args: list[Any] = list(scope.values())
        if after is not None:
            where.append("rowid > ?")
            args.append(after)
        rows = self.sb.store.find(obj.table, " AND ".join(where), args, limit=limit + 1, rowid=True)
        body = {"results": [self.render(obj, r, props, associations) for r in rows[:limit]]}
        if len(rows) > limit:
            cursor = encode_cursor(rows[limit - 1]["_rowid"])
            link = f"{origin(request)}{request.url.path}?limit={limit}&after={cursor}"
            body["paging"] = {"next": {"after": cursor, "link": link}}
        return ok(body)

    async def create(self, obj: ObjectMap, request: Request, who: Principal) -> Response:
        self.need(who, obj, write=True)
        body = await self.body(request)
        if not isinstance(body, dict):
            raise bad_input("Invalid input JSON: expected an object with properties")
        values = self.parse(obj, body.get("properties", {}), who, creating=True)
        linked = self.associations(obj, body.get("associations"), who)
        if obj.name == "leads" and "extra.contact" not in linked:
            raise bad_input("A lead must be associated with an existing contact")
        self.conflict(obj, values.get("email"), who)
        stored = {**obj.defaults, **obj.to_store(values, obj.defaults.get("extra"))}
        extra = dict(stored.get("extra") or {})
        for key, value in linked.items():
            if key.startswith("extra."):
                extra[key[6:]] = value
            else:
                stored[key] = value
        stored["extra"] = extra
        if obj.table == "activities" and obj.name == "notes" and not stored.get("subject"):
            stored["subject"] = (values.get("hs_note_body") or "Note")[:200]
        owner = self.sb.users_by_id.get(values.get("hubspot_owner_id") or "", who.user)
        record = self.sb.create(obj.table, stored, owner)
        shown = list(dict.fromkeys([*DEFAULTS[obj.name], *values]))
        return ok(self.render(obj, record, shown), 201)

    async def record(self, request: Request) -> Response:
        who: Principal = request.state.principal
        try:
            obj = self.object(request.path_params["type"])
            raw_id = request.path_params["id"]
            if request.method == "GET":
                self.need(who, obj, write=False)
                props = self.properties_param(request)
                associations = [a.strip() for a in request.query_params.get("associations", "").split(",")
                                if a.strip()][:10]
                if request.query_params.get("archived") == "true":
                    for kept in self.archive.get((obj.name, who.user.tenant), ()):
                        if to_wire(obj.key, kept["id"], {}) == raw_id:
                            return ok(self.render(obj, kept, props, associations, kept["archivedAt"]))
                    raise not_found()
                return ok(self.render(obj, self.lookup(obj, raw_id, who, request), props, associations))
            self.need(who, obj, write=True)
            found = self.lookup(obj, raw_id, who, request, "write")
            if request.method == "DELETE":
                self.sb.delete(obj.table, found["id"])
                shelf = self.archive.setdefault((obj.name, who.user.tenant), deque(maxlen=1000))
                shelf.appendleft({**found, "archivedAt": iso(datetime.now(UTC).isoformat())})
                return Response(status_code=204)
            body = await self.body(request)
            if not isinstance(body, dict):
                raise bad_input("Invalid input JSON: expected an object with properties")
            values = self.parse(obj, body.get("properties", {}), who, creating=False)
            required = [f.name for f in obj.fields
                        if f.required and f.name in values and values[f.name] is None]
            if required:
                raise invalid([(n, "REQUIRED_PROPERTY", f"{n} is required") for n in required],
                              portal_id(who.user.tenant))
            self.conflict(obj, values.get("email"), who, found["id"])
            stored = obj.to_store(values, found.get("extra"))
            changed = self.sb.update(obj.table, found["id"], stored) if stored else found
            shown = list(dict.fromkeys([*DEFAULTS[obj.name], *values]))
            return ok(self.render(obj, changed or found, shown))
        except Failed as exc:
            return exc.response

    # -- search -------------------------------------------------------------------------

    def literal(self, who: Principal) -> Callable[[Field, Any], Any]:
        def convert(f: Field, raw: Any) -> Any:
            if raw is None:
                return None
            text = str(raw).lower() if isinstance(raw, bool) else str(raw)
            if f.kind in ("id", "ref"):
                native = from_wire_id(text, f.ref or "contacts")
                if native is None:
                    raise QueryError(f"{text[:40]} is not a valid id for {f.name}", f.name)
                return native
            if f.kind == "owner":
                for user in self.sb.users_by_id.values():
                    if owner_id(user) == text:
                        return user.id
                return "no-such-owner"
            if f.kind == "number":
                try:
                    return float(text)
                except ValueError:
                    raise QueryError(f"{text[:40]} is not a number", f.name) from None
            if f.kind in ("datetime", "date"):
                moment = _ms_or_iso(text)
                if moment is None:
                    raise QueryError(f"{text[:40]} is not a date", f.name)
                moment = moment.astimezone(UTC)
                return moment.date().isoformat() if f.kind == "date" else \
                    moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            return text
        return convert

    def filters(self, obj: ObjectMap, groups: Any) -> Node | None:
        if groups in (None, []):
            return None
        if not isinstance(groups, list) or len(groups) > 5:
            raise bad_input("filterGroups must be a list of at most 5 groups")
        total = 0
        ored: list[Node] = []
        for group in groups:
            filters = group.get("filters") if isinstance(group, dict) else None
            if not isinstance(filters, list) or len(filters) > 10:
                raise bad_input("each filter group needs a list of at most 10 filters")
            total += len(filters)
            anded: list[Node] = []
            for item in filters:
                if not isinstance(item, dict) or not isinstance(item.get("propertyName"), str):
                    raise bad_input("each filter needs a propertyName and an operator")
                name, op = item["propertyName"], OPERATORS.get(str(item.get("operator")))
                f = obj.field(name)
                if op is None:
                    raise bad_input(f"{str(item.get('operator'))[:40]} is not a valid filter operator")
                if f is None or not self.shown(f):
                    raise bad_input("There was a problem with the request: Unable to find property "
                                    f"{name[:80]}")
                if op in ("in", "notin"):
                    values = item.get("values")
                    if not isinstance(values, list) or len(values) > 100:
                        raise bad_input(f"{item['operator']} needs a list of values")
                    anded.append(Cmp(name, op, tuple(values)))
                elif op == "between":
                    anded.append(And((Cmp(name, "ge", item.get("value")), Cmp(name, "le",
                                                                              item.get("highValue")))))
                elif op == "notcontains":
                    anded.append(Not(Cmp(name, "contains", str(item.get("value", "")).strip("*"))))
                elif op == "contains":
                    anded.append(Cmp(name, "contains", str(item.get("value", "")).strip("*")))
                elif op in ("has", "nothas"):
                    anded.append(Cmp(name, op))
                else:
                    anded.append(Cmp(name, op, item.get("value")))
            if anded:
                ored.append(And(tuple(anded)))
        if total > 25:
            raise bad_input("a search may hold at most 25 filters in all")
        return Or(tuple(ored)) if ored else None

    def sorts(self, obj: ObjectMap, raw: Any) -> list[tuple[str, bool, bool | None]]:
        out: list[tuple[str, bool, bool | None]] = []
        if raw is not None and not isinstance(raw, list):
            raise bad_input("sorts must be a list of property names or sort objects")
        for item in raw or []:
            if isinstance(item, str):
                name, descending = item.lstrip("-"), item.startswith("-")
            elif isinstance(item, dict) and isinstance(item.get("propertyName"), str):
                name, descending = item["propertyName"], item.get("direction") == "DESCENDING"
            else:
                raise bad_input("each sort needs a propertyName")
            f = obj.field(name)
            if f is None or not self.shown(f) or (f.derived and f.sql_expr is None):
                raise bad_input(f"Unable to sort by property {name[:80]}")
            out.append((f.name, descending, None))
        return out

    async def search(self, request: Request) -> Response:
        who: Principal = request.state.principal
        try:
            obj = self.object(request.path_params["type"])
            self.need(who, obj, write=False)
            body = await self.body(request)
            if not isinstance(body, dict):
                raise bad_input("Invalid input JSON: expected a search request object")
            limit, after = body.get("limit", 10), body.get("after", "0")
            if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= 200:
                raise bad_input("limit must be a number from 0 to 200")
            after = str(after) if isinstance(after, str | int) and not isinstance(after, bool) else "x"
            if not (after.isascii() and after.isdigit()) or len(after) > 9:
                raise bad_input("after must be a numeric offset")
            offset = int(after)
            if offset + limit > 10_000:
                raise bad_input("The search endpoints are limited to 10,000 total results for any "
                                "given query")
            query = body.get("query", "")
            if not isinstance(query, str) or len(query) > 3000:
                raise bad_input("query must be a string of at most 3000 characters")
            props = body.get("properties")
            if props is not None and (not isinstance(props, list) or not all(isinstance(p,
                                                                                        str) for p in props)):
                raise bad_input("properties must be a list of property names")
            where = self.filters(obj, body.get("filterGroups"))
            order = self.sorts(obj, body.get("sorts"))
            rows, total = self.found(obj, who, where, order, query, offset, limit)
        except (Failed, QueryError) as exc:
            return exc.response if isinstance(exc, Failed) else bad_input(str(exc)).response
        answer: dict[str, Any] = {"total": total, "results": [self.render(obj, r, props) for r in rows]}
        if offset + len(rows) < total and rows:
            answer["paging"] = {"next": {"after": str(offset + len(rows))}}
        return JSONResponse(answer, media_type=JSON_TYPE)  # search answers carry no rate-limit headers

    def found(self, obj: ObjectMap, who: Principal, where: Node | None, order: list[tuple[str, bool,
                                                                                          bool | None]],
              query: str, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        scope = self.sb.access.scope(who, "search")
        literal = self.literal(who)
        if obj.name == "contacts":  # contacts come from the search index, after the sync lag
            pool = self.sb.index.matching(query) if query.strip() else list(self.sb.index.docs.values())
            docs = [d for d in pool
                    if all(d.get(k) == v for k, v in scope.items())]
            if where is not None:
                docs = [d for d in docs if matches(where, obj, d, literal)]
            docs.sort(key=lambda d: d.get("created_at") or "")
            for name, descending, _ in reversed(order):
                f = obj.field(name)
                assert f is not None
                present = [d for d in docs if f.get(d) is not None]
                present.sort(key=lambda d: str(f.get(d)).lower() if f.kind == "string" else f.get(d),
                             reverse=descending)
                docs = present + [d for d in docs if f.get(d) is None]
            return docs[offset:offset + limit], len(docs)
        parts = [f"{k} = ?" for k in scope] + ([f"({obj.where})"] if obj.where else [])
        args: list[Any] = list(scope.values())
        for word in query.split()[:20]:
            columns = SEARCHABLE[obj.name]
            parts.append("(" + " OR ".join(f"{c} LIKE ? ESCAPE '\\'" for c in columns) + ")")
            escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            args += [f"%{escaped}%"] * len(columns)
        if where is not None:
            sql, more = to_sql(where, obj, literal)
            parts.append(sql)
            args += more
        condition = " AND ".join(parts)
        total = self.sb.store.count_where(obj.table, condition, args)
        ordering = order_sql(order, obj) if order else "created_at, rowid"
        rows = self.sb.store.find(obj.table, condition, args, ordering, limit=limit, offset=offset)
        return rows, total

    # -- owners, pipelines, account ---------------------------------------------------------

    def owner(self, user: User) -> dict[str, Any]:
        return {"id": owner_id(user), "email": user.login, "type": "PERSON", "firstName": user.first_name,
                "lastName": user.last_name, "userId": int(owner_id(user)),
                "createdAt": "2026-01-01T00:00:00.000Z",
                "updatedAt": "2026-01-01T00:00:00.000Z", "archived": False, "teams": []}

    async def owners(self, request: Request) -> Response:
        who: Principal = request.state.principal
        try:
            self.need(who, "crm.objects.owners.read", write=False)
        except Failed as exc:
            return exc.response
        email = request.query_params.get("email")
        users = [u for u in self.sb.settings.users if u.tenant == who.user.tenant
                 and (email is None or u.login.lower() == email.lower())]
        if "ownerId" in request.path_params:
            wanted = request.path_params["ownerId"]
            for user in users:
                if owner_id(user) == wanted:
                    return ok(self.owner(user))
            return not_found().response
        return ok({"results": [self.owner(u) for u in users]})

    async def pipelines(self, request: Request) -> Response:
        try:
            self.need(request.state.principal, "deals", write=False)
        except Failed as exc:
            return exc.response
        stages = [{"id": sid, "label": label, "displayOrder": n,
                   "metadata": {"probability": p,
                                "isClosed": "true" if sid.startswith("closed") else "false"},
                   "createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": "2026-01-01T00:00:00.000Z",
                   "archived": False} for n, (sid, label, p) in enumerate(STAGE_LABELS)]
        return ok({"results": [{"id": "default", "label": "Sales Pipeline", "displayOrder": 0,
                                "stages": stages,
                                "createdAt": "2026-01-01T00:00:00.000Z",
                                "updatedAt": "2026-01-01T00:00:00.000Z",
                                "archived": False}]})

    async def usage(self, request: Request) -> Response:
        who: Principal = request.state.principal
        used, limit = self.meter.usage(who.user.tenant)
        return ok({"results": [{"name": "private-apps-api-calls-daily", "usageLimit": limit,
                                "currentUsage": used,
                                "collectedAt": iso(datetime.now(UTC).isoformat()), "fetchStatus": "SUCCESS",
                                "resetsAt": DailyWindow.resets_at().isoformat().replace("+00:00", "Z")}]})

    async def details(self, request: Request) -> Response:
        who: Principal = request.state.principal
        return ok({"portalId": portal_id(who.user.tenant), "timeZone": "Etc/UTC", "companyCurrency": "USD",
                   "additionalCurrencies": [], "utcOffset": "+00:00", "utcOffsetMilliseconds": 0,
                   "uiDomain": "app.hubspot.com", "dataHostingLocation": "na1"})


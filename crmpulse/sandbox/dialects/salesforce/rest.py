"""Salesforce's REST API under ``/services/data/vNN.N/`` (research/salesforce.md 2-7).

    GET            ""                          the resources of this version
    GET            sobjects                    the objects (a short describeGlobal)
    GET|POST       sobjects/{Type}             basic information | create: 201 {id, success, errors}
    GET|PATCH|DELETE sobjects/{Type}/{id}      read (?fields=) | update: 204 | delete: 204
    GET            query?q=SOQL                {totalSize, done, records[, nextRecordsUrl]}
    GET            query/{locator}-{offset}    the next batch
    GET            search?q=SOSL               {searchRecords}
    GET            limits                      DailyApiRequests and friends
    POST           composite                   up to 25 subrequests, allOrNone, @{ref.field}

Every handler is a plain function of a ``Call``, so a composite request runs its
subrequests through the same code inside one transaction. Errors are arrays of
``{"message", "errorCode"[, "fields"]}``. Reads see what the caller's org and role
allow: records of another org, and for a restricted user other owners' records, are
``404 NOT_FOUND`` by id and absent from queries and searches (Salesforce's private
sharing model); a restricted user may not delete (``403 INSUFFICIENT_ACCESS``) and its
field-level security hides ``Phone``. SOQL reads the store directly (Salesforce's
queries are consistent); SOSL searches contacts in the search index, so a new contact
is found only after the sync lag, as Salesforce's search index lags its database.
"""

from __future__ import annotations

import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ...access import Principal, User
from ...engine import Sandbox
from ..fields import Field, ObjectMap
from ..query import Node, QueryError, matches, order_sql, to_sql
from .limits import SalesforceMeter
from .objects import OBJECTS, PREFIX, TABLE_OBJECT, from_wire_id, to_wire, user_id
from .soql import DateLiteral, DateTimeLiteral, Returning, SoqlError, parse_soql, parse_sosl

__all__ = ["LATEST", "OLDEST", "Call", "Rest", "Result", "sf_error", "versions"]

OLDEST, LATEST = 31, 62
NO_BODY = object()
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_REF_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_QUERY = 100_000
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def versions() -> list[dict[str, str]]:
    """Every version served, oldest first, labelled with its release (62.0 is Winter '25)."""
    out = []
    for v in range(OLDEST, LATEST + 1):
        back = LATEST - v  # three releases a year: Winter '25 (62.0), Summer '24, Spring '24, ...
        season = ("Winter", "Summer", "Spring")[back % 3]
        year = (25 if back % 3 == 0 else 24) - back // 3
        out.append({"label": f"{season} '{year:02d}", "url": f"/services/data/v{v}.0", "version": f"{v}.0"})
    return out


@dataclass
class Call:
    """One REST call: from HTTP, or a subrequest of a composite request."""

    method: str
    path: str  # after the version: "sobjects/Contact/003..."
    version: str
    params: dict[str, str]
    principal: Principal
    body: Any = NO_BODY
    batch_size: int = 2000


@dataclass
class Result:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def sf_error(status: int, code: str, message: str, fields: list[str] | None = None) -> Result:
    problem: dict[str, Any] = {"message": message, "errorCode": code}
    if fields is not None:
        problem["fields"] = fields
    return Result(status, [problem])


class Failed(Exception):
    def __init__(self, result: Result) -> None:
        super().__init__(result.status)
        self.result = result


NOT_FOUND = ("NOT_FOUND", "The requested resource does not exist")


def _not_found() -> Failed:
    return Failed(sf_error(404, *NOT_FOUND))


def _query_error(query: str, column: int, message: str, code: str) -> Result:
    column = max(1, min(column, len(query) + 1))
    return sf_error(400, code, f"\n{query}\n{' ' * (column - 1)}^\nERROR at Row:1:Column:{column}\n{message}")


def _no_column(name: str, sobject: str) -> str:
    return (f"No such column '{name}' on entity '{sobject}'. If you are attempting to use a custom field, "
            "be sure to append the '__c' after the custom field name. Please reference your WSDL or the "
            "describe call for the appropriate names.")


class Rest:
    """The REST handlers of one sandbox; ``dispatch`` routes a ``Call`` to them."""

    def __init__(self, sb: Sandbox, meter: SalesforceMeter) -> None:
        self.sb, self.meter = sb, meter
        self.locators: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.routes: list[tuple[re.Pattern[str], dict[str, Callable[..., Result]]]] = [
            (re.compile(r""), {"GET": self.directory}),
            (re.compile(r"sobjects/?"), {"GET": self.describe_global}),
            (re.compile(r"sobjects/(?P<sobject>[^/]+)/?"), {"GET": self.basic_info, "POST": self.create}),
            (re.compile(r"sobjects/(?P<sobject>[^/]+)/(?P<record>[^/]+)"),
             {"GET": self.read, "PATCH": self.update, "DELETE": self.delete}),
            (re.compile(r"query/?"), {"GET": self.query}),
            (re.compile(r"query/(?P<locator>[^/]+)"), {"GET": self.more}),
            (re.compile(r"search/?"), {"GET": self.search}),
            (re.compile(r"limits/?"), {"GET": self.limits}),
            (re.compile(r"composite/?"), {"POST": self.composite}),
        ]

    def dispatch(self, call: Call) -> Result:
        for pattern, methods in self.routes:
            match = pattern.fullmatch(call.path)
            if match is None:
                continue
            handler = methods.get("GET" if call.method == "HEAD" else call.method)
            if handler is None:
                allowed = ",".join(sorted({"HEAD", *methods} if "GET" in methods else set(methods)))
                return sf_error(405, "METHOD_NOT_ALLOWED",
                                f"HTTP Method '{call.method[:20]}' not allowed. Allowed are {allowed}")
            try:
                return handler(call, **match.groupdict())
            except Failed as exc:
                return exc.result
        return sf_error(404, *NOT_FOUND)

    # -- what the caller may see --------------------------------------------------------

    def sobject(self, name: str) -> ObjectMap:
        for obj in OBJECTS.values():
            if obj.name.lower() == name.lower():
                return obj
        raise _not_found()

    def visible_field(self, f: Field, obj: ObjectMap, who: Principal) -> bool:
        if f.sensitive and f.column not in self.sb.access.exposed():
            return False
        return f.column not in self.sb.access.hidden(who, obj.table)

    def field_named(self, obj: ObjectMap, name: str, who: Principal) -> Field | None:
        found = obj.field(name)
        return found if found is not None and self.visible_field(found, obj, who) else None

    def render(self, obj: ObjectMap, record: Mapping[str, Any], call: Call,
               fields: list[Field] | None = None) -> dict[str, Any]:
        sf_id = to_wire(obj.key, record["id"], self.sb.users_by_id)
        out: dict[str, Any] = {"attributes": {
            "type": obj.name, "url": f"/services/data/v{call.version}/sobjects/{obj.name}/{sf_id}"}}
        for f in fields if fields is not None else obj.fields:
            if fields is not None or self.visible_field(f, obj, call.principal):
                out[f.name] = to_wire(f, f.get(record), self.sb.users_by_id)
        return out

    def find_record(self, obj: ObjectMap, raw_id: str, who: Principal, path: str = "get"
                    ) -> dict[str, Any]:
        native = from_wire_id(raw_id, obj.table)
        if native is None:
            if len(raw_id) in (15, 18) and raw_id.isascii() and raw_id.isalnum():
                raise Failed(sf_error(400, "MALFORMED_ID", f"{obj.name} ID: id value of incorrect type: "
                                      f"{raw_id[:18]}", ["Id"]))
            raise Failed(sf_error(404, "NOT_FOUND", "Provided external ID field does not exist or is not "
                                  f"accessible: {raw_id[:80]}"))
        record = self.sb.get(obj.table, native)
        if record is None or not obj.member(record):
            raise _not_found()
        if path == "write":
            if not self.sb.access.can_write(who, record):
                raise _not_found()
        elif not self.sb.access.sees(who, "get", record):
            raise _not_found()
        return record

    # -- resources ------------------------------------------------------------------------

    def directory(self, call: Call) -> Result:
        base = f"/services/data/v{call.version}"
        return Result(200, {name: f"{base}/{name}" for name in
                            ("sobjects", "query", "search", "limits", "composite")})

    def _describe(self, obj: ObjectMap, version: str) -> dict[str, Any]:
        base = f"/services/data/v{version}/sobjects/{obj.name}"
        return {"name": obj.name, "label": obj.name, "keyPrefix": PREFIX[obj.name], "createable": True,
                "deletable": True, "queryable": True, "searchable": True, "updateable": True,
                "urls": {"sobject": base, "rowTemplate": f"{base}/{{ID}}"}}

    def describe_global(self, call: Call) -> Result:
        return Result(200, {"encoding": "UTF-8", "maxBatchSize": 200,
                            "sobjects": [self._describe(o, call.version) for o in OBJECTS.values()]})

    def basic_info(self, call: Call, sobject: str) -> Result:
        return Result(200, {"objectDescribe": self._describe(self.sobject(sobject), call.version),
                            "recentItems": []})

    def limits(self, call: Call) -> Result:
        used, limit = self.meter.usage(call.principal.user.tenant)
        return Result(200, {
            "DailyApiRequests": {"Max": limit, "Remaining": max(0, limit - used)},
            "DailyBulkApiRequests": {"Max": 10000, "Remaining": 10000},
            "DataStorageMB": {"Max": 1024, "Remaining": 1024},
            "FileStorageMB": {"Max": 1024, "Remaining": 1024}})

    # -- records --------------------------------------------------------------------------

    def read(self, call: Call, sobject: str, record: str) -> Result:
        obj = self.sobject(sobject)
        found = self.find_record(obj, record, call.principal)
        fields = None
        if "fields" in call.params:
            fields = []
            for name in (n.strip() for n in call.params["fields"].split(",") if n.strip()):
                f = self.field_named(obj, name, call.principal)
                if f is None:
                    return sf_error(400, "INVALID_FIELD", _no_column(name[:80], obj.name))
                fields.append(f)
        return Result(200, self.render(obj, found, call, fields))

    def create(self, call: Call, sobject: str) -> Result:
        obj = self.sobject(sobject)
        values = self.values(obj, call, creating=True)
        stored = {**obj.defaults, **obj.to_store(values, obj.defaults.get("extra"))}
        if obj.table == "activities" and not stored.get("occurred_at"):
            stored["occurred_at"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        owner = self.sb.users_by_id.get(values.get("OwnerId", ""), call.principal.user)
        record = self.sb.create(obj.table, stored, owner)
        sf_id = to_wire(obj.key, record["id"], self.sb.users_by_id)
        return Result(201, {"id": sf_id, "success": True, "errors": []},
                      {"Location": f"/services/data/v{call.version}/sobjects/{obj.name}/{sf_id}"})

    def update(self, call: Call, sobject: str, record: str) -> Result:
        obj = self.sobject(sobject)
        found = self.find_record(obj, record, call.principal, "write")
        values = self.values(obj, call, creating=False)
        stored = obj.to_store(values, found.get("extra"))
        if stored:
            self.sb.update(obj.table, found["id"], stored)
        return Result(204)

    def delete(self, call: Call, sobject: str, record: str) -> Result:
        obj = self.sobject(sobject)
        found = self.find_record(obj, record, call.principal, "write")
        if not self.sb.access.can_delete(call.principal):
            return sf_error(403, "INSUFFICIENT_ACCESS", "insufficient access rights on object id")
        self.sb.delete(obj.table, found["id"])
        return Result(204)

    def values(self, obj: ObjectMap, call: Call, creating: bool) -> dict[str, Any]:
        """The body's fields as neutral values, or the error Salesforce would answer."""
        body = call.body
        if not isinstance(body, dict):
            token = "START_ARRAY" if isinstance(body, list) else "VALUE_STRING" if isinstance(body, str) \
                else "end-of-input" if body is NO_BODY else "a scalar"
            raise Failed(sf_error(400, "JSON_PARSER_ERROR",
                                  f"Cannot deserialize instance of {obj.name} from {token} token"))
        who = call.principal
        out: dict[str, Any] = {}
        readonly: list[str] = []
        for key, raw in body.items():
            if key == "attributes":
                continue
            if key.lower() == "id":
                raise Failed(sf_error(400, "INVALID_FIELD",
                                      "The Id field should not be specified in the sobject data."))
            f = obj.field(key)
            if f is None or (f.sensitive and f.column not in self.sb.access.exposed()):
                raise Failed(sf_error(400, "INVALID_FIELD",
                                      f"No such column '{key[:80]}' on sobject of type {obj.name}"))
            if (not f.writable or f.derived or f.column in self.sb.access.hidden(who, obj.table)
                    or (f.kind == "owner" and not self.sb.access.can_manage(who))):
                readonly.append(f.name)
                continue
            out[f.name] = self.parse(obj, f, raw, who)
        if readonly:
            raise Failed(sf_error(400, "INVALID_FIELD_FOR_INSERT_UPDATE",
                                  f"Unable to create/update fields: {', '.join(readonly)}. Please check the "
                                  "security settings of this field and verify that it is read/write for "
                                  "your profile or permission set.", readonly))
        required = [f.name for f in obj.fields if f.required and
                    ((creating and out.get(f.name) is None) or (f.name in out and out[f.name] is None))]
        if required:
            raise Failed(sf_error(400, "REQUIRED_FIELD_MISSING",
                                  f"Required fields are missing: [{', '.join(required)}]", required))
        return out

    def parse(self, obj: ObjectMap, f: Field, raw: Any, who: Principal) -> Any:
        def bad(kind: str) -> Failed:
            shown = str(raw)[:80]
            return Failed(sf_error(400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of {kind} from "
                                   f"VALUE_STRING value {shown} or request may be missing a required field"))
        if raw is None:
            return None
        if f.kind == "string":
            if isinstance(raw, bool) or not isinstance(raw, str | int | float):
                raise bad("string")
            text = str(raw)
            if f.max_length and len(text) > f.max_length:
                raise Failed(sf_error(400, "STRING_TOO_LONG", f"{f.name}: data value too large: "
                                      f"{text[:40]}... (max length={f.max_length})", [f.name]))
            if f.name == "Email" and text and not _EMAIL.match(text):
                raise Failed(sf_error(400, "INVALID_EMAIL_ADDRESS", f"Email: invalid email address: "
                                      f"{text[:80]}", ["Email"]))
            if f.choices is not None and text not in f.choices:
                raise Failed(sf_error(400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                                      f"{f.name}: bad value for restricted picklist field: {text[:80]}",
                                      [f.name]))
            return text
        if f.kind in ("number", "int"):
            value: Any = raw
            if isinstance(raw, str):
                try:
                    value = float(raw)
                except ValueError:
                    raise bad("double") from None
            if isinstance(value, bool) or not isinstance(value, int | float) or abs(value) > 1e18 \
                    or value != value:
                raise bad("double")
            if f.kind == "int":
                if float(value) != int(value):
                    raise bad("int")
                return int(value)
            return float(value)
        if f.kind == "bool":
            if isinstance(raw, bool):
                return raw
            if isinstance(raw, str) and raw.lower() in ("true", "false"):
                return raw.lower() == "true"
            raise bad("boolean")
        if f.kind == "date":
            if not isinstance(raw, str) or len(raw) != 10:
                raise bad("date")
            try:
                return date.fromisoformat(raw).isoformat()
            except ValueError:
                raise bad("date") from None
        if f.kind == "datetime":
            try:
                moment = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
            except ValueError:
                raise bad("datetime") from None
            return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if f.kind == "owner":
            user = self.user_of(raw)
            if user is None or user.tenant != who.user.tenant:
                raise Failed(sf_error(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id",
                                      [f.name]))
            return user.id
        if f.kind == "ref":
            target = f.ref or ""
            native = from_wire_id(raw, target) if isinstance(raw, str) else None
            if native is None:
                raise Failed(sf_error(400, "MALFORMED_ID", f"{TABLE_OBJECT[target]} ID: id value of "
                                      f"incorrect type: {str(raw)[:18]}", [f.name]))
            record = self.sb.get(target, native)
            if record is None or record.get("tenant_id") != who.user.tenant:
                raise Failed(sf_error(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id",
                                      [f.name]))
            if not self.sb.access.sees(who, "get", record):
                raise Failed(sf_error(400, "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY",
                                      "insufficient access rights on cross-reference id", [f.name]))
            return native
        raise bad(f.kind)

    def user_of(self, raw: Any) -> User | None:
        if not isinstance(raw, str):
            return None
        for user in self.sb.users_by_id.values():
            if raw in (user_id(user), user_id(user)[:15]):
                return user
        return None

    # -- SOQL ---------------------------------------------------------------------------

    def literal(self, obj: ObjectMap, query: str) -> Callable[[Field, Any], Any]:
        def convert(f: Field, value: Any) -> Any:
            if value is None:
                return None
            kind = f.kind
            if kind == "date":
                if isinstance(value, DateLiteral):
                    return value.value
                if isinstance(value, DateTimeLiteral):
                    return value.value[:10]
            elif kind == "datetime":
                if isinstance(value, DateTimeLiteral):
                    return value.value
                if isinstance(value, DateLiteral):
                    return f"{value.value}T00:00:00.000Z"
            elif kind in ("number", "int"):
                if isinstance(value, int | float) and not isinstance(value, bool):
                    return value
            elif kind == "bool":
                if isinstance(value, bool):
                    return value
            elif kind in ("id", "ref", "owner") and isinstance(value, str):
                if kind == "owner":
                    user = self.user_of(value)
                    if user is not None:
                        return user.id
                else:
                    native = from_wire_id(value, f.ref or obj.table)
                    if native is not None:
                        return native
                raise QueryError(f"invalid ID field: {value[:20]}", f.name)
            elif isinstance(value, str):
                return value
            quoted = "should" if kind in ("string", "id", "ref", "owner") else "should not"
            raise QueryError(f"value of filter criterion for field '{f.name}' must be of type {kind} and "
                             f"{quoted} be enclosed in quotes", f.name)
        return convert

    def query(self, call: Call) -> Result:
        text = call.params.get("q", "")
        if not text.strip():
            return sf_error(400, "MALFORMED_QUERY", "A query string has to be specified")
        if len(text) > MAX_QUERY:
            return sf_error(400, "MALFORMED_QUERY", f"the query is longer than {MAX_QUERY} characters")
        try:
            select = parse_soql(text)
        except SoqlError as exc:
            return _query_error(text, exc.column, str(exc), exc.code)
        obj = next((o for o in OBJECTS.values() if o.name.lower() == select.sobject.lower()), None)
        if obj is None:
            column = text.lower().find(select.sobject.lower(), text.lower().find(" from ")) + 1
            return _query_error(text, column, f"sObject type '{select.sobject[:80]}' is not supported. "
                                "If you are attempting to use a custom object, be sure to append the '__c' "
                                "after the entity name. Please reference your WSDL or the describe call "
                                "for the appropriate names.", "INVALID_TYPE")
        fields: list[Field] = []
        for name in select.fields:
            f = self.field_named(obj, name, call.principal)
            if f is None:
                return _query_error(text, text.find(name) + 1, _no_column(name[:80], obj.name),
                                    "INVALID_FIELD")
            if f not in fields:
                fields.append(f)
        try:
            where, args = self.scope_sql(obj, call.principal, "list")
            if select.where is not None:
                self.check_fields(select.where, obj, call.principal)
                sql, more = to_sql(select.where, obj, self.literal(obj, text))
                where, args = f"{where} AND {sql}", [*args, *more]
            order = order_sql(select.order, obj)
        except QueryError as exc:
            column = exc.pos or (text.find(exc.field) + 1 if exc.field else 1)
            if str(exc).startswith("no such field"):
                return _query_error(text, column, _no_column(str(exc.field)[:80], obj.name), "INVALID_FIELD")
            return _query_error(text, column, str(exc), "INVALID_QUERY_FILTER_OPERATOR")
        total = max(0, self.sb.store.count_where(obj.table, where, args) - select.offset)
        if select.limit is not None:
            total = min(total, select.limit)
        if select.count:
            return Result(200, {"totalSize": total, "done": True, "records": []})
        state = {"table": obj.table, "object": obj.name, "where": where, "args": args, "order": order,
                 "fields": [f.name for f in fields], "offset": select.offset, "total": total,
                 "user": call.principal.user.id, "at": time.time()}
        return self.batch(state, 0, call)

    def batch(self, state: dict[str, Any], position: int, call: Call) -> Result:
        obj = OBJECTS[state["object"]]
        size = min(call.batch_size, state["total"] - position)
        rows = self.sb.store.find(state["table"], state["where"], state["args"], state["order"],
                                  limit=max(size, 0), offset=state["offset"] + position)
        fields = [f for f in (obj.field(n) for n in state["fields"]) if f is not None]
        body: dict[str, Any] = {"totalSize": state["total"], "done": True,
                                "records": [self.render(obj, r, call, fields) for r in rows]}
        after = position + len(rows)
        if after < state["total"] and rows:
            locator = "01g" + "".join(secrets.choice(_ALNUM) for _ in range(15))
            self.locators[locator] = state
            while len(self.locators) > 1000:
                self.locators.popitem(last=False)
            body["done"] = False
            body["nextRecordsUrl"] = f"/services/data/v{call.version}/query/{locator}-{after}"
        return Result(200, body)

    def more(self, call: Call, locator: str) -> Result:
        name, _, position = locator.partition("-")
        state = self.locators.get(name)
        if state is None or state["user"] != call.principal.user.id \
                or not (position.isascii() and position.isdigit()) \
                or time.time() - state["at"] > 900 or int(position) > state["total"]:
            return sf_error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self.batch(state, int(position), call)

    def scope_sql(self, obj: ObjectMap, who: Principal, path: Any) -> tuple[str, list[Any]]:
        scope = self.sb.access.scope(who, path)
        parts = [f"{k} = ?" for k in scope] + ([f"({obj.where})"] if obj.where else [])
        return " AND ".join(parts) or "1", list(scope.values())

    def check_fields(self, node: Node, obj: ObjectMap, who: Principal) -> None:
        """Fields a filter names must be ones the caller may read (field-level security)."""
        from ..query import And, Cmp, Not, Or

        if isinstance(node, And | Or):
            for part in node.parts:
                self.check_fields(part, obj, who)
        elif isinstance(node, Not):
            self.check_fields(node.part, obj, who)
        elif isinstance(node, Cmp) and self.field_named(obj, node.field, who) is None:
            raise QueryError(f"no such field {node.field}", node.field, node.pos)

    # -- SOSL ---------------------------------------------------------------------------

    def search(self, call: Call) -> Result:
        text = call.params.get("q", "")
        if not text.strip():
            return sf_error(400, "MALFORMED_SEARCH", "A search string has to be specified")
        try:
            sosl = parse_sosl(text[:MAX_QUERY])
        except SoqlError as exc:
            return _query_error(text[:2000], exc.column, str(exc), exc.code)
        targets = sosl.returning or [Returning(n) for n in ("Account", "Contact", "Lead", "Opportunity")]
        words = [w for w in re.findall(r"[A-Za-z0-9]+", sosl.words.lower()) if w]
        found: list[dict[str, Any]] = []
        for target in targets:
            obj = next((o for o in OBJECTS.values() if o.name.lower() == target.sobject.lower()), None)
            if obj is None:
                return sf_error(400, "INVALID_TYPE",
                                f"sObject type '{target.sobject[:80]}' is not supported.")
            fields = []
            for name in target.fields or ["Id"]:
                f = self.field_named(obj, name, call.principal)
                if f is None:
                    return sf_error(400, "INVALID_FIELD", _no_column(name[:80], obj.name))
                fields.append(f)
            try:
                rows = self.search_rows(obj, words, target.where, call, text)
            except QueryError as exc:
                code = "INVALID_FIELD" if str(exc).startswith("no such") else "MALFORMED_SEARCH"
                return sf_error(400, code, str(exc))
            limit = min(x for x in (target.limit, sosl.limit, 2000) if x is not None)
            found += [self.render(obj, r, call, fields) for r in rows[:limit]]
        return Result(200, {"searchRecords": found[: sosl.limit or 2000]})

    def search_rows(self, obj: ObjectMap, words: list[str], where: Node | None, call: Call,
                    text: str) -> list[dict[str, Any]]:
        who = call.principal
        scope = self.sb.access.scope(who, "search")
        if where is not None:
            self.check_fields(where, obj, who)
        literal = self.literal(obj, text)
        if obj.table == "contacts":  # contacts come from the search index, after the sync lag
            hits = [d for d in self.sb.index.matching(" ".join(words))
                    if all(d.get(k) == v for k, v in scope.items())]
            if where is not None:
                hits = [d for d in hits if matches(where, obj, d, literal)]
            hits.sort(key=lambda d: (d.get("updated_at") or "", d["id"]), reverse=True)
            return hits
        columns = {"accounts": ("name", "website"), "leads": ("first_name", "last_name", "email", "company"),
                   "deals": ("name",), "activities": ("subject",)}[obj.table]
        sql, args = self.scope_sql(obj, who, "search")
        for word in words:
            sql += " AND (" + " OR ".join(f"{c} LIKE ? ESCAPE '\\'" for c in columns) + ")"
            args += [f"%{word}%"] * len(columns)
        if where is not None:
            more, extra = to_sql(where, obj, literal)
            sql, args = f"{sql} AND {more}", [*args, *extra]
        return self.sb.store.find(obj.table, sql, args, "coalesce(updated_at, created_at) DESC", limit=2000)

    # -- composite --------------------------------------------------------------------------

    def composite(self, call: Call) -> Result:
        body = call.body
        requests = body.get("compositeRequest") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests or not all(isinstance(r, dict) for r in requests):
            return sf_error(400, "JSON_PARSER_ERROR",
                            "compositeRequest must be a non-empty array of subrequests")
        if len(requests) > 25:
            return sf_error(400, "INVALID_BATCH_REQUEST", "Composite request has more than 25 subrequests")
        all_or_none = body.get("allOrNone", False) is True
        refs: dict[str, Any] = {}
        answers: list[dict[str, Any]] = []
        with self.sb.transaction() as tx:
            failed = False
            for sub in requests:
                reference = sub.get("referenceId")
                if not isinstance(reference, str) or not _REF_ID.match(reference) or reference in refs:
                    result = sf_error(400, "INVALID_INPUT", "referenceId must be unique and contain only "
                                      "letters, numbers and underscores, starting with a letter")
                elif all_or_none and failed:
                    result = _halted()
                else:
                    result = self.subrequest(sub, refs, call)
                answers.append({"body": result.body, "httpHeaders": result.headers,
                                "httpStatusCode": result.status,
                                "referenceId": reference if isinstance(reference, str) else None})
                if result.status < 400 and isinstance(reference, str):
                    refs[reference] = result.body
                failed = failed or result.status >= 400
            if all_or_none and failed:
                tx.rollback = True
                for answer in answers:
                    if answer["httpStatusCode"] < 400:
                        answer.update(body=_halted().body, httpHeaders={}, httpStatusCode=400)
        return Result(200, {"compositeResponse": answers})

    def subrequest(self, sub: dict[str, Any], refs: dict[str, Any], call: Call) -> Result:
        method, url = sub.get("method"), sub.get("url")
        if not isinstance(method, str) or not isinstance(url, str) or method.upper() not in (
                "GET", "POST", "PATCH", "DELETE"):
            return sf_error(400, "INVALID_INPUT", "each subrequest needs a method and a url")
        try:
            url = _resolve(url, refs)
            payload = _resolve(sub["body"], refs) if "body" in sub else NO_BODY
        except KeyError as exc:
            return sf_error(400, "PROCESSING_HALTED",
                            f"Invalid reference specified. No value for {exc.args[0]} found.")
        parts = urlsplit(url)
        match = re.fullmatch(r"/services/data/v(\d+)\.0/?(.*)", parts.path)
        if match is None or not OLDEST <= int(match[1]) <= LATEST:
            return sf_error(400, "INVALID_INPUT",
                            f"the url must start with /services/data/vNN.0: {url[:100]}")
        if match[2].startswith("composite"):
            return sf_error(400, "INVALID_INPUT", "a composite request cannot hold another")
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        return self.dispatch(Call(method.upper(), match[2], f"{match[1]}.0", params, call.principal,
                                  payload, call.batch_size))


def _halted() -> Result:
    return sf_error(400, "PROCESSING_HALTED",
                    "The transaction was rolled back since another operation in the same transaction failed.")


_REFERENCE = re.compile(r"@\{([A-Za-z_][A-Za-z0-9_]*)((?:\.[A-Za-z0-9_]+|\[[0-9]+\])*)\}")


def _resolve(value: Any, refs: dict[str, Any]) -> Any:
    """Replace every ``@{ref.path}`` in strings with what an earlier subrequest answered."""
    if isinstance(value, dict):
        return {k: _resolve(v, refs) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, refs) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        if match[1] not in refs:
            raise KeyError(f"{match[1]}{match[2]}")
        found = refs[match[1]]
        for step in re.findall(r"\.([A-Za-z0-9_]+)|\[([0-9]+)\]", match[2]):
            try:
                found = found[step[0]] if step[0] else found[int(step[1])]
            except (KeyError, IndexError, TypeError):
                raise KeyError(f"{match[1]}{match[2]}") from None
        return str(found)

    return _REFERENCE.sub(one, value)

"""The Dataverse Web API under ``/api/data/v9.2/`` (research/dynamics.md sections 2-5, 7, 9).

    GET    /                         the service document: the entity sets
    GET    WhoAmI, WhoAmI()          BusinessUnitId, UserId, OrganizationId
    GET    {set}                     $select $filter $orderby $top $count; odata.maxpagesize
    GET    {set}/$count              the count as text
    POST   {set}                     204 with OData-EntityId, or 201 with the row when
                                     ``Prefer: return=representation``
    GET    {set}({id})               $select; If-None-Match gives 304
    PATCH  {set}({id})               an upsert unless ``If-Match: *`` (204, or 200/201 with
                                     the row); If-Match with an ETag; If-None-Match: *
    DELETE {set}({id})               204; If-Match with an ETag

Errors are ``{"error": {"code": "0x...", "message": ...}}``. Security follows the
record-level model: a full user holds every privilege at Business Unit depth, a
restricted user Create, Read and Write at User depth and no Delete. A row outside the
caller's depth is a 403 ``0x80048306`` (``SecLib::AccessCheckEx failed``) by id and is
left out of queries; a missing privilege is a 403 ``0x80040220``. Queries read the
store directly: Dataverse's Web API is consistent (Dataverse search is not emulated).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from ...access import Principal, User
from ...api.common import MAX_DEPTH, MalformedJSON, parse_json, read_body
from ...engine import Sandbox
from ..common import origin
from ..fields import Field, ObjectMap
from ..query import QueryError, matches, order_sql, to_sql
from .auth import user_of
from .objects import (
    BINDS,
    ENTITIES,
    LOGICAL,
    ORGANIZATION_ID,
    OTC,
    business_unit,
    from_guid,
    to_wire,
    user_guid,
    version,
)
from .odata import Bare, ODataError, cookie, date_time, page_of, parse_filter, parse_orderby

__all__ = ["WebApi"]

MEDIA = "application/json; odata.metadata=minimal"
MAX_PAGE = 5000
_SEGMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:\(([^()]*)\))?(/\$count)?")
SUPPORTED = {"$select", "$filter", "$orderby", "$top", "$count", "$expand", "$skiptoken"}
SYSTEMUSERS = ObjectMap("systemusers", "users", (
    Field("systemuserid", "id", "id", ref="users", writable=False),
    Field("fullname", "fullname"), Field("domainname", "login"), Field("internalemailaddress", "login"),
    Field("_businessunitid_value", "businessunit"), Field("isdisabled", kind="bool", getter=lambda r: False),
    Field("accessmode", kind="int", getter=lambda r: 0),
), id_field="systemuserid", case_insensitive=False)


class Failed(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def dv_error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status,
                        headers={"OData-Version": "4.0", **(headers or {})})


def odata(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> JSONResponse:
    request_id = str(uuid.uuid4())
    return JSONResponse(body, status_code=status, media_type=MEDIA,
                        headers={"OData-Version": "4.0", "x-ms-service-request-id": request_id,
                                 "REQ_ID": request_id, **(headers or {})})


def bad_query(message: str) -> Failed:
    return Failed(dv_error(400, "0x80060888", message))


def prefers(request: Request) -> dict[str, str]:
    """Every ``Prefer`` preference (several headers, or comma-separated in one)."""
    out: dict[str, str] = {}
    for header in request.headers.getlist("prefer"):
        for item in header.split(","):
            name, _, value = item.strip().partition("=")
            if name:
                out[name.strip().lower()] = value.strip().strip('"')
    return out


class WebApi:
    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb

    # -- helpers ------------------------------------------------------------------------

    def base(self, request: Request) -> str:
        return f"{origin(request)}/api/data/{request.path_params['version']}"

    def shown(self, f: Field) -> bool:
        return not f.sensitive or f.column in self.sb.access.exposed()

    def etag(self, record: Mapping[str, Any]) -> str:
        return f'W/"{version(record)}"'

    def row(self, obj: ObjectMap, record: Mapping[str, Any], fields: list[Field] | None) -> dict[str, Any]:
        out: dict[str, Any] = {"@odata.etag": self.etag(record)} if obj.name != "systemusers" else {}
        chosen = fields if fields is not None else [f for f in obj.fields if self.shown(f)]
        for f in chosen:
            out[f.name] = to_wire(f, f.get(record), self.sb.users_by_id)
        key = obj.key
        out[key.name] = to_wire(key, record["id"], self.sb.users_by_id)  # the key is always there
        return out

    def select(self, obj: ObjectMap, request: Request) -> list[Field] | None:
        raw = request.query_params.get("$select")
        if raw is None:
            return None
        out = []
        for name in (n.strip() for n in raw.split(",")):
            f = obj.field(name)
            if f is None or not self.shown(f):
                raise bad_query(f"Could not find a property named '{name[:100]}' on type "
                                f"'Microsoft.Dynamics.CRM.{LOGICAL.get(obj.name, 'systemuser')}'.")
            out.append(f)
        return out

    def context(self, request: Request, set_name: str, fields: list[Field] | None, entity: bool) -> str:
        columns = f"({','.join(f.name for f in fields)})" if fields else ""
        return f"{self.base(request)}/$metadata#{set_name}{columns}{'/$entity' if entity else ''}"

    def sec_lib(self, obj: ObjectMap, record: Mapping[str, Any], who: Principal, right: str) -> Failed:
        owner = self.sb.users_by_id.get(record.get("owner_id") or "")
        return Failed(dv_error(403, "0x80048306", (
            f"SecLib::AccessCheckEx failed. Returned hr = -2147187962, ObjectID: "
            f"{to_wire(obj.key, record['id'], {})}, OwnerId: {user_guid(owner) if owner else ''},  "
            f"OwnerIdType: 8 and CallingUser: {user_guid(who.user)}. ObjectTypeCode: {OTC[obj.name]}, "
            f"objectBusinessUnitId: {business_unit(str(record.get('tenant_id')))}, AccessRights: {right} ")))

    def missing(self, obj: ObjectMap, key: str) -> Failed:
        return Failed(dv_error(404, "0x80040217",
                               f"Entity '{LOGICAL[obj.name]}' With Id = {key} Does Not Exist"))

    def key(self, obj: ObjectMap, raw: str) -> str:
        native = from_guid(raw.strip("'"), obj.table)
        if native is None:
            raise bad_query("Bad Request - Error in query syntax.")
        return native

    # -- routing ------------------------------------------------------------------------

    async def dispatch(self, request: Request) -> Response:
        version_name = request.path_params["version"]
        if version_name not in ("v9.0", "v9.1", "v9.2"):
            return dv_error(404, "0x8006088a", f"Resource not found for the segment '{version_name[:80]}'.")
        who: Principal = request.state.principal
        path = request.path_params.get("rest", "")
        try:
            unknown = [k for k in request.query_params if k.startswith("$") and k not in SUPPORTED]
            if unknown:
                raise bad_query(f"The query parameter {unknown[0][:40]} is not supported")
            if path == "":
                if request.method not in ("GET", "HEAD"):
                    return dv_error(405, "0x80060888", f"The requested resource does not support http method "
                                    f"'{request.method}'.")
                return self.service_document(request)
            if path in ("WhoAmI", "WhoAmI()"):
                if request.method != "GET":
                    return dv_error(404, "", f"No HTTP resource was found that matches the request URI "
                                    f"'{self.base(request)}/WhoAmI'.")
                answer = f"{self.base(request)}/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse"
                return odata({"@odata.context": answer,
                              "BusinessUnitId": business_unit(who.user.tenant), "UserId": user_guid(who.user),
                              "OrganizationId": ORGANIZATION_ID})
            match = _SEGMENT.fullmatch(path)
            set_name = match[1] if match else path.split("/")[0].split("(")[0]
            if match is None or (set_name not in ENTITIES and set_name != "systemusers"):
                return dv_error(404, "0x8006088a", f"Resource not found for the segment '{set_name[:80]}'.")
            key, count = match[2], match[3]
            if set_name == "systemusers":
                return self.users(request, who, key)
            obj = ENTITIES[set_name]
            method = request.method
            if count:
                if method != "GET" or key is not None:
                    return dv_error(405, "0x80060888", f"The requested resource does not support http method "
                                    f"'{method}'.")
                return self.count(obj, request, who)
            if key is None:
                if method == "GET":
                    return self.collection(obj, request, who)
                if method == "POST":
                    return await self.create(obj, request, who)
                return dv_error(405, "0x80060888",
                                f"The requested resource does not support http method '{method}'.")
            if method == "GET":
                return self.read(obj, request, who, key)
            if method == "PATCH":
                return await self.upsert(obj, request, who, key)
            if method == "DELETE":
                return self.delete(obj, request, who, key)
            return dv_error(405, "0x80060888",
                            f"The requested resource does not support http method '{method}'.")
        except Failed as exc:
            return exc.response

    def service_document(self, request: Request) -> Response:
        sets = [*ENTITIES, "systemusers"]
        return odata({"@odata.context": f"{self.base(request)}/$metadata",
                      "value": [{"name": s, "kind": "EntitySet", "url": s} for s in sets]})

    # -- queries --------------------------------------------------------------------------

    def literal(self, who: Principal) -> Callable[[Field, Any], Any]:
        def convert(f: Field, value: Any) -> Any:
            if value is None:
                return None
            text = value.text if isinstance(value, Bare) else value
            if f.kind in ("id", "ref") and isinstance(text, str):
                native = from_guid(text, f.ref or "contacts") if f.ref != "users" else None
                if f.ref == "users":
                    user = user_of(self.sb, text)
                    return user.id if user else "none"
                if native is None:
                    raise QueryError(f"Unrecognized 'Edm.Guid' literal '{text[:60]}'", f.name)
                return native
            if f.kind == "owner" and isinstance(text, str):
                user = user_of(self.sb, text)
                return user.id if user else "none"
            if f.kind == "datetime" and isinstance(value, Bare):
                return date_time(text if "T" in text else f"{text}T00:00:00Z")
            if f.kind == "date" and isinstance(value, Bare):
                return text[:10]
            if f.kind in ("int", "number") and isinstance(value, int | float) and not isinstance(value, bool):
                return value
            if f.kind == "bool" and isinstance(value, bool):
                return value
            if f.kind == "string" and isinstance(value, str):
                return value
            found = type(value).__name__ if not isinstance(value, Bare) else "Edm.DateTimeOffset"
            raise QueryError(f"A binary operator with incompatible types was detected. Found operand types "
                             f"'{f.kind}' and '{found}' for property '{f.name}'.", f.name)
        return convert

    def where(self, obj: ObjectMap, request: Request, who: Principal) -> tuple[str, list[Any]]:
        scope = self.sb.access.scope(who, "list")
        parts = [f"{k} = ?" for k in scope] + ([f"({obj.where})"] if obj.where else [])
        args: list[Any] = list(scope.values())
        raw = request.query_params.get("$filter")
        if raw is not None:
            try:
                node = parse_filter(raw)
                sql, more = to_sql(node, obj, self.literal(who))
            except ODataError as exc:
                raise bad_query(str(exc)) from None
            except QueryError as exc:
                if str(exc).startswith("no such field") or "cannot be filtered" in str(exc):
                    raise bad_query(f"Could not find a property named '{str(exc.field)[:100]}' on type "
                                    f"'Microsoft.Dynamics.CRM.{LOGICAL[obj.name]}'.") from None
                raise bad_query(str(exc)) from None
            parts.append(sql)
            args += more
        return " AND ".join(parts) or "1", args

    def collection(self, obj: ObjectMap, request: Request, who: Principal) -> Response:
        fields = self.select(obj, request)
        where, args = self.where(obj, request, who)
        params = request.query_params
        order = "rowid"
        if "$orderby" in params:
            try:
                items = parse_orderby(params["$orderby"])
                for name, _, _ in items:
                    f = obj.field(name)
                    if f is None or not self.shown(f):
                        raise bad_query(f"Could not find a property named '{name[:100]}' on type "
                                        f"'Microsoft.Dynamics.CRM.{LOGICAL[obj.name]}'.")
                order = order_sql(items, obj)
            except (ODataError, QueryError) as exc:
                raise bad_query(str(exc)) from None
        top = None
        if "$top" in params:
            if not (params["$top"].isascii() and params["$top"].isdigit()) or len(params["$top"]) > 9:
                raise bad_query(f"Invalid value '{params['$top'][:20]}' for $top query option found.")
            top = int(params["$top"])
        preferences = prefers(request)
        applied = {}
        page_size = MAX_PAGE
        if "odata.maxpagesize" in preferences:
            size = preferences["odata.maxpagesize"]
            if not (size.isascii() and size.isdigit()) or not 1 <= int(size) <= MAX_PAGE:
                raise bad_query(f"The odata.maxpagesize preference must be 1 to {MAX_PAGE}, got "
                                f"'{size[:20]}'.")
            page_size = int(size)
            applied["Preference-Applied"] = f"odata.maxpagesize={page_size}"
            top = None  # with odata.maxpagesize, $top is ignored
        page, offset = 1, 0
        if "$skiptoken" in params:
            try:
                page, offset = page_of(params["$skiptoken"])
            except ODataError as exc:
                raise Failed(dv_error(400, "0x8004112A", str(exc))) from None
        limit = min(page_size, top) if top is not None else page_size
        rows = self.sb.store.find(obj.table, where, args, order, limit=limit + 1, offset=offset)
        body: dict[str, Any] = {"@odata.context": self.context(request, obj.name, fields, False)}
        if params.get("$count") == "true":
            body["@odata.count"] = min(self.sb.store.count_where(obj.table, where, args), MAX_PAGE)
        shown = rows[:limit]
        body["value"] = [self.row(obj, r, fields) for r in shown]
        if len(rows) > limit and top is None:
            key = obj.key
            first, last = (to_wire(key, shown[i]["id"], {}) for i in (0, -1))
            kept = [(k, v) for k, v in params.multi_items() if k != "$skiptoken"]
            query = urlencode(kept, safe="$,'()/: ")
            body["@odata.nextLink"] = (f"{self.base(request)}/{obj.name}?{query + '&' if query else ''}"
                                       f"$skiptoken={cookie(key.name, page, first, last, offset + limit)}")
        return odata(body, headers=applied)

    def count(self, obj: ObjectMap, request: Request, who: Principal) -> Response:
        where, args = self.where(obj, request, who)
        total = min(self.sb.store.count_where(obj.table, where, args), MAX_PAGE)
        return PlainTextResponse(str(total), headers={"OData-Version": "4.0"})

    def users(self, request: Request, who: Principal, key: str | None) -> Response:
        if request.method != "GET":
            return dv_error(405, "0x80060888", f"The requested resource does not support http method "
                            f"'{request.method}'.")
        records = [{"id": u.id, "fullname": f"{u.first_name} {u.last_name}", "login": u.login,
                    "businessunit": business_unit(u.tenant)} for u in self.sb.settings.users
                   if u.tenant == who.user.tenant]
        fields = self.select(SYSTEMUSERS, request)
        if key is not None:
            wanted = user_of(self.sb, key.strip("'"))
            for record in records:
                if wanted is not None and record["id"] == wanted.id:
                    return odata({"@odata.context": self.context(request, "systemusers", fields, True),
                                  **self.row(SYSTEMUSERS, record, fields)})
            return dv_error(404, "0x80040217", f"Entity 'systemuser' With Id = {key[:40]} Does Not Exist")
        if "$filter" in request.query_params:
            try:
                node = parse_filter(request.query_params["$filter"])
                records = [r for r in records if matches(node, SYSTEMUSERS, r, self.literal(who))]
            except (ODataError, QueryError) as exc:
                raise bad_query(str(exc)) from None
        return odata({"@odata.context": self.context(request, "systemusers", fields, False),
                      "value": [self.row(SYSTEMUSERS, r, fields) for r in records]})

    # -- rows -----------------------------------------------------------------------------

    def read(self, obj: ObjectMap, request: Request, who: Principal, key: str) -> Response:
        native = self.key(obj, key)
        record = self.sb.get(obj.table, native)
        if record is None or not obj.member(record):
            raise self.missing(obj, key.strip("'"))
        if not self.sb.access.sees(who, "get", record):
            raise self.sec_lib(obj, record, who, "ReadAccess")
        fields = self.select(obj, request)
        etag = self.etag(record)
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag, "OData-Version": "4.0"})
        return odata({"@odata.context": self.context(request, obj.name, fields, True), **self.row(obj,
                                                                                                  record,
                                                                                                  fields)},
                     headers={"ETag": etag})

    async def body(self, obj: ObjectMap, request: Request) -> dict[str, Any]:
        try:
            data = parse_json(await read_body(request), MAX_DEPTH)
        except MalformedJSON as exc:
            raise self.payload(obj, f"Microsoft.OData.ODataException: {exc}") from None
        if not isinstance(data, dict):
            raise self.payload(obj, "Microsoft.OData.ODataException: An entity was expected, but a "
                               f"{type(data).__name__} was found.")
        return data

    def payload(self, obj: ObjectMap, inner: str) -> Failed:
        return Failed(dv_error(400, "0x80048d19",
                               f"Error identified in Payload provided by the user for Entity "
                               f":'{obj.name}'  ---->  InnerException : {inner}"))

    def values(self, obj: ObjectMap, data: dict[str, Any], who: Principal) -> tuple[dict[str, Any],
                                                                                    dict[str, Any]]:
        """The body's columns as neutral values, and the store columns its @odata.bind lookups set."""
        values: dict[str, Any] = {}
        binds: dict[str, Any] = {}
        logical = LOGICAL[obj.name]
        for name, raw in data.items():
            if name.startswith("@odata.") or ("@" in name and not name.endswith("@odata.bind")):
                continue
            if name.endswith("@odata.bind"):
                binds.update(self.bind(obj, name.removesuffix("@odata.bind"), raw, who))
                continue
            f = obj.field(name)
            if f is None or not self.shown(f) or not f.writable or f.derived:
                raise Failed(dv_error(400, "0x0", f"An error occurred while validating input parameters: "
                                      f"Microsoft.Crm.CrmException: Invalid property '{name[:100]}' was "
                                      f"found in entity "
                                      f"'Microsoft.Dynamics.CRM.{logical}'. ---> "
                                      f"Microsoft.OData.ODataException: Does "
                                      "not support untyped value in non-open type."))
            values[f.name] = self.value(obj, f, raw)
        return values, binds

    def value(self, obj: ObjectMap, f: Field, raw: Any) -> Any:
        if raw is None:
            return None
        expected = {"string": "Edm.String", "int": "Edm.Int32", "number": "Edm.Decimal", "date": "Edm.Date",
                    "datetime": "Edm.DateTimeOffset", "bool": "Edm.Boolean"}.get(f.kind, "Edm.String")

        def cannot() -> Failed:
            return self.payload(obj,
                                f"Microsoft.OData.ODataException: Cannot convert the literal "
                                f"'{str(raw)[:80]}' "
                                f"to the expected type '{expected}'.")
        if f.kind == "string":
            if not isinstance(raw, str):
                raise cannot()
            if f.max_length and len(raw) > f.max_length:
                raise Failed(dv_error(400, "0x80044331", f"A validation error occurred. The length of the "
                                      f"'{f.name}' attribute of the '{LOGICAL[obj.name]}' entity exceeded "
                                      f"the maximum "
                                      f"allowed length of '{f.max_length}'."))
            return raw
        if f.kind in ("int", "number"):
            if isinstance(raw, bool) or not isinstance(raw, int | float) or (f.kind == "int" and
                                                                            not float(raw).is_integer()):
                raise cannot()
            if abs(raw) > 1e12:
                raise Failed(dv_error(400, "0x80044330", f"A validation error occurred. The value {raw} of "
                                      f"'{f.name}' on record of type '{LOGICAL[obj.name]}' is outside the "
                                      f"valid range."))
            if f.choices is not None and raw not in f.choices:
                raise Failed(dv_error(400, "0x80061005", f"The value {raw} of '{f.name}' is out of range."))
            return int(raw) if f.kind == "int" else float(raw)
        if f.kind == "bool":
            if not isinstance(raw, bool):
                raise cannot()
            return raw
        if f.kind == "date":
            if not isinstance(raw, str) or len(raw) != 10:
                raise cannot()
            try:
                return date.fromisoformat(raw).isoformat()
            except ValueError:
                raise cannot() from None
        if f.kind == "datetime":
            if not isinstance(raw, str):
                raise cannot()
            try:
                moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            except ValueError:
                raise cannot() from None
            moment = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
            return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        raise cannot()

    def bind(self, obj: ObjectMap, nav: str, raw: Any, who: Principal) -> dict[str, Any]:
        if nav == "ownerid":
            match = re.fullmatch(r"/?systemusers\(([^()]+)\)", raw) if isinstance(raw, str) else None
            user: User | None = user_of(self.sb, match[1]) if match else None
            if user is None or user.tenant != who.user.tenant:
                raise self.payload(obj,
                                   f"Microsoft.OData.ODataException: the ownerid bind '{str(raw)[:80]}' "
                                   f"names no "
                                   "user of your business unit.")
            return {"owner_id": user.id}
        target = BINDS[obj.name].get(nav)
        if target is None:
            raise self.payload(obj, (
                f"Microsoft.OData.ODataException: An undeclared property '{nav[:80]}' which only has "
                "property annotations in the payload but no property value was found in the payload."))
        set_name, column = target
        if raw is None:
            return {column: None}
        match = re.fullmatch(rf"/?{set_name}\(([^()]+)\)", raw) if isinstance(raw, str) else None
        if match is None:
            raise self.payload(obj, f"Microsoft.OData.ODataException: '{str(raw)[:80]}' is not a valid "
                               f"reference to {set_name}.")
        linked = ENTITIES[set_name]
        native = from_guid(match[1], linked.table)
        record = self.sb.get(linked.table, native) if native else None
        if record is None or not linked.member(record):
            raise self.missing(linked, match[1])
        if not self.sb.access.sees(who, "get", record):
            raise self.sec_lib(linked, record, who, "AppendToAccess")
        return {column: native}

    async def create(self, obj: ObjectMap, request: Request, who: Principal,
                     record_id: str | None = None) -> Response:
        data = await self.body(obj, request)
        values, binds = self.values(obj, data, who)
        stored = {**obj.defaults, **obj.to_store(values, obj.defaults.get("extra"))}
        stored.update({k: v for k, v in binds.items() if k != "owner_id"})
        if obj.table == "activities" and not stored.get("occurred_at"):
            stored["occurred_at"] = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00",
                                                                                                 "Z")
        if obj.table == "activities" and not stored.get("subject"):
            stored["subject"] = ""
        owner = self.sb.users_by_id.get(binds.get("owner_id") or "", who.user)
        record = self.sb.create(obj.table, stored, owner, record_id=record_id)
        return self.written(obj, request, record, created=True)

    def written(self, obj: ObjectMap, request: Request, record: dict[str, Any], created: bool) -> Response:
        key = to_wire(obj.key, record["id"], {})
        location = f"{self.base(request)}/{obj.name}({key})"
        if prefers(request).get("return") == "representation":
            fields = self.select(obj, request)
            return odata({"@odata.context": self.context(request, obj.name, fields, True),
                          **self.row(obj, record, fields)}, 201 if created else 200,
                         {"Preference-Applied": "return=representation", "ETag": self.etag(record)})
        return Response(status_code=204, headers={"OData-Version": "4.0", "OData-EntityId": location})

    async def upsert(self, obj: ObjectMap, request: Request, who: Principal, key: str) -> Response:
        native = self.key(obj, key)
        record = self.sb.get(obj.table, native)
        if_match, if_none = request.headers.get("if-match"), request.headers.get("if-none-match")
        if record is None or not obj.member(record):
            if if_match is not None:
                raise self.missing(obj, key.strip("'"))
            if record is not None:  # a row of the table that is no row of this entity set
                raise Failed(dv_error(412, "0x80040237", "A record with matching key values already exists."))
            return await self.create(obj, request, who, record_id=native)
        if if_none == "*":
            raise Failed(dv_error(412, "0x80040237", "A record with matching key values already exists."))
        if if_match not in (None, "*") and if_match != self.etag(record):
            raise Failed(dv_error(412, "0x80060882", "The version of the existing record doesn't match the "
                                  "RowVersion property provided."))
        if not self.sb.access.can_write(who, record):
            raise self.sec_lib(obj, record, who, "WriteAccess")
        values, binds = self.values(obj, await self.body(obj, request), who)
        stored = obj.to_store(values, record.get("extra"))
        stored.update(binds)
        changed = self.sb.update(obj.table, native, stored) if stored else record
        return self.written(obj, request, changed or record, created=False)

    def delete(self, obj: ObjectMap, request: Request, who: Principal, key: str) -> Response:
        native = self.key(obj, key)
        record = self.sb.get(obj.table, native)
        if record is None or not obj.member(record):
            raise self.missing(obj, key.strip("'"))
        if_match = request.headers.get("if-match")
        if if_match not in (None, "*") and if_match != self.etag(record):
            raise Failed(dv_error(412, "0x80060882", "The version of the existing record doesn't match the "
                                  "RowVersion property provided."))
        if not self.sb.access.can_write(who, record):
            raise self.sec_lib(obj, record, who, "DeleteAccess")
        if not self.sb.access.can_delete(who):
            caller, logical = user_guid(who.user), LOGICAL[obj.name]
            privilege = uuid.uuid5(uuid.NAMESPACE_URL, obj.name)
            raise Failed(dv_error(403, "0x80040220", (
                f"Principal user (Id={caller}, type=8, roleCount=1, privilegeCount=15, accessMode=0), "
                f"is missing prvDelete{logical} privilege (Id={privilege}) on OTC={OTC[obj.name]} for entity "
                f"'{logical}'. context.Caller={caller}")))
        self.sb.delete(obj.table, native)
        return Response(status_code=204, headers={"OData-Version": "4.0"})


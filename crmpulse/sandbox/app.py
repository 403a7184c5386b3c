"""The sandbox CRM's HTTP API (Starlette): REST resources, OAuth2 tokens, search, admin.

Routes, all JSON:

    POST /oauth/token                       client_credentials and password grants
    GET  /api/v1/me                         who the credentials belong to
    GET|POST /api/v1/contacts               cursor pagination; filters email, email_prefix,
                                            account_id, tag, updated_since
    GET|PATCH|DELETE /api/v1/contacts/{id}
    GET|POST /api/v1/accounts               page/per_page pagination
    GET|PATCH|DELETE /api/v1/accounts/{id}
    GET|POST /api/v1/deals, GET|PATCH|DELETE /api/v1/deals/{id}
    GET|POST /api/v1/activities, GET|DELETE /api/v1/activities/{id}
    GET  /api/v1/search/contacts?q=&tag=&email=   served from the search index
    GET  /api/v1/reports/pipeline, /api/v1/reports/activities
    GET|POST /api/v1/webhooks, DELETE /api/v1/webhooks/{id}
    GET|PUT|DELETE /admin/faults            fault injection (X-Admin-Token)
    POST /admin/tokens/revoke, PUT /admin/settings, GET /admin/stats, POST /admin/reset
    GET  /healthz

API credentials accepted: an OAuth2 bearer token from /oauth/token, a personal access
token as bearer, HTTP basic with a user's password, or an ``X-API-Key`` header.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import random
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .faults import Faults, TokenBucket
from .search import SearchIndex, SyncWorker
from .seed import STAGES, seed
from .store import Store, decode_cursor, encode_cursor
from .webhooks import EVENT_TYPES, WebhookHub, loopback_url_error

__all__ = ["Sandbox", "SandboxSettings", "create_app"]

Handler = Callable[[Request], Awaitable[Response]]
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_SINGULAR = {"contacts": "contact", "accounts": "account", "deals": "deal",
             "activities": "activity"}


@dataclass
class SandboxSettings:
    """How to run the sandbox; every credential here is a public, documented test value."""

    db: str = ":memory:"
    seed: int = 200
    sync_lag_ms: float = 500.0
    token_ttl: float = 3600.0
    max_body: int = 1024 * 1024
    admin_token: str = "sandbox-admin"
    clients: dict[str, str] = field(default_factory=lambda: {"crmpulse": "sandbox-secret"})
    users: dict[str, str] = field(
        default_factory=lambda: {"rep@sandbox.example": "sandbox-password"})
    api_keys: dict[str, str] = field(default_factory=lambda: {"sandbox-api-key": "integration"})
    personal_tokens: dict[str, str] = field(default_factory=lambda: {"sandbox-pat": "pat-user"})


class Sandbox:
    """All of the sandbox's state: records, index, sync worker, webhooks, faults, tokens."""

    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings
        self.faults = Faults(sync_lag_ms=settings.sync_lag_ms)
        self.store = Store(settings.db)
        self.index = SearchIndex()
        if settings.seed and self.store.count("contacts") == 0:
            self.store.db.execute("BEGIN")
            seed(self.store, settings.seed)
            self.store.db.execute("COMMIT")
        for record in self._all("contacts"):  # what exists at start is already indexed
            self.index.upsert(record)
        self.worker = SyncWorker(self.store, self.index, self.faults)
        self.hooks = WebhookHub(self.faults)
        self.bucket = TokenBucket()
        self.tokens: dict[str, tuple[dict[str, Any], float]] = {}
        self.requests = 0
        self.injected_errors = 0
        self.throttled = 0

    def _all(self, table: str) -> list[dict[str, Any]]:
        out, after = [], None
        while True:
            page, after = self.store.select(table, {}, 1000, after)
            out += page
            if after is None:
                return out

    # -- credentials -----------------------------------------------------------------

    def issue_token(self, principal: dict[str, Any]) -> dict[str, Any]:
        now = time.time()
        if len(self.tokens) > 10_000:
            self.tokens = {t: v for t, v in self.tokens.items() if v[1] > now}
        token = secrets.token_urlsafe(24)
        self.tokens[token] = (principal, now + self.settings.token_ttl)
        return {"access_token": token, "token_type": "Bearer",
                "expires_in": int(self.settings.token_ttl), "scope": "crm"}

    def principal(self, request: Request) -> dict[str, Any] | None:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value:
            entry = self.tokens.get(value)
            if entry and entry[1] > time.time():
                return entry[0]
            for token, user in self.settings.personal_tokens.items():
                if hmac.compare_digest(token, value):
                    return {"sub": user, "via": "personal_token"}
            return None
        if scheme.lower() == "basic" and value:
            username, password = _basic(value)
            expected = self.settings.users.get(username or "")
            if expected is not None and hmac.compare_digest(expected, password or ""):
                return {"sub": username, "via": "basic"}
            return None
        key = request.headers.get("x-api-key")
        if key:
            for known, owner in self.settings.api_keys.items():
                if hmac.compare_digest(known, key):
                    return {"sub": owner, "via": "api_key"}
        return None

    def is_admin(self, request: Request) -> bool:
        given = request.headers.get("x-admin-token", "")
        if not given:
            given = request.headers.get("authorization", "").partition(" ")[2]
        return bool(given) and hmac.compare_digest(given, self.settings.admin_token)

    # -- records and their side effects ------------------------------------------------

    def changed(self, table: str, op: str, record: dict[str, Any]) -> None:
        if table == "contacts":
            self.worker.notify()
        self.hooks.emit(_SINGULAR[table], op, self.public(table, record))

    def public(self, table: str, record: dict[str, Any]) -> dict[str, Any]:
        if table == "contacts" and not self.faults.expose_sensitive:
            return {k: v for k, v in record.items() if k != "tax_id"}
        return record


def _basic(value: str) -> tuple[str | None, str | None]:
    try:
        user, _, password = base64.b64decode(value).decode().partition(":")
        return user, password
    except (ValueError, UnicodeDecodeError):
        return None, None


def _error(status: int, error: str, message: str,
           headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status, headers=headers)


def _invalid(errors: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse({"error": "validation_failed", "message": "the request has invalid fields",
                         "detail": errors}, status_code=422)


# -- input validation ---------------------------------------------------------------------

def _str(max_len: int) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if not isinstance(v, str) or not v.strip():
            return "expected a non-empty string"
        return f"expected at most {max_len} characters" if len(v) > max_len else None
    return check


def _opt_str(max_len: int) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if v is None:
            return None
        if not isinstance(v, str):
            return "expected a string"
        return f"expected at most {max_len} characters" if len(v) > max_len else None
    return check


def _email(v: Any) -> str | None:
    return None if isinstance(v, str) and _EMAIL.fullmatch(v) and len(v) <= 254 \
        else "expected an email address"


def _tags(v: Any) -> str | None:
    if not isinstance(v, list) or len(v) > 20 or not all(
            isinstance(t, str) and 0 < len(t) <= 64 for t in v):
        return "expected a list of at most 20 short strings"
    return None


def _custom(v: Any) -> str | None:
    if not isinstance(v, dict) or len(v) > 50:
        return "expected an object with at most 50 fields"
    for key, value in v.items():
        if len(key) > 64 or not (value is None or isinstance(value, str | int | float | bool)):
            return "expected short keys with string, number or boolean values"
        if isinstance(value, str) and len(value) > 1000:
            return "expected values of at most 1000 characters"
    return None


def _amount(v: Any) -> str | None:
    ok = isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1e12
    return None if ok else "expected a number from 0 to 1e12"


def _choice(options: list[str]) -> Callable[[Any], str | None]:
    return lambda v: None if v in options else f"expected one of {', '.join(options)}"


def _date(v: Any) -> str | None:
    if v is None:
        return None
    try:
        date.fromisoformat(v)
        return None
    except (TypeError, ValueError):
        return "expected a date like 2026-12-31"


def _datetime(v: Any) -> str | None:
    try:
        datetime.fromisoformat(str(v).replace("Z", "+00:00"))
        return None
    except ValueError:
        return "expected an ISO 8601 timestamp"


def _currency(v: Any) -> str | None:
    return None if isinstance(v, str) and re.fullmatch(r"[A-Z]{3}", v) else \
        "expected a 3-letter currency code"


# field -> (validator, required on create, default on create, references table)
Schema = dict[str, tuple[Callable[[Any], str | None], bool, Any, str | None]]
SCHEMAS: dict[str, Schema] = {
    "contacts": {
        "first_name": (_str(100), True, None, None), "last_name": (_str(100), True, None, None),
        "email": (_email, True, None, None), "phone": (_opt_str(40), False, None, None),
        "title": (_opt_str(100), False, None, None),
        "account_id": (_opt_str(64), False, None, "accounts"),
        "tags": (_tags, False, [], None), "custom": (_custom, False, {}, None)},
    "accounts": {
        "name": (_str(200), True, None, None), "industry": (_opt_str(50), False, None, None),
        "website": (_opt_str(200), False, None, None), "country": (_opt_str(2), False, None, None)},
    "deals": {
        "name": (_str(200), True, None, None), "amount": (_amount, True, None, None),
        "currency": (_currency, False, "USD", None),
        "stage": (_choice(STAGES), False, "prospecting", None),
        "account_id": (_opt_str(64), False, None, "accounts"),
        "contact_id": (_opt_str(64), False, None, "contacts"),
        "close_date": (_date, False, None, None), "tags": (_tags, False, [], None)},
    "activities": {
        "kind": (_choice(["call", "email", "meeting", "note", "task"]), True, None, None),
        "subject": (_str(200), True, None, None), "notes": (_opt_str(5000), False, "", None),
        "contact_id": (_opt_str(64), False, None, "contacts"),
        "deal_id": (_opt_str(64), False, None, "deals"),
        "occurred_at": (_datetime, False, None, None), "tags": (_tags, False, [], None)},
}


def validate(sb: Sandbox, table: str, payload: Any, partial: bool
             ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    if not isinstance(payload, dict):
        return {}, [{"loc": ["body"], "msg": "expected a JSON object"}]
    schema = SCHEMAS[table]
    errors, clean = [], {}
    for key in payload:
        if key not in schema:
            errors.append({"loc": ["body", key], "msg": "unknown field"})
    for key, (check, required, default, ref) in schema.items():
        if key not in payload:
            if required and not partial:
                errors.append({"loc": ["body", key], "msg": "field required"})
            elif not partial:
                clean[key] = default
            continue
        value = payload[key]
        problem = check(value)
        if problem is None and ref and value is not None and sb.store.get(ref, value) is None:
            problem = f"no such {_SINGULAR[ref]}"
        if problem:
            errors.append({"loc": ["body", key], "msg": problem})
        else:
            clean[key] = value
    if table == "activities" and not partial and clean.get("occurred_at") is None:
        clean["occurred_at"] = datetime.now().astimezone().isoformat(timespec="seconds")
    return clean, errors


def create_app(settings: SandboxSettings | None = None) -> Starlette:
    """Build the ASGI app; the sync worker and webhook deliverer run in its lifespan."""
    sb = Sandbox(settings or SandboxSettings())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        sb.worker.start()
        sb.hooks.start()
        try:
            yield
        finally:
            await sb.worker.stop()
            await sb.hooks.stop()
            sb.store.close()

    async def read_json(request: Request) -> tuple[Any, Response | None]:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > sb.settings.max_body:
            return None, _error(413, "too_large", f"bodies are limited to {sb.settings.max_body} bytes")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > sb.settings.max_body:
                return None, _error(413, "too_large",
                                    f"bodies are limited to {sb.settings.max_body} bytes")
        try:
            return json.loads(body), None
        except (ValueError, UnicodeDecodeError):
            return None, _error(400, "malformed_json", "the body is not valid JSON")

    def api(handler: Handler, auth: bool = True) -> Handler:
        async def wrapper(request: Request) -> Response:
            sb.requests += 1
            f = sb.faults
            if not f.path_prefix or request.url.path.startswith(f.path_prefix):
                if f.outage:
                    return _error(f.outage_status, "unavailable", "the CRM is down (injected outage)")
                if f.rate_limit_rps > 0 and not sb.bucket.allow(f.rate_limit_rps):
                    sb.throttled += 1
                    return _error(429, "rate_limited", "too many requests",
                                  headers={"Retry-After": str(f.retry_after_s)})
                if f.latency_ms or f.jitter_ms:
                    await asyncio.sleep((f.latency_ms + random.uniform(0, f.jitter_ms)) / 1000)
                if f.error_rate and random.random() < f.error_rate:
                    sb.injected_errors += 1
                    return _error(f.error_status, "internal_error", "injected error")
            if auth and f.auth_enforced:
                principal = sb.principal(request)
                if principal is None:
                    return _error(401, "unauthorized", "valid credentials are required",
                                  headers={"WWW-Authenticate": 'Bearer realm="sandbox"'})
                request.state.principal = principal
            else:
                request.state.principal = sb.principal(request) or {"sub": "anonymous"}
            response = await handler(request)
            if f.hsts and request.url.scheme == "https":
                response.headers["Strict-Transport-Security"] = "max-age=31536000"
            return response
        return wrapper

    def admin(handler: Handler) -> Handler:
        async def wrapper(request: Request) -> Response:
            if not sb.is_admin(request):
                return _error(401, "unauthorized", "the admin API needs X-Admin-Token")
            return await handler(request)
        return wrapper

    # -- OAuth2 -----------------------------------------------------------------------

    async def token(request: Request) -> Response:
        body = await request.body()
        if len(body) > sb.settings.max_body:
            return _error(413, "too_large", "body too large")
        ctype = request.headers.get("content-type", "")
        try:
            if "json" in ctype:
                form = json.loads(body)
                if not isinstance(form, dict):
                    raise ValueError
            else:
                form = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
        except (ValueError, UnicodeDecodeError):
            return _error(400, "invalid_request", "expected a form or JSON body")
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            client_id, client_secret = _basic(value)
        grant = form.get("grant_type")
        if grant == "client_credentials":
            expected = sb.settings.clients.get(str(client_id))
            if expected is None or not hmac.compare_digest(expected, str(client_secret or "")):
                return _error(401, "invalid_client", "unknown client or wrong secret")
            return JSONResponse(sb.issue_token({"sub": client_id, "via": "client_credentials"}))
        if grant == "password":
            if client_id is not None and client_id not in sb.settings.clients:
                return _error(401, "invalid_client", "unknown client")
            expected = sb.settings.users.get(str(form.get("username")))
            if expected is None or not hmac.compare_digest(expected, str(form.get("password", ""))):
                return _error(400, "invalid_grant", "wrong username or password")
            return JSONResponse(sb.issue_token({"sub": form.get("username"), "via": "password"}))
        return _error(400, "unsupported_grant_type",
                      "grant_type must be client_credentials or password")

    async def me(request: Request) -> Response:
        return JSONResponse(request.state.principal)

    # -- generic resources --------------------------------------------------------------

    def limit_of(request: Request, default: int = 50) -> int | Response:
        raw = request.query_params.get("limit", str(default))
        if not raw.isdigit() or not 1 <= int(raw) <= 200:
            return _invalid([{"loc": ["query", "limit"], "msg": "expected 1 to 200"}])
        return int(raw)

    def lister(table: str, filters: tuple[str, ...]) -> Handler:
        async def handler(request: Request) -> Response:
            limit = limit_of(request)
            if isinstance(limit, Response):
                return limit
            after = None
            if cursor := request.query_params.get("cursor"):
                after = decode_cursor(cursor)
                if after is None:
                    return _invalid([{"loc": ["query", "cursor"], "msg": "invalid cursor"}])
            chosen = {k: request.query_params[k] for k in filters if k in request.query_params}
            unknown = set(request.query_params) - {*filters, "limit", "cursor"}
            if unknown:
                return _invalid([{"loc": ["query", k], "msg": "unknown filter"} for k in sorted(unknown)])
            rows, last = sb.store.select(table, chosen, limit, after)
            return JSONResponse({"data": [sb.public(table, r) for r in rows],
                                 "next_cursor": encode_cursor(last) if last else None})
        return handler

    def creator(table: str) -> Handler:
        async def handler(request: Request) -> Response:
            payload, problem = await read_json(request)
            if problem:
                return problem
            clean, errors = validate(sb, table, payload, partial=False)
            if errors:
                return _invalid(errors)
            if table == "contacts":
                clean["tax_id"] = f"900-{random.randint(70, 99)}-{random.randint(0, 9999):04d}"
            record = sb.store.insert(table, clean)
            sb.changed(table, "created", record)
            return JSONResponse(sb.public(table, record), status_code=201,
                                headers={"Location": f"/api/v1/{table}/{record['id']}"})
        return handler

    def item(table: str) -> Handler:
        async def handler(request: Request) -> Response:
            record_id = request.path_params["id"]
            if request.method == "GET":
                record = sb.store.get(table, record_id)
            elif request.method == "DELETE":
                record = sb.store.get(table, record_id)
                if record is not None:
                    sb.store.delete(table, record_id)
                    sb.changed(table, "deleted", record)
                    return Response(status_code=204)
            else:
                payload, problem = await read_json(request)
                if problem:
                    return problem
                clean, errors = validate(sb, table, payload, partial=True)
                if errors:
                    return _invalid(errors)
                record = sb.store.update(table, record_id, clean)
                if record is not None:
                    sb.changed(table, "updated", record)
            if record is None:
                return _error(404, "not_found", f"no {_SINGULAR[table]} {record_id}")
            return JSONResponse(sb.public(table, record))
        return handler

    async def accounts(request: Request) -> Response:
        try:
            page = int(request.query_params.get("page", "1"))
            per_page = int(request.query_params.get("per_page", "50"))
            if page < 1 or not 1 <= per_page <= 200:
                raise ValueError
        except ValueError:
            return _invalid([{"loc": ["query", "page"], "msg": "expected page >= 1, per_page 1 to 200"}])
        rows, total = sb.store.page("accounts", page, per_page)
        return JSONResponse({"data": rows, "page": page, "per_page": per_page, "total": total})

    async def search(request: Request) -> Response:
        limit = limit_of(request, 20)
        if isinstance(limit, Response):
            return limit
        q = request.query_params.get("q", "")
        tag, email = request.query_params.get("tag"), request.query_params.get("email")
        if not (q or tag or email):
            return _invalid([{"loc": ["query", "q"], "msg": "give q, tag or email"}])
        hits, total = sb.index.search(q, tag, email, limit)
        return JSONResponse({"data": hits, "total": total})

    async def pipeline(request: Request) -> Response:
        return JSONResponse({"data": sb.store.pipeline()})

    async def activity_report(request: Request) -> Response:
        return JSONResponse({"data": sb.store.activity_summary()})

    async def webhooks(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse({"data": [{k: v for k, v in h.items() if k != "secret"}
                                          for h in sb.hooks.hooks.values()]})
        payload, problem = await read_json(request)
        if problem:
            return problem
        errors = []
        if not isinstance(payload, dict):
            return _invalid([{"loc": ["body"], "msg": "expected a JSON object"}])
        for key in set(payload) - {"url", "events", "secret"}:
            errors.append({"loc": ["body", key], "msg": "unknown field"})
        url = payload.get("url")
        url_error = loopback_url_error(url) if isinstance(url, str) else "expected a URL"
        if url_error:
            errors.append({"loc": ["body", "url"], "msg": url_error})
        events = payload.get("events", [])
        if not isinstance(events, list) or any(e not in EVENT_TYPES for e in events):
            errors.append({"loc": ["body", "events"], "msg": f"expected a list of {EVENT_TYPES}"})
        secret = payload.get("secret")
        if secret is not None and not isinstance(secret, str):
            errors.append({"loc": ["body", "secret"], "msg": "expected a string"})
        if errors:
            return _invalid(errors)
        hook = sb.hooks.register(str(url), events, secret)
        return JSONResponse({k: v for k, v in hook.items() if k != "secret"}, status_code=201)

    async def webhook_item(request: Request) -> Response:
        if sb.hooks.hooks.pop(request.path_params["id"], None) is None:
            return _error(404, "not_found", "no such webhook")
        return Response(status_code=204)

    # -- admin ------------------------------------------------------------------------

    async def faults(request: Request) -> Response:
        if request.method == "PUT":
            payload, problem = await read_json(request)
            if problem:
                return problem
            errors = Faults.validate_patch(payload)
            if errors:
                return _invalid(errors)
            sb.faults.apply(payload)
            sb.worker.notify()
        elif request.method == "DELETE":
            fresh = Faults(sync_lag_ms=sb.settings.sync_lag_ms)
            sb.faults.apply(fresh.as_dict())
            sb.worker.notify()
        return JSONResponse(sb.faults.as_dict())

    async def revoke(request: Request) -> Response:
        count = len(sb.tokens)
        sb.tokens.clear()
        return JSONResponse({"revoked": count})

    async def settings_(request: Request) -> Response:
        payload, problem = await read_json(request)
        if problem:
            return problem
        ttl = payload.get("token_ttl_s") if isinstance(payload, dict) else None
        if not isinstance(payload, dict) or set(payload) != {"token_ttl_s"} or not (
                isinstance(ttl, int | float) and not isinstance(ttl, bool) and 0 <= ttl <= 86400):
            return _invalid([{"loc": ["body", "token_ttl_s"], "msg": "expected seconds, 0 to 86400"}])
        sb.settings.token_ttl = float(ttl)
        return JSONResponse({"token_ttl_s": sb.settings.token_ttl})

    async def stats(request: Request) -> Response:
        return JSONResponse({
            "requests": sb.requests, "injected_errors": sb.injected_errors,
            "throttled": sb.throttled,
            "records": {t: sb.store.count(t) for t in SCHEMAS},
            "search": {"indexed": len(sb.index.docs), "backlog": sb.worker.backlog(),
                       "applied": sb.worker.applied, "last_lag_s": sb.worker.last_lag},
            "webhooks": {"registered": len(sb.hooks.hooks), "delivered": sb.hooks.delivered,
                         "failed": sb.hooks.failed, "queued": sb.hooks.queue.qsize()},
            "tokens": len(sb.tokens)})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    routes = [
        Route("/healthz", healthz),
        Route("/oauth/token", api(token, auth=False), methods=["POST"]),
        Route("/api/v1/me", api(me)),
        Route("/api/v1/search/contacts", api(search)),
        Route("/api/v1/reports/pipeline", api(pipeline)),
        Route("/api/v1/reports/activities", api(activity_report)),
        Route("/api/v1/webhooks", api(webhooks), methods=["GET", "POST"]),
        Route("/api/v1/webhooks/{id}", api(webhook_item), methods=["DELETE"]),
        Route("/admin/faults", admin(faults), methods=["GET", "PUT", "DELETE"]),
        Route("/admin/tokens/revoke", admin(revoke), methods=["POST"]),
        Route("/admin/settings", admin(settings_), methods=["PUT"]),
        Route("/admin/stats", admin(stats)),
    ]
    filters = {"contacts": ("email", "email_prefix", "account_id", "tag", "updated_since"),
               "deals": ("account_id", "stage", "tag", "updated_since"),
               "activities": ("contact_id", "deal_id", "tag")}
    for table in SCHEMAS:
        collection = api(accounts) if table == "accounts" else api(lister(table, filters[table]))
        create = api(creator(table))

        async def dispatch(request: Request, _get: Handler = collection,
                           _post: Handler = create) -> Response:
            return await (_get if request.method == "GET" else _post)(request)

        methods = ["GET", "DELETE"] if table == "activities" else ["GET", "PATCH", "DELETE"]
        routes += [Route(f"/api/v1/{table}", dispatch, methods=["GET", "POST"]),
                   Route(f"/api/v1/{table}/{{id}}", api(item(table)), methods=methods)]

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.sandbox = sb
    return app

"""Property-based fuzzing of every operation in the sandbox's own OpenAPI document.

Hypothesis generates requests for each operation GET /openapi.json lists: many
well-formed ones drawn from the operation's schemas (so they reach the handlers),
with hostile values mixed in at every level: wrong types, NaN and Infinity, huge
and negative numbers, lone surrogates, long and deeply nested values, unknown and
repeated parameters, broken UTF-8, empty and non-JSON bodies, bad credentials.
No answer may be a 5xx, every error must have the documented shape, and afterwards
every record the fuzzing stored must still read back: by id, in every list page and
in search. The run is bounded: a fixed number of examples per operation, no deadline
per example, and a fresh sandbox of its own.
"""

from __future__ import annotations

import json
import os
import re
import string
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import ADMIN, SandboxProcess

EXAMPLES = int(os.environ.get("CRMPULSE_FUZZ_EXAMPLES", "100"))  # per operation
KNOWN_ID = "<a live record id>"
URL_TEXT = 2000  # longest hostile text in a path or query (httpx refuses URLs over 64 kB)
WRITE, READ, DELETE, OTHER, ADMIN_STAGE = range(5)

Json = Any


@pytest.fixture(scope="module")
def target() -> Iterator[SandboxProcess]:
    proc = SandboxProcess("--seed", "12", "--sync-lag", "0ms")
    yield proc
    proc.stop()


# -- strategies: values a schema allows, and values it does not --------------------------------

def hostile_text(longest: int = 300_000) -> st.SearchStrategy[str]:
    """Text a field, parameter or path segment should be ready for (URLs stay under 8 kB)."""
    return st.one_of(
        st.text(max_size=40),
        st.text(st.characters(codec="utf-8"), max_size=20),
        st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3),  # lone surrogates
        st.sampled_from(["²", "٣", "1e400", "NaN", "-0", " 7", "1_0", "0x10", "9" * 30, "\x00", "\ufeff",
                         "e\u0301", "\u202e", "null", "[]", "{}", "%00", "../..", "' OR 1=1 --"]),
        st.integers(min_value=1, max_value=longest).map(lambda n: "x" * n),
    )


def nested(depth: int) -> Json:
    value: Json = 1
    for _ in range(depth):
        value = [value]
    return value


def hostile_json() -> st.SearchStrategy[Json]:
    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(),  # floats: NaN and +-Infinity too
        st.sampled_from([10**400, -(10**400), 2**63, -(2**63) - 1, 1e308, -0.0, 5e-324]), hostile_text())
    return st.one_of(scalars, st.integers(min_value=1, max_value=3000).map(nested),
                     st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                                  | st.dictionaries(hostile_text(), inner, max_size=4), max_leaves=12))


def from_schema(schema: dict[str, Any], doc: dict[str, Any], name: str = "") -> st.SearchStrategy[Json]:
    """Values the (JSON Schema 2020-12) schema allows, for the subset pydantic emits."""
    if name in HINTS:
        hint = st.sampled_from(HINTS[name])
        return st.one_of(hint, hint, hint, from_schema(schema, doc))
    if "$ref" in schema:
        return from_schema(doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]], doc, name)
    if "anyOf" in schema:
        return st.one_of(*(from_schema(option, doc, name) for option in schema["anyOf"]))
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers(schema.get("minimum"), min(schema.get("maximum", 10**6), 10**6))
    if kind == "number":
        return st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False, allow_infinity=False)
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {}), doc), max_size=min(schema.get("maxItems", 5), 5))
    if kind == "object":
        if "properties" in schema:
            return objects(schema, doc)
        values = from_schema(schema.get("additionalProperties", {}), doc)
        keys = st.text(string.ascii_letters, min_size=1, max_size=schema.get("propertyNames", {}).get("maxLength", 64))
        return st.dictionaries(keys, values, max_size=min(schema.get("maxProperties", 5), 5))
    if kind == "string":
        return strings(schema, name)
    return hostile_json()


HINTS = {  # values that get past the checks the schema cannot express
    "url": ["http://127.0.0.1:9/hook", "http://localhost:9/x", "http://[::1]:9/"],
    "cursor": ["MQ", "NQ", "MTAw"],
    "grant_type": ["client_credentials", "password", "authorization_code"],
    "client_id": ["crmpulse"], "client_secret": ["sandbox-secret"],
    "username": ["rep@sandbox.example"], "password": ["sandbox-password"],
}


def strings(schema: dict[str, Any], name: str) -> st.SearchStrategy[str]:
    low, high = schema.get("minLength", 0), min(schema.get("maxLength", 60), 60)
    if schema.get("format") == "date-time":
        return st.datetimes().map(lambda d: d.isoformat())
    pattern = schema.get("pattern")
    if pattern == r"^\d{4}-\d{2}-\d{2}$":
        return st.dates().map(lambda d: d.isoformat())
    if pattern and pattern.startswith("^"):
        return st.from_regex(pattern, fullmatch=True).filter(lambda s: low <= len(s) <= schema.get("maxLength", 10**9))
    alphabet = st.characters(codec="utf-8", exclude_categories=["Cs"])
    return st.text(alphabet, min_size=max(low, 1 if pattern else 0), max_size=high).filter(
        lambda s: not pattern or re.search(pattern, s))


def objects(schema: dict[str, Any], doc: dict[str, Any]) -> st.SearchStrategy[dict[str, Json]]:
    """A valid object, or one with a field hostile, a required one missing, or one unknown."""
    properties: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Json]:
        out = {}
        for field, sub in properties.items():
            if field in required or field in HINTS or draw(st.booleans()):
                out[field] = draw(from_schema(sub, doc, field))
        mutation = draw(st.sampled_from(["none", "none", "hostile", "drop", "unknown"]))
        if mutation == "hostile" and properties:
            out[draw(st.sampled_from(sorted(properties)))] = draw(hostile_json())
        elif mutation == "drop" and out:
            out.pop(draw(st.sampled_from(sorted(out))))
        elif mutation == "unknown":
            out[draw(hostile_text())] = draw(hostile_json())
        return out
    return build()


def encode(value: Json) -> bytes:
    try:  # NaN and Infinity come out as the literals a strict parser must refuse
        return json.dumps(value, allow_nan=True).encode()
    except (ValueError, OverflowError, RecursionError):
        return b"[" * 5000


@st.composite
def raw_bodies(draw: st.DrawFn, schema: dict[str, Any], doc: dict[str, Any]) -> bytes:
    shape = draw(st.sampled_from(["schema"] * 6 + ["any", "bytes", "truncated", "bom", "empty", "deep"]))
    if shape == "any":
        return encode(draw(hostile_json()))
    if shape == "bytes":
        return draw(st.binary(max_size=200))
    if shape == "empty":
        return draw(st.sampled_from([b"", b" ", b"\r\n"]))
    if shape == "deep":
        return b"[" * draw(st.integers(900, 100_000))
    body = encode(draw(from_schema(schema, doc)))
    if shape == "truncated":
        return body[: draw(st.integers(0, max(len(body) - 1, 0)))]
    if shape == "bom":
        return b"\xef\xbb\xbf" + body
    return body


@st.composite
def requests_for(draw: st.DrawFn, path: str, method: str, operation: dict[str, Any],
                 doc: dict[str, Any]) -> dict[str, Any]:
    """One request for an operation: path, query pairs, body bytes, headers."""
    url = path
    for name in re.findall(r"{(\w+)}", path):
        value = draw(st.one_of(st.just(KNOWN_ID), st.just(KNOWN_ID), hostile_text(URL_TEXT)))
        url = url.replace("{" + name + "}", value if value == KNOWN_ID else quote(_bytes(value), safe=""))
    params: list[tuple[str, str]] = []
    for parameter in operation.get("parameters", []):
        if parameter["in"] != "query" or not draw(st.booleans()):
            continue
        valid = from_schema(parameter["schema"], doc, parameter["name"]).map(_text)
        value = draw(st.one_of(valid, valid, valid, hostile_text(URL_TEXT)))
        params.append((parameter["name"], value))
        if draw(st.integers(0, 19)) == 0:
            params.append((parameter["name"], value))  # the same parameter twice
    if draw(st.integers(0, 19)) == 0:
        params.append((draw(hostile_text(URL_TEXT)), draw(hostile_text(URL_TEXT))))
    content = operation.get("requestBody", {}).get("content", {})
    body, ctype = None, None
    if "application/json" in content:
        body = draw(raw_bodies(content["application/json"]["schema"], doc))
        ctype = draw(st.sampled_from(["application/json"] * 4 + ["text/plain", "application/x-www-form-urlencoded",
                                                                  "multipart/form-data; boundary=x", ""]))
        if "application/x-www-form-urlencoded" in content and draw(st.booleans()):
            fields = draw(from_schema(content["application/json"]["schema"], doc))
            body = urlencode([(_bytes(k), _bytes(_text(v))) for k, v in fields.items()]).encode()
            ctype = "application/x-www-form-urlencoded"
    credentials = draw(st.sampled_from(["good"] * 6 + ["none", "garbage", "basic", "apikey"]))
    query = urlencode([(_bytes(k), _bytes(v)) for k, v in params])
    return {"method": method.upper(), "url": url + ("?" + query if query else ""), "body": body,
            "ctype": ctype, "credentials": credentials}


def _text(value: Json) -> str:
    return value if isinstance(value, str) else encode(value).decode()


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # lone surrogates go out as the bytes they would be


# -- sending and checking ------------------------------------------------------------------------

class Fuzzer:
    def __init__(self, sandbox: SandboxProcess) -> None:
        self.sandbox = sandbox
        self.client = httpx.Client(base_url=sandbox.url, timeout=30)
        self.token = sandbox.token()
        self.sent: Counter[str] = Counter()
        self.answers: dict[str, Counter[int]] = defaultdict(Counter)  # operation -> 2, 3, 4 -> count
        self.stored: dict[str, str] = {}  # record id -> the URL it reads back at
        self.hooks: list[str] = []

    def headers(self, credentials: str, admin: bool) -> dict[str, str]:
        if admin:
            return dict(ADMIN) if credentials == "good" else {"X-Admin-Token": "wrong"}
        return {"good": {"Authorization": f"Bearer {self.token}"}, "none": {},
                "garbage": {"Authorization": "Bearer garbage"},
                "basic": {"Authorization": "Basic cmVwQHNhbmRib3guZXhhbXBsZTpzYW5kYm94LXBhc3N3b3Jk"},
                "apikey": {"X-API-Key": "sandbox-api-key"}}[credentials]

    def live_id(self, kind: str, pick: int) -> str:
        ids = self.hooks if kind == "webhooks" else [
            i for i, url in self.stored.items() if url.startswith(f"/api/v1/{kind}/")]
        return ids[pick % len(ids)] if ids else "none"

    def send(self, operation_id: str, request: dict[str, Any], pick: int) -> httpx.Response:
        url = request["url"]
        if KNOWN_ID in url:
            url = url.replace(KNOWN_ID, self.live_id(url.split("/")[3], pick))
        headers = self.headers(request["credentials"], url.startswith("/admin/"))
        if request["ctype"]:
            headers["Content-Type"] = request["ctype"]
        response = self.client.request(request["method"], url, content=request["body"], headers=headers)
        self.sent[operation_id] += 1
        self.answers[operation_id][response.status_code // 100] += 1
        self.check(request, response)
        path = url.partition("?")[0]
        if response.status_code == 201 and path == "/api/v1/webhooks":
            self.hooks.append(response.json()["id"])
        elif response.status_code in (200, 201) and request["method"] in ("POST", "PATCH") \
                and path.startswith("/api/v1/"):
            record = response.json()
            self.stored[record["id"]] = f"/api/v1/{path.split('/')[3]}/{record['id']}"
            again = self.client.get(self.stored[record["id"]], headers=self.headers("good", False))
            assert again.status_code == 200 and again.json() == record, (request, again.text)
        if response.status_code == 204 and request["method"] == "DELETE":
            self.stored.pop(path.rsplit("/", 1)[1], None)
        return response

    @staticmethod
    def check(request: dict[str, Any], response: httpx.Response) -> None:
        where = f"{request['method']} {response.request.url} body={request['body']!r:.300}"
        assert response.status_code < 500, f"{where} -> {response.status_code} {response.text[:500]}"
        if response.status_code == 204:
            assert response.content == b"", where
            return
        if response.headers["content-type"].startswith("text/csv"):  # exports: a header row first
            assert response.status_code == 200 and response.text.startswith("id,"), where
            return
        body = response.json()
        if response.status_code >= 400:
            assert isinstance(body.get("error"), str) and isinstance(body.get("message"), str), (where, body)
            for problem in body.get("detail", []):
                assert isinstance(problem["loc"], list) and isinstance(problem["msg"], str), (where, body)

    def remember_seeded(self) -> None:
        for kind in ("contacts", "deals", "leads", "activities"):
            for record in self.walk(f"/api/v1/{kind}"):
                self.stored[record["id"]] = f"/api/v1/{kind}/{record['id']}"
        for record in self.client.get("/api/v1/accounts", params={"per_page": 200},
                                      headers=self.headers("good", False)).json()["data"]:
            self.stored[record["id"]] = f"/api/v1/accounts/{record['id']}"

    def walk(self, path: str) -> list[dict[str, Any]]:
        """Every record of a cursor-paged list, asserting every page reads."""
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = self.client.get(path, params={"limit": 200, **({"cursor": cursor} if cursor else {})},
                                   headers=self.headers("good", False))
            assert page.status_code == 200, (path, page.text[:500])
            out += page.json()["data"]
            cursor = page.json()["next_cursor"]
            if not cursor:
                return out


def stage(path: str, method: str) -> int:
    """Writes first, then reads of what they stored, then deletes; the rest last, admin at the end."""
    if path.startswith("/admin/"):
        return ADMIN_STAGE
    if not path.startswith("/api/"):
        return OTHER
    return {"POST": WRITE, "PATCH": WRITE, "GET": READ, "DELETE": DELETE}[method.upper()]


def test_no_generated_request_gets_a_5xx_or_stores_a_record_that_breaks_a_read(target: SandboxProcess) -> None:
    doc = httpx.get(target.url + "/openapi.json").json()
    operations = sorted(((stage(p, m), p, m, op) for p, ops in doc["paths"].items() for m, op in ops.items()),
                        key=lambda o: o[0])
    fuzzer = Fuzzer(target)
    fuzzer.remember_seeded()
    started = time.monotonic()
    swept = False
    for when, path, method, operation in operations:
        if when >= OTHER and not swept:
            sweep(fuzzer, target)  # before the admin API can reset what the fuzzing stored
            swept = True

        fuzz_one(fuzzer, operation["operationId"], requests_for(path, method, operation, doc))
    elapsed = time.monotonic() - started
    assert swept
    assert set(fuzzer.sent) == {op["operationId"] for _, _, _, op in operations}
    assert min(fuzzer.sent.values()) >= EXAMPLES // 2, fuzzer.sent
    assert sum(fuzzer.sent.values()) >= EXAMPLES * len(operations) * 0.9
    answered = sum(fuzzer.answers.values(), Counter())
    assert answered[2] > 0.15 * sum(answered.values()), answered  # many reach the handlers, not only validation
    print(f"fuzzed {len(operations)} operations with {sum(fuzzer.sent.values())} requests in {elapsed:.0f} s:",
          ", ".join(f"{op} {dict(counts)}" for op, counts in sorted(fuzzer.answers.items())))
    assert fuzzer.client.post("/admin/reset", headers=ADMIN).status_code == 200
    assert fuzzer.client.get("/api/v1/me", headers={"X-API-Key": "sandbox-api-key"}).status_code == 200


def fuzz_one(fuzzer: Fuzzer, operation_id: str, requests: st.SearchStrategy[dict[str, Any]]) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(request=requests, pick=st.integers(0, 10**6))
    def fuzz(request: dict[str, Any], pick: int) -> None:
        fuzzer.send(operation_id, request, pick)

    fuzz()


def sweep(fuzzer: Fuzzer, target: SandboxProcess) -> None:
    """Everything the fuzzing stored reads back: by id, in every list, and in search."""
    good = fuzzer.headers("good", False)
    for record_id, url in list(fuzzer.stored.items()):
        assert fuzzer.client.get(url, headers=good).status_code == 200, (record_id, url)
    contacts = fuzzer.walk("/api/v1/contacts")
    for kind in ("deals", "leads", "activities"):
        fuzzer.walk(f"/api/v1/{kind}")
    accounts = fuzzer.client.get("/api/v1/accounts", params={"per_page": 200}, headers=good)
    assert accounts.status_code == 200, accounts.text[:500]
    for report in ("pipeline", "activities"):
        assert fuzzer.client.get(f"/api/v1/reports/{report}", headers=good).status_code == 200
    deadline = time.monotonic() + 20
    while target.stats()["search"]["backlog"]:
        assert time.monotonic() < deadline, "the sync worker never caught up"
        time.sleep(0.05)
    for contact in contacts:
        hits = fuzzer.client.get("/api/v1/search/contacts", params={"email": contact["email"][:254]}, headers=good)
        assert hits.status_code == 200, (contact, hits.text[:500])
        assert contact["id"] in {h["id"] for h in hits.json()["data"]} or hits.json()["total"] > 20, contact

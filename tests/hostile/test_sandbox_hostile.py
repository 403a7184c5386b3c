"""Hostile input to the sandbox CRM gets a clear 4xx in the documented shape, never a 500.

The first tests are the reproductions from issue 12, each with the exact answer it
gets now; the rest are the neighbours of those bugs: numbers out of range, wrong
JSON types at every field of every body, Unicode edge cases, repeated parameters,
long strings, deep nesting, bodies that are not UTF-8, empty, or of another type,
and credentials in text that is not ASCII.
"""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.helpers import ADMIN, SandboxProcess

MIB = 1024 * 1024


def invalid(response: httpx.Response, loc: list[Any], msg: str | None = None) -> None:
    """A 422 in the documented shape, with an error at ``loc`` (and ``msg``, when given)."""
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "validation_failed"
    assert body["message"] == "the request has invalid fields"
    errors = {tuple(e["loc"]): e["msg"] for e in body["detail"]}
    assert tuple(loc) in errors, body
    if msg is not None:
        assert errors[tuple(loc)] == msg


def malformed(response: httpx.Response, message: str) -> None:
    """A 400 for a body that is not JSON the sandbox accepts; ``message`` is in its text."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "malformed_json"
    assert message in body["message"]


def refused(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error and isinstance(body["message"], str) and body["message"]


def post_raw(api: httpx.Client, path: str, body: bytes, ctype: str = "application/json") -> httpx.Response:
    return api.post(path, content=body, headers={"Content-Type": ctype})


def every_contact_reads(api: httpx.Client) -> int:
    """Walk every page of contacts and search the index; return how many contacts there are."""
    seen, cursor = 0, None
    while True:
        page = api.get("/api/v1/contacts", params={"limit": 200, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        seen += len(page.json()["data"])
        cursor = page.json()["next_cursor"]
        if not cursor:
            break
    assert api.get("/api/v1/search/contacts", params={"q": "a", "limit": 200}).status_code == 200
    return seen


def peak_rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/PID/status")


def megabytes(count: int) -> Iterator[bytes]:
    chunk = b"x" * MIB
    for _ in range(count):
        yield chunk


# -- the reproductions of issue 12 ---------------------------------------------------------

def test_a_non_ascii_digit_as_limit_is_a_422(api: httpx.Client) -> None:
    invalid(api.get("/api/v1/contacts?limit=%C2%B2"), ["query", "limit"], "expected 1 to 200")
    invalid(api.get("/api/v1/search/contacts?q=a&limit=%D9%A3"), ["query", "limit"], "expected 1 to 200")


def test_a_page_number_of_ten_to_the_25th_is_a_422(api: httpx.Client) -> None:
    invalid(api.get("/api/v1/accounts", params={"page": 10**25}), ["query", "page"],
            "expected a page number from 1 to 1000000")


def test_a_cursor_of_thirty_nines_is_a_422(api: httpx.Client) -> None:
    encoded = base64.urlsafe_b64encode(b"9" * 30).decode().rstrip("=")
    beyond_sqlite = base64.urlsafe_b64encode(str(2**63).encode()).decode().rstrip("=")
    for cursor in ("9" * 30, encoded, beyond_sqlite):
        invalid(api.get("/api/v1/contacts", params={"cursor": cursor}), ["query", "cursor"], "invalid cursor")


def test_a_body_of_100000_open_brackets_is_a_400(api: httpx.Client) -> None:
    malformed(post_raw(api, "/api/v1/contacts", b"[" * 100_000), "nested too deeply")
    assert api.get("/api/v1/me").status_code == 200


@pytest.mark.parametrize(("path", "body", "literal"), [
    ("/api/v1/contacts", b'{"first_name": "N", "last_name": "N", "email": "n@t.example", "custom": {"score": NaN}}', "NaN"),
    ("/api/v1/contacts", b'{"first_name": "N", "last_name": "N", "email": "n@t.example", "custom": {"score": Infinity}}', "Infinity"),
    ("/api/v1/contacts", b'{"first_name": "N", "last_name": "N", "email": "n@t.example", "custom": {"s": -Infinity}}', "-Infinity"),
    ("/api/v1/contacts", b'{"first_name": "N", "last_name": "N", "email": "n@t.example", "custom": {"s": 1e400}}', "1e400"),
    ("/api/v1/deals", b'{"name": "N", "amount": NaN}', "NaN"),
    ("/api/v1/leads", b'{"first_name": "N", "last_name": "N", "email": "n@t.example", "tags": [NaN]}', "NaN"),
])
def test_nan_and_infinity_anywhere_in_json_are_refused_and_never_stored(
        api: httpx.Client, crm: SandboxProcess, path: str, body: bytes, literal: str) -> None:
    before = crm.stats()["records"]
    malformed(post_raw(api, path, body), f"{literal} ")
    assert crm.stats()["records"] == before
    assert every_contact_reads(api) == before["contacts"]


@pytest.fixture
def fresh() -> Iterator[SandboxProcess]:
    """A sandbox of its own, so its peak memory is this test's alone."""
    proc = SandboxProcess("--seed", "0")
    yield proc
    proc.stop()


def test_a_200_mib_token_request_is_refused_without_being_read(fresh: SandboxProcess) -> None:
    peak = peak_rss_bytes(fresh.proc.pid)
    response = httpx.post(fresh.url + "/oauth/token", content=megabytes(200), timeout=30,
                          headers={"Content-Length": str(200 * MIB),
                                   "Content-Type": "application/x-www-form-urlencoded"})
    refused(response, 413, "too_large")
    assert peak_rss_bytes(fresh.proc.pid) - peak < 32 * MIB


def test_a_200_mib_chunked_token_request_is_cut_off_at_the_limit(fresh: SandboxProcess) -> None:
    peak = peak_rss_bytes(fresh.proc.pid)
    response = httpx.post(fresh.url + "/oauth/token", content=megabytes(200), timeout=30)
    refused(response, 413, "too_large")
    assert peak_rss_bytes(fresh.proc.pid) - peak < 32 * MIB
    assert httpx.post(fresh.url + "/oauth/token", data={"grant_type": "client_credentials", "client_id": "crmpulse",
                                                        "client_secret": "sandbox-secret"}).status_code == 200


def test_a_declared_length_over_the_limit_is_answered_before_any_body_is_sent(crm: SandboxProcess) -> None:
    for path in ("/oauth/token", "/api/v1/contacts", "/admin/faults"):
        with socket.create_connection(("127.0.0.1", crm.port), timeout=5) as sock:
            sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {200 * MIB}\r\n"
                         "X-API-Key: sandbox-api-key\r\nX-Admin-Token: sandbox-admin\r\n\r\n".encode())
            head, body = read_response(sock)
        assert head.startswith(b"HTTP/1.1 413 "), head
        assert json.loads(body)["error"] == "too_large"


def read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """Status line and headers, and the body they announce, however the bytes arrive."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        chunk = sock.recv(4096)
        assert chunk, f"connection closed after {body!r}"
        body += chunk
    return head, body


# -- numbers ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "params", "loc"), [
    ("/api/v1/contacts", {"limit": 0}, "limit"), ("/api/v1/contacts", {"limit": -1}, "limit"),
    ("/api/v1/contacts", {"limit": 201}, "limit"), ("/api/v1/deals", {"limit": 10**20}, "limit"),
    ("/api/v1/contacts", {"limit": "1e2"}, "limit"), ("/api/v1/contacts", {"limit": " 7"}, "limit"),
    ("/api/v1/contacts", {"limit": "1_0"}, "limit"), ("/api/v1/contacts", {"limit": ""}, "limit"),
    ("/api/v1/accounts", {"page": 0}, "page"), ("/api/v1/accounts", {"page": -3}, "page"),
    ("/api/v1/accounts", {"per_page": 500}, "per_page"),
    ("/api/v1/search/contacts", {"q": "a", "limit": 100000}, "limit"),
    ("/api/v1/contacts", {"updated_since": "yesterday"}, "updated_since"),
    ("/api/v1/deals", {"stage": "won-ish"}, "stage"), ("/api/v1/leads", {"status": "hot"}, "status"),
])
def test_query_numbers_and_values_out_of_range_are_422s(api: httpx.Client, path: str,
                                                       params: dict[str, Any], loc: str) -> None:
    invalid(api.get(path, params=params), ["query", loc])


@pytest.mark.parametrize(("path", "body", "loc", "msg"), [
    ("/api/v1/deals", {"name": "d", "amount": -1}, "amount", "expected a number from 0 to 1e12"),
    ("/api/v1/deals", {"name": "d", "amount": 1e13}, "amount", "expected a number from 0 to 1e12"),
    ("/api/v1/deals", {"name": "d", "amount": 10**400}, "amount", "expected a number from 0 to 1e12"),
    ("/api/v1/contacts", {"first_name": "a", "last_name": "b", "email": "a@b.example", "custom": {"n": 10**16}},
     "custom", None),
    ("/api/v1/contacts", {"first_name": "a", "last_name": "b", "email": "a@b.example", "custom": {"n": -1e16}},
     "custom", None),
])
def test_body_numbers_out_of_range_are_422s(api: httpx.Client, path: str, body: dict[str, Any],
                                           loc: str, msg: str | None) -> None:
    invalid(api.post(path, json=body), ["body", loc], msg)


@pytest.mark.parametrize(("path", "body", "loc"), [
    ("/admin/faults", {"latency_ms": -5}, "latency_ms"), ("/admin/faults", {"capacity_rps": 1e7}, "capacity_rps"),
    ("/admin/faults", {"error_status": 200}, "error_status"), ("/admin/faults", {"capacity_queue": -1}, "capacity_queue"),
    ("/admin/faults", {"retry_after_s": 2.5}, "retry_after_s"), ("/admin/faults", {"path_prefix": "/" * 201}, "path_prefix"),
    ("/admin/settings", {"token_ttl_s": 86401}, "token_ttl_s"), ("/admin/settings", {"token_ttl_s": -1}, "token_ttl_s"),
])
def test_admin_knobs_out_of_range_are_422s(crm: SandboxProcess, path: str, body: dict[str, Any], loc: str) -> None:
    invalid(crm.admin.put(path, json=body), ["body", loc])


# -- wrong JSON types at every field of every body ---------------------------------------------

VALID_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/api/v1/contacts"): {"first_name": "T", "last_name": "Type", "email": "t@t.example"},
    ("post", "/api/v1/accounts"): {"name": "Typeco"},
    ("post", "/api/v1/deals"): {"name": "Type deal", "amount": 5},
    ("post", "/api/v1/leads"): {"first_name": "T", "last_name": "Lead", "email": "l@t.example"},
    ("post", "/api/v1/activities"): {"kind": "call", "subject": "Type call"},
    ("post", "/api/v1/webhooks"): {"url": "http://127.0.0.1:9/hook"},
    ("put", "/admin/faults"): {},
    ("put", "/admin/settings"): {"token_ttl_s": 3600},
    ("post", "/admin/access/revoke"): {"token": "not-a-token"},
    ("put", "/admin/quota"): {},
}
FORMS = ("/oauth/token", "/oauth/revoke", "/login")  # OAuth-style: a 400 invalid_request, not a 422


def wrong_value(schema: dict[str, Any]) -> Any:
    """A JSON value of a type the schema does not allow."""
    kinds = {schema.get("type")} | {o.get("type") for o in schema.get("anyOf", [])}
    if kinds & {"string"} or "enum" in schema:
        return {"not": "a string"}
    if kinds & {"number", "integer"}:
        return "12"
    if kinds & {"boolean"}:
        return "yes"
    if kinds & {"array"}:
        return "not a list"
    return ["not", "an", "object"]


def body_fields(doc: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    out = []
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if content is None or path in FORMS:
                continue
            name = content["schema"]["$ref"].rsplit("/", 1)[1]
            for field, schema in doc["components"]["schemas"][name]["properties"].items():
                out.append((method, path, field, schema))
    return out


def test_every_field_of_every_body_refuses_a_wrong_json_type(api: httpx.Client, crm: SandboxProcess) -> None:
    doc = httpx.get(crm.url + "/openapi.json").json()
    records = {kind: api.get(f"/api/v1/{kind}", params={"limit": 1} if kind != "accounts" else {"per_page": 1}
                             ).json()["data"][0]["id"] for kind in ("contacts", "accounts", "deals", "leads")}
    fields = body_fields(doc)
    assert len(fields) > 60  # every body of the API, not a sample
    for method, path, field, schema in fields:
        base = VALID_BODIES.get((method, path), {})
        assert method == "patch" or (method, path) in VALID_BODIES, f"no valid body for {method} {path}"
        url = path.replace("{id}", records[path.split("/")[3]]) if "{id}" in path else path
        client = crm.admin if path.startswith("/admin/") else api
        response = client.request(method.upper(), url, json={**base, field: wrong_value(schema)})
        invalid(response, ["body", field])


@pytest.mark.parametrize("body", [b"[]", b'"contact"', b"42", b"null", b"true"])
def test_json_that_is_not_an_object_is_a_422(api: httpx.Client, body: bytes) -> None:
    invalid(post_raw(api, "/api/v1/contacts", body), ["body"], "expected a JSON object")


# -- Unicode -----------------------------------------------------------------------------------

def test_unusual_unicode_text_round_trips_exactly(api: httpx.Client, crm: SandboxProcess) -> None:
    names = {"first_name": "Zoë 👩🏽‍💻", "last_name": "שלום\u200f عربي", "title": "e\u0301\u0000\ufeff\U0001d518\U0001d52b",
             "custom": {"ключ": "値 \U0010fffd", "emoji": "🏳️‍🌈"}, "tags": ["ß", "İ"]}
    body = {**names, "email": "zoë.unicode@t.example"}
    created = api.post("/api/v1/contacts", json=body)
    assert created.status_code == 201, created.text
    contact_id = created.json()["id"]
    try:
        fetched = api.get(f"/api/v1/contacts/{contact_id}").json()
        assert {k: fetched[k] for k in names} == names
        assert every_contact_reads(api) == crm.stats()["records"]["contacts"]
        deadline = time.monotonic() + 10
        while not (hits := api.get("/api/v1/search/contacts", params={"email": body["email"]}).json()["data"]):
            assert time.monotonic() < deadline, "never indexed"
            time.sleep(0.05)
        assert hits[0]["first_name"] == names["first_name"]
    finally:
        api.delete(f"/api/v1/contacts/{contact_id}")


@pytest.mark.parametrize(("body", "message"), [
    (b'{"first_name": "\\ud800", "last_name": "b", "email": "s@t.example"}', "lone surrogate"),
    (b'{"first_name": "\\udfff\\ud83d", "last_name": "b", "email": "s@t.example"}', "lone surrogate"),
    (b'{"first_name": "\xff", "last_name": "b", "email": "s@t.example"}', "not valid UTF-8"),
    (b'{"first_name": "\xc0\xaf", "last_name": "b", "email": "s@t.example"}', "not valid UTF-8"),
    (b'{"first_name": "\xe2\x82", "last_name": "b", "email": "s@t.example"}', "not valid UTF-8"),
    ('{"first_name": "a", "last_name": "b", "email": "s@t.example"}'.encode("utf-16"), "not valid UTF-8"),
    (b'\xef\xbb\xbf{"first_name": "a", "last_name": "b", "email": "s@t.example"}', "BOM"),
])
def test_text_that_is_not_unicode_or_not_utf8_is_a_400(api: httpx.Client, body: bytes, message: str) -> None:
    malformed(post_raw(api, "/api/v1/contacts", body), message)


def test_odd_bytes_in_query_and_path_are_plain_misses(api: httpx.Client) -> None:
    assert api.get("/api/v1/contacts", params={"email": "\x00\ufffd"}).json()["data"] == []
    assert api.get("/api/v1/contacts?email=%FF%FE").json()["data"] == []
    refused(api.get("/api/v1/contacts/%FF%00%E2%82"), 404, "not_found")


# -- repetition, length, depth -------------------------------------------------------------------

@pytest.mark.parametrize(("path", "query", "loc"), [
    ("/api/v1/contacts", "limit=5&limit=6", "limit"), ("/api/v1/contacts", "email=a&email=b", "email"),
    ("/api/v1/search/contacts", "q=a&q=b", "q"), ("/api/v1/accounts", "page=1&page=1", "page"),
])
def test_a_query_parameter_given_twice_is_a_422(api: httpx.Client, path: str, query: str, loc: str) -> None:
    invalid(api.get(f"{path}?{query}"), ["query", loc], "expected one value, got 2")


def test_a_token_parameter_given_twice_is_an_invalid_request(crm: SandboxProcess) -> None:
    response = httpx.post(crm.url + "/oauth/token", content=b"grant_type=password&grant_type=client_credentials",
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    refused(response, 400, "invalid_request")


@pytest.mark.parametrize(("field", "value"), [
    ("first_name", "x" * 101), ("first_name", "x" * 900_000), ("first_name", "   "), ("email", "a" * 250 + "@t.example"),
    ("phone", "5" * 41), ("tags", ["t" * 65]), ("tags", [f"t{i}" for i in range(21)]),
    ("custom", {"k": "v" * 1001}), ("custom", {"k" * 65: 1}), ("custom", {f"k{i}": i for i in range(51)}),
])
def test_strings_and_lists_over_their_limits_are_422s(api: httpx.Client, field: str, value: Any) -> None:
    body = {"first_name": "L", "last_name": "Long", "email": "long@t.example", field: value}
    invalid(api.post("/api/v1/contacts", json=body), ["body", field])


def test_a_long_query_or_path_is_a_4xx(api: httpx.Client) -> None:
    invalid(api.get("/api/v1/search/contacts", params={"q": "word " * 2000}), ["query", "q"],
            "expected at most 500 characters")
    response = api.get("/api/v1/contacts/" + "c" * 5000)
    refused(response, 404, "not_found")
    assert len(response.json()["message"]) < 100


def test_deep_nesting_is_refused(api: httpx.Client) -> None:
    nested: Any = "deep"
    for _ in range(500):
        nested = [nested]
    body = {"first_name": "D", "last_name": "Deep", "email": "d@t.example", "custom": {"k": nested}}
    invalid(api.post("/api/v1/contacts", json=body), ["body", "custom"])
    malformed(post_raw(api, "/api/v1/contacts", b'{"a":' * 5000 + b"1" + b"}" * 5000), "nested too deeply")


# -- empty bodies and other content types -----------------------------------------------------------

def test_empty_bodies_are_400s(api: httpx.Client, crm: SandboxProcess) -> None:
    contact = api.get("/api/v1/contacts", params={"limit": 1}).json()["data"][0]
    malformed(post_raw(api, "/api/v1/contacts", b""), "empty")
    malformed(post_raw(api, "/api/v1/contacts", b" \r\n\t"), "empty")
    malformed(api.patch(f"/api/v1/contacts/{contact['id']}", content=b""), "empty")
    malformed(crm.admin.put("/admin/faults", content=b""), "empty")
    refused(httpx.post(crm.url + "/oauth/token", content=b""), 400, "unsupported_grant_type")


def test_bodies_are_read_as_json_whatever_their_content_type(api: httpx.Client) -> None:
    body = json.dumps({"first_name": "Plain", "last_name": "Text", "email": "plain@t.example"}).encode()
    created = post_raw(api, "/api/v1/contacts", body, "text/plain")
    assert created.status_code == 201
    api.delete(f"/api/v1/contacts/{created.json()['id']}")
    malformed(post_raw(api, "/api/v1/contacts", b"first_name=a&last_name=b", "application/x-www-form-urlencoded"),
              "not valid JSON")
    multipart = api.post("/api/v1/contacts", files={"first_name": (None, "a")})
    malformed(multipart, "not valid JSON")


@pytest.mark.parametrize(("body", "ctype"), [
    (b"grant_type=client_credentials", "application/json"), (b"[1, 2]", "application/json"),
    (b'{"grant_type": NaN}', "application/json"), (b"grant_type=\xff\xfe", "application/x-www-form-urlencoded"),
    (b'{"grant_type": ["client_credentials"]}', "application/json"),
    (b'{"grant_type": "password", "username": 5}', "application/json"),
])
def test_a_token_request_that_is_neither_form_nor_json_is_an_invalid_request(
        crm: SandboxProcess, body: bytes, ctype: str) -> None:
    response = httpx.post(crm.url + "/oauth/token", content=body, headers={"Content-Type": ctype})
    refused(response, 400, "invalid_request")


# -- credentials and routing ---------------------------------------------------------------------------

@pytest.mark.parametrize("headers", [
    {"Authorization": "Bearer sändbox-pat"}, {"Authorization": "Bearer " + "x" * 4000},
    {"Authorization": "Basic " + base64.b64encode("rep@sandbox.example:pässword".encode()).decode()},
    {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode()}, {"Authorization": "Basic %%%"},
    {"Authorization": "Bearer"}, {"X-API-Key": "sändbox-api-key"},
])
def test_credentials_in_any_text_are_a_401(crm: SandboxProcess, headers: dict[str, str]) -> None:
    encoded = {k: v.encode("utf-8") for k, v in headers.items()}  # raw bytes on the wire
    response = httpx.get(crm.url + "/api/v1/me", headers=encoded)  # type: ignore[arg-type]
    refused(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_an_admin_token_that_is_not_ascii_is_a_401(crm: SandboxProcess) -> None:
    response = httpx.get(crm.url + "/admin/stats", headers={"X-Admin-Token": "sändbox-admin".encode()})  # type: ignore[dict-item]
    refused(response, 401, "unauthorized")


def test_token_secrets_that_are_not_ascii_are_refused_as_wrong(crm: SandboxProcess) -> None:
    refused(httpx.post(crm.url + "/oauth/token", data={"grant_type": "client_credentials", "client_id": "crmpulse",
                                                      "client_secret": "sändbox"}), 401, "invalid_client")
    refused(httpx.post(crm.url + "/oauth/token", json={"grant_type": "password", "username": "rep@sandbox.example",
                                                      "password": "p\u00e4ss"}), 400, "invalid_grant")
    refused(httpx.post(crm.url + "/oauth/token", data={"grant_type": "client_credentials"},
                       headers={"Authorization": "Basic " + base64.b64encode("crmpulse:säcret".encode()).decode()}),
            401, "invalid_client")


def test_unknown_paths_and_methods_get_json_404_and_405(api: httpx.Client, crm: SandboxProcess) -> None:
    refused(api.get("/api/v1/opportunities"), 404, "not_found")
    refused(crm.admin.get("/admin/nothing-here"), 404, "not_found")
    response = api.put("/api/v1/contacts")
    refused(response, 405, "method_not_allowed")
    assert set(response.headers["Allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "POST"}
    refused(api.patch("/api/v1/activities/act_x", json={}), 405, "method_not_allowed")


@pytest.mark.parametrize("url", ["http://localhost:abc/", "http://[::1", "http://127.0.0.1:99999/x",
                                 "http://127.0.0.1/\x00", "http://127.0.0.1:0/"])
def test_webhook_urls_that_cannot_be_delivered_to_are_refused(api: httpx.Client, url: str) -> None:
    invalid(api.post("/api/v1/webhooks", json={"url": url}), ["body", "url"], "expected an http(s) URL")


def test_the_sandbox_is_still_healthy_after_all_of_this(crm: SandboxProcess) -> None:
    assert crm.proc.poll() is None
    assert httpx.get(crm.url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(crm.url + "/api/v1/me", headers=ADMIN | {"X-API-Key": "sandbox-api-key"}).status_code == 200

"""The documented API is the served API, and POST /admin/reset gives a clean sandbox."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import ADMIN, SandboxProcess

DOC = Path(__file__).resolve().parents[2] / "docs" / "sandbox.md"
ENDPOINT = re.compile(r"^\| `((?:GET|POST|PUT|PATCH|DELETE)(?:, (?:GET|POST|PUT|PATCH|DELETE))*) (/[^` ]*)`")


def documented(section: str) -> set[tuple[str, str]]:
    """(method, path) pairs of the endpoint table under a '## section' heading of docs/sandbox.md."""
    text = DOC.read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    pairs = set()
    for line in body.splitlines():
        if match := ENDPOINT.match(line):
            pairs |= {(method, match[2]) for method in match[1].split(", ")}
    return pairs


def served(sandbox: SandboxProcess) -> set[tuple[str, str]]:
    doc = httpx.get(sandbox.url + "/openapi.json").json()
    return {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}


@pytest.fixture(scope="module")
def own() -> Iterator[SandboxProcess]:
    """A sandbox of this module's own: resetting it must not pull the rug from other tests."""
    proc = SandboxProcess("--seed", "30", "--sync-lag", "150ms", "--token-ttl", "20m")
    yield proc
    proc.stop()


def token(sandbox: SandboxProcess) -> dict[str, str]:
    return {"Authorization": f"Bearer {sandbox.token()}"}


def test_the_endpoint_tables_of_the_docs_are_exactly_what_is_served(own: SandboxProcess) -> None:
    api, admin = documented("API"), documented("Admin API")
    assert len(api) > 25 and len(admin) == 12
    assert api | admin == served(own)


ADMIN_CALLS: dict[tuple[str, str], tuple[dict[str, Any] | None, Any]] = {
    ("GET", "/admin/faults"): (None, lambda body: body["outage"] is False),
    ("PUT", "/admin/faults"): ({"latency_ms": 5}, lambda body: body["latency_ms"] == 5),
    ("DELETE", "/admin/faults"): (None, lambda body: body["latency_ms"] == 0),
    ("GET", "/admin/settings"): (None, lambda body: body == {"token_ttl_s": 1200, "login_max_failures": 10,
                                                             "login_window_s": 900, "login_lockout_s": 60}),
    ("PUT", "/admin/settings"): ({"token_ttl_s": 60}, lambda body: body["token_ttl_s"] == 60),
    ("POST", "/admin/tokens/revoke"): (None, lambda body: body["revoked"] >= 0),
    ("GET", "/admin/access"): (None, lambda body: len(body["tenants"]) == 2 and len(body["users"]) == 5),
    ("POST", "/admin/access/revoke"): ({"token": "no-such-token"}, lambda body: body == {"revoked": False}),
    ("GET", "/admin/quota"): (None, lambda body: body["dialect"] == "native" and body["limits"] == {}),
    ("PUT", "/admin/quota"): ({}, lambda body: body["usage"] == {}),
    ("GET", "/admin/stats"): (None, lambda body: body["records"]["leads"] == 3),
    ("POST", "/admin/reset"): (None, lambda body: body["status"] == "reset"),
}


def test_every_documented_admin_endpoint_answers_as_documented(own: SandboxProcess) -> None:
    assert set(ADMIN_CALLS) == documented("Admin API")
    for (method, path), (body, check) in ADMIN_CALLS.items():
        response = own.admin.request(method, path, json=body)
        assert response.status_code == 200, (method, path, response.text)
        assert check(response.json()), (method, path, response.json())
        assert httpx.request(method, own.url + path, json=body).status_code == 401  # the admin token is needed
    own.admin.post("/admin/reset")


def test_the_openapi_document_carries_the_models_that_validate_requests(own: SandboxProcess) -> None:
    doc = httpx.get(own.url + "/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    schemas = doc["components"]["schemas"]
    create = doc["paths"]["/api/v1/contacts"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert create == {"$ref": "#/components/schemas/ContactCreate"}
    assert set(schemas["ContactCreate"]["required"]) == {"first_name", "last_name", "email"}
    assert schemas["ContactCreate"]["additionalProperties"] is False
    assert "required" not in schemas["ContactPatch"]
    assert schemas["LeadCreate"]["properties"]["status"]["enum"] == ["new", "working", "qualified", "disqualified"]
    assert "capacity_rps" in schemas["FaultsPatch"]["properties"]
    limit = next(p for p in doc["paths"]["/api/v1/contacts"]["get"]["parameters"] if p["name"] == "limit")
    assert limit["schema"]["minimum"] == 1 and limit["schema"]["maximum"] == 200
    assert doc["paths"]["/admin/reset"]["post"]["security"] == [{"adminToken": []}]


def test_reset_brings_back_the_seed_and_a_healthy_crm(own: SandboxProcess) -> None:
    api = httpx.Client(base_url=own.url, headers=token(own), timeout=10)
    seeded = api.get("/api/v1/contacts", params={"limit": 200}).json()["data"]
    start_counts = own.stats()["records"]
    victim = seeded[0]
    extra = api.post("/api/v1/contacts", json={"first_name": "Gone", "last_name": "After Reset",
                                              "email": "gone@t.example"}).json()
    assert api.delete(f"/api/v1/contacts/{victim['id']}").status_code == 204
    assert api.patch(f"/api/v1/contacts/{seeded[1]['id']}", json={"title": "Changed"}).status_code == 200
    assert api.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/hook"}).status_code == 201
    own.faults(outage=True, sync_stall=True, auth_enforced=False, capacity_rps=3)
    own.admin.put("/admin/settings", json={"token_ttl_s": 5})

    answer = own.admin.post("/admin/reset")
    assert answer.status_code == 200 and answer.json()["records"] == start_counts

    knobs = own.admin.get("/admin/faults").json()
    assert (knobs["outage"], knobs["sync_stall"], knobs["auth_enforced"], knobs["capacity_rps"],
            knobs["sync_lag_ms"]) == (False, False, True, 0, 150)
    assert own.admin.get("/admin/settings").json()["token_ttl_s"] == 1200
    assert api.get("/api/v1/me").status_code == 401  # tokens issued before the reset are gone
    fresh = httpx.Client(base_url=own.url, headers=token(own), timeout=10)
    assert fresh.get("/api/v1/webhooks").json()["data"] == []
    again = fresh.get("/api/v1/contacts", params={"limit": 200}).json()["data"]
    strip = ("created_at", "updated_at")
    assert [{k: v for k, v in c.items() if k not in strip} for c in again] == \
           [{k: v for k, v in c.items() if k not in strip} for c in seeded]
    assert fresh.get(f"/api/v1/contacts/{extra['id']}").status_code == 404
    search = fresh.get("/api/v1/search/contacts", params={"email": victim["email"]}).json()["data"]
    assert [hit["id"] for hit in search] == [victim["id"]]  # indexed at once, as at start
    assert fresh.get("/api/v1/search/contacts", params={"email": extra["email"]}).json()["data"] == []
    stats = own.stats()
    assert stats["search"]["backlog"] == 0 and stats["webhooks"]["registered"] == 0
    assert stats["requests"] == 7  # counted afresh: the token, /me, and the five reads above


def test_reset_lets_requests_waiting_for_capacity_through(own: SandboxProcess) -> None:
    import threading

    own.faults(capacity_rps=0.2)  # one request every five seconds
    headers = {"X-API-Key": "sandbox-api-key"}
    times: list[float] = []

    def call() -> None:
        start = time.monotonic()
        assert httpx.get(own.url + "/api/v1/me", headers=headers, timeout=30).status_code == 200
        times.append(time.monotonic() - start)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while own.stats()["capacity"]["waiting"] < 2:  # the second and third wait 5 s and 10 s
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert own.admin.post("/admin/reset").status_code == 200
    for thread in threads:
        thread.join(timeout=30)
    assert len(times) == 3 and max(times) < 5  # let through, not served at their slots
    assert httpx.get(own.url + "/healthz", headers=ADMIN).status_code == 200

"""The sandbox's search index is fed by a real asynchronous sync worker with a real delay."""

from __future__ import annotations

import time
import uuid

import httpx

from tests.helpers import SandboxProcess


def create(api: httpx.Client, **extra: object) -> dict:
    marker = uuid.uuid4().hex[:10]
    body = {"first_name": "Sync", "last_name": f"Probe{marker}", "email": f"s{marker}@t.example",
            "tags": ["crmpulse-test"], **extra}
    response = api.post("/api/v1/contacts", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def visible(api: httpx.Client, email: str) -> bool:
    response = api.get("/api/v1/search/contacts", params={"email": email})
    assert response.status_code == 200
    return bool(response.json()["data"])


def wait_visible(api: httpx.Client, email: str, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if visible(api, email):
            return time.monotonic() - start
        time.sleep(0.01)
    raise AssertionError(f"{email} not searchable within {timeout}s")


def test_a_new_contact_is_not_searchable_before_the_lag_and_is_after(crm: SandboxProcess,
                                                                   api: httpx.Client) -> None:
    crm.faults(sync_lag_ms=1000)
    before = time.monotonic()
    contact = create(api)
    assert api.get(f"/api/v1/contacts/{contact['id']}").status_code == 200  # the CRM has it
    waited = wait_visible(api, contact["email"], timeout=10)
    # never visible before the lag, however fast or slow the machine (timed from before the create)
    assert time.monotonic() - before >= 1.0 and waited > 0
    api.delete(f"/api/v1/contacts/{contact['id']}")


def test_an_update_reaches_search_only_after_the_lag(crm: SandboxProcess, api: httpx.Client) -> None:
    crm.faults(sync_lag_ms=0)
    contact = create(api)
    wait_visible(api, contact["email"], timeout=5)
    crm.faults(sync_lag_ms=800)
    before = time.monotonic()
    api.patch(f"/api/v1/contacts/{contact['id']}", json={"custom": {"beat": "2"}})
    deadline = before + 10
    while True:
        hit = api.get("/api/v1/search/contacts", params={"email": contact["email"]}).json()["data"][0]
        if hit["custom"] == {"beat": "2"}:
            break
        assert hit["custom"] == {}  # the old version until the new one arrives, nothing between
        assert time.monotonic() < deadline, "the update never reached search"
        time.sleep(0.02)
    assert time.monotonic() - before >= 0.8
    api.delete(f"/api/v1/contacts/{contact['id']}")


def test_a_stall_holds_every_change_until_it_is_lifted(crm: SandboxProcess, api: httpx.Client) -> None:
    crm.faults(sync_lag_ms=0, sync_stall=True)
    contact = create(api)
    assert crm.stats()["search"]["backlog"] >= 1
    # Held for as long as we look: with no lag an unstalled worker would apply it at once;
    # a slower machine only makes this observation longer, never wrong.
    watch_until = time.monotonic() + 0.5
    while time.monotonic() < watch_until:
        assert not visible(api, contact["email"])
        time.sleep(0.05)
    assert crm.stats()["search"]["backlog"] >= 1
    crm.faults(sync_stall=False)
    wait_visible(api, contact["email"], timeout=5)
    assert crm.stats()["search"]["backlog"] == 0
    api.delete(f"/api/v1/contacts/{contact['id']}")


def test_a_deleted_contact_leaves_the_index_after_the_lag(crm: SandboxProcess, api: httpx.Client) -> None:
    crm.faults(sync_lag_ms=0)
    contact = create(api)
    wait_visible(api, contact["email"], timeout=2)
    crm.faults(sync_lag_ms=500)
    assert api.delete(f"/api/v1/contacts/{contact['id']}").status_code == 204
    assert visible(api, contact["email"])  # the index still has it ...
    deadline = time.monotonic() + 3
    while visible(api, contact["email"]):
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_search_finds_seeded_records_by_name(api: httpx.Client) -> None:
    contact = api.get("/api/v1/contacts", params={"limit": 1}).json()["data"][0]
    hits = api.get("/api/v1/search/contacts", params={"q": contact["last_name"]}).json()
    assert contact["id"] in {h["id"] for h in hits["data"]}

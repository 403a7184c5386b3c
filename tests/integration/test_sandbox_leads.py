"""Leads: CRUD, filters, pagination, validation and webhooks, the same conventions as contacts."""

from __future__ import annotations

import uuid

import httpx

from tests.helpers import SandboxProcess
from tests.integration.test_sandbox_webhooks import Receiver, register


def test_seeded_leads_are_listed_a_page_at_a_time(api: httpx.Client, crm: SandboxProcess) -> None:
    seen, cursor = [], None
    while True:
        page = api.get("/api/v1/leads", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        seen += page["data"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == crm.stats()["records"]["leads"] >= 6
    assert {lead["status"] for lead in seen} == {"new", "working", "qualified", "disqualified"}
    assert all(lead["email"].endswith(".example") for lead in seen)


def test_a_lead_is_created_read_changed_filtered_and_deleted(api: httpx.Client) -> None:
    tag = f"lead-{uuid.uuid4().hex[:8]}"
    created = api.post("/api/v1/leads", json={"first_name": "Lena", "last_name": "Lead", "email": "lena@t.example",
                                              "company": "Lumen Labs", "source": "web", "tags": [tag]})
    assert created.status_code == 201
    lead = created.json()
    assert created.headers["Location"] == f"/api/v1/leads/{lead['id']}"
    assert (lead["status"], lead["id"][:5]) == ("new", "lead_")
    assert api.get(f"/api/v1/leads/{lead['id']}").json() == lead
    changed = api.patch(f"/api/v1/leads/{lead['id']}", json={"status": "qualified"}).json()
    assert changed["status"] == "qualified" and changed["company"] == "Lumen Labs"
    found = api.get("/api/v1/leads", params={"tag": tag, "status": "qualified"}).json()["data"]
    assert [item["id"] for item in found] == [lead["id"]]
    assert api.get("/api/v1/leads", params={"tag": tag, "status": "new"}).json()["data"] == []
    assert api.delete(f"/api/v1/leads/{lead['id']}").status_code == 204
    assert api.get(f"/api/v1/leads/{lead['id']}").status_code == 404


def test_lead_fields_are_validated(api: httpx.Client) -> None:
    response = api.post("/api/v1/leads", json={"first_name": "L", "email": "not-an-email", "status": "hot"})
    assert response.status_code == 422
    assert {tuple(e["loc"]): e["msg"] for e in response.json()["detail"]} == {
        ("body", "last_name"): "field required", ("body", "email"): "expected an email address",
        ("body", "status"): "expected one of new, working, qualified, disqualified"}
    seeded = api.get("/api/v1/leads", params={"limit": 1}).json()["data"][0]
    refused = api.patch(f"/api/v1/leads/{seeded['id']}", json={"last_name": None})
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", "last_name"]


def test_lead_changes_are_delivered_as_webhooks(api: httpx.Client) -> None:
    receiver = Receiver()
    hook = register(api, receiver.url, events=["lead.created", "lead.updated", "lead.deleted"])
    try:
        lead = api.post("/api/v1/leads", json={"first_name": "W", "last_name": "Hook",
                                               "email": "w@t.example"}).json()
        api.patch(f"/api/v1/leads/{lead['id']}", json={"status": "working"})
        api.delete(f"/api/v1/leads/{lead['id']}")
        # deliveries are concurrent (as real CRMs' are): order is not promised, content is
        events = {e["type"]: e for e in (receiver.next()[0] for _ in range(3))}
        assert {t: e["data"]["id"] for t, e in events.items()} == {
            "lead.created": lead["id"], "lead.updated": lead["id"], "lead.deleted": lead["id"]}
        assert events["lead.updated"]["data"]["status"] == "working"
    finally:
        api.delete(f"/api/v1/webhooks/{hook}")
        receiver.close()

"""The HubSpot dialect, over HTTP as a HubSpot client sees it: private-app and OAuth tokens,
CRM v3 objects, paging, search, associations, errors, rate limits, webhooks, access rules and
the shared fault knobs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.helpers import SandboxProcess

FULL = "pat-na1-11111111-1111-4111-8111-111111111111"
OTHER_PORTAL = "pat-na1-22222222-2222-4222-8222-222222222222"
READ_ONLY = "pat-na1-33333333-3333-4333-8333-333333333333"
AUTH_MESSAGE = ("Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find "
                "more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview")


@pytest.fixture(scope="module")
def box() -> Iterator[SandboxProcess]:
    proc = SandboxProcess("--dialect", "hubspot", "--seed", "40", "--sync-lag", "100ms")
    yield proc
    proc.stop()


@pytest.fixture
def hs(box: SandboxProcess) -> Iterator[SandboxProcess]:
    box.admin.post("/admin/reset")
    yield box
    box.admin.post("/admin/reset")


def client(hs: SandboxProcess, token: str = FULL) -> httpx.Client:
    return httpx.Client(base_url=hs.url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def failure(response: httpx.Response, status: int, category: str | None) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert body["status"] == "error" and isinstance(body["message"], str), body
    assert body.get("category") == category, body
    assert response.headers["X-HubSpot-Correlation-Id"] == body["correlationId"]
    return dict(body)


def new_contact(api: httpx.Client, **properties: str) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:10]
    response = api.post("/crm/v3/objects/contacts", json={"properties": {
        "email": f"hs.{tag}@t.example", "firstname": "Hub", "lastname": f"Spot{tag}", **properties}})
    assert response.status_code == 201, response.text
    return dict(response.json())


def search(api: httpx.Client, kind: str, **body: Any) -> httpx.Response:
    return api.post(f"/crm/v3/objects/{kind}/search", json=body)


def eq(name: str, value: str) -> dict[str, Any]:
    return {"filterGroups": [{"filters": [{"propertyName": name, "operator": "EQ", "value": value}]}]}


def wait_found(api: httpx.Client, email: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while not (found := search(api, "contacts", **eq("email", email)).json())["results"]:
        assert time.monotonic() < deadline, "never indexed"
        time.sleep(0.05)
    return dict(found)


# -- credentials --------------------------------------------------------------------------------

def test_without_a_known_token_every_call_is_invalid_authentication(hs: SandboxProcess) -> None:
    for headers in ({}, {"Authorization": "Bearer pat-na1-00000000-0000-4000-8000-000000000000"},
                    {"Authorization": "Basic eDp5"}):
        response = httpx.get(hs.url + "/crm/v3/objects/contacts", headers=headers)
        assert failure(response, 401, "INVALID_AUTHENTICATION")["message"] == AUTH_MESSAGE
        assert response.headers["X-HubSpot-Auth-Failure"] == "401 Unauthorized"


def refresh(hs: SandboxProcess, token: str = "sandbox-hubspot-refresh-token") -> httpx.Response:
    return httpx.post(hs.url + "/oauth/v1/token", data={"grant_type": "refresh_token", "client_id": "crmpulse",
                                                        "client_secret": "sandbox-secret", "refresh_token": token})


def test_an_oauth_refresh_gives_a_thirty_minute_token_without_daily_headers(hs: SandboxProcess) -> None:
    answer = refresh(hs)
    assert answer.status_code == 200
    token = answer.json()
    assert {k: token[k] for k in ("token_type", "refresh_token", "expires_in", "token_use", "hub_id")} == {
        "token_type": "bearer", "refresh_token": "sandbox-hubspot-refresh-token", "expires_in": 1800,
        "token_use": "access", "hub_id": 1441}
    assert "crm.objects.contacts.write" in token["scopes"]
    with client(hs, token["access_token"]) as api:
        listed = api.get("/crm/v3/objects/contacts")
        assert listed.status_code == 200 and listed.headers["X-HubSpot-RateLimit-Max"] == "190"
        assert "X-HubSpot-RateLimit-Daily" not in listed.headers  # OAuth calls carry no daily headers
    info = httpx.get(hs.url + f"/oauth/v1/access-tokens/{token['access_token']}").json()
    assert info["hub_id"] == 1441 and info["user"] == "rep@sandbox.example" and 0 < info["expires_in"] <= 1800
    bad = refresh(hs, "not-a-refresh-token")
    assert bad.status_code == 400 and bad.json()["status"] == "BAD_REFRESH_TOKEN"
    assert bad.json()["message"] == "missing or invalid refresh token"


def test_an_expired_oauth_token_is_expired_authentication(hs: SandboxProcess) -> None:
    hs.admin.put("/admin/settings", json={"token_ttl_s": 1})
    token = refresh(hs).json()
    assert token["expires_in"] == 1
    deadline = time.monotonic() + 5
    while (response := httpx.get(hs.url + "/crm/v3/objects/contacts",
                                 headers={"Authorization": f"Bearer {token['access_token']}"})).status_code == 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    body = failure(response, 401, "EXPIRED_AUTHENTICATION")
    assert body["message"].startswith("The OAuth token used to make this call expired ")
    assert body["context"]["expire time"][0].endswith("Z")


def test_the_authorization_code_flow_and_deleting_a_refresh_token(hs: SandboxProcess) -> None:
    redirect = "http://127.0.0.1:9/callback"
    consent = httpx.get(hs.url + "/oauth/authorize", params={"client_id": "crmpulse", "redirect_uri": redirect,
                                                             "scope": "crm.objects.contacts.read", "state": "s1"})
    assert consent.status_code == 302
    location = urlsplit(consent.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == redirect
    query = parse_qs(location.query)
    assert query["state"] == ["s1"]
    form = {"grant_type": "authorization_code", "client_id": "crmpulse", "client_secret": "sandbox-secret",
            "redirect_uri": redirect, "code": query["code"][0]}
    token = httpx.post(hs.url + "/oauth/v1/token", data=form).json()
    assert httpx.post(hs.url + "/oauth/v1/token", data=form).json()["status"] == "BAD_AUTH_CODE"  # used once
    assert httpx.delete(hs.url + f"/oauth/v1/refresh-tokens/{token['refresh_token']}").status_code == 204
    assert refresh(hs, token["refresh_token"]).status_code == 400
    with client(hs, token["access_token"]) as api:  # access tokens made from it keep working
        assert api.get("/crm/v3/objects/contacts").status_code == 200


# -- objects ---------------------------------------------------------------------------------------

def test_create_read_update_archive_a_contact_with_hubspot_shapes(hs: SandboxProcess) -> None:
    with client(hs) as api:
        created = new_contact(api, jobtitle="CFO", phone="+1-555-0100")
        assert set(created) == {"id", "properties", "createdAt", "updatedAt", "archived"}
        assert created["id"].isdigit() and created["archived"] is False
        props = created["properties"]
        assert props["hs_object_id"] == created["id"] and props["jobtitle"] == "CFO"
        assert all(isinstance(v, str) for v in props.values())
        assert created["createdAt"].endswith("Z") and len(created["createdAt"]) == 24
        read = api.get(f"/crm/v3/objects/contacts/{created['id']}").json()
        assert set(read["properties"]) == {"email", "firstname", "lastname", "createdate", "hs_object_id",
                                           "lastmodifieddate"}  # the default properties
        by_email = api.get(f"/crm/v3/objects/contacts/{props['email']}", params={"idProperty": "email"})
        assert by_email.json()["id"] == created["id"]
        assert api.get(f"/crm/v3/objects/0-1/{created['id']}").json()["id"] == created["id"]  # type id alias
        changed = api.patch(f"/crm/v3/objects/contacts/{created['id']}",
                            json={"properties": {"jobtitle": "CEO", "phone": ""}})
        assert changed.status_code == 200 and changed.json()["properties"]["jobtitle"] == "CEO"
        chosen = api.get(f"/crm/v3/objects/contacts/{created['id']}", params={"properties": "phone,jobtitle,nope"})
        assert chosen.json()["properties"] == {"jobtitle": "CEO"}  # cleared and unknown properties are absent
        assert api.delete(f"/crm/v3/objects/contacts/{created['id']}").status_code == 204
        gone = failure(api.get(f"/crm/v3/objects/contacts/{created['id']}"), 404, None)
        assert gone["message"] == "resource not found"
        archived = api.get(f"/crm/v3/objects/contacts/{created['id']}", params={"archived": "true"}).json()
        assert archived["archived"] is True and archived["archivedAt"].endswith("Z")
        assert created["id"] in {r["id"] for r in api.get("/crm/v3/objects/contacts",
                                                           params={"archived": "true"}).json()["results"]}


def test_every_object_the_presets_use_round_trips_with_associations(hs: SandboxProcess) -> None:
    with client(hs) as api:
        company = api.post("/crm/v3/objects/companies", json={"properties": {"name": "Acme", "domain": "acme.example"}})
        assert company.status_code == 201 and company.json()["properties"]["domain"] == "acme.example"
        company_id = company.json()["id"]
        contact = api.post("/crm/v3/objects/contacts", json={
            "properties": {"email": f"a.{uuid.uuid4().hex[:6]}@t.example"},
            "associations": [{"to": {"id": company_id},
                              "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279}]}]}).json()
        deal = api.post("/crm/v3/objects/deals", json={
            "properties": {"dealname": "Renewal", "dealstage": "decisionmakerboughtin", "amount": "1200.50",
                           "closedate": "2026-12-31T00:00:00.000Z"},
            "associations": [{"to": {"id": contact["id"]}, "types": [{"associationTypeId": 3}]},
                             {"to": {"id": company_id}, "types": [{"associationTypeId": 341}]}]})
        assert deal.status_code == 201
        props = deal.json()["properties"]
        assert (props["amount"], props["dealstage"], props["pipeline"], props["closedate"]) == (
            "1200.5", "decisionmakerboughtin", "default", "2026-12-31T00:00:00.000Z")
        task = api.post("/crm/v3/objects/tasks", json={
            "properties": {"hs_timestamp": "1767225600000", "hs_task_subject": "Call back", "hs_task_type": "CALL"},
            "associations": [{"to": {"id": contact["id"]}, "types": [{"associationTypeId": 204}]}]})
        assert task.status_code == 201
        read_task = api.get(f"/crm/v3/objects/tasks/{task.json()['id']}",
                            params={"properties": "hs_timestamp,hs_task_status,hs_task_type"}).json()["properties"]
        assert read_task == {"hs_timestamp": "2026-01-01T00:00:00.000Z", "hs_task_status": "NOT_STARTED",
                             "hs_task_type": "CALL"}
        note = api.post("/crm/v3/objects/notes", json={"properties": {"hs_timestamp": "2026-01-02T00:00:00Z",
                                                                      "hs_note_body": "Met at the fair"}})
        assert note.status_code == 201
        lead = api.post("/crm/v3/objects/leads", json={
            "properties": {"hs_lead_name": "Warm lead"},
            "associations": [{"to": {"id": contact["id"]}, "types": [{"associationTypeId": 578}]}]})
        assert lead.status_code == 201 and lead.json()["properties"]["hs_lead_name"] == "Warm lead"
        linked = api.get(f"/crm/v3/objects/deals/{deal.json()['id']}", params={"associations": "contacts,companies"})
        assoc = linked.json()["associations"]
        assert assoc["contacts"]["results"] == [{"id": contact["id"], "type": "deal_to_contact"}]
        assert assoc["companies"]["results"] == [{"id": company_id, "type": "deal_to_company"}]
        back = api.get(f"/crm/v3/objects/companies/{company_id}", params={"associations": "contacts"}).json()
        assert back["associations"]["contacts"]["results"] == [{"id": contact["id"], "type": "company_to_contact"}]
        stages = api.get("/crm/v3/pipelines/deals").json()["results"][0]
        assert stages["id"] == "default" and [s["id"] for s in stages["stages"]][-2:] == ["closedwon", "closedlost"]


def test_errors_come_in_hubspot_envelopes(hs: SandboxProcess) -> None:
    with client(hs) as api:
        unknown = failure(api.post("/crm/v3/objects/contacts", json={"properties": {"shoe_size": "9"}}), 400,
                          "VALIDATION_ERROR")
        assert unknown["errors"] == [{"message": 'Property "shoe_size" does not exist', "code": "PROPERTY_DOESNT_EXIST",
                                      "context": {"propertyName": ["shoe_size"]}}]
        inner = json.loads(unknown["message"].removeprefix("Property values were not valid: "))
        assert inner[0]["error"] == "PROPERTY_DOESNT_EXIST" and inner[0]["portalId"] == 1441
        def code(response: httpx.Response) -> str:
            return str(failure(response, 400, "VALIDATION_ERROR")["errors"][0]["code"])
        assert code(api.post("/crm/v3/objects/contacts", json={"properties": {"createdate": "1"}})) == "READ_ONLY_VALUE"
        assert code(api.post("/crm/v3/objects/contacts", json={"properties": {"email": "nope"}})) == "INVALID_EMAIL"
        assert code(api.post("/crm/v3/objects/deals", json={"properties": {"dealname": "x", "dealstage": "dreaming"}})) \
            == "INVALID_OPTION"
        assert code(api.post("/crm/v3/objects/deals", json={"properties": {"dealname": "x"}})) == "REQUIRED_PROPERTY"
        assert code(api.post("/crm/v3/objects/tasks", json={"properties": {"hs_task_subject": "x"}})) == \
            "REQUIRED_PROPERTY"
        assert code(api.post("/crm/v3/objects/tasks", json={"properties": {"hs_timestamp": "yesterday"}})) == \
            "INVALID_DATE"
        failure(api.post("/crm/v3/objects/leads", json={"properties": {"hs_lead_name": "x"}}), 400, "VALIDATION_ERROR")
        failure(api.post("/crm/v3/objects/contacts", content=b'{"properties": ',
                         headers={"Content-Type": "application/json"}), 400, "VALIDATION_ERROR")
        contact = new_contact(api)
        duplicate = failure(api.post("/crm/v3/objects/contacts",
                                     json={"properties": {"email": contact["properties"]["email"].upper()}}), 409,
                            "CONFLICT")
        assert duplicate["message"] == f"Contact already exists. Existing ID: {contact['id']}"
        failure(api.get("/crm/v3/objects/contacts/not-numeric"), 404, "OBJECT_NOT_FOUND")
        failure(api.get("/crm/v3/objects/widgets"), 400, "VALIDATION_ERROR")
        failure(api.get("/crm/v3/objects/contacts", params={"limit": 101}), 400, "VALIDATION_ERROR")


def test_list_pages_with_paging_next_after_until_the_last_page(hs: SandboxProcess) -> None:
    with client(hs) as api:
        seen, after, pages = [], None, 0
        while True:
            page = api.get("/crm/v3/objects/contacts", params={"limit": 7, **({"after": after} if after else {})}).json()
            seen += [r["id"] for r in page["results"]]
            pages += 1
            if "paging" not in page:
                break
            after = page["paging"]["next"]["after"]
            assert page["paging"]["next"]["link"] == f"{hs.url}/crm/v3/objects/contacts?limit=7&after={after}"
        assert len(seen) == len(set(seen)) == 40 and pages == 6
        assert len(api.get("/crm/v3/objects/contacts").json()["results"]) == 10  # the default limit


# -- search ----------------------------------------------------------------------------------------

def test_search_filters_sorts_pages_and_counts(hs: SandboxProcess) -> None:
    hs.admin.put("/admin/quota", json={"search_per_second": 1000})  # this test searches faster than 5 a second
    with client(hs) as api:
        tag = uuid.uuid4().hex[:8]
        made = [new_contact(api, jobtitle=title, lastname=f"S{tag}{n}") for n, title in enumerate(["CFO", "CTO", "CFO"])]
        wait_found(api, made[-1]["properties"]["email"])
        by_title = search(api, "contacts", filterGroups=[{"filters": [
            {"propertyName": "lastname", "operator": "CONTAINS_TOKEN", "value": f"S{tag}*"},
            {"propertyName": "jobtitle", "operator": "IN", "values": ["CFO"]}]}],
            sorts=[{"propertyName": "lastname", "direction": "DESCENDING"}], properties=["lastname"], limit=1)
        body = by_title.json()
        assert body["total"] == 2 and [r["id"] for r in body["results"]] == [made[2]["id"]]
        assert body["paging"]["next"]["after"] == "1"
        assert "X-HubSpot-RateLimit-Max" not in by_title.headers  # search answers carry no rate-limit headers
        either = search(api, "contacts", filterGroups=[
            {"filters": [{"propertyName": "email", "operator": "EQ", "value": made[0]["properties"]["email"].upper()}]},
            {"filters": [{"propertyName": "email", "operator": "EQ", "value": made[1]["properties"]["email"]}]}]).json()
        assert {r["id"] for r in either["results"]} == {made[0]["id"], made[1]["id"]}
        assert search(api, "contacts", query=f"s{tag}0").json()["total"] == 1
        assert search(api, "contacts", **{"filterGroups": [{"filters": [
            {"propertyName": "phone", "operator": "NOT_HAS_PROPERTY"},
            {"propertyName": "lastname", "operator": "CONTAINS_TOKEN", "value": f"S{tag}1"}]}]}).json()["total"] == 1
        deal = api.post("/crm/v3/objects/deals", json={"properties": {"dealname": f"Big{tag}", "dealstage": "closedwon",
                                                                      "amount": "90000"}}).json()
        found = search(api, "deals", filterGroups=[{"filters": [
            {"propertyName": "amount", "operator": "BETWEEN", "value": "89999", "highValue": "90001"},
            {"propertyName": "dealname", "operator": "EQ", "value": f"big{tag}"}]}]).json()
        assert [r["id"] for r in found["results"]] == [deal["id"]]  # deals are searched at once, from the store
        failure(search(api, "contacts", after="9999", limit=2), 400, "VALIDATION_ERROR")
        failure(search(api, "contacts", **eq("nope", "x")), 400, "VALIDATION_ERROR")


def test_contact_search_sees_a_new_contact_only_after_the_sync_lag(hs: SandboxProcess) -> None:
    hs.admin.put("/admin/quota", json={"search_per_second": 1000})
    with client(hs) as api:
        hs.faults(sync_stall=True)
        contact = new_contact(api)
        email = contact["properties"]["email"]
        assert search(api, "contacts", **eq("email", email)).json() == {"total": 0, "results": []}
        assert api.get(f"/crm/v3/objects/contacts/{email}", params={"idProperty": "email"}).status_code == 200
        hs.faults(sync_stall=False)
        assert wait_found(api, email)["results"][0]["id"] == contact["id"]


# -- rate limits -----------------------------------------------------------------------------------

def test_rate_limit_headers_count_down_and_429s_name_their_policy(hs: SandboxProcess) -> None:
    with client(hs) as api:
        first = api.get("/crm/v3/objects/contacts", params={"limit": 1})
        second = api.get("/crm/v3/objects/contacts", params={"limit": 1})
        assert first.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
        assert int(second.headers["X-HubSpot-RateLimit-Remaining"]) == int(first.headers["X-HubSpot-RateLimit-Remaining"]) - 1
        assert int(second.headers["X-HubSpot-RateLimit-Daily-Remaining"]) == 625000 - 2
        hs.admin.put("/admin/quota", json={"ten_secondly": 4})
        codes = [api.get("/crm/v3/objects/contacts", params={"limit": 1}).status_code for _ in range(4)]
        assert codes == [200, 200, 429, 429]
        burst = api.get("/crm/v3/objects/contacts")
        assert burst.json()["policyName"] == "TEN_SECONDLY_ROLLING" and burst.json()["errorType"] == "RATE_LIMIT"
        assert burst.json()["message"] == "You have reached your ten_secondly_rolling limit."
        assert burst.headers["X-HubSpot-RateLimit-Remaining"] == "0" and "Retry-After" not in burst.headers
        with client(hs, OTHER_PORTAL) as other_app:  # the burst limit is per app
            assert other_app.get("/crm/v3/objects/contacts").status_code == 200
        used = hs.admin.get("/admin/quota").json()["usage"]["daily"]["ten_00000000000005a1"]
        assert used == 4  # refused calls are not counted
        assert hs.admin.put("/admin/quota", json={"ten_secondly": 190, "daily": used, "retry_after_s": 3}
                            ).status_code == 200
        daily = api.get("/crm/v3/objects/contacts")
        assert daily.status_code == 429 and daily.json()["policyName"] == "DAILY"
        assert daily.json()["message"] == "You have reached your daily limit." and daily.headers["Retry-After"] == "3"
        usage = api.get("/account-info/v3/api-usage/daily/private-apps")
        assert usage.status_code == 429  # the usage endpoint is an API call too
    hs.admin.post("/admin/reset")
    with client(hs) as api:
        usage = api.get("/account-info/v3/api-usage/daily/private-apps").json()["results"][0]
        assert (usage["name"], usage["usageLimit"], usage["currentUsage"]) == ("private-apps-api-calls-daily", 625000, 0)
        assert usage["resetsAt"].endswith("T00:00:00Z")


def test_search_has_its_own_per_second_limit(hs: SandboxProcess) -> None:
    hs.admin.put("/admin/quota", json={"search_per_second": 2})
    with client(hs) as api:
        start = time.monotonic()
        answers = [search(api, "contacts", query="a") for _ in range(10)]
        elapsed = time.monotonic() - start
        codes = [a.status_code for a in answers]
        assert set(codes) == {200, 429} and codes.count(200) <= 2 * (math.ceil(elapsed) + 1)
        refused = next(a for a in answers if a.status_code == 429)
        assert refused.json()["policyName"] == "SECONDLY"
        assert refused.json()["message"] == "You have reached your secondly limit."
        assert not any(h.lower().startswith("x-hubspot-ratelimit") for a in answers for h in a.headers)
        assert api.get("/crm/v3/objects/contacts").status_code == 200  # the other endpoints are not limited by it
    quota = hs.admin.get("/admin/quota").json()
    assert quota["dialect"] == "hubspot" and quota["usage"]["daily"]["ten_00000000000005a1"] == codes.count(200) + 1


# -- owners and webhooks -----------------------------------------------------------------------------

def test_owners_are_the_accounts_users_and_assign_records(hs: SandboxProcess) -> None:
    with client(hs) as api, client(hs, OTHER_PORTAL) as other:
        owners = api.get("/crm/v3/owners").json()["results"]
        assert {o["email"] for o in owners} == {"rep@sandbox.example", "integration@sandbox.example",
                                                "restricted@sandbox.example", "canary@sandbox.example"}
        assert [o["email"] for o in other.get("/crm/v3/owners").json()["results"]] == ["admin@tenant2.example"]
        rep = next(o for o in owners if o["email"] == "rep@sandbox.example")
        assert api.get(f"/crm/v3/owners/{rep['id']}").json() == rep
        contact = new_contact(api, hubspot_owner_id=rep["id"])
        assert api.get(f"/crm/v3/objects/contacts/{contact['id']}", params={"properties": "hubspot_owner_id"}
                       ).json()["properties"] == {"hubspot_owner_id": rep["id"]}
        foreign = other.get("/crm/v3/owners").json()["results"][0]["id"]
        invalid = failure(api.patch(f"/crm/v3/objects/contacts/{contact['id']}",
                                    json={"properties": {"hubspot_owner_id": foreign}}), 400, "VALIDATION_ERROR")
        assert invalid["errors"][0]["code"] == "INVALID_OPTION"


class Receiver:
    def __init__(self, status: int = 204) -> None:
        self.posts: queue.Queue[tuple[bytes, dict[str, str], str]] = queue.Queue()
        receiver = self
        self.status = status

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.put((body, dict(self.headers), self.path))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hubspot"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def next(self, timeout: float = 5) -> tuple[list[dict[str, Any]], dict[str, str], bytes]:
        body, headers, _ = self.posts.get(timeout=timeout)
        return json.loads(body), headers, body

    def close(self) -> None:
        self.server.shutdown()


def test_webhooks_are_event_arrays_signed_v1_and_v3_with_the_client_secret(hs: SandboxProcess) -> None:
    receiver = Receiver()
    try:
        hook = hs.admin.post("/admin/webhooks", json={"url": receiver.url, "events": [
            "contact.creation", "contact.propertyChange", "contact.deletion"]})
        assert hook.status_code == 201 and hook.json()["kind"] == "hubspot"
        with client(hs) as api:
            contact = new_contact(api)
            events, headers, raw = receiver.next()
            assert len(events) == 1
            event = events[0]
            assert (event["subscriptionType"], event["objectId"], event["portalId"], event["changeSource"]) == (
                "contact.creation", int(contact["id"]), 1441, "CRM")
            assert isinstance(event["occurredAt"], int) and event["attemptNumber"] == 0
            secret = b"sandbox-secret"
            assert headers["X-HubSpot-Signature"] == hashlib.sha256(secret + raw).hexdigest()
            assert headers["X-HubSpot-Signature-Version"] == "v1"
            timestamp = headers["X-HubSpot-Request-Timestamp"]
            expected = base64.b64encode(hmac.new(secret, b"POST" + receiver.url.encode() + raw + timestamp.encode(),
                                                 hashlib.sha256).digest()).decode()
            assert headers["X-HubSpot-Signature-v3"] == expected
            assert abs(int(timestamp) - time.time() * 1000) < 60_000
            api.patch(f"/crm/v3/objects/contacts/{contact['id']}", json={"properties": {"firstname": "Renamed"}})
            changed = receiver.next()[0]
            assert [(e["subscriptionType"], e["propertyName"], e["propertyValue"]) for e in changed] == [
                ("contact.propertyChange", "firstname", "Renamed")]
            api.delete(f"/crm/v3/objects/contacts/{contact['id']}")
            assert receiver.next()[0][0]["subscriptionType"] == "contact.deletion"
            api.post("/crm/v3/objects/companies", json={"properties": {"name": "Not subscribed"}})
            with client(hs, OTHER_PORTAL) as other:
                new_contact(other)  # another account's change
            with pytest.raises(queue.Empty):
                receiver.next(timeout=0.5)
    finally:
        receiver.close()


@pytest.mark.parametrize(("status", "attempts"), [(404, 1), (500, 2)])
def test_a_failed_webhook_is_retried_unless_the_answer_is_final(hs: SandboxProcess, status: int, attempts: int) -> None:
    receiver = Receiver(status)
    try:
        hs.admin.post("/admin/webhooks", json={"url": receiver.url, "events": ["contact.creation"]})
        with client(hs) as api:
            new_contact(api)
        for _ in range(attempts):
            receiver.next(timeout=5)
        if attempts == 1:
            with pytest.raises(queue.Empty):
                receiver.next(timeout=1.5)  # a 404 is never retried
    finally:
        receiver.close()


# -- fault knobs and access ---------------------------------------------------------------------------

def test_the_shared_fault_knobs_act_behind_the_hubspot_api(hs: SandboxProcess) -> None:
    hs.admin.put("/admin/quota", json={"search_per_second": 1000})
    with client(hs) as api:
        hs.faults(outage=True)
        failure(api.get("/crm/v3/objects/contacts"), 503, None)
        hs.faults(outage=False, error_rate=1.0, error_status=502)
        failure(api.get("/crm/v3/objects/contacts"), 502, None)
        hs.faults(error_rate=0.0, rate_limit_rps=1, retry_after_s=2)
        codes = [api.get("/crm/v3/objects/contacts") for _ in range(4)]
        limited = [r for r in codes if r.status_code == 429]
        assert limited and limited[0].json()["policyName"] == "SECONDLY" and limited[0].headers["Retry-After"] == "2"
        hs.faults(rate_limit_rps=0, latency_ms=250)
        start = time.monotonic()
        assert api.get("/crm/v3/objects/contacts").status_code == 200 and time.monotonic() - start >= 0.25
        hs.faults(latency_ms=0, capacity_rps=0.2, capacity_queue=1)
        results: list[httpx.Response] = []
        threads = [threading.Thread(target=lambda: results.append(api.get("/crm/v3/objects/contacts")))
                   for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        assert 200 in [r.status_code for r in results]
        failure(next(r for r in results if r.status_code == 503), 503, None)


def test_another_account_sees_nothing_of_this_one_on_any_read_path(hs: SandboxProcess) -> None:
    hs.admin.put("/admin/quota", json={"search_per_second": 1000})
    with client(hs) as api, client(hs, OTHER_PORTAL) as other:
        contact = new_contact(api)
        email = contact["properties"]["email"]
        wait_found(api, email)

        def paths() -> dict[str, bool]:
            listed = set()
            page: dict[str, Any] = {"paging": {"next": {"after": None}}}
            while "paging" in page:
                after = page["paging"]["next"]["after"]
                page = other.get("/crm/v3/objects/contacts", params={"limit": 100, **({"after": after} if after else {})}
                                 ).json()
                listed |= {r["id"] for r in page["results"]}
            return {"get": other.get(f"/crm/v3/objects/contacts/{contact['id']}").status_code == 200,
                    "list": contact["id"] in listed,
                    "search": bool(search(other, "contacts", **eq("email", email)).json()["results"])}

        assert paths() == {"get": False, "list": False, "search": False}
        failure(other.patch(f"/crm/v3/objects/contacts/{contact['id']}", json={"properties": {"firstname": "x"}}),
                404, None)
        for path in ("get", "list", "search"):
            hs.faults(unfiltered_reads=[path])
            assert paths() == {p: p == path for p in ("get", "list", "search")}


def test_a_read_only_app_is_refused_with_missing_scopes_until_its_role_is_widened(hs: SandboxProcess) -> None:
    with client(hs, READ_ONLY) as reader:
        assert reader.get("/crm/v3/objects/contacts").status_code == 200
        refused = failure(reader.post("/crm/v3/objects/contacts", json={"properties": {"email": "r@t.example"}}),
                          403, "MISSING_SCOPES")
        assert refused["errors"][0]["context"]["requiredGranularScopes"] == ["crm.objects.contacts.write"]
        assert refused["links"] == {"scopes": "https://developers.hubspot.com/scopes"}
        failure(reader.get("/crm/v3/objects/deals"), 403, "MISSING_SCOPES")
        contact = reader.get("/crm/v3/objects/contacts", params={"limit": 1}).json()["results"][0]
        failure(reader.delete(f"/crm/v3/objects/contacts/{contact['id']}"), 403, "MISSING_SCOPES")
        hs.faults(widen_role=True)
        assert reader.get("/crm/v3/objects/deals").status_code == 200
        assert reader.delete(f"/crm/v3/objects/contacts/{contact['id']}").status_code == 204


def test_sensitive_properties_do_not_exist_until_exposed(hs: SandboxProcess) -> None:
    with client(hs) as api:
        contact = new_contact(api)
        asked = {"properties": "email,card_number,iban"}
        assert set(api.get(f"/crm/v3/objects/contacts/{contact['id']}", params=asked).json()["properties"]) == {"email"}
        assert failure(api.patch(f"/crm/v3/objects/contacts/{contact['id']}", json={"properties": {"iban": "x"}}),
                       400, "VALIDATION_ERROR")["errors"][0]["code"] == "PROPERTY_DOESNT_EXIST"
        hs.faults(exposed_fields=["iban"])
        shown = api.get(f"/crm/v3/objects/contacts/{contact['id']}", params=asked).json()["properties"]
        assert set(shown) == {"email", "iban"} and shown["iban"].startswith("GB") and shown["iban"][4:8] == "SBOX"


def test_a_revoked_private_app_token_stops_working_unless_revocation_is_ignored(hs: SandboxProcess) -> None:
    for token in (FULL, "sandbox-integration-token"):
        with client(hs, token) as api:
            assert api.get("/crm/v3/objects/contacts").status_code == 200
            assert hs.admin.post("/admin/access/revoke", json={"token": token}).json() == {"revoked": True}
            failure(api.get("/crm/v3/objects/contacts"), 401, "INVALID_AUTHENTICATION")
            hs.faults(ignore_revocation=True)
            assert api.get("/crm/v3/objects/contacts").status_code == 200
            hs.faults(ignore_revocation=False)


def test_the_marker_property_finds_every_record_a_run_created(hs: SandboxProcess) -> None:
    hs.admin.put("/admin/quota", json={"search_per_second": 1000})
    run = f"run-{uuid.uuid4().hex[:8]}"
    with client(hs) as api:
        contact = new_contact(api, crmpulse_run=run)
        deal = api.post("/crm/v3/objects/deals", json={"properties": {"dealname": "Marked", "dealstage": "closedwon",
                                                                      "crmpulse_run": run}}).json()
        new_contact(api)
        wait_found(api, contact["properties"]["email"])
        for kind, made in (("contacts", contact), ("deals", deal)):
            found = search(api, kind, **eq("crmpulse_run", run), properties=["crmpulse_run"]).json()
            assert [(r["id"], r["properties"]["crmpulse_run"]) for r in found["results"]] == [(made["id"], run)]

"""The Dynamics 365 (Dataverse Web API) dialect, over HTTP as a Dataverse client sees it: Entra ID
tokens, OData CRUD, queries and paging, errors, service protection limits, webhooks, business
units and security roles, and the shared fault knobs."""

from __future__ import annotations

import base64
import json
import queue
import re
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

TENANT = "5a1d0000-0000-4000-8000-0000000e0001"
APP = "4a5d7e1c-0000-4000-8000-000000000001"
RESTRICTED_APP = "4a5d7e1c-0000-4000-8000-000000000002"
SECOND_UNIT_APP = "4a5d7e1c-0000-4000-8000-000000000003"
SECRETS = {APP: "sandbox-secret", RESTRICTED_APP: "restricted-secret", SECOND_UNIT_APP: "tenant2-secret"}
V = "/api/data/v9.2"


@pytest.fixture(scope="module")
def box() -> Iterator[SandboxProcess]:
    proc = SandboxProcess("--dialect", "dynamics", "--seed", "40", "--sync-lag", "100ms")
    yield proc
    proc.stop()


@pytest.fixture
def dv(box: SandboxProcess) -> Iterator[SandboxProcess]:
    box.admin.post("/admin/reset")
    yield box
    box.admin.post("/admin/reset")


def token_request(dv: SandboxProcess, **form: str) -> httpx.Response:
    tenant = form.pop("tenant", TENANT)
    return httpx.post(f"{dv.url}/{tenant}/oauth2/v2.0/token", data=form)


def token(dv: SandboxProcess, app: str = APP) -> str:
    response = token_request(dv, grant_type="client_credentials", client_id=app, client_secret=SECRETS[app],
                             scope=f"{dv.url}/.default")
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def client(dv: SandboxProcess, app: str = APP) -> httpx.Client:
    return httpx.Client(base_url=dv.url + V, timeout=15, headers={
        "Authorization": f"Bearer {token(dv, app)}", "Accept": "application/json", "OData-MaxVersion": "4.0",
        "OData-Version": "4.0"})


def fault(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    return str(body["error"]["message"])


def new_contact(api: httpx.Client, **columns: Any) -> str:
    tag = uuid.uuid4().hex[:10]
    response = api.post("/contacts", json={"firstname": "Data", "lastname": f"Verse{tag}",
                                           "emailaddress1": f"dv.{tag}@t.example", **columns})
    assert response.status_code == 204, response.text
    entity = response.headers["OData-EntityId"]
    match = re.fullmatch(rf"{re.escape(api.base_url.scheme)}://[^/]+{V}/contacts\(([0-9a-f-]{{36}})\)", entity)
    assert match, entity
    return match[1]


# -- Entra ID ------------------------------------------------------------------------------------

def test_client_credentials_answer_a_bearer_token_for_the_environment(dv: SandboxProcess) -> None:
    response = token_request(dv, grant_type="client_credentials", client_id=APP, client_secret="sandbox-secret",
                             scope=f"{dv.url}/.default")
    body = response.json()
    assert set(body) == {"token_type", "expires_in", "ext_expires_in", "access_token"}
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 3599)
    _, claims, _ = body["access_token"].split(".")
    decoded = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    assert decoded["aud"] == dv.url and decoded["tid"] == TENANT and decoded["appid"] == APP
    basic = base64.b64encode(f"{APP}:sandbox-secret".encode()).decode()
    by_header = httpx.post(f"{dv.url}/sandbox.example/oauth2/v2.0/token", headers={"Authorization": f"Basic {basic}"},
                           data={"grant_type": "client_credentials", "scope": f"{dv.url}//.default"})
    assert by_header.status_code == 200  # the tenant's domain name, Basic client auth, and the // scope form


@pytest.mark.parametrize(("form", "status", "error", "code"), [
    ({"tenant": "11111111-2222-4333-8444-555555555555"}, 400, "invalid_request", 90002),
    ({"scope": None}, 400, "invalid_request", 900144),
    ({"scope": "https://org.crm.dynamics.com/user_impersonation"}, 400, "invalid_scope", 70011),
    ({"scope": "https://org.crm.dynamics.com/.default"}, 400, "invalid_resource", 500011),
    ({"client_id": "00000000-0000-4000-8000-000000000000"}, 400, "unauthorized_client", 700016),
    ({"client_secret": "wrong"}, 401, "invalid_client", 7000215),
    ({"grant_type": "authorization_code"}, 400, "unsupported_grant_type", 70003),
])
def test_token_errors_are_entra_errors(dv: SandboxProcess, form: dict[str, Any], status: int, error: str,
                                       code: int) -> None:
    base = {"grant_type": "client_credentials", "client_id": APP, "client_secret": "sandbox-secret",
            "scope": f"{dv.url}/.default"}
    sent = {k: v for k, v in {**base, **form}.items() if v is not None}
    response = token_request(dv, **sent)
    assert response.status_code == status
    body = response.json()
    assert body["error"] == error and body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ") and "\r\nTrace ID: " in body["error_description"]
    assert body["error_uri"] == f"https://login.microsoftonline.com/error?code={code}"
    assert {"timestamp", "trace_id", "correlation_id"} <= set(body)


def test_a_call_without_a_valid_token_is_a_bare_401_with_a_bearer_challenge(dv: SandboxProcess) -> None:
    for headers in ({}, {"Authorization": "Bearer eyJ.garbage."}):
        response = httpx.get(dv.url + V + "/WhoAmI", headers=headers)
        assert response.status_code == 401 and response.content == b""
        assert response.headers["WWW-Authenticate"] == (
            f"Bearer authorization_uri={dv.url}/{TENANT}/oauth2/authorize, resource_id={dv.url}/")


def test_who_am_i_names_the_user_its_business_unit_and_the_organization(dv: SandboxProcess) -> None:
    with client(dv) as api, client(dv, SECOND_UNIT_APP) as other:
        me = api.get("/WhoAmI").json()
        assert set(me) == {"@odata.context", "BusinessUnitId", "UserId", "OrganizationId"}
        assert me["@odata.context"].endswith("/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse")
        assert api.get("/WhoAmI()").json()["UserId"] == me["UserId"]
        them = other.get("/WhoAmI").json()
        assert them["OrganizationId"] == me["OrganizationId"] and them["BusinessUnitId"] != me["BusinessUnitId"]
        fault(api.post("/WhoAmI", json={}), 404, "")


# -- rows -----------------------------------------------------------------------------------------

def test_create_read_update_delete_a_contact_the_dataverse_way(dv: SandboxProcess) -> None:
    with client(dv) as api:
        account = api.get("/accounts", params={"$top": "1"}).json()["value"][0]["accountid"]
        contact = new_contact(api, jobtitle="Analyst", **{"parentcustomerid_account@odata.bind": f"/accounts({account})"})
        read = api.get(f"/contacts({contact})", params={"$select": "fullname,jobtitle,_parentcustomerid_value"})
        assert read.headers["OData-Version"] == "4.0"
        assert read.headers["Content-Type"].startswith("application/json; odata.metadata=minimal")
        body = read.json()
        assert body["@odata.context"] == f"{dv.url}{V}/$metadata#contacts(fullname,jobtitle,_parentcustomerid_value)/$entity"
        assert re.fullmatch(r'W/"\d+"', body["@odata.etag"]) and body["contactid"] == contact
        assert (body["jobtitle"], body["_parentcustomerid_value"]) == ("Analyst", account)
        assert api.get(f"/contacts({contact})", headers={"If-None-Match": body["@odata.etag"]}).status_code == 304
        assert api.patch(f"/contacts({contact})", json={"jobtitle": "Lead"}, headers={"If-Match": "*"}).status_code == 204
        fault(api.patch(f"/contacts({contact})", json={"jobtitle": "x"}, headers={"If-Match": body["@odata.etag"]}),
              412, "0x80060882")
        changed = api.patch(f"/contacts({contact})", json={"telephone1": "555-0100"},
                            headers={"Prefer": "return=representation"})
        assert changed.status_code == 200 and changed.json()["telephone1"] == "555-0100"
        assert changed.headers["Preference-Applied"] == "return=representation"
        fault(api.patch(f"/contacts({contact})", json={}, headers={"If-None-Match": "*"}), 412, "0x80040237")
        assert api.delete(f"/contacts({contact})").status_code == 204
        message = fault(api.get(f"/contacts({contact})"), 404, "0x80040217")
        assert message == f"Entity 'contact' With Id = {contact} Does Not Exist"
        fault(api.patch(f"/contacts({contact})", json={"jobtitle": "x"}, headers={"If-Match": "*"}), 404, "0x80040217")
        fault(api.delete(f"/contacts({contact})"), 404, "0x80040217")


def test_create_with_return_representation_answers_201_and_the_row(dv: SandboxProcess) -> None:
    with client(dv) as api:
        created = api.post("/contacts", json={"lastname": "Represented"},
                           headers={"Prefer": "return=representation"}, params={"$select": "lastname"})
        assert created.status_code == 201 and "OData-EntityId" not in created.headers
        assert created.headers["Preference-Applied"] == "return=representation"
        body = created.json()
        assert body["@odata.context"].endswith("$metadata#contacts(lastname)/$entity")
        assert set(body) == {"@odata.context", "@odata.etag", "lastname", "contactid"}


def test_patch_without_if_match_is_an_upsert(dv: SandboxProcess) -> None:
    with client(dv) as api:
        chosen = str(uuid.uuid4())
        created = api.patch(f"/contacts({chosen})", json={"lastname": "Upserted"})
        assert created.status_code == 204 and created.headers["OData-EntityId"].endswith(f"/contacts({chosen})")
        assert api.get(f"/contacts({chosen})").json()["lastname"] == "Upserted"
        assert api.patch(f"/contacts({chosen})", json={"lastname": "Again"},
                         headers={"Prefer": "return=representation"}).status_code == 200
        other = str(uuid.uuid4())
        assert api.patch(f"/contacts({other})", json={"lastname": "New"},
                         headers={"Prefer": "return=representation"}).status_code == 201
        for key in (chosen, other):
            assert api.delete(f"/contacts({key})").status_code == 204


def test_every_table_the_presets_use_round_trips(dv: SandboxProcess) -> None:
    with client(dv) as api:
        rep = {"Prefer": "return=representation"}
        account = api.post("/accounts", json={"name": "Contoso Sandbox", "websiteurl": "https://contoso.example"},
                           headers=rep).json()
        contact = new_contact(api)
        opportunity = api.post("/opportunities", headers=rep, json={
            "name": "Renewal", "estimatedvalue": 1200.5, "estimatedclosedate": "2026-12-31", "salesstage": 2,
            "customerid_account@odata.bind": f"/accounts({account['accountid']})",
            "parentcontactid@odata.bind": f"contacts({contact})"}).json()
        assert (opportunity["estimatedvalue"], opportunity["salesstage"], opportunity["statecode"],
                opportunity["_customerid_value"], opportunity["_parentcontactid_value"]) == (
            1200.5, 2, 0, account["accountid"], contact)
        lead = api.post("/leads", headers=rep, json={"subject": "Interested", "lastname": "Lead",
                                                     "companyname": "Prospect"}).json()
        assert (lead["statecode"], lead["statuscode"], lead["fullname"]) == (0, 1, "Lead")
        task = api.post("/tasks", headers=rep, json={
            "subject": "Call back", "scheduledend": "2026-12-01T10:00:00Z",
            "regardingobjectid_contact_task@odata.bind": f"/contacts({contact})"}).json()
        assert task["_regardingobjectid_value"] == contact and task["scheduledend"] == "2026-12-01T10:00:00Z"
        for entity_set, key in (("tasks", task["activityid"]), ("leads", lead["leadid"]),
                                ("opportunities", opportunity["opportunityid"]), ("contacts", contact),
                                ("accounts", account["accountid"])):
            assert api.delete(f"/{entity_set}({key})").status_code == 204


def test_payload_and_routing_errors_come_in_the_odata_envelope(dv: SandboxProcess) -> None:
    with client(dv) as api:
        assert "Invalid property 'Name' was found in entity 'Microsoft.Dynamics.CRM.contact'" in fault(
            api.post("/contacts", json={"Name": "x"}), 400, "0x0")
        assert "An undeclared property 'parentcustomerid'" in fault(
            api.post("/contacts", json={"parentcustomerid@odata.bind": "/accounts(00000000-0000-0000-0000-000000000001)"}),
            400, "0x80048d19")
        fault(api.post("/contacts", json={"lastname": 5}), 400, "0x80048d19")
        fault(api.post("/contacts", content=b'{"lastname": ', headers={"Content-Type": "application/json"}), 400,
              "0x80048d19")
        fault(api.post("/contacts", json={"lastname": "x" * 51}), 400, "0x80044331")
        fault(api.post("/contacts", json={"parentcustomerid_account@odata.bind": f"/accounts({uuid.uuid4()})"}),
              404, "0x80040217")
        assert fault(api.get("/Account"), 404, "0x8006088a") == "Resource not found for the segment 'Account'."
        fault(api.patch("/contacts", json={}), 405, "0x80060888")
        fault(api.get("/contacts(not-a-guid)"), 400, "0x80060888")


# -- queries -----------------------------------------------------------------------------------------

def test_filter_orderby_top_and_count(dv: SandboxProcess) -> None:
    with client(dv) as api:
        tag = uuid.uuid4().hex[:8]
        made = [new_contact(api, lastname=f"Q{tag}{n}", jobtitle=t) for n, t in enumerate(["CFO", "CTO", "CFO"])]
        found = api.get("/contacts", params={
            "$select": "lastname", "$filter": f"startswith(lastname,'q{tag}') and jobtitle eq 'cfo'",
            "$orderby": "lastname desc", "$count": "true"}).json()
        assert [r["contactid"] for r in found["value"]] == [made[2], made[0]] and found["@odata.count"] == 2
        assert found["@odata.context"].endswith("$metadata#contacts(lastname)")
        assert len(api.get("/contacts", params={"$top": "3"}).json()["value"]) == 3
        count = api.get("/contacts/$count", params={"$filter": f"contains(lastname,'{tag}')"})
        assert count.text == "3" and count.headers["Content-Type"].startswith("text/plain")
        recent = api.get("/contacts", params={"$filter": f"modifiedon gt 2020-01-01T00:00:00Z and "
                                                         f"endswith(lastname,'{tag}1') and not (jobtitle eq null)"})
        assert [r["contactid"] for r in recent.json()["value"]] == [made[1]]
        quoted = api.get("/contacts", params={"$filter": f"lastname eq 'O''{tag}'"})
        assert quoted.status_code == 200 and quoted.json()["value"] == []


def test_paging_follows_next_links_over_every_row_once(dv: SandboxProcess) -> None:
    with client(dv) as api:
        page = api.get("/contacts", params={"$select": "fullname"}, headers={"Prefer": "odata.maxpagesize=7"})
        assert page.headers["Preference-Applied"] == "odata.maxpagesize=7"
        seen, pages = [], 0
        while True:
            body = page.json()
            seen += [r["contactid"] for r in body["value"]]
            pages += 1
            link = body.get("@odata.nextLink")
            if not link:
                break
            assert "$skiptoken=%3Ccookie%20pagenumber=%22" in link and "%253ccookie%2520page%253d%2522" in link
            page = api.get(link, headers={"Prefer": "odata.maxpagesize=7"})
        assert len(seen) == len(set(seen)) == 40 and pages == 6
        fault(api.get("/contacts", params={"$skiptoken": "garbage"}), 400, "0x8004112A")


def test_query_errors_name_the_property_or_the_position(dv: SandboxProcess) -> None:
    with client(dv) as api:
        assert fault(api.get("/contacts", params={"$select": "Name"}), 400, "0x80060888") == \
            "Could not find a property named 'Name' on type 'Microsoft.Dynamics.CRM.contact'."
        assert "unterminated literal" in fault(api.get("/contacts", params={"$filter": "lastname eq 'O'Bryan'"}),
                                               400, "0x80060888")
        fault(api.get("/contacts", params={"$filter": "shoe eq 9"}), 400, "0x80060888")
        fault(api.get("/contacts", params={"$skip": "10"}), 400, "0x80060888")
        fault(api.get("/contacts", params={"$filter": "lastname eq 5"}), 400, "0x80060888")


# -- service protection ---------------------------------------------------------------------------------

def test_every_answer_reports_what_is_left_of_the_five_minute_window(dv: SandboxProcess) -> None:
    with client(dv) as api:
        first, second = api.get("/WhoAmI"), api.get("/WhoAmI")
        assert int(first.headers["x-ms-ratelimit-burst-remaining-xrm-requests"]) == 5999
        assert int(second.headers["x-ms-ratelimit-burst-remaining-xrm-requests"]) == 5998
        assert re.fullmatch(r"1,1\d\d\.\d\d|1,200\.00", second.headers["x-ms-ratelimit-time-remaining-xrm-requests"])
        assert second.headers["x-ms-dop-hint"] == "48"


def test_past_the_request_limit_calls_get_429_with_retry_after_until_the_window_moves(dv: SandboxProcess) -> None:
    assert dv.admin.put("/admin/quota", json={"requests": 3, "window_s": 3}).status_code == 200
    with client(dv) as api, client(dv, SECOND_UNIT_APP) as other_user:
        assert [api.get("/WhoAmI").status_code for _ in range(3)] == [200] * 3
        refused = api.get("/WhoAmI")
        assert fault(refused, 429, "0x80072322") == "Number of requests exceeded the limit of 3 over time window of 3 seconds."
        assert 1 <= int(refused.headers["Retry-After"]) <= 3
        assert refused.headers["x-ms-ratelimit-burst-remaining-xrm-requests"] == "0"
        assert other_user.get("/WhoAmI").status_code == 200  # the limits are per user
        deadline = time.monotonic() + 10
        while api.get("/WhoAmI").status_code == 429:
            assert time.monotonic() < deadline, "the window never moved on"
            time.sleep(0.25)


def test_execution_time_and_concurrency_limits(dv: SandboxProcess) -> None:
    dv.admin.put("/admin/quota", json={"execution_seconds": 0.5})
    dv.faults(latency_ms=300)
    with client(dv) as api:
        assert [api.get("/WhoAmI").status_code for _ in range(2)] == [200, 200]
        assert "Combined execution time of incoming requests exceeded limit of 500  milliseconds" in fault(
            api.get("/WhoAmI"), 429, "0x80072321")
        dv.admin.put("/admin/quota", json={"execution_seconds": 1200.0, "concurrent": 1})
        dv.faults(latency_ms=800)
        results: list[httpx.Response] = []
        threads = [threading.Thread(target=lambda: results.append(api.get("/WhoAmI"))) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        codes = sorted(r.status_code for r in results)
        assert codes[0] == 200 and 429 in codes
        busy = next(r for r in results if r.status_code == 429)
        assert fault(busy, 429, "0x80072326") == "Number of concurrent requests exceeded the limit of 1."


# -- webhooks -------------------------------------------------------------------------------------------

class Receiver:
    def __init__(self, statuses: list[int] | None = None) -> None:
        self.posts: queue.Queue[tuple[dict[str, Any], dict[str, str], str]] = queue.Queue()
        self.statuses = statuses or []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.posts.put((body, dict(self.headers), self.path))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/dataverse"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def next(self, timeout: float = 5) -> tuple[dict[str, Any], dict[str, str], str]:
        return self.posts.get(timeout=timeout)

    def close(self) -> None:
        self.server.shutdown()


def test_webhooks_post_the_execution_context_with_the_chosen_secret(dv: SandboxProcess) -> None:
    receiver = Receiver()
    try:
        assert dv.admin.post("/admin/webhooks", json={"url": receiver.url, "auth": "WebhookKey",
                                                      "value": {"code": "s3cret"}}).status_code == 201
        with client(dv) as api:
            contact = new_contact(api)
            context, headers, path = receiver.next()
            assert parse_qs(urlsplit(path).query) == {"code": ["s3cret"]}
            assert (headers["x-ms-dynamics-entity-name"], headers["x-ms-dynamics-request-name"]) == ("contact", "Create")
            assert headers["x-ms-dynamics-organization"] == urlsplit(dv.url).netloc
            assert headers["x-ms-correlation-request-id"] == context["CorrelationId"]
            assert not any("signature" in h.lower() for h in headers)
            assert (context["MessageName"], context["PrimaryEntityName"], context["PrimaryEntityId"],
                    context["Stage"]) == ("Create", "contact", contact, 40)
            assert context["OrganizationId"] == api.get("/WhoAmI").json()["OrganizationId"]
            target = context["InputParameters"][0]["value"]
            assert target["LogicalName"] == "contact" and target["Id"] == contact
            assert {"key": "emailaddress1", "value": api.get(f"/contacts({contact})").json()["emailaddress1"]} in \
                target["Attributes"]
            api.delete(f"/contacts({contact})")
            deleted, _, _ = receiver.next()
            assert deleted["MessageName"] == "Delete"
            assert deleted["InputParameters"][0]["value"]["__type"].startswith("EntityReference:")
        with client(dv, SECOND_UNIT_APP) as other_unit:
            new_contact(other_unit)
            with pytest.raises(queue.Empty):
                receiver.next(timeout=0.5)
    finally:
        receiver.close()


def test_a_header_secret_and_one_retry_only_after_a_503(dv: SandboxProcess) -> None:
    receiver = Receiver(statuses=[503, 500])
    try:
        dv.admin.post("/admin/webhooks", json={"url": receiver.url, "auth": "HttpHeader", "messages": ["Create"],
                                               "value": {"X-Shared-Secret": "abc"}})
        with client(dv) as api:
            new_contact(api)  # answered 503, then retried once
            first, second = receiver.next(), receiver.next()
            assert first[1]["X-Shared-Secret"] == "abc" and first[0]["RequestId"] == second[0]["RequestId"]
            new_contact(api)  # answered 200
            receiver.next()
        receiver.statuses = [500]
        with client(dv) as api:
            new_contact(api)
            receiver.next()
            with pytest.raises(queue.Empty):
                receiver.next(timeout=2)  # a 500 is not retried
    finally:
        receiver.close()


# -- fault knobs and security ----------------------------------------------------------------------------

def test_the_shared_fault_knobs_act_behind_the_web_api(dv: SandboxProcess) -> None:
    with client(dv) as api:
        dv.faults(outage=True)
        fault(api.get("/WhoAmI"), 503, "0x80040216")
        dv.faults(outage=False, error_rate=1.0)
        fault(api.get("/WhoAmI"), 500, "0x80040216")
        dv.faults(error_rate=0.0, capacity_rps=0.2, capacity_queue=1)
        results: list[int] = []
        threads = [threading.Thread(target=lambda: results.append(api.get("/WhoAmI").status_code)) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        assert 200 in results and 503 in results
        dv.faults(capacity_rps=0, sync_stall=True)
        assert dv.stats()["search"]["backlog"] == 0
        new_contact(api)
        assert dv.stats()["search"]["backlog"] >= 1  # the sync worker is shared, whatever the dialect


def test_another_business_unit_reads_nothing_of_this_one_until_a_filter_is_dropped(dv: SandboxProcess) -> None:
    with client(dv) as api, client(dv, SECOND_UNIT_APP) as other:
        contact = new_contact(api)
        assert "SecLib::AccessCheckEx failed" in fault(other.get(f"/contacts({contact})"), 403, "0x80048306")
        assert other.get("/contacts", params={"$filter": f"contactid eq {contact}"}).json()["value"] == []
        fault(other.patch(f"/contacts({contact})", json={"jobtitle": "x"}, headers={"If-Match": "*"}), 403, "0x80048306")
        dv.faults(unfiltered_reads=["get"])
        assert other.get(f"/contacts({contact})").status_code == 200
        assert other.get("/contacts", params={"$filter": f"contactid eq {contact}"}).json()["value"] == []
        dv.faults(unfiltered_reads=["list"])
        fault(other.get(f"/contacts({contact})"), 403, "0x80048306")
        assert [r["contactid"] for r in other.get("/contacts", params={"$filter": f"contactid eq {contact}"}
                                                  ).json()["value"]] == [contact]


def test_the_restricted_role_works_at_user_depth_without_delete(dv: SandboxProcess) -> None:
    with client(dv) as api, client(dv, RESTRICTED_APP) as restricted:
        others = new_contact(api)
        mine = new_contact(restricted)
        fault(restricted.get(f"/contacts({others})"), 403, "0x80048306")
        assert restricted.get(f"/contacts({mine})").status_code == 200
        message = fault(restricted.delete(f"/contacts({mine})"), 403, "0x80040220")
        assert "is missing prvDeletecontact privilege" in message and "for entity 'contact'" in message
        owner = restricted.get("/WhoAmI").json()["UserId"]
        assert restricted.get("/contacts", params={"$filter": f"_ownerid_value ne {owner}"}).json()["value"] == []
        dv.faults(widen_role=True)
        assert restricted.get(f"/contacts({others})").status_code == 200
        assert restricted.delete(f"/contacts({mine})").status_code == 204


def test_sensitive_columns_are_absent_until_exposed(dv: SandboxProcess) -> None:
    with client(dv) as api:
        contact = new_contact(api)
        sensitive = {"crmpulse_taxid", "crmpulse_cardnumber", "crmpulse_nationalid", "crmpulse_iban"}
        row = api.get(f"/contacts({contact})").json()
        assert "crmpulse_run" in row and not sensitive & set(row)
        fault(api.get("/contacts", params={"$select": "crmpulse_nationalid"}), 400, "0x80060888")
        dv.faults(exposed_fields=["national_id"])
        shown = api.get(f"/contacts({contact})", params={"$select": "crmpulse_nationalid"}).json()
        assert shown["crmpulse_nationalid"].startswith("QQ")


def test_a_revoked_token_stops_working_unless_revocation_is_ignored(dv: SandboxProcess) -> None:
    issued = token(dv)
    for bearer in (issued, "sandbox-integration-token"):
        me = httpx.get(dv.url + V + "/WhoAmI", headers={"Authorization": f"Bearer {bearer}"})
        assert me.status_code == 200
        assert dv.admin.post("/admin/access/revoke", json={"token": bearer}).json() == {"revoked": True}
        assert httpx.get(dv.url + V + "/WhoAmI", headers={"Authorization": f"Bearer {bearer}"}).status_code == 401
        dv.faults(ignore_revocation=True)
        assert httpx.get(dv.url + V + "/WhoAmI", headers={"Authorization": f"Bearer {bearer}"}).status_code == 200
        dv.faults(ignore_revocation=False)


def test_the_password_grant_locks_the_canary_as_smart_lockout_does(dv: SandboxProcess) -> None:
    dv.admin.put("/admin/settings", json={"login_max_failures": 3})
    form = {"grant_type": "password", "client_id": APP, "username": "canary@sandbox.example",
            "scope": f"{dv.url}/.default"}
    assert token_request(dv, **form, password="canary-password").status_code == 200
    for _ in range(3):
        assert token_request(dv, **form, password="guess").json()["error_codes"] == [50126]
    locked = token_request(dv, **form, password="canary-password")
    assert locked.status_code == 400 and locked.json()["error_codes"] == [50053]
    dv.admin.post("/admin/reset")
    dv.admin.put("/admin/settings", json={"login_max_failures": 3})
    dv.faults(login_throttle=False)
    for _ in range(5):
        token_request(dv, **form, password="guess")
    assert token_request(dv, **form, password="canary-password").status_code == 200


def test_the_marker_column_finds_every_row_a_run_created(dv: SandboxProcess) -> None:
    run = f"run-{uuid.uuid4().hex[:8]}"
    with client(dv) as api:
        contact = new_contact(api, crmpulse_run=run)
        new_contact(api)
        found = api.get("/contacts", params={"$filter": f"crmpulse_run eq '{run}'", "$select": "crmpulse_run"}).json()
        assert [(r["contactid"], r["crmpulse_run"]) for r in found["value"]] == [(contact, run)]

"""The Salesforce dialect, over HTTP as a Salesforce client sees it: OAuth, sObject CRUD, SOQL,
SOSL, composite, limits, errors, outbound messages, access rules and the shared fault knobs."""

from __future__ import annotations

import base64
import queue
import re
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.helpers import SandboxProcess

V = "/services/data/v62.0"
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


@pytest.fixture(scope="module")
def box() -> Iterator[SandboxProcess]:
    proc = SandboxProcess("--dialect", "salesforce", "--seed", "450", "--sync-lag", "100ms")
    yield proc
    proc.stop()


@pytest.fixture
def sf(box: SandboxProcess) -> Iterator[SandboxProcess]:
    box.admin.post("/admin/reset")
    yield box
    box.admin.post("/admin/reset")


def session(sf: SandboxProcess, client: str = "crmpulse", secret: str = "sandbox-secret") -> dict[str, Any]:
    response = httpx.post(sf.url + "/services/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": client, "client_secret": secret})
    assert response.status_code == 200, response.text
    return dict(response.json())


def api(sf: SandboxProcess, client: str = "crmpulse", secret: str = "sandbox-secret") -> httpx.Client:
    token = session(sf, client, secret)
    return httpx.Client(base_url=token["instance_url"] + V, timeout=10,
                        headers={"Authorization": f"Bearer {token['access_token']}"})


def bearer(sf: SandboxProcess, token: str) -> httpx.Client:
    return httpx.Client(base_url=sf.url + V, timeout=10, headers={"Authorization": f"Bearer {token}"})


def error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert isinstance(body, list) and body[0]["errorCode"] == code, body
    assert isinstance(body[0]["message"], str)
    return dict(body[0])


def checksum_ok(sf_id: str) -> bool:
    return len(sf_id) == 18 and sf_id[15:] == "".join(
        ALPHABET[sum(1 << j for j, c in enumerate(sf_id[k:k + 5]) if c.isupper())] for k in (0, 5, 10))


def new_contact(client: httpx.Client, **fields: Any) -> str:
    tag = uuid.uuid4().hex[:10]
    response = client.post("/sobjects/Contact", json={"LastName": f"Dialect{tag}", "FirstName": "Sf",
                                                       "Email": f"sf.{tag}@t.example", **fields})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def soql(client: httpx.Client, q: str, **headers: str) -> httpx.Response:
    return client.get("/query", params={"q": q}, headers=headers)


def ids_by_soql(client: httpx.Client, q: str) -> list[str]:
    out, page = [], soql(client, q).json()
    while True:
        out += [r["Id"] for r in page["records"]]
        if page["done"]:
            return out
        page = client.get(page["nextRecordsUrl"].removeprefix(V)).json()


# -- versions and OAuth -------------------------------------------------------------------------

def test_the_versions_list_needs_no_session_and_is_not_metered(sf: SandboxProcess) -> None:
    for path in ("/services/data", "/services/data/"):
        response = httpx.get(sf.url + path)
        assert response.status_code == 200 and "Sforce-Limit-Info" not in response.headers
        listed = response.json()
        assert listed[0] == {"label": "Summer '14", "url": "/services/data/v31.0", "version": "31.0"}
        assert listed[-1] == {"label": "Winter '25", "url": V, "version": "62.0"}
    with api(sf) as client:
        assert error(client.get(sf.url + "/services/data/v30.0/limits"), 410, "GONE")
        error(client.get(sf.url + "/services/data/v63.0/limits"), 404, "NOT_FOUND")
        assert client.get(sf.url + "/services/data/v45.0/limits").status_code == 200


def test_client_credentials_answer_a_session_with_an_instance_url(sf: SandboxProcess) -> None:
    token = session(sf)
    assert set(token) == {"access_token", "signature", "scope", "instance_url", "id", "token_type", "issued_at"}
    assert token["instance_url"] == sf.url and token["token_type"] == "Bearer" and token["scope"] == "api"
    assert re.fullmatch(r"\d{13}", token["issued_at"])
    org, user = token["id"].removeprefix(sf.url + "/id/").split("/")
    assert org.startswith("00D") and user.startswith("005") and checksum_ok(org) and checksum_ok(user)
    assert token["access_token"].startswith(org[:15] + "!")
    basic = base64.b64encode(b"crmpulse:sandbox-secret").decode()
    by_header = httpx.post(sf.url + "/services/oauth2/token", data={"grant_type": "client_credentials"},
                           headers={"Authorization": f"Basic {basic}"})
    assert by_header.status_code == 200 and by_header.json()["id"] == token["id"]


def test_the_instance_url_is_the_origin_the_client_asked(sf: SandboxProcess) -> None:
    asked = f"http://localhost:{sf.port}"
    token = httpx.post(asked + "/services/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": "crmpulse", "client_secret": "sandbox-secret"}).json()
    assert token["instance_url"] == asked
    assert token["id"].startswith(asked + "/id/00D")


def test_the_password_flow_and_every_token_error(sf: SandboxProcess) -> None:
    url = sf.url + "/services/oauth2/token"
    grant = {"grant_type": "password", "client_id": "crmpulse", "client_secret": "sandbox-secret",
             "username": "rep@sandbox.example", "password": "sandbox-password"}
    token = httpx.post(url, data=grant).json()
    assert "scope" not in token and token["instance_url"] == sf.url
    assert bearer(sf, token["access_token"]).get("/limits").status_code == 200
    cases = [({**grant, "password": "nope"}, "invalid_grant", "authentication failure"),
             ({**grant, "client_id": "nobody"}, "invalid_client_id", "client identifier invalid"),
             ({**grant, "client_secret": "wrong"}, "invalid_client", "invalid client credentials"),
             ({**grant, "grant_type": "authorization_code"}, "unsupported_grant_type", "grant type not supported")]
    for form, code, description in cases:
        response = httpx.post(url, data=form)
        assert response.status_code == 400 and response.json() == {"error": code, "error_description": description}


def test_without_a_valid_session_every_call_is_invalid_session_id(sf: SandboxProcess) -> None:
    for headers in ({}, {"Authorization": "Bearer garbage"}, {"Authorization": "Basic eDp5"}):
        error(httpx.get(sf.url + V + "/limits", headers=headers), 401, "INVALID_SESSION_ID")
    token = session(sf)["access_token"]
    legacy = httpx.get(sf.url + V + "/limits", headers={"Authorization": f"OAuth {token}"})
    assert legacy.status_code == 200


def test_a_revoked_session_is_refused(sf: SandboxProcess) -> None:
    token = session(sf)["access_token"]
    assert bearer(sf, token).get("/limits").status_code == 200
    revoked = httpx.post(sf.url + "/services/oauth2/revoke", data={"token": token})
    assert revoked.status_code == 200 and revoked.content == b""
    error(bearer(sf, token).get("/limits"), 401, "INVALID_SESSION_ID")
    again = httpx.post(sf.url + "/services/oauth2/revoke", data={"token": "never-issued"})
    assert again.status_code == 400 and again.json()["error"] == "invalid_token"


# -- sObjects -------------------------------------------------------------------------------------

def test_create_read_update_delete_a_contact_with_salesforce_shapes(sf: SandboxProcess) -> None:
    with api(sf) as client:
        created = client.post("/sobjects/Contact", json={"LastName": "Lovelace", "FirstName": "Ada",
                                                         "Email": "ada@t.example", "Department": "Math"})
        assert created.status_code == 201
        body = created.json()
        assert body["success"] is True and body["errors"] == [] and set(body) == {"id", "success", "errors"}
        contact_id = body["id"]
        assert contact_id.startswith("003") and checksum_ok(contact_id)
        assert created.headers["Location"] == f"{V}/sobjects/Contact/{contact_id}"
        read = client.get(f"/sobjects/Contact/{contact_id}").json()
        assert next(iter(read)) == "attributes"
        assert read["attributes"] == {"type": "Contact", "url": f"{V}/sobjects/Contact/{contact_id}"}
        assert (read["Id"], read["Name"], read["Department"], read["Phone"]) == (
            contact_id, "Ada Lovelace", "Math", None)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000", read["CreatedDate"])
        assert read["OwnerId"].startswith("005") and "Card_Number__c" not in read
        assert client.get(f"/sobjects/Contact/{contact_id[:15]}").json()["Id"] == contact_id
        patched = client.patch(f"/sobjects/Contact/{contact_id}", json={"Title": "Countess"})
        assert patched.status_code == 204 and patched.content == b""
        assert client.post(f"/sobjects/Contact/{contact_id}", params={"_HttpMethod": "PATCH"},
                           json={"Phone": "+1-555-0100"}).status_code == 204
        fields = client.get(f"/sobjects/Contact/{contact_id}", params={"fields": "Title,Phone"}).json()
        assert fields == {"attributes": read["attributes"], "Title": "Countess", "Phone": "+1-555-0100"}
        assert client.delete(f"/sobjects/Contact/{contact_id}").status_code == 204
        error(client.get(f"/sobjects/Contact/{contact_id}"), 404, "NOT_FOUND")
        error(client.delete(f"/sobjects/Contact/{contact_id}"), 404, "NOT_FOUND")


def test_every_object_the_presets_use_round_trips(sf: SandboxProcess) -> None:
    with api(sf) as client:
        account = client.post("/sobjects/Account", json={"Name": "Acme Dialect", "Industry": "Energy"}).json()["id"]
        contact = new_contact(client, AccountId=account)
        opportunity = client.post("/sobjects/Opportunity", json={
            "Name": "Renewal", "StageName": "Needs Analysis", "CloseDate": "2026-12-31", "Amount": 1200.5,
            "AccountId": account}).json()["id"]
        lead = client.post("/sobjects/Lead", json={"LastName": "Lead", "Company": "Prospect Co"}).json()["id"]
        task = client.post("/sobjects/Task", json={"Subject": "Call", "WhoId": contact, "WhatId": opportunity,
                                                   "TaskSubtype": "Call", "ActivityDate": "2026-12-01"}).json()["id"]
        assert [x[:3] for x in (account, contact, opportunity, lead, task)] == ["001", "003", "006", "00Q", "00T"]
        opp = client.get(f"/sobjects/Opportunity/{opportunity}").json()
        assert (opp["StageName"], opp["Probability"], opp["IsClosed"], opp["Amount"], opp["CloseDate"]) == (
            "Needs Analysis", 20.0, False, 1200.5, "2026-12-31")
        assert client.get(f"/sobjects/Lead/{lead}").json()["Status"] == "Open - Not Contacted"
        read_task = client.get(f"/sobjects/Task/{task}").json()
        assert (read_task["WhoId"], read_task["WhatId"], read_task["Status"], read_task["ActivityDate"]) == (
            contact, opportunity, "Not Started", "2026-12-01")
        assert client.get(f"/sobjects/Contact/{contact}").json()["AccountId"] == account
        for kind, record in (("Task", task), ("Lead", lead), ("Opportunity", opportunity), ("Contact", contact),
                             ("Account", account)):
            assert client.delete(f"/sobjects/{kind}/{record}").status_code == 204


def test_errors_come_as_arrays_with_salesforce_codes(sf: SandboxProcess) -> None:
    with api(sf) as client:
        missing = error(client.post("/sobjects/Contact", json={"FirstName": "x"}), 400, "REQUIRED_FIELD_MISSING")
        assert missing["fields"] == ["LastName"] and missing["message"] == "Required fields are missing: [LastName]"
        assert "Foo__c" in error(client.post("/sobjects/Contact", json={"LastName": "x", "Foo__c": 1}), 400,
                                 "INVALID_FIELD")["message"]
        error(client.post("/sobjects/Contact", json={"LastName": "x", "Id": "003"}), 400, "INVALID_FIELD")
        assert error(client.post("/sobjects/Contact", json={"LastName": "x", "Name": "y"}), 400,
                     "INVALID_FIELD_FOR_INSERT_UPDATE")["fields"] == ["Name"]
        error(client.post("/sobjects/Contact", content=b'{"LastName": ', headers={"Content-Type": "application/json"}),
              400, "JSON_PARSER_ERROR")
        error(client.post("/sobjects/Contact", json=["LastName"]), 400, "JSON_PARSER_ERROR")
        error(client.post("/sobjects/Contact", json={"LastName": "x" * 81}), 400, "STRING_TOO_LONG")
        error(client.post("/sobjects/Contact", json={"LastName": "x", "Email": "not-an-email"}), 400,
              "INVALID_EMAIL_ADDRESS")
        error(client.post("/sobjects/Opportunity", json={"Name": "x", "StageName": "Dreaming", "CloseDate": "2026-01-01"}),
              400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST")
        error(client.post("/sobjects/Opportunity", json={"Name": "x", "StageName": "Prospecting",
                                                         "CloseDate": "2026-13-99"}), 400, "JSON_PARSER_ERROR")
        error(client.post("/sobjects/Contact", json={"LastName": "x", "AccountId": "001nope"}), 400, "MALFORMED_ID")
        account = client.post("/sobjects/Account", json={"Name": "Gone"}).json()["id"]
        client.delete(f"/sobjects/Account/{account}")
        error(client.post("/sobjects/Contact", json={"LastName": "x", "AccountId": account}), 400,
              "INVALID_CROSS_REFERENCE_KEY")
        error(client.get("/sobjects/Widget/001000000000000AAA"), 404, "NOT_FOUND")
        error(client.get(f"/sobjects/Contact/{account}"), 400, "MALFORMED_ID")  # an Account id for a Contact
        error(client.get("/sobjects/Contact/not-an-id"), 404, "NOT_FOUND")
        moved = error(client.patch("/sobjects/Contact", json={}), 405, "METHOD_NOT_ALLOWED")
        assert "Allowed are" in moved["message"]


# -- SOQL and SOSL ----------------------------------------------------------------------------------

def test_soql_filters_orders_counts_and_pages_with_query_locators(sf: SandboxProcess) -> None:
    with api(sf) as client:
        total = soql(client, "SELECT COUNT() FROM Contact").json()
        assert total["records"] == [] and total["totalSize"] == 450 and total["done"] is True
        first = soql(client, "SELECT Id, LastName FROM Contact", **{"Sforce-Query-Options": "batchSize=200"}).json()
        assert first["totalSize"] == 450 and first["done"] is False and len(first["records"]) == 200
        assert re.fullmatch(rf"{V}/query/01g[A-Za-z0-9]{{15}}-200", first["nextRecordsUrl"])
        walked = ids_by_soql(client, "SELECT Id FROM Contact")  # the default batch is 2000: one page
        assert len(walked) == len(set(walked)) == 450
        paged, page = [], first
        while True:
            paged += [r["Id"] for r in page["records"]]
            if page["done"]:
                assert "nextRecordsUrl" not in page
                break
            page = client.get(page["nextRecordsUrl"].removeprefix(V)).json()
        assert sorted(paged) == sorted(walked)
        tag = uuid.uuid4().hex[:8]
        ids = [new_contact(client, LastName=f"Q{tag}{n}", Title=t) for n, t in enumerate(["CFO", "CTO", "CFO"])]
        query = f"SELECT Id, Title FROM Contact WHERE LastName LIKE 'Q{tag}%' AND Title IN ('CFO') ORDER BY LastName DESC"
        assert [r["Id"] for r in soql(client, query).json()["records"]] == [ids[2], ids[0]]
        assert soql(client, f"SELECT COUNT() FROM Contact WHERE LastName LIKE 'q{tag}%' AND CreatedDate > "
                            "2020-01-01T00:00:00Z").json()["totalSize"] == 3
        assert soql(client, f"SELECT COUNT() FROM Contact WHERE LastName LIKE 'Q{tag}%' AND "
                            "CreatedDate = LAST_N_DAYS:1").json()["totalSize"] == 3
        limited = soql(client, f"SELECT Id FROM Contact WHERE LastName LIKE 'Q{tag}%' ORDER BY LastName LIMIT 1 OFFSET 1")
        assert [r["Id"] for r in limited.json()["records"]] == [ids[1]]
        assert soql(client, "SELECT Id FROM Opportunity WHERE CloseDate >= 2026-01-01 AND IsClosed = false"
                    ).status_code == 200


def test_soql_errors_point_at_the_column(sf: SandboxProcess) -> None:
    with api(sf) as client:
        bad = error(soql(client, "SELECT Id FROM Contact WHERE"), 400, "MALFORMED_QUERY")
        assert bad["message"].startswith("\nSELECT Id FROM Contact WHERE\n") and "ERROR at Row:1:Column:29" in bad["message"]
        assert "No such column 'Foo__c' on entity 'Contact'" in error(
            soql(client, "SELECT Id, Foo__c FROM Contact"), 400, "INVALID_FIELD")["message"]
        assert "sObject type 'Widget' is not supported" in error(
            soql(client, "SELECT Id FROM Widget"), 400, "INVALID_TYPE")["message"]
        error(soql(client, "SELECT Id FROM Contact OFFSET 2001"), 400, "NUMBER_OUTSIDE_VALID_RANGE")
        error(soql(client, "SELECT Id FROM Opportunity WHERE CloseDate = '2026-01-01'"), 400,
              "INVALID_QUERY_FILTER_OPERATOR")
        error(client.get("/query/01gAAAAAAAAAAAAAAA-200"), 400, "INVALID_QUERY_LOCATOR")


def test_sosl_finds_a_new_contact_only_once_the_search_index_has_it(sf: SandboxProcess) -> None:
    with api(sf) as client:
        sf.faults(sync_stall=True)
        tag = uuid.uuid4().hex[:12]
        contact = new_contact(client, LastName=f"Findme{tag}")
        search = f"FIND {{Findme{tag}}} IN ALL FIELDS RETURNING Contact(Id, Name, Email)"
        assert client.get("/search", params={"q": search}).json() == {"searchRecords": []}
        assert [r["Id"] for r in ids_by_soql_records(client, f"SELECT Id FROM Contact WHERE LastName = 'Findme{tag}'")] == [contact]
        sf.faults(sync_stall=False)
        deadline = time.monotonic() + 10
        while not (found := client.get("/search", params={"q": search}).json()["searchRecords"]):
            assert time.monotonic() < deadline, "the contact never reached the index"
            time.sleep(0.05)
        assert found[0]["Id"] == contact and found[0]["attributes"]["type"] == "Contact"
        assert set(found[0]) == {"attributes", "Id", "Name", "Email"}
        error(client.get("/search", params={"q": "FIND {x}"}), 400, "MALFORMED_SEARCH")
        error(client.get("/search", params={"q": "SELECT Id FROM Contact"}), 400, "MALFORMED_SEARCH")


def ids_by_soql_records(client: httpx.Client, q: str) -> list[dict[str, Any]]:
    return list(soql(client, q).json()["records"])


def test_composite_all_or_none_rolls_back_every_subrequest(sf: SandboxProcess) -> None:
    tag = uuid.uuid4().hex[:8]
    subs = [{"method": "POST", "url": f"{V}/sobjects/Account", "referenceId": "acc", "body": {"Name": f"Comp{tag}"}},
            {"method": "POST", "url": f"{V}/sobjects/Contact", "referenceId": "con",
             "body": {"LastName": f"Comp{tag}", "AccountId": "@{acc.id}"}},
            {"method": "GET", "url": f"{V}/sobjects/Contact/@{{con.id}}?fields=AccountId", "referenceId": "read"}]
    with api(sf) as client:
        ok = client.post("/composite", json={"allOrNone": True, "compositeRequest": subs})
        assert ok.status_code == 200
        answers = ok.json()["compositeResponse"]
        assert [a["httpStatusCode"] for a in answers] == [201, 201, 200]
        assert answers[2]["body"]["AccountId"] == answers[0]["body"]["id"]
        failing = [*subs[:2], {"method": "POST", "url": f"{V}/sobjects/Contact", "referenceId": "bad",
                               "body": {"FirstName": "no last name"}}]
        failing[0] = {**failing[0], "body": {"Name": f"Rolled{tag}"}}
        rolled = client.post("/composite", json={"allOrNone": True, "compositeRequest": failing}).json()
        codes = [a["httpStatusCode"] for a in rolled["compositeResponse"]]
        assert codes == [400, 400, 400]
        assert rolled["compositeResponse"][0]["body"][0]["errorCode"] == "PROCESSING_HALTED"
        assert rolled["compositeResponse"][2]["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
        assert soql(client, f"SELECT COUNT() FROM Account WHERE Name = 'Rolled{tag}'").json()["totalSize"] == 0
        kept = client.post("/composite", json={"allOrNone": False, "compositeRequest": failing}).json()
        assert [a["httpStatusCode"] for a in kept["compositeResponse"]] == [201, 201, 400]
        assert soql(client, f"SELECT COUNT() FROM Account WHERE Name = 'Rolled{tag}'").json()["totalSize"] == 1
        too_many = [{**subs[0], "referenceId": f"r{n}"} for n in range(26)]
        error(client.post("/composite", json={"compositeRequest": too_many}), 400, "INVALID_BATCH_REQUEST")


# -- quota ------------------------------------------------------------------------------------------

def usage(response: httpx.Response) -> tuple[int, int]:
    match = re.fullmatch(r"api-usage=(\d+)/(\d+)", response.headers["Sforce-Limit-Info"])
    assert match, response.headers
    return int(match[1]), int(match[2])


def test_every_call_reports_its_api_usage_and_limits_agrees(sf: SandboxProcess) -> None:
    with api(sf) as client:
        first = usage(client.get("/limits"))
        second = client.get("/limits")
        assert usage(second) == (first[0] + 1, 100000)
        assert second.json()["DailyApiRequests"] == {"Max": 100000, "Remaining": 100000 - first[0]}  # before this call
        assert usage(client.get("/sobjects/Contact/003000000000000AAA")) == (first[0] + 2, 100000)  # errors count too
        assert usage(client.post("/composite", json={"compositeRequest": [
            {"method": "GET", "url": f"{V}/limits", "referenceId": "a"},
            {"method": "GET", "url": f"{V}/limits", "referenceId": "b"}]})) == (first[0] + 3, 100000)
        quota = sf.admin.get("/admin/quota").json()
        assert quota["dialect"] == "salesforce" and quota["limits"] == {"daily_api_requests": 100000}
        assert quota["usage"]["DailyApiRequests"]["ten_00000000000005a1"] == first[0] + 3


def test_past_the_daily_allocation_every_call_is_request_limit_exceeded(sf: SandboxProcess) -> None:
    assert sf.admin.put("/admin/quota", json={"daily_api_requests": 5}).json()["limits"]["daily_api_requests"] == 5
    with api(sf) as client, api(sf, "crmpulse-tenant2", "tenant2-secret") as other_org:
        statuses = [client.get("/limits").status_code for _ in range(7)]
        assert statuses == [200] * 5 + [403] * 2
        refused = client.get("/limits")
        assert refused.json() == [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
        assert usage(refused) == (5, 5) and "Retry-After" not in refused.headers
        assert other_org.get("/limits").status_code == 200  # the allocation is per org
    sf.admin.post("/admin/reset")
    with api(sf) as client:
        assert usage(client.get("/limits")) == (1, 100000)


# -- outbound messages -------------------------------------------------------------------------------

class SoapListener:
    """A listener that records outbound messages and acknowledges them (or not)."""

    def __init__(self, ack: bool = True, fail_first: int = 0) -> None:
        self.messages: queue.Queue[tuple[str, dict[str, str]]] = queue.Queue()
        listener = self
        self.ack, self.fail_first = ack, fail_first

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                listener.messages.put((body, dict(self.headers)))
                ok = listener.ack and listener.fail_first <= 0
                listener.fail_first -= 1
                answer = ('<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
                          '<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">'
                          f"<Ack>{'true' if ok else 'false'}</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>")
                self.send_response(200)
                self.send_header("Content-Type", "text/xml")
                self.end_headers()
                self.wfile.write(answer.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/outbound"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def next(self, timeout: float = 5) -> tuple[str, dict[str, str]]:
        return self.messages.get(timeout=timeout)

    def close(self) -> None:
        self.server.shutdown()


def test_outbound_messages_carry_the_org_id_and_no_signature(sf: SandboxProcess) -> None:
    listener = SoapListener()
    try:
        hook = sf.admin.post("/admin/webhooks", json={"url": listener.url, "objects": ["Contact"],
                                                      "fields": ["Id", "LastName", "Email"]})
        assert hook.status_code == 201 and hook.json()["kind"] == "salesforce"
        org = session(sf)["id"].rsplit("/", 2)[1]
        with api(sf) as client:
            contact = new_contact(client)
            body, headers = listener.next()
            assert headers["Content-Type"].startswith("text/xml") and headers["SOAPAction"] == '""'
            assert not any(h.lower().startswith("x-") and "signature" in h.lower() for h in headers)
            assert f"<OrganizationId>{org}</OrganizationId>" in body
            assert '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">' in body
            assert re.search(r"<Notification><Id>04l\w{15}</Id>", body)
            assert f"<sf:Id>{contact}</sf:Id>" in body and "<sf:LastName>Dialect" in body
            assert '<SessionId xsi:nil="true"/>' in body and "sf:Phone" not in body
            client.patch(f"/sobjects/Contact/{contact}", json={"Title": "Updated"})
            assert f"<sf:Id>{contact}</sf:Id>" in listener.next()[0]
            client.delete(f"/sobjects/Contact/{contact}")
            with pytest.raises(queue.Empty):
                listener.next(timeout=0.5)  # workflow rules do not fire on delete
            client.post("/sobjects/Account", json={"Name": "Not subscribed"})
            with pytest.raises(queue.Empty):
                listener.next(timeout=0.3)
        with api(sf, "crmpulse-tenant2", "tenant2-secret") as other_org:
            new_contact(other_org)
            with pytest.raises(queue.Empty):
                listener.next(timeout=0.5)  # another org's change is not this org's message
    finally:
        listener.close()


def test_an_unacknowledged_message_is_sent_again(sf: SandboxProcess) -> None:
    listener = SoapListener(fail_first=1)
    try:
        sf.admin.post("/admin/webhooks", json={"url": listener.url})
        with api(sf) as client:
            contact = new_contact(client)
        first, second = listener.next(), listener.next(timeout=5)
        assert f"<sf:Id>{contact}</sf:Id>" in first[0] and f"<sf:Id>{contact}</sf:Id>" in second[0]
        deadline = time.monotonic() + 5
        while sf.stats()["webhooks"]["delivered"] != 1:  # counted once the acknowledgement is read
            assert time.monotonic() < deadline, sf.stats()["webhooks"]
            time.sleep(0.02)
        assert sf.stats()["webhooks"]["failed"] == 0
    finally:
        listener.close()


# -- shared fault knobs -----------------------------------------------------------------------------

def test_the_shared_fault_knobs_act_behind_the_salesforce_api(sf: SandboxProcess) -> None:
    with api(sf) as client:
        sf.faults(outage=True)
        error(client.get("/limits"), 503, "SERVER_UNAVAILABLE")
        sf.faults(outage=False, error_rate=1.0)
        error(client.get("/limits"), 500, "UNKNOWN_EXCEPTION")
        sf.faults(error_rate=0.0, latency_ms=300)
        start = time.monotonic()
        assert client.get("/limits").status_code == 200
        assert time.monotonic() - start >= 0.3
        sf.faults(latency_ms=0, capacity_rps=0.2, capacity_queue=1)
        results: list[int] = []
        threads = [threading.Thread(target=lambda: results.append(client.get("/limits").status_code)) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=15)
        assert 503 in results and 200 in results
        sf.faults(capacity_rps=0)
        assert httpx.get(sf.url + "/services/oauth2/token").status_code == 405  # the token endpoint is POST only


# -- access ------------------------------------------------------------------------------------------

def test_another_org_sees_nothing_of_this_org_on_any_read_path(sf: SandboxProcess) -> None:
    with api(sf) as client, api(sf, "crmpulse-tenant2", "tenant2-secret") as other:
        tag = uuid.uuid4().hex[:10]
        contact = new_contact(client, LastName=f"Iso{tag}")
        query = f"SELECT Id FROM Contact WHERE LastName = 'Iso{tag}'"
        search = f"FIND {{Iso{tag}}} RETURNING Contact(Id)"
        wait_for_search(client, search)

        def paths(who: httpx.Client) -> dict[str, bool]:
            return {"get": who.get(f"/sobjects/Contact/{contact}").status_code == 200,
                    "list": bool(soql(who, query).json()["records"]),
                    "search": bool(who.get("/search", params={"q": search}).json()["searchRecords"])}

        assert paths(client) == {"get": True, "list": True, "search": True}
        assert paths(other) == {"get": False, "list": False, "search": False}
        error(other.get(f"/sobjects/Contact/{contact}"), 404, "NOT_FOUND")
        error(other.patch(f"/sobjects/Contact/{contact}", json={"Title": "x"}), 404, "NOT_FOUND")
        for path in ("get", "list", "search"):
            sf.faults(unfiltered_reads=[path])
            assert paths(other) == {p: p == path for p in ("get", "list", "search")}
        error(other.patch(f"/sobjects/Contact/{contact}", json={"Title": "x"}), 404, "NOT_FOUND")


def wait_for_search(client: httpx.Client, search: str) -> None:
    deadline = time.monotonic() + 10
    while not client.get("/search", params={"q": search}).json()["searchRecords"]:
        assert time.monotonic() < deadline, "never indexed"
        time.sleep(0.05)


def test_a_restricted_user_sees_only_what_it_owns_and_cannot_delete(sf: SandboxProcess) -> None:
    with api(sf) as full, api(sf, "crmpulse-restricted", "restricted-secret") as restricted:
        others = new_contact(full, Phone="+1-555-0199")
        mine = new_contact(restricted)
        error(restricted.get(f"/sobjects/Contact/{others}"), 404, "NOT_FOUND")
        mine_read = restricted.get(f"/sobjects/Contact/{mine}").json()
        assert "Phone" not in mine_read  # field-level security hides it
        owner = mine_read["OwnerId"]
        counted = soql(restricted, "SELECT COUNT() FROM Contact").json()["totalSize"]
        assert 0 < counted < 450 and soql(restricted, f"SELECT COUNT() FROM Contact WHERE OwnerId != '{owner}'"
                                          ).json()["totalSize"] == 0
        error(soql(restricted, "SELECT Id, Phone FROM Contact"), 400, "INVALID_FIELD")
        error(restricted.patch(f"/sobjects/Contact/{mine}", json={"Phone": "1"}), 400, "INVALID_FIELD_FOR_INSERT_UPDATE")
        error(restricted.delete(f"/sobjects/Contact/{mine}"), 403, "INSUFFICIENT_ACCESS")
        account = full.post("/sobjects/Account", json={"Name": "Not yours"}).json()["id"]
        error(restricted.post("/sobjects/Contact", json={"LastName": "x", "AccountId": account}), 400,
              "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY")
        sf.faults(widen_role=True)
        assert restricted.get(f"/sobjects/Contact/{others}").json()["Phone"] == "+1-555-0199"
        assert soql(restricted, "SELECT COUNT() FROM Contact").json()["totalSize"] > counted
        assert restricted.delete(f"/sobjects/Contact/{others}").status_code == 204


def test_sensitive_custom_fields_are_hidden_until_exposed(sf: SandboxProcess) -> None:
    with api(sf) as client:
        contact = new_contact(client)
        assert not {"Card_Number__c", "IBAN__c"} & set(client.get(f"/sobjects/Contact/{contact}").json())
        error(soql(client, "SELECT Id, Card_Number__c FROM Contact LIMIT 1"), 400, "INVALID_FIELD")
        sf.faults(exposed_fields=["card_number"])
        read = client.get(f"/sobjects/Contact/{contact}").json()
        assert read["Card_Number__c"].startswith("400000") and "IBAN__c" not in read
        records = soql(client, "SELECT Card_Number__c FROM Contact LIMIT 5").json()["records"]
        assert all(len(r["Card_Number__c"]) == 16 for r in records)


def test_the_integration_token_is_a_session_until_revoked(sf: SandboxProcess) -> None:
    integration = bearer(sf, "sandbox-integration-token")
    assert integration.get("/limits").status_code == 200
    assert httpx.post(sf.url + "/services/oauth2/revoke", data={"token": "sandbox-integration-token"}).status_code == 200
    error(integration.get("/limits"), 401, "INVALID_SESSION_ID")
    sf.faults(ignore_revocation=True)
    assert integration.get("/limits").status_code == 200


def test_the_password_flow_locks_the_canary_after_repeated_failures(sf: SandboxProcess) -> None:
    sf.admin.put("/admin/settings", json={"login_max_failures": 3})
    grant = {"grant_type": "password", "client_id": "crmpulse", "client_secret": "sandbox-secret",
             "username": "canary@sandbox.example"}
    url = sf.url + "/services/oauth2/token"
    assert httpx.post(url, data={**grant, "password": "canary-password"}).status_code == 200
    for _ in range(3):
        assert httpx.post(url, data={**grant, "password": "guess"}).json()["error"] == "invalid_grant"
    assert httpx.post(url, data={**grant, "password": "canary-password"}).status_code == 400  # locked
    sf.admin.post("/admin/reset")
    sf.admin.put("/admin/settings", json={"login_max_failures": 3})
    sf.faults(login_throttle=False)
    for _ in range(5):
        httpx.post(url, data={**grant, "password": "guess"})
    assert httpx.post(url, data={**grant, "password": "canary-password"}).status_code == 200


def test_the_marker_field_finds_every_record_a_run_created(sf: SandboxProcess) -> None:
    run = f"run-{uuid.uuid4().hex[:8]}"
    with api(sf) as client:
        contact = new_contact(client, Crmpulse_Run__c=run)
        account = client.post("/sobjects/Account", json={"Name": "Marked", "Crmpulse_Run__c": run}).json()["id"]
        new_contact(client)  # not marked
        assert [r["Id"] for r in soql(client, f"SELECT Id FROM Contact WHERE Crmpulse_Run__c = '{run}'").json()["records"]] == [contact]
        assert soql(client, "SELECT Id, Crmpulse_Run__c FROM Account WHERE Crmpulse_Run__c LIKE 'run-%'").json()["records"][0] \
            == {"attributes": {"type": "Account", "url": f"{V}/sobjects/Account/{account}"}, "Id": account, "Crmpulse_Run__c": run}

"""The sandbox's REST API: pagination, filters, validation, and staying up under bad input."""

from __future__ import annotations

import socket

import httpx

from tests.helpers import SandboxProcess


def test_cursor_pagination_walks_every_contact_once(api: httpx.Client, crm: SandboxProcess) -> None:
    seen, cursor = [], None
    while True:
        params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        page = api.get("/api/v1/contacts", params=params).json()
        seen += [c["id"] for c in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == crm.stats()["records"]["contacts"]


def test_page_pagination_reports_the_total(api: httpx.Client) -> None:
    first = api.get("/api/v1/accounts", params={"per_page": 2}).json()
    second = api.get("/api/v1/accounts", params={"per_page": 2, "page": 2}).json()
    assert first["total"] >= 4
    assert {a["id"] for a in first["data"]}.isdisjoint({a["id"] for a in second["data"]})


def test_filters_narrow_the_list(api: httpx.Client) -> None:
    account = api.get("/api/v1/accounts").json()["data"][0]
    contacts = api.get("/api/v1/contacts", params={"account_id": account["id"], "limit": 200}).json()
    assert contacts["data"] and all(c["account_id"] == account["id"] for c in contacts["data"])
    assert api.get("/api/v1/contacts", params={"colour": "red"}).status_code == 422


def test_validation_answers_422_with_field_errors(api: httpx.Client) -> None:
    response = api.post("/api/v1/contacts", json={"first_name": "", "email": "nope", "shoe_size": 9})
    assert response.status_code == 422
    fields = {tuple(e["loc"]) for e in response.json()["detail"]}
    assert {("body", "first_name"), ("body", "email"), ("body", "last_name"),
            ("body", "shoe_size")} <= fields


def test_a_reference_to_a_missing_record_is_refused(api: httpx.Client) -> None:
    response = api.post("/api/v1/deals", json={"name": "x", "amount": 1, "account_id": "acc_nope"})
    assert response.status_code == 422
    assert response.json()["detail"][0] == {"loc": ["body", "account_id"], "msg": "no such account"}


def test_malformed_json_is_a_400_and_the_sandbox_stays_up(api: httpx.Client) -> None:
    response = api.post("/api/v1/contacts", content=b'{"first_name": ',
                        headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert api.get("/api/v1/me").status_code == 200


def test_oversized_bodies_are_refused_with_413(api: httpx.Client) -> None:
    big = b'{"first_name": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    assert api.post("/api/v1/contacts", content=big).status_code == 413
    assert api.get("/api/v1/me").status_code == 200


def test_a_chunked_oversized_body_is_cut_off_too(api: httpx.Client) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(40):
            yield b"x" * 65536
    assert api.post("/api/v1/contacts", content=chunks()).status_code == 413


def test_garbage_on_the_socket_does_not_take_the_sandbox_down(crm: SandboxProcess,
                                                              api: httpx.Client) -> None:
    with socket.create_connection(("127.0.0.1", crm.port), timeout=5) as sock:
        sock.sendall(b"\x16\x03\x01garbage that is not HTTP\r\n\r\n")
        sock.recv(1024)
    assert api.get("/api/v1/me").status_code == 200


def test_crud_round_trip_for_a_deal_and_an_activity(api: httpx.Client) -> None:
    deal = api.post("/api/v1/deals", json={"name": "Renewal", "amount": 1200.5}).json()
    assert deal["stage"] == "prospecting" and deal["currency"] == "USD"
    updated = api.patch(f"/api/v1/deals/{deal['id']}", json={"stage": "proposal"}).json()
    assert updated["stage"] == "proposal"
    activity = api.post("/api/v1/activities", json={"kind": "call", "subject": "Intro",
                                                    "deal_id": deal["id"]})
    assert activity.status_code == 201
    assert api.delete(f"/api/v1/activities/{activity.json()['id']}").status_code == 204
    assert api.delete(f"/api/v1/deals/{deal['id']}").status_code == 204
    assert api.get(f"/api/v1/deals/{deal['id']}").status_code == 404

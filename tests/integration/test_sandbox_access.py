"""Access control in the native API: tenants, roles, exposure, revocation, lockout, and the
knobs that break each protection. Every test shows the protection holding with its knob
off and breaking with it on."""

from __future__ import annotations

import csv
import io
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.helpers import SandboxProcess

FULL = {"Authorization": "Bearer sandbox-pat"}
TENANT2 = {"Authorization": "Bearer sandbox-pat-tenant2"}
RESTRICTED = {"Authorization": "Bearer sandbox-pat-restricted"}
INTEGRATION = {"Authorization": "Bearer sandbox-integration-token"}


@pytest.fixture(scope="module")
def box() -> Iterator[SandboxProcess]:
    proc = SandboxProcess("--seed", "25", "--sync-lag", "0ms")
    yield proc
    proc.stop()


@pytest.fixture
def sb(box: SandboxProcess) -> Iterator[SandboxProcess]:
    box.admin.post("/admin/reset")
    yield box
    box.admin.post("/admin/reset")


def client(sb: SandboxProcess, headers: dict[str, str]) -> httpx.Client:
    return httpx.Client(base_url=sb.url, headers=headers, timeout=10)


def new_contact(api: httpx.Client, **extra: Any) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:10]
    response = api.post("/api/v1/contacts", json={"first_name": "Iso", "last_name": tag,
                                                  "email": f"iso.{tag}@t.example", **extra})
    assert response.status_code == 201, response.text
    return dict(response.json())


def wait_searchable(api: httpx.Client, email: str) -> None:
    deadline = time.monotonic() + 10
    while not api.get("/api/v1/search/contacts", params={"email": email}).json()["data"]:
        assert time.monotonic() < deadline, "the contact never reached the index"
        time.sleep(0.02)


def every_listed_id(api: httpx.Client) -> set[str]:
    ids, cursor = set(), None
    while True:
        page = api.get("/api/v1/contacts", params={"limit": 200, **({"cursor": cursor} if cursor else {})}).json()
        ids |= {c["id"] for c in page["data"]}
        if not (cursor := page["next_cursor"]):
            return ids


def read_paths(api: httpx.Client, contact: dict[str, Any]) -> dict[str, bool]:
    """Whether each read path shows the contact to this client."""
    export = list(csv.DictReader(io.StringIO(api.get("/api/v1/export/contacts").text)))
    return {
        "get": api.get(f"/api/v1/contacts/{contact['id']}").status_code == 200,
        "list": contact["id"] in every_listed_id(api),
        "search": bool(api.get("/api/v1/search/contacts", params={"email": contact["email"]}).json()["data"]),
        "export": contact["id"] in {row["id"] for row in export},
    }


def test_me_names_the_user_tenant_and_role_of_each_credential(sb: SandboxProcess) -> None:
    def me(headers: dict[str, str]) -> dict[str, Any]:
        return dict(httpx.get(sb.url + "/api/v1/me", headers=headers).json())
    assert me(FULL) == {"sub": "pat-user", "via": "personal_token", "user": "rep@sandbox.example",
                        "tenant": "ten_00000000000005a1", "role": "full"}
    assert me(TENANT2)["tenant"] == "ten_00000000000005a2"
    assert me(RESTRICTED)["role"] == "restricted"
    assert me(INTEGRATION)["via"] == "integration_token"
    token = httpx.post(sb.url + "/oauth/token", data={"grant_type": "client_credentials", "client_id": "crmpulse-tenant2",
                                                       "client_secret": "tenant2-secret"}).json()["access_token"]
    assert me({"Authorization": f"Bearer {token}"})["user"] == "admin@tenant2.example"


def test_a_second_tenant_sees_nothing_of_the_first_on_any_read_path(sb: SandboxProcess) -> None:
    with client(sb, FULL) as first, client(sb, TENANT2) as second:
        contact = new_contact(first)
        wait_searchable(first, contact["email"])
        assert read_paths(first, contact) == {"get": True, "list": True, "search": True, "export": True}
        assert read_paths(second, contact) == {"get": False, "list": False, "search": False, "export": False}
        assert second.get("/api/v1/contacts").json()["data"] == []  # the second tenant starts empty
        assert second.patch(f"/api/v1/contacts/{contact['id']}", json={"title": "x"}).status_code == 404
        assert second.delete(f"/api/v1/contacts/{contact['id']}").status_code == 404
        refused = second.post("/api/v1/contacts", json={"first_name": "a", "last_name": "b", "email": "a@b.example",
                                                        "account_id": first.get("/api/v1/accounts").json()["data"][0]["id"]})
        assert refused.status_code == 422 and refused.json()["detail"][0]["msg"] == "no such account"
        assert second.get("/api/v1/reports/pipeline").json()["data"] == []
        assert first.get("/api/v1/contacts/" + contact["id"]).status_code == 200


@pytest.mark.parametrize("path", ["get", "list", "search", "export"])
def test_unfiltered_reads_leaks_through_exactly_the_path_it_names(sb: SandboxProcess, path: str) -> None:
    with client(sb, FULL) as first, client(sb, TENANT2) as second, client(sb, RESTRICTED) as restricted:
        contact = new_contact(first)  # owned by rep: neither the other tenant nor the restricted user may see it
        wait_searchable(first, contact["email"])
        sb.faults(unfiltered_reads=[path])
        expected = {p: p == path for p in ("get", "list", "search", "export")}
        assert read_paths(second, contact) == expected
        assert read_paths(restricted, contact) == expected
        assert second.patch(f"/api/v1/contacts/{contact['id']}", json={"title": "x"}).status_code == 404  # writes hold
        sb.faults(unfiltered_reads=[])
        assert read_paths(second, contact) == dict.fromkeys(expected, False)


def test_unfiltered_export_leaks_into_reports_too(sb: SandboxProcess) -> None:
    with client(sb, FULL) as first, client(sb, TENANT2) as second:
        assert first.post("/api/v1/deals", json={"name": "Leaky", "amount": 7}).status_code == 201
        assert second.get("/api/v1/reports/pipeline").json()["data"] == []
        sb.faults(unfiltered_reads=["export"])
        assert sum(row["deals"] for row in second.get("/api/v1/reports/pipeline").json()["data"]) >= 1


def test_the_restricted_role_reads_and_writes_only_its_own_records_and_never_deletes(sb: SandboxProcess) -> None:
    with client(sb, FULL) as full, client(sb, RESTRICTED) as restricted:
        others = new_contact(full, phone="+1-555-0100")
        mine = new_contact(restricted)
        assert "phone" not in mine
        assert restricted.get(f"/api/v1/contacts/{others['id']}").status_code == 404
        assert restricted.patch(f"/api/v1/contacts/{others['id']}", json={"title": "x"}).status_code == 404
        assert restricted.patch(f"/api/v1/contacts/{mine['id']}", json={"title": "Mine"}).json()["title"] == "Mine"
        refused = restricted.delete(f"/api/v1/contacts/{mine['id']}")
        assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
        assert restricted.patch(f"/api/v1/contacts/{mine['id']}", json={"phone": "1"}).status_code == 403
        assert restricted.get("/api/v1/webhooks").status_code == 403
        listed = every_listed_id(restricted)
        assert mine["id"] in listed and others["id"] not in listed
        assert len(listed) < len(every_listed_id(full))  # the seed gives it every fifth record only
        assert "phone" in full.get(f"/api/v1/contacts/{mine['id']}").json()


def test_widen_role_gives_the_restricted_user_everything_a_full_user_has(sb: SandboxProcess) -> None:
    with client(sb, FULL) as full, client(sb, RESTRICTED) as restricted:
        others = new_contact(full, phone="+1-555-0101")
        sb.faults(widen_role=True)
        seen = restricted.get(f"/api/v1/contacts/{others['id']}")
        assert seen.status_code == 200 and seen.json()["phone"] == "+1-555-0101"
        assert every_listed_id(restricted) == every_listed_id(full)
        assert restricted.delete(f"/api/v1/contacts/{others['id']}").status_code == 204
        assert restricted.get("/api/v1/webhooks").status_code == 200


def luhn(number: str) -> bool:
    digits = [int(d) for d in reversed(number)]
    return sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(digits)) % 10 == 0


def iban_ok(iban: str) -> bool:
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def test_sensitive_fields_stay_hidden_until_an_exposure_knob_reveals_them(sb: SandboxProcess) -> None:
    sensitive = {"tax_id", "card_number", "national_id", "iban"}
    with client(sb, FULL) as api:
        contact = new_contact(api)
        seeded = api.get("/api/v1/contacts", params={"limit": 5}).json()["data"]
        assert not sensitive & set(contact) and not any(sensitive & set(c) for c in seeded)
        assert "card_number" not in api.get("/api/v1/export/contacts").text.splitlines()[0]
        sb.faults(exposed_fields=["card_number"])
        shown = api.get(f"/api/v1/contacts/{contact['id']}").json()
        assert shown.keys() & sensitive == {"card_number"}
        assert shown["card_number"].startswith("400000") and len(shown["card_number"]) == 16 and luhn(shown["card_number"])
        assert "card_number" in api.get("/api/v1/export/contacts").text.splitlines()[0]
        sb.faults(exposed_fields=[], expose_sensitive=True)
        for record in [api.get(f"/api/v1/contacts/{contact['id']}").json(), *api.get("/api/v1/contacts").json()["data"]]:
            assert sensitive <= record.keys()
            assert luhn(record["card_number"]) and iban_ok(record["iban"]) and record["iban"][4:8] == "SBOX"
            assert record["national_id"].startswith("QQ") and record["tax_id"][0] == "9"


def test_a_revoked_integration_token_is_refused_unless_revocation_is_ignored(sb: SandboxProcess) -> None:
    me = sb.url + "/api/v1/me"
    assert httpx.get(me, headers=INTEGRATION).status_code == 200
    assert httpx.post(sb.url + "/oauth/revoke", data={"token": "sandbox-integration-token"}).json() == {}
    assert httpx.get(me, headers=INTEGRATION).status_code == 401
    sb.faults(ignore_revocation=True)
    assert httpx.get(me, headers=INTEGRATION).status_code == 200
    sb.faults(ignore_revocation=False)
    assert httpx.get(me, headers=INTEGRATION).status_code == 401
    access = sb.admin.get("/admin/access").json()
    assert {"via": "integration_token", "user": "integration@sandbox.example", "revoked": True} in access["static_tokens"]
    sb.admin.post("/admin/reset")
    assert httpx.get(me, headers=INTEGRATION).status_code == 200


def test_issued_tokens_are_revoked_through_the_api_and_the_admin_api(sb: SandboxProcess) -> None:
    tokens = [sb.token(), sb.token()]
    assert httpx.post(sb.url + "/oauth/revoke", json={"token": tokens[0]}).status_code == 200
    assert sb.admin.post("/admin/access/revoke", json={"token": tokens[1]}).json() == {"revoked": True}
    for token in tokens:
        assert httpx.get(sb.url + "/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert httpx.post(sb.url + "/oauth/revoke", data={"token": "never-issued"}).json() == {}  # RFC 7009: the same 200
    assert sb.admin.post("/admin/access/revoke", json={"token": "never-issued"}).json() == {"revoked": False}


def login(sb: SandboxProcess, password: str) -> httpx.Response:
    return httpx.post(sb.url + "/login", json={"username": "canary@sandbox.example", "password": password})


def test_the_canary_locks_after_n_failed_logins_and_unlocks_after_the_lockout(sb: SandboxProcess) -> None:
    sb.admin.put("/admin/settings", json={"login_max_failures": 3, "login_lockout_s": 1})
    assert login(sb, "canary-password").status_code == 200
    for _ in range(3):
        wrong = login(sb, "guess")
        assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_credentials"
    locked = login(sb, "canary-password")  # the right password, refused while locked
    assert locked.status_code == 429 and locked.json()["error"] == "locked"
    assert locked.headers["Retry-After"] == "1"
    basic = httpx.get(sb.url + "/api/v1/me", auth=("canary@sandbox.example", "canary-password"))
    assert basic.status_code == 401  # every password path is locked, not only /login
    assert "canary@sandbox.example" in sb.admin.get("/admin/access").json()["logins"]["locked"]
    deadline = time.monotonic() + 5
    while login(sb, "canary-password").status_code != 200:
        assert time.monotonic() < deadline, "the lockout never ended"
        time.sleep(0.1)


def test_with_login_throttle_off_no_number_of_failures_locks_the_account(sb: SandboxProcess) -> None:
    sb.admin.put("/admin/settings", json={"login_max_failures": 3})
    sb.faults(login_throttle=False)
    for _ in range(10):
        assert login(sb, "guess").status_code == 401
    assert login(sb, "canary-password").status_code == 200
    assert sb.stats()["access"]["locks"] == 0


def test_the_password_grant_locks_too(sb: SandboxProcess) -> None:
    sb.admin.put("/admin/settings", json={"login_max_failures": 2})
    grant = {"grant_type": "password", "username": "canary@sandbox.example"}
    for _ in range(2):
        assert httpx.post(sb.url + "/oauth/token", data={**grant, "password": "guess"}).status_code == 400
    refused = httpx.post(sb.url + "/oauth/token", data={**grant, "password": "canary-password"})
    assert refused.status_code == 400 and "locked" in refused.json()["message"]


def test_webhooks_deliver_only_their_own_tenants_changes(sb: SandboxProcess) -> None:
    from tests.integration.test_sandbox_webhooks import Receiver

    receiver = Receiver()
    try:
        with client(sb, FULL) as first, client(sb, TENANT2) as second:
            hook = second.post("/api/v1/webhooks", json={"url": receiver.url})
            assert hook.status_code == 201
            assert first.get("/api/v1/webhooks").json()["data"] == []  # not the first tenant's hook
            assert first.delete(f"/api/v1/webhooks/{hook.json()['id']}").status_code == 404
            new_contact(first)
            own = new_contact(second)
            event, _, _ = receiver.next()
            assert event["data"]["id"] == own["id"]  # the first tenant's change never came
            assert receiver.events.empty()
    finally:
        receiver.close()

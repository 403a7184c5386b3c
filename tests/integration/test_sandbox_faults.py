"""Each fault-injection knob of the sandbox's admin API changes what clients see."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.helpers import SandboxProcess


def test_added_latency_delays_responses(crm: SandboxProcess, api: httpx.Client) -> None:
    crm.faults(latency_ms=300)
    start = time.perf_counter()
    assert api.get("/api/v1/accounts").status_code == 200
    assert time.perf_counter() - start >= 0.3


def test_jitter_varies_latency_between_bounds(crm: SandboxProcess, api: httpx.Client) -> None:
    crm.faults(latency_ms=50, jitter_ms=200)
    times = []
    for _ in range(8):
        start = time.perf_counter()
        api.get("/api/v1/me")
        times.append(time.perf_counter() - start)
    assert min(times) >= 0.05
    assert max(times) - min(times) > 0.02  # not a constant delay


def test_error_rate_one_fails_every_request_with_the_chosen_status(crm: SandboxProcess,
                                                                  api: httpx.Client) -> None:
    crm.faults(error_rate=1.0, error_status=502)
    assert {api.get("/api/v1/accounts").status_code for _ in range(5)} == {502}


def test_partial_error_rate_fails_some_requests(crm: SandboxProcess, api: httpx.Client) -> None:
    crm.faults(error_rate=0.5)
    codes = [api.get("/api/v1/me").status_code for _ in range(60)]
    assert 0 < codes.count(500) < 60


def test_outage_answers_503_and_recovers(crm: SandboxProcess, api: httpx.Client) -> None:
    crm.faults(outage=True)
    assert api.get("/api/v1/accounts").status_code == 503
    assert httpx.post(crm.url + "/oauth/token", data={"grant_type": "client_credentials"}).status_code == 503
    crm.faults(outage=False)
    assert api.get("/api/v1/accounts").status_code == 200


def test_faults_can_target_one_path_prefix(crm: SandboxProcess, api: httpx.Client) -> None:
    crm.faults(outage=True, path_prefix="/api/v1/search")
    assert api.get("/api/v1/search/contacts", params={"q": "a"}).status_code == 503
    assert api.get("/api/v1/accounts").status_code == 200


def test_rate_limit_answers_429_with_retry_after(crm: SandboxProcess, api: httpx.Client) -> None:
    crm.faults(rate_limit_rps=5, retry_after_s=3)
    responses = [api.get("/api/v1/me") for _ in range(20)]
    limited = [r for r in responses if r.status_code == 429]
    assert limited and len(limited) < 20
    assert limited[0].headers["Retry-After"] == "3"
    assert crm.stats()["throttled"] >= len(limited)


def test_auth_can_be_switched_off_to_simulate_a_regression(crm: SandboxProcess) -> None:
    assert httpx.get(crm.url + "/api/v1/accounts").status_code == 401
    crm.faults(auth_enforced=False)
    assert httpx.get(crm.url + "/api/v1/accounts").status_code == 200


def test_sensitive_fields_are_hidden_until_exposed_on_purpose(crm: SandboxProcess,
                                                              api: httpx.Client) -> None:
    assert "tax_id" not in api.get("/api/v1/contacts", params={"limit": 1}).json()["data"][0]
    crm.faults(expose_sensitive=True)
    assert "tax_id" in api.get("/api/v1/contacts", params={"limit": 1}).json()["data"][0]


def test_reset_restores_a_healthy_crm(crm: SandboxProcess, api: httpx.Client) -> None:
    crm.faults(outage=True, latency_ms=100, auth_enforced=False)
    crm.reset()
    knobs = crm.admin.get("/admin/faults").json()
    assert (knobs["outage"], knobs["latency_ms"], knobs["auth_enforced"]) == (False, 0, True)
    assert api.get("/api/v1/accounts").status_code == 200


@pytest.mark.parametrize(("patch", "field"), [
    ({"latency": 5}, "latency"), ({"error_rate": 2}, "error_rate"), ({"outage": "yes"}, "outage"),
])
def test_bad_knobs_are_refused_with_field_errors(crm: SandboxProcess, patch: dict, field: str) -> None:
    response = crm.admin.put("/admin/faults", json=patch)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", field]


def test_the_admin_api_needs_its_own_token(crm: SandboxProcess, api: httpx.Client) -> None:
    assert httpx.put(crm.url + "/admin/faults", json={"outage": True}).status_code == 401
    assert api.put("/admin/faults", json={"outage": True}).status_code == 401  # an API token is not enough
    assert api.get("/api/v1/accounts").status_code == 200


def test_outage_status_is_configurable(crm: SandboxProcess, api: httpx.Client) -> None:
    crm.faults(outage=True, outage_status=504)
    assert api.get("/api/v1/me").status_code == 504


def test_sync_max_rate_makes_the_sync_worker_a_slow_consumer(crm: SandboxProcess,
                                                             api: httpx.Client) -> None:
    crm.faults(sync_lag_ms=0, sync_max_rate=5)
    start = time.monotonic()
    ids = [api.post("/api/v1/contacts", json={"first_name": "Rate", "last_name": f"L{i}",
                                              "email": f"rate{i}@t.example"}).json()["id"]
           for i in range(10)]
    deadline = start + 30
    while crm.stats()["search"]["backlog"]:
        assert time.monotonic() < deadline, "the slow consumer never caught up"
        time.sleep(0.05)
    # 10 changes at 5 per second need at least 9 intervals of 0.2 s, however fast the machine
    assert time.monotonic() - start >= 1.8
    crm.faults(sync_max_rate=0)
    for contact_id in ids:
        api.delete(f"/api/v1/contacts/{contact_id}")


def test_sync_jitter_spreads_the_lag(crm: SandboxProcess, api: httpx.Client) -> None:
    crm.faults(sync_lag_ms=100, sync_jitter_ms=600)
    lags = []
    for i in range(6):
        contact = api.post("/api/v1/contacts", json={"first_name": "J", "last_name": f"Jit{i}",
                                                     "email": f"jit{i}@t.example"}).json()
        start = time.monotonic()
        while not api.get("/api/v1/search/contacts", params={"email": contact["email"]}).json()["data"]:
            time.sleep(0.01)
        lags.append(time.monotonic() - start)
        api.delete(f"/api/v1/contacts/{contact['id']}")
    assert min(lags) >= 0.09
    assert max(lags) - min(lags) > 0.1

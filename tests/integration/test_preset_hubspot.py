"""The HubSpot preset against the sandbox's HubSpot dialect, as a user would run it.

The one-minute load test the starter describes is reproduced with the commands in
docs/profiles.md ("Presets"); here the same starter runs a 15-second shape.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from crmpulse import AsyncClient, Client, load_config
from crmpulse.app.cli import main
from crmpulse.steps import Step
from tests.helpers import SandboxProcess
from tests.integration.preset_harness import (
    HUBSPOT,
    client,
    counts,
    exporter_run,
    init_config,
    loadtest,
    reset,
    set_env,
    set_quota,
    smoke,
    start,
    wait_for_counts,
)

PROFILE = (Path(__file__).parents[2] / "crmpulse" / "profiles" / "hubspot.yaml").read_text()


@pytest.fixture(scope="module")
def dialect() -> Iterator[SandboxProcess]:
    crm = start(HUBSPOT)
    yield crm
    crm.stop()


@pytest.fixture
def hs(dialect: SandboxProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxProcess]:
    set_env(HUBSPOT, monkeypatch)
    reset(dialect)
    yield dialect
    reset(dialect)


def test_init_writes_a_starter_that_check_config_passes(tmp_path: Path, hs: SandboxProcess,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "--preset", "hubspot", "--sandbox", str(tmp_path / "crmpulse.yaml")]) == 0
    printed = capsys.readouterr().out
    assert "crmpulse sandbox --dialect hubspot &" in printed
    path = init_config(HUBSPOT, tmp_path, hs.url)
    assert main(["check-config", str(path)]) == 0
    assert capsys.readouterr().out.startswith(f"{path}: valid (target hubspot at {hs.url}, profile hubspot")


def test_the_starter_for_a_real_account_passes_check_config_with_its_token_set(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HUBSPOT_TOKEN", "pat-eu1-00000000-0000-4000-8000-000000000000")
    path = tmp_path / "crmpulse.yaml"
    assert main(["init", "--preset", "hubspot", str(path)]) == 0
    assert main(["check-config", str(path)]) == 0
    assert "target hubspot at https://api.hubapi.com" in capsys.readouterr().out
    assert "token: ${env:HUBSPOT_TOKEN}" in path.read_text()


def test_smoke_runs_every_operation_and_leaves_nothing(tmp_path: Path, hs: SandboxProcess,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    before = counts(hs)
    code, out = smoke(init_config(HUBSPOT, tmp_path, hs.url), capsys)
    assert code == 0, out
    assert "21 of 21 steps succeeded; records created 3, deleted 3, left 0." in out
    assert counts(hs) == before


def test_the_exporters_checks_and_canary_pair_succeed_and_leave_nothing(tmp_path: Path,
                                                                      hs: SandboxProcess) -> None:
    before = counts(hs)
    metrics = exporter_run(init_config(HUBSPOT, tmp_path, hs.url, fast=True), HUBSPOT, hs)
    assert metrics["crmpulse_sync_canaries_lost_total{'pair': 'search', 'target': 'hubspot'}"] == 0
    assert wait_for_counts(hs, before) == before


def test_a_short_load_test_passes_its_gates_and_leaves_nothing(tmp_path: Path, hs: SandboxProcess) -> None:
    before = counts(hs)
    proc, report = loadtest(init_config(HUBSPOT, tmp_path, hs.url, fast=True), HUBSPOT, tmp_path / "report")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert report["verdict"] == "PASS"
    failed = {name: op["failures"] for name, op in report["operations"].items() if op["failures"]}
    assert failed == {}, report.get("errors")
    assert report["cleanup"]["left"] == 0
    assert wait_for_counts(hs, before) == before


# -- the auth flow -------------------------------------------------------------------------


def test_a_private_app_token_rides_with_every_call_and_authenticate_needs_no_operation(
        tmp_path: Path, hs: SandboxProcess) -> None:
    with client(init_config(HUBSPOT, tmp_path, hs.url)) as crm:
        login = crm.call("authenticate")
        assert (login.ok, login.status, login.message) == (True, 0, "bearer credentials: no token to fetch")
        before = hs.stats()["requests"]
        assert crm.call("list_accounts").ok
    assert hs.stats()["requests"] - before == 1


def test_a_revoked_token_fails_as_auth_once_without_retrying(tmp_path: Path, hs: SandboxProcess,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBSPOT_TOKEN", "sandbox-integration-token")
    with client(init_config(HUBSPOT, tmp_path, hs.url)) as crm:
        assert crm.call("list_accounts").ok
        hs.admin.post("/admin/access/revoke", json={"token": "sandbox-integration-token"})
        before = hs.stats()["requests"]
        revoked = crm.call("list_accounts")
    assert (revoked.ok, revoked.status, revoked.reason) == (False, 401, "auth")
    assert b"INVALID_AUTHENTICATION" in revoked.body
    assert hs.stats()["requests"] - before == 1  # a static token has nothing to renew


# -- paging and error bodies -----------------------------------------------------------------


def test_lists_follow_paging_next_after(tmp_path: Path, hs: SandboxProcess) -> None:
    with client(init_config(HUBSPOT, tmp_path, hs.url)) as crm:
        listing = crm.call("list_contacts", max_pages=3, page_size=20)
    ids = [r["id"] for r in listing.items or []]
    assert listing.pages == 3 and len(ids) == len(set(ids)) == 60


def test_a_search_pages_with_after_in_its_body(tmp_path: Path, hs: SandboxProcess) -> None:
    (tmp_path / "small.yaml").write_text(PROFILE.replace(
        "      properties: [email, company, createdate]\n      limit: 100\n",
        "      properties: [email, company, createdate]\n      limit: 2\n", 1))
    path = init_config(HUBSPOT, tmp_path, hs.url)
    path.write_text(path.read_text().replace("profile: hubspot", "profile: small.yaml"))
    with Client(load_config(path)) as crm:
        made = [crm.call("create_contact", email=f"page{i}@crmpulse.example", tags=["crmpulse-hubspot-paging"])
                for i in range(5)]
        assert all(m.ok for m in made)
        wait_for_search_index(hs)  # search reads an index that lags behind writes
        found = crm.call("find_marked_contacts", max_pages=5, marker="crmpulse-hubspot-paging")
        report = crm.cleanup()
    assert found.pages == 3
    assert sorted(r["id"] for r in found.items or []) == sorted(str(m.values["id"]) for m in made)
    assert report.left == 0


def wait_for_search_index(crm: SandboxProcess, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while crm.stats()["search"]["backlog"] > 0:
        assert time.monotonic() < deadline, "the search index never caught up"
        time.sleep(0.05)


def test_the_crms_error_body_is_what_call_shows(tmp_path: Path, hs: SandboxProcess,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = init_config(HUBSPOT, tmp_path, hs.url)
    assert main(["call", "-c", str(path), "create_contact", "email=not-an-email"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "  create_contact: expected status 201, got 400"
    assert out[2].startswith('  the CRM answered: {"status":"error"') and "VALIDATION_ERROR" in out[2], out


# -- throttling ------------------------------------------------------------------------------


def test_the_ten_second_limit_is_throttling_with_its_policy_and_quota_headers(tmp_path: Path,
                                                                             hs: SandboxProcess) -> None:
    path = init_config(HUBSPOT, tmp_path, hs.url)
    loaded = load_config(path)
    daily = next(q for q in loaded.profile.quota if q.name == "daily")
    set_quota(hs, ten_secondly=3, retry_after_s=2)
    with client(path) as crm:
        results = [crm.call("list_accounts") for _ in range(4)]
    assert [r.status for r in results] == [200, 200, 200, 429]
    reading = daily.read(results[0].headers)
    assert reading is not None and reading.limit == 625000 and reading.used >= 1
    slow = results[-1]
    assert (slow.ok, slow.throttled, slow.reason, slow.retry_after) == (False, True, "status", 2.0)
    assert b'"policyName":"TEN_SECONDLY_ROLLING"' in slow.body.replace(b" ", b"")


def test_search_past_five_a_second_is_throttling_and_a_poll_backs_off(tmp_path: Path, hs: SandboxProcess) -> None:
    path = init_config(HUBSPOT, tmp_path, hs.url)

    async def one_more() -> tuple[bool, str, bytes]:
        async with AsyncClient(load_config(path)) as crm:
            result = await crm.call("search_contacts", q="smith")
        return result.throttled, result.reason, result.body

    with client(path) as crm:
        spent = [crm.call("search_contacts", q="smith") for _ in range(6)]
        assert [r.throttled for r in spent] == [False] * 5 + [True]  # five a second per account
        throttled, reason, body = asyncio.run(one_more())  # the probes' driver sees the same
        assert (throttled, reason) == (True, "status")
        assert b'"policyName":"SECONDLY"' in body.replace(b" ", b"")
        (polled,) = crm.steps([Step(operation="search_contacts", with_={"q": "smith"},
                                    until="$.results[0].id", within=10)])
    assert polled.result.ok, polled.result.message  # the poll waited the limit out
    assert polled.attempts >= 2

"""The Salesforce preset against the sandbox's Salesforce dialect, as a user would run it.

The one-minute load test the starter describes is reproduced with the commands in
docs/profiles.md ("Presets"); here the same starter runs a 15-second shape.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from crmpulse import AsyncClient, load_config
from crmpulse.app.cli import main
from crmpulse.auth import OAuth2Provider
from tests.helpers import SandboxProcess
from tests.integration.preset_harness import (
    SALESFORCE,
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


@pytest.fixture(scope="module")
def dialect() -> Iterator[SandboxProcess]:
    crm = start(SALESFORCE)
    yield crm
    crm.stop()


@pytest.fixture
def sf(dialect: SandboxProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxProcess]:
    set_env(SALESFORCE, monkeypatch)
    reset(dialect)
    yield dialect
    reset(dialect)


def test_init_writes_a_starter_that_check_config_passes(tmp_path: Path, sf: SandboxProcess,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    # in a process of its own, as a user runs it: in this one, an earlier test's config may have
    # registered the sandbox's test secret, which output redaction then masks
    env = {k: v for k, v in os.environ.items() if k != "SALESFORCE_CLIENT_SECRET"}
    run = subprocess.run([sys.executable, "-m", "crmpulse", "init", "--preset", "salesforce", "--sandbox",
                          str(tmp_path / "crmpulse.yaml")], capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 0, run.stderr
    printed = run.stdout
    assert "crmpulse sandbox --dialect salesforce &" in printed
    assert "export SALESFORCE_CLIENT_SECRET=sandbox-secret" in printed
    path = init_config(SALESFORCE, tmp_path, sf.url)
    assert main(["check-config", str(path)]) == 0
    assert capsys.readouterr().out.startswith(f"{path}: valid (target salesforce at {sf.url}, profile salesforce")


def test_the_starter_for_a_real_org_passes_check_config_with_its_references_set(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SALESFORCE_CLIENT_ID", "3MVG9-consumer-key")
    monkeypatch.setenv("SALESFORCE_CLIENT_SECRET", "consumer-secret")
    path = tmp_path / "crmpulse.yaml"
    assert main(["init", "--preset", "salesforce", str(path)]) == 0
    assert main(["check-config", str(path)]) == 0
    assert "target salesforce at https://MyDomainName.my.salesforce.com" in capsys.readouterr().out
    assert "client_secret: ${env:SALESFORCE_CLIENT_SECRET}" in path.read_text()


def test_smoke_runs_every_operation_and_leaves_nothing(tmp_path: Path, sf: SandboxProcess,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    before = counts(sf)
    code, out = smoke(init_config(SALESFORCE, tmp_path, sf.url), capsys)
    assert code == 0, out
    assert "20 of 20 steps succeeded; records created 3, deleted 3, left 0." in out
    assert counts(sf) == before


def test_the_exporters_checks_and_canary_pair_succeed_and_leave_nothing(tmp_path: Path,
                                                                      sf: SandboxProcess) -> None:
    before = counts(sf)
    metrics = exporter_run(init_config(SALESFORCE, tmp_path, sf.url, fast=True), SALESFORCE, sf)
    lost = metrics["crmpulse_sync_canaries_lost_total{'pair': 'search', 'target': 'salesforce'}"]
    assert lost == 0
    assert wait_for_counts(sf, before) == before


def test_a_short_load_test_passes_its_gates_and_leaves_nothing(tmp_path: Path, sf: SandboxProcess) -> None:
    before = counts(sf)
    proc, report = loadtest(init_config(SALESFORCE, tmp_path, sf.url, fast=True), SALESFORCE,
                            tmp_path / "report")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert report["verdict"] == "PASS"
    failed = {name: op["failures"] for name, op in report["operations"].items() if op["failures"]}
    assert failed == {}, report.get("errors")
    assert report["cleanup"]["left"] == 0
    assert wait_for_counts(sf, before) == before


# -- the auth flow -------------------------------------------------------------------------


def test_one_token_serves_every_call_and_its_instance_url_becomes_the_base(tmp_path: Path,
                                                                          sf: SandboxProcess) -> None:
    with client(init_config(SALESFORCE, tmp_path, sf.url)) as crm:
        for operation in ("limits", "list_accounts", "list_deals"):
            assert crm.call(operation).ok
        auth = crm.session.auth
        assert isinstance(auth, OAuth2Provider)
        assert (auth.fetched, auth.instance_url, crm.session.base_url) == (1, sf.url, sf.url)


def test_an_expired_session_is_renewed_once_and_the_call_succeeds(tmp_path: Path, sf: SandboxProcess) -> None:
    with client(init_config(SALESFORCE, tmp_path, sf.url)) as crm:
        assert crm.call("limits").ok
        sf.admin.post("/admin/tokens/revoke")  # every session the org issued is now invalid
        before = sf.stats()["requests"]
        renewed = crm.call("limits")
        auth = crm.session.auth
        assert isinstance(auth, OAuth2Provider)
    assert renewed.ok, renewed.message
    assert auth.fetched == 2
    assert sf.stats()["requests"] - before == 3  # 401 INVALID_SESSION_ID, the token, the retry


def test_a_wrong_client_secret_fails_as_auth_with_the_oauth_error(tmp_path: Path, sf: SandboxProcess,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = init_config(SALESFORCE, tmp_path, sf.url)
    monkeypatch.setenv("SALESFORCE_CLIENT_SECRET", "not-the-secret")
    with client(path) as crm:
        result = crm.call("limits")
    assert (result.ok, result.reason) == (False, "auth")
    assert result.message == "limits: token endpoint answered 400 (invalid_client)"


# -- paging and error bodies -----------------------------------------------------------------


def test_soql_pages_follow_next_records_url(tmp_path: Path, sf: SandboxProcess) -> None:
    with client(init_config(SALESFORCE, tmp_path, sf.url)) as crm:
        first = crm.call("list_contacts")
        both = crm.call("list_contacts", max_pages=2)
    ids = [r["Id"] for r in both.items or []]
    assert (first.pages, len(first.items or [])) == (1, 200)
    assert both.pages == 2 and len(ids) == len(set(ids)) == counts(sf)["contacts"]


def test_the_crms_error_array_is_what_call_shows(tmp_path: Path, sf: SandboxProcess,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = init_config(SALESFORCE, tmp_path, sf.url)
    assert main(["call", "-c", str(path), "get_contact", "id=003000000000000AAA"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "  get_contact: expected status 200, got 404"
    assert out[2].startswith("  the CRM answered: [{") and '"errorCode":"NOT_FOUND"' in out[2], out
    assert main(["call", "-c", str(path), "create_deal", "name=Dated", "amount=100", "stage=proposal",
                 "closed_on=2030-01-31"]) == 0  # a date stays text; the deal is deleted again
    assert "Deleted the 1 record(s) this call created" in capsys.readouterr().out


# -- throttling ------------------------------------------------------------------------------


def test_a_spent_daily_allocation_is_throttling_in_both_drivers(tmp_path: Path, sf: SandboxProcess,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = init_config(SALESFORCE, tmp_path, sf.url)
    loaded = load_config(path)
    quota = loaded.profile.quota[0]
    with client(path) as crm:
        ok = crm.call("limits")
        reading = quota.read(ok.headers)
        assert reading is not None and reading.limit == 100000
        set_quota(sf, daily_api_requests=int(reading.used) + 2)
        results = [crm.call("limits") for _ in range(4)]
    assert [r.status for r in results] == [200, 200, 403, 403]
    spent = results[-1]
    assert (spent.ok, spent.throttled, spent.reason) == (False, True, "status")
    assert spent.message == "throttled: limits: expected status 200, got 403"
    assert b"REQUEST_LIMIT_EXCEEDED" in spent.body

    async def probe() -> tuple[bool, str]:
        async with AsyncClient(loaded) as crm:
            result = await crm.call("list_accounts")
        return result.throttled, result.reason

    assert asyncio.run(probe()) == (True, "status")
    assert main(["call", "-c", str(path), "list_accounts"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "  throttled: list_accounts: expected status 200, got 403"

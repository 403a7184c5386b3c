"""The Dynamics 365 preset against the sandbox's Dataverse dialect, as a user would run it.

The one-minute load test the starter describes is reproduced with the commands in
docs/profiles.md ("Presets"); here the same starter runs a 15-second shape.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from crmpulse import AsyncClient, load_config
from crmpulse.app.cli import main
from crmpulse.auth import OAuth2Provider
from tests.helpers import SandboxProcess
from tests.integration.preset_harness import (
    DYNAMICS,
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

GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture(scope="module")
def dialect() -> Iterator[SandboxProcess]:
    crm = start(DYNAMICS)
    yield crm
    crm.stop()


@pytest.fixture
def dy(dialect: SandboxProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxProcess]:
    set_env(DYNAMICS, monkeypatch)
    reset(dialect)
    yield dialect
    reset(dialect)


def test_init_writes_a_starter_that_check_config_passes(tmp_path: Path, dy: SandboxProcess,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "--preset", "dynamics365", "--sandbox", str(tmp_path / "crmpulse.yaml")]) == 0
    assert "crmpulse sandbox --dialect dynamics &" in capsys.readouterr().out
    path = init_config(DYNAMICS, tmp_path, dy.url)
    assert main(["check-config", str(path)]) == 0
    assert capsys.readouterr().out.startswith(f"{path}: valid (target dynamics365 at {dy.url}, "
                                              "profile dynamics365")


def test_the_starter_for_a_real_environment_passes_check_config_with_its_references_set(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name, value in {"AZURE_TENANT_ID": "00000000-0000-4000-8000-00000000aaaa",
                        "DYNAMICS_CLIENT_ID": "00000000-0000-4000-8000-00000000bbbb",
                        "DYNAMICS_CLIENT_SECRET": "secret-value"}.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "crmpulse.yaml"
    assert main(["init", "--preset", "dynamics365", str(path)]) == 0
    assert main(["check-config", str(path)]) == 0
    assert "target dynamics365 at https://yourorg.crm.dynamics.com" in capsys.readouterr().out


def test_smoke_runs_every_operation_and_leaves_nothing(tmp_path: Path, dy: SandboxProcess,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    before = counts(dy)
    code, out = smoke(init_config(DYNAMICS, tmp_path, dy.url), capsys)
    assert code == 0, out
    assert "21 of 21 steps succeeded; records created 3, deleted 3, left 0." in out
    assert counts(dy) == before


def test_the_exporters_checks_and_canary_pair_succeed_and_leave_nothing(tmp_path: Path,
                                                                      dy: SandboxProcess) -> None:
    before = counts(dy)
    metrics = exporter_run(init_config(DYNAMICS, tmp_path, dy.url, fast=True), DYNAMICS, dy)
    assert metrics["crmpulse_sync_canaries_lost_total{'pair': 'read', 'target': 'dynamics365'}"] == 0
    assert wait_for_counts(dy, before) == before


def test_a_short_load_test_passes_its_gates_and_leaves_nothing(tmp_path: Path, dy: SandboxProcess) -> None:
    before = counts(dy)
    proc, report = loadtest(init_config(DYNAMICS, tmp_path, dy.url, fast=True), DYNAMICS, tmp_path / "report")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert report["verdict"] == "PASS"
    failed = {name: op["failures"] for name, op in report["operations"].items() if op["failures"]}
    assert failed == {}, report.get("errors")
    assert report["cleanup"]["left"] == 0
    assert wait_for_counts(dy, before) == before


# -- the auth flow and ids from headers -------------------------------------------------------


def test_the_entra_token_is_fetched_once_and_renewed_after_a_401(tmp_path: Path, dy: SandboxProcess) -> None:
    with client(init_config(DYNAMICS, tmp_path, dy.url)) as crm:
        assert crm.call("whoami").ok and crm.call("list_accounts").ok
        auth = crm.session.auth
        assert isinstance(auth, OAuth2Provider) and auth.fetched == 1
        assert auth.token_url == f"{dy.url}/sandbox.example/oauth2/v2.0/token"
        dy.admin.post("/admin/tokens/revoke")
        renewed = crm.call("whoami")
    assert renewed.ok, renewed.message
    assert auth.fetched == 2


def test_a_wrong_client_secret_fails_as_auth_with_entras_error(tmp_path: Path, dy: SandboxProcess,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path = init_config(DYNAMICS, tmp_path, dy.url)
    monkeypatch.setenv("DYNAMICS_CLIENT_SECRET", "not-the-secret")
    with client(path) as crm:
        result = crm.call("whoami")
    assert (result.ok, result.reason) == (False, "auth")
    assert result.message == "whoami: token endpoint answered 401 (invalid_client)"


def test_a_create_answers_204_and_the_id_comes_from_odata_entityid(tmp_path: Path, dy: SandboxProcess) -> None:
    with client(init_config(DYNAMICS, tmp_path, dy.url)) as crm:
        created = crm.call("create_contact", last_name="Header", email="header@crmpulse.example")
        assert (created.status, created.body) == (204, b"")
        entity = {k.lower(): v for k, v in created.headers.items()}["odata-entityid"]
        read = crm.call("get_contact", id=created.values["id"])
        report = crm.cleanup()
    assert GUID.fullmatch(created.values["id"]) and entity.endswith(f"/contacts({created.values['id']})")
    assert read.ok and read.values["email"] == "header@crmpulse.example"
    assert (report.created, report.deleted, report.left) == (1, 1, 0)


# -- paging and error bodies -----------------------------------------------------------------


def test_lists_follow_odata_next_link(tmp_path: Path, dy: SandboxProcess) -> None:
    with client(init_config(DYNAMICS, tmp_path, dy.url)) as crm:
        listing = crm.call("list_contacts", max_pages=3, page_size=20)
    ids = [r["contactid"] for r in listing.items or []]
    assert listing.pages == 3 and len(ids) == len(set(ids)) == 60


def test_the_crms_error_body_is_what_call_shows(tmp_path: Path, dy: SandboxProcess,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = init_config(DYNAMICS, tmp_path, dy.url)
    missing = "00000000-0000-4000-8000-000000000000"
    assert main(["call", "-c", str(path), "get_contact", f"id={missing}"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "  get_contact: expected status 200, got 404"
    assert out[2].startswith('  the CRM answered: {"error":{"code":"0x80040217"'), out


# -- throttling ------------------------------------------------------------------------------


def test_service_protection_is_throttling_with_retry_after_and_quota_headers(tmp_path: Path,
                                                                            dy: SandboxProcess) -> None:
    path = init_config(DYNAMICS, tmp_path, dy.url)
    loaded = load_config(path)
    requests = next(q for q in loaded.profile.quota if q.name == "requests")
    with client(path) as crm:
        first = crm.call("whoami")
        reading = requests.read(first.headers)
        assert reading is not None and reading.limit == 6000 and reading.used >= 1
        set_quota(dy, requests=int(reading.used) + 2)
        results = [crm.call("whoami") for _ in range(4)]
    assert [r.status for r in results] == [200, 200, 429, 429]
    slow = results[-1]
    assert (slow.ok, slow.throttled, slow.reason) == (False, True, "status")
    assert slow.retry_after is not None and slow.retry_after >= 1
    assert b"0x80072322" in slow.body

    async def probe() -> tuple[bool, float | None]:
        async with AsyncClient(loaded) as crm:
            result = await crm.call("list_accounts")
        return result.throttled, result.retry_after

    throttled, retry_after = asyncio.run(probe())
    assert throttled and retry_after is not None

"""Running profile operations against the real sandbox: journeys, pagination, cleanup, errors."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from crmpulse import AsyncClient, Client
from crmpulse.app.demo import sandbox_config
from crmpulse.steps import Step
from tests.helpers import SandboxProcess, reserve_port, write_config


def marked_contacts(crm: SandboxProcess, tag: str) -> int:
    api = Client(sandbox_config(crm.url))
    with api:
        result = api.call("list_contacts", max_pages=100, tag=tag, page_size=200)
    assert result.ok
    return len(result.items or [])


def test_the_smoke_journey_runs_every_operation_and_leaves_nothing(crm: SandboxProcess) -> None:
    loaded = sandbox_config(crm.url)
    with Client(loaded) as client:
        results = client.steps(loaded.profile.smoke, {})
        report = client.cleanup()
    assert [r.result.ok for r in results] == [True] * len(loaded.profile.smoke)
    assert {r.result.operation for r in results} == set(loaded.profile.operations)
    assert (report.created, report.left) == (4, 0)
    assert marked_contacts(crm, "crmpulse-demo") == 0


def test_records_are_cleaned_up_when_a_journey_fails_half_way(crm: SandboxProcess) -> None:
    crm.faults(outage=True, path_prefix="/api/v1/deals")
    loaded = sandbox_config(crm.url)
    with Client(loaded) as client:
        results = client.steps(loaded.profile.smoke, {})
        assert not results[-1].result.ok
        assert results[-1].result.operation == "create_deal"
        assert marked_contacts(crm, "crmpulse-demo") == 1  # the contact exists ...
        report = client.cleanup()
    assert (report.created, report.deleted, report.left) == (1, 1, 0)
    assert marked_contacts(crm, "crmpulse-demo") == 0  # ... and is gone after cleanup


def test_a_delete_that_fails_is_counted_and_the_record_stays_listed(crm: SandboxProcess) -> None:
    loaded = sandbox_config(crm.url)
    with Client(loaded) as client:
        created = client.call("create_contact", first_name="Left", last_name="Over",
                              email="left.over@t.example", tags=["crmpulse-leftover"])
        assert created.ok
        crm.faults(outage=True, path_prefix="/api/v1/contacts")
        report = client.cleanup()
        assert (report.failed, report.left) == (1, 1)
        crm.reset()
        report = client.cleanup()  # a later sweep finishes the job
    assert report.left == 0
    assert marked_contacts(crm, "crmpulse-leftover") == 0


def test_pagination_follows_up_to_the_requested_pages(crm: SandboxProcess) -> None:
    with Client(sandbox_config(crm.url)) as client:
        result = client.call("list_contacts", max_pages=3, page_size=5)
    assert result.ok and result.pages == 3
    assert len({c["id"] for c in result.items or []}) == 15


def test_a_timeout_is_reported_as_reason_timeout(tmp_path: Path, crm: SandboxProcess,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S", "sandbox-secret")
    path = write_config(tmp_path, f"""
        target:
          name: sandbox
          base_url: {crm.url}
          timeout: 200ms
          auth: {{type: oauth2_client_credentials, client_id: crmpulse, client_secret: "${{env:S}}"}}
        """)
    from crmpulse import load_config

    crm.faults(latency_ms=1000, path_prefix="/api/v1/accounts")
    with Client(load_config(path)) as client:
        result = client.call("list_accounts")
    assert (result.ok, result.reason) == (False, "timeout")


def test_a_refused_connection_is_reason_connect() -> None:
    with Client(sandbox_config(f"http://127.0.0.1:{reserve_port()}")) as client:
        result = client.call("whoami")
    assert (result.ok, result.reason) == (False, "connect")
    assert "http://127.0.0.1:" in result.message


def test_the_async_client_shares_the_same_flow(crm: SandboxProcess) -> None:
    async def run() -> tuple[bool, int]:
        async with AsyncClient(sandbox_config(crm.url)) as client:
            results = await asyncio.gather(*(client.call("whoami") for _ in range(10)))
            created = await client.call("create_contact", first_name="A", last_name="Sync",
                                        email="a.sync@t.example")
            report = await client.cleanup()
            return all(r.ok for r in results) and created.ok, report.left
    ok, left = asyncio.run(run())
    assert ok and left == 0


def test_until_retries_a_read_until_the_record_is_visible(crm: SandboxProcess) -> None:
    crm.faults(sync_lag_ms=600)
    steps = [Step.model_validate(s) for s in [
        {"operation": "create_contact", "with": {"first_name": "U", "last_name": "Ntil",
                                                 "email": "u.ntil@t.example"}, "save": {"e": "email"}},
        {"operation": "search_contacts", "with": {"email": "{{ e }}"}, "until": "$.data[0].id",
         "within": "5s"},
    ]]
    with Client(sandbox_config(crm.url)) as client:
        results = client.steps(steps, {})
        client.cleanup()
    assert results[1].result.ok
    assert results[1].attempts > 1 and results[1].waited >= 0.5


def test_call_against_an_unreachable_url_exits_1_without_a_traceback(tmp_path: Path) -> None:
    path = write_config(tmp_path, f"""
        target:
          name: nowhere
          base_url: http://127.0.0.1:{reserve_port()}
        """)
    run = subprocess.run([sys.executable, "-m", "crmpulse", "call", "-c", str(path), "whoami"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "connection failed" in run.stdout
    assert "Traceback" not in run.stdout + run.stderr

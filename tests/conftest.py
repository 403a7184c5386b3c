"""Shared fixtures: a real sandbox CRM process on loopback."""

from __future__ import annotations

import os

# Unit tests import Locust's stats classes; importing locust would otherwise gevent-
# monkey-patch this whole pytest process (and the asyncio tests running in it). Real
# Locust runs are subprocesses, which the load-test tests start without this variable.
os.environ.setdefault("LOCUST_SKIP_MONKEY_PATCH", "1")

from collections.abc import Iterator

import httpx
import pytest

from tests.helpers import SandboxProcess


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxProcess]:
    proc = SandboxProcess("--seed", "60", "--sync-lag", "200ms")
    yield proc
    proc.stop()


@pytest.fixture
def crm(sandbox: SandboxProcess) -> Iterator[SandboxProcess]:
    """The shared sandbox, with every fault knob reset before and after the test."""
    sandbox.reset()
    yield sandbox
    sandbox.reset()


@pytest.fixture
def api(crm: SandboxProcess) -> Iterator[httpx.Client]:
    """An httpx client with a valid bearer token for the sandbox's API."""
    with httpx.Client(base_url=crm.url, timeout=10,
                      headers={"Authorization": f"Bearer {crm.token()}"}) as client:
        yield client


@pytest.fixture
def sandbox_secret(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CRMPULSE_CLIENT_SECRET", "sandbox-secret")
    return "sandbox-secret"

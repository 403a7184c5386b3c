"""A CRM that misbehaves at the HTTP level gets the same bounded outcome from every client.

Each behaviour of tests/badservers.py:HostileCRM is called through the synchronous
client (CLI, cleanup, sweeps), the asynchronous one (probes) and the load test's
(the Session flow a Locust user drives, sent by loadtests/wire.py), and each must end
with the same reason and message: a body cap that holds after decompression, an
overall deadline however slowly the server drips, no redirect followed, strict JSON.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from crmpulse import AsyncClient, Client, TransportError, load_config
from crmpulse.client import PROBE_CONTEXT, ProbeContext, Reply, Session, failed_result
from crmpulse.loadtests.wire import Wire
from crmpulse.profile import OperationResult
from tests.badservers import HostileCRM
from tests.helpers import write_config

LIMIT = 1024 * 1024
TOO_LARGE = f"list_accounts: response body larger than {LIMIT} bytes (decompressed)"

# behaviour -> (reason, message); {url} is the server's origin
EXPECTED = {
    "gzip_bomb": ("assertion", TOO_LARGE),
    "deflate_bomb": ("assertion", TOO_LARGE),
    "endless": ("assertion", TOO_LARGE),
    "endless_trailer": ("connect", "list_accounts: connection broken ({url})"),
    "endless_extension": ("connect", "list_accounts: connection broken ({url})"),
    "slow_drip": ("timeout", "list_accounts: timed out ({url})"),
    "slow_headers": ("timeout", "list_accounts: timed out ({url})"),
    "redirect_loop": ("status", "list_accounts: expected status 200, got 302"),
    "huge_headers": ("connect", "list_accounts: connection broken ({url})"),
    "truncated": ("connect", "list_accounts: connection broken ({url})"),
    "html": ("assertion", "list_accounts: expected a JSON body, got 28 bytes of other content"),
    "invalid_json": ("assertion", "list_accounts: expected a JSON body, got 14 bytes of other content"),
    "nan_json": ("assertion", "list_accounts: expected a JSON body, got 29 bytes of other content"),
    "unknown_encoding": ("assertion", "list_accounts: response body refused: Content-Encoding zstd "
                                      "was not asked for (crmpulse accepts gzip, deflate, br)"),
}


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileCRM]:
    servers = HostileCRM()
    yield servers
    servers.close()


def config_for(tmp_path: Path, url: str) -> Path:
    return write_config(tmp_path, f"""
        target: {{name: hostile, base_url: "{url}", timeout: 2s}}
        """)


def sync_call(path: Path) -> OperationResult:
    with Client(load_config(path), max_body=LIMIT) as client:
        return client.call("list_accounts")


def async_call(path: Path) -> OperationResult:
    async def run() -> OperationResult:
        token = PROBE_CONTEXT.set(ProbeContext(max_body=LIMIT))
        try:
            async with AsyncClient(load_config(path)) as client:
                return await client.call("list_accounts")
        finally:
            PROBE_CONTEXT.reset(token)
    return asyncio.run(run())


def loadtest_call(path: Path) -> OperationResult:
    """What a load-test user does with one operation (CRMUser.call), minus Locust's reporting."""
    config = load_config(path)
    wire = Wire(config.target, max_body=LIMIT)
    flow = Session(config.target, config.profile, force_authenticate=False).call("list_accounts", {}, 1)
    try:
        item = next(flow)
        while True:
            try:
                status, headers, body = wire.send(item)
            except TransportError as exc:
                item = flow.throw(exc)
                continue
            item = flow.send(Reply(status, headers, body))
    except StopIteration as stop:
        result: OperationResult = stop.value
        return result
    except TransportError as exc:  # as CRMUser.call reports what the flow raises
        return failed_result("list_accounts", exc)
    finally:
        wire.close()


@pytest.mark.parametrize("driver", [sync_call, async_call, loadtest_call], ids=["sync", "async", "loadtest"])
@pytest.mark.parametrize("behaviour", sorted(EXPECTED))
def test_each_hostile_behaviour_fails_with_the_same_reason_through_both_clients(
        tmp_path: Path, hostile: HostileCRM, behaviour: str, driver) -> None:
    url = hostile.urls[behaviour]
    result = driver(config_for(tmp_path, url))
    reason, message = EXPECTED[behaviour]
    assert (result.ok, result.reason, result.message) == (False, reason, message.format(url=url))


# `crmpulse call`, then the process's own peak RSS (VmHWM belongs to the address space exec
# made; ru_maxrss would also count the test process it was forked from)
MEASURED = """
import sys
from crmpulse.app.cli import main
code = main(sys.argv[1:])
peak = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print("peak", int(peak.split()[1]) // 1024, "MiB", file=sys.stderr)
sys.exit(code)
"""


def test_crmpulse_call_on_a_gzip_bomb_stays_small_and_exits_1(tmp_path: Path, hostile: HostileCRM) -> None:
    path = config_for(tmp_path, hostile.urls["gzip_bomb"])
    run = subprocess.run([sys.executable, "-c", MEASURED, "call", "-c", str(path), "list_accounts"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert run.stdout.splitlines()[-1] == (
        "  list_accounts: response body larger than 16777216 bytes (decompressed)")
    # the bomb is 1 GiB decompressed; the cap is 16 MiB, and the process never holds much more
    peak = int(run.stderr.split("peak ")[1].split()[0])
    assert peak < 200, f"peak RSS {peak} MiB"


def test_crmpulse_call_on_a_slow_drip_ends_at_its_deadline(tmp_path: Path, hostile: HostileCRM) -> None:
    path = config_for(tmp_path, hostile.urls["slow_drip"])
    run = subprocess.run([sys.executable, "-m", "crmpulse", "call", "-c", str(path), "list_accounts"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert run.stdout.splitlines()[-1] == f"  list_accounts: timed out ({hostile.urls['slow_drip']})"

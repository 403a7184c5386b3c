"""A check never runs again sooner than its interval: not from its first run to its second,
not across a reload. Kept checks keep their last results across a reload too.

This is more than tidiness: a ``bruteforce`` check locks its canary account, and the
Salesforce dialect (like Salesforce) answers a locked account as a wrong password, so a run
that follows the last one before the lockout is over fails for nothing (what made the
Salesforce access test flaky: the second run sometimes came a moment after the first).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from crmpulse import load_config
from crmpulse.probes.checks import Outcome, TargetRunner
from crmpulse.probes.exporter import Exporter
from crmpulse.probes.scheduler import LastRun, Scheduler
from tests.helpers import SandboxProcess, write_config

#: asyncio may wake a sleeper up to its clock's resolution early
EARLY = 0.005


@pytest.fixture(scope="module")
def crm() -> Iterator[SandboxProcess]:
    proc = SandboxProcess("--seed", "61")
    proc.admin.post("/admin/access/revoke", json={"token": "sandbox-integration-token"})
    yield proc
    proc.stop()


def http_checks(names: list[str], interval: str, extra: str = "") -> str:
    return "".join(f"    - {{name: {name}, kind: http, request: {{path: /healthz, auth: false}}, "
                   f"interval: {interval}, timeout: 400ms, jitter: 0{extra}}}\n" for name in names)


def test_the_second_run_comes_at_least_an_interval_after_the_first(crm: SandboxProcess,
                                                                  tmp_path: Path) -> None:
    """First runs are spread over the first interval (at most 5 s); the second waits for
    the check's phase, but never less than an interval: 16 checks every 0.5 s, 4 runs each."""
    names = [f"c{i}" for i in range(16)]
    path = write_config(tmp_path, f"target: {{name: crm, base_url: {crm.url}}}\nprobes:\n"
                                  f"  checks:\n{http_checks(names, '500ms')}")
    loaded = load_config(path)
    starts: dict[str, list[float]] = {name: [] for name in names}

    async def main() -> None:
        runner = TargetRunner(loaded)
        scheduler: Scheduler

        def record(outcome: Outcome) -> None:
            starts[outcome.check].append(scheduler.started[outcome.check])

        scheduler = Scheduler(runner, loaded.config.probes.checks, 32, record, lambda c, n: None)
        scheduler.start()
        try:
            deadline = time.monotonic() + 60
            while min(len(s) for s in starts.values()) < 4:
                assert time.monotonic() < deadline, starts
                await asyncio.sleep(0.05)
        finally:
            await scheduler.stop()
            await runner.aclose()

    asyncio.run(main())
    gaps = {name: [b - a for a, b in itertools.pairwise(s)] for name, s in starts.items()}
    short = {name: [round(g, 3) for g in gap if g < 0.5 - EARLY] for name, gap in gaps.items()}
    assert not any(short.values()), short


CONFIG = """\
target:
  name: crm
  base_url: {url}
  credentials:
    rotated_out: {{type: bearer, token: "${{env:REVOKED_TOKEN}}"}}
probes:
  checks:
{checks}"""
REVOKED = ("    - {name: revoked_token, kind: revocation, credential: rotated_out, read: {operation: whoami},"
           " interval: 1s, timeout: 800ms, jitter: 0}\n")


def test_a_reload_keeps_each_kept_checks_pace_and_last_results(crm: SandboxProcess, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Reloading the same checks does not run them again at once; a check whose series change
    (here: ``phase_series``) starts afresh and runs within seconds, as after a start. A kept
    access check keeps its finding (a broken protection stays broken, not reset to holds);
    a check that leaves the config takes its access series with it."""
    monkeypatch.setenv("REVOKED_TOKEN", "sandbox-integration-token")
    checks = http_checks(["kept", "reshaped"], "3s") + REVOKED
    path = write_config(tmp_path, CONFIG.format(url=crm.url, checks=checks))
    crm.faults(ignore_revocation=True)  # the revoked token still reads: the protection is broken

    def holds(exporter: Exporter) -> float | None:
        return exporter.metrics.registry.get_sample_value(
            "crmpulse_access_holds",
            {"target": "crm", "check": "revoked_token", "kind": "revocation", "path": "revoked"})

    async def main() -> tuple[list[float], float, float | None, float | None, float | None, LastRun | None]:
        exporter = Exporter(path, load_config(path), listen="127.0.0.1:0")
        await exporter.start()
        kept: list[float] = []

        def sched() -> Scheduler:
            assert exporter.scheduler is not None
            return exporter.scheduler

        async def until(condition: object, timeout: float = 30) -> None:
            deadline = time.monotonic() + timeout
            while not condition():  # type: ignore[operator]
                assert time.monotonic() < deadline, "timed out"
                await asyncio.sleep(0.01)

        def note() -> bool:  # every start of "kept", in whichever schedule runs it
            at = sched().started.get("kept")
            if at is not None and (not kept or at != kept[-1]):
                kept.append(at)
            return False

        try:
            await until(lambda: holds(exporter) == 0 and "reshaped" in sched().started)
            await until(lambda: note() or len(kept) >= 1)
            count = len(kept)
            await until(lambda: note() or len(kept) > count)  # reload just after a run began
            path.write_text(CONFIG.format(url=crm.url, checks=http_checks(["kept"], "3s") + http_checks(
                ["reshaped"], "3s", ", phase_series: false") + REVOKED))
            reloaded = time.monotonic()
            assert await exporter.reload() == []
            held = holds(exporter)
            reshaped = sched().started.get("reshaped")
            shown = sched().last.get("kept")  # the landing page's last result
            await until(lambda: note() or len(kept) >= count + 3)
            path.write_text(CONFIG.format(url=crm.url, checks=http_checks(["kept"], "3s")))
            assert await exporter.reload() == []
            gone = holds(exporter)
        finally:
            await exporter.stop()
        return kept, reloaded, held, reshaped, gone, shown

    try:
        kept, reloaded, held, reshaped, gone, shown = asyncio.run(main())
    finally:
        crm.reset()
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(kept)]
    assert all(gap >= 3 - EARLY for gap in gaps), gaps
    assert held == 0  # still broken after the reload, until a run says otherwise
    assert reshaped is None or reshaped > reloaded  # not carried over: runs afresh
    assert gone is None
    assert shown is not None and shown.success

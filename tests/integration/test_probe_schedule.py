"""A check never starts again sooner than its interval less its jitter (first to second run,
with jitter, behind a concurrency limit), and a reload keeps the pace and last results of
the checks it does not change: on the exporter's one grid, through repeated reloads and a
change of SLO buckets; a run the reload cut off runs again at once.

This is more than tidiness: a ``bruteforce`` check locks its canary account, and the
Salesforce dialect (like Salesforce) answers a locked account as a wrong password, so a run
that follows the last one before the lockout is over fails for nothing (what made the
Salesforce access test flaky: the second run sometimes came a moment after the first).
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from crmpulse import load_config
from crmpulse.probes.checks import Outcome, TargetRunner
from crmpulse.probes.exporter import Exporter
from crmpulse.probes.scheduler import FLOOR_SLACK, Scheduler, phase_of
from tests.helpers import SandboxProcess, write_config

#: the floor's timer slack, and asyncio may wake a sleeper up to its clock's resolution early
EARLY = FLOOR_SLACK + 0.005


@pytest.fixture(scope="module")
def crm() -> Iterator[SandboxProcess]:
    proc = SandboxProcess("--seed", "61")
    proc.admin.post("/admin/access/revoke", json={"token": "sandbox-integration-token"})
    yield proc
    proc.stop()


def http_check(name: str, interval: str, extra: str = "", timeout: str = "400ms",
               request: str = "path: /healthz, auth: false") -> str:
    return (f"    - {{name: {name}, kind: http, request: {{{request}}}, "
            f"interval: {interval}, timeout: {timeout}{extra}}}\n")


def test_two_starts_are_never_closer_than_the_interval_less_its_jitter(crm: SandboxProcess,
                                                                      tmp_path: Path) -> None:
    """16 checks every 0.5 s with 40 % jitter, one slot for all of them (so runs wait for
    it), 5 runs each: the second run waits for the check's phase, jitter and slot waits
    move ticks, and no start follows the one before by less than 0.3 s."""
    names = [f"c{i}" for i in range(16)]
    checks = "".join(http_check(name, "500ms", ", jitter: 40") for name in names)
    path = write_config(tmp_path, f"target: {{name: crm, base_url: {crm.url}}}\nprobes:\n"
                                  f"  checks:\n{checks}")
    loaded = load_config(path)
    starts: dict[str, list[float]] = {name: [] for name in names}

    async def main() -> None:
        runner = TargetRunner(loaded)
        scheduler: Scheduler

        def record(outcome: Outcome) -> None:
            starts[outcome.check].append(scheduler.started[outcome.check])

        scheduler = Scheduler(runner, loaded.config.probes.checks, 1, record, lambda c, n: None)
        scheduler.start()
        try:
            deadline = time.monotonic() + 60
            while min(len(s) for s in starts.values()) < 5:
                assert time.monotonic() < deadline, starts
                await asyncio.sleep(0.05)
        finally:
            await scheduler.stop()
            await runner.aclose()

    asyncio.run(main())
    gaps = {name: [b - a for a, b in itertools.pairwise(s)] for name, s in starts.items()}
    short = {name: [round(g, 3) for g in gap if g < 0.3 - EARLY] for name, gap in gaps.items()}
    assert not any(short.values()), short


CONFIG = """\
target:
  name: crm
  base_url: {url}
  credentials:
    rotated_out: {{type: bearer, token: "${{env:REVOKED_TOKEN}}"}}
{slos}probes:
  checks:
{checks}"""
REVOKED = ("    - {name: revoked_token, kind: revocation, credential: rotated_out, read: {operation: whoami},"
           " interval: 1s, timeout: 800ms, jitter: 0}\n")
SLO = "slos:\n  - {name: fast, kind: latency, objective: 99, threshold: 700ms}\n"


class Running:
    """An in-process exporter and the starts of its checks, across its reloads."""

    def __init__(self, exporter: Exporter) -> None:
        self.exporter = exporter
        self.starts: dict[str, list[float]] = {}

    @property
    def scheduler(self) -> Scheduler:
        assert self.exporter.scheduler is not None
        return self.exporter.scheduler

    def note(self) -> None:
        for name, at in self.scheduler.completed.items():
            seen = self.starts.setdefault(name, [])
            if not seen or at != seen[-1]:
                seen.append(at)

    async def until(self, condition: Callable[[], Any], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.note()
            if condition():
                return
            assert time.monotonic() < deadline, ("timed out", self.starts)
            await asyncio.sleep(0.01)

    def runs(self, name: str) -> int:
        return len(self.starts.get(name, []))

    def holds(self) -> float | None:
        return self.exporter.metrics.registry.get_sample_value(
            "crmpulse_access_holds",
            {"target": "crm", "check": "revoked_token", "kind": "revocation", "path": "revoked"})

    def success(self, name: str) -> float:
        return self.exporter.metrics.checks.series[("crm", name)].success


def test_a_reload_keeps_the_pace_and_last_results_of_the_checks_it_does_not_change(
        crm: SandboxProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kept check runs every 3 s (10 % jitter) through seven reloads, one of which
    changes every check's histogram buckets (an SLO threshold): its starts stay 2.7-3.9 s
    apart (a reload used to run it again at once, or to move it up to a whole interval later), its last result stays
    on the landing page and in ``crmpulse_check_success``, and the broken revocation stays
    ``holds 0``. A check whose definition changed is not carried over; a check that left the
    config takes its access series with it."""
    monkeypatch.setenv("REVOKED_TOKEN", "sandbox-integration-token")
    # 10 % jitter, as by default
    path = write_config(tmp_path, CONFIG.format(url=crm.url, slos="", checks=http_check(
        "kept", "3s", ", jitter: 10") + http_check("changed", "3s", ", jitter: 0") + REVOKED))
    crm.faults(ignore_revocation=True)  # the revoked token still reads: the protection is broken

    async def main() -> dict[str, Any]:
        run = Running(Exporter(path, load_config(path), listen="127.0.0.1:0"))
        await run.exporter.start()
        seen: dict[str, Any] = {}

        def idle() -> bool:
            """No run of "kept" in flight: reloads here never cut one off (which would run
            again at once and, on a busy machine, make the next gap two intervals; that
            case has its own test below). reload() does not yield before it stops the
            schedule, so what this sees still holds then."""
            return run.scheduler.started.get("kept") == run.scheduler.completed.get("kept")
        try:
            await run.until(lambda: run.holds() == 0 and run.runs("kept") >= 2 and run.runs("changed") >= 1)
            # the SLO changes every check's buckets; "changed" gets a longer timeout
            path.write_text(CONFIG.format(url=crm.url, slos=SLO, checks=http_check(
                "kept", "3s", ", jitter: 10") + http_check("changed", "3s", ", jitter: 0", "450ms") + REVOKED))
            await run.until(idle)
            assert await run.exporter.reload() == []
            seen.update(holds=run.holds(), success=run.success("kept"), shown=run.scheduler.last.get("kept"),
                        changed=run.scheduler.completed.get("changed"),
                        buckets=run.exporter.metrics.checks.buckets)
            for _ in range(6):  # reloads closer together than the interval
                await asyncio.sleep(0.7)
                await run.until(idle)
                assert await run.exporter.reload() == []
            count = run.runs("kept")
            await run.until(lambda: run.runs("kept") >= count + 2)
            path.write_text(CONFIG.format(url=crm.url, slos=SLO, checks=http_check("kept", "3s", ", jitter: 10")))
            assert await run.exporter.reload() == []
            seen["gone"] = run.holds()
        finally:
            await run.exporter.stop()
        seen["kept"] = run.starts["kept"]
        return seen

    try:
        seen = asyncio.run(main())
    finally:
        crm.reset()
    assert 0.7 in seen["buckets"]  # the SLO did change the buckets
    # from the second run on (the first comes anywhere in the first interval)
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(seen["kept"][1:])]
    assert all(2.7 - EARLY <= gap < 3.9 for gap in gaps), gaps
    assert seen["holds"] == 0  # still broken after the reload, until a run says otherwise
    assert seen["success"] == 1 and seen["shown"] is not None and seen["shown"].success
    assert seen["changed"] is None  # a changed check starts afresh
    assert seen["gone"] is None


def test_a_run_a_reload_cuts_off_runs_again_at_once(crm: SandboxProcess, tmp_path: Path) -> None:
    """A kept check in the middle of a 1.5 s run when the config is reloaded: its next run
    comes within seconds of the reload, not an interval (10 s) after the run that never
    finished (which, with reloads at a steady pace, could repeat forever)."""
    # the sandbox slows its API and token endpoints (not /healthz): a POST to the token
    # endpoint without credentials fails after the delay, a completed run all the same
    slow = http_check("slow", "10s", ", jitter: 0", "4s", "method: POST, path: /oauth/token, auth: false")
    path = write_config(tmp_path, f"target: {{name: crm, base_url: {crm.url}}}\nprobes:\n  checks:\n{slow}")

    async def main() -> tuple[float, float, list[float]]:
        run = Running(Exporter(path, load_config(path), listen="127.0.0.1:0"))
        await run.exporter.start()
        try:
            await run.until(lambda: run.runs("slow") >= 1)
            crm.faults(latency_ms=1500)
            cut = run.scheduler.started["slow"]
            await run.until(lambda: run.scheduler.started["slow"] != cut, timeout=20)
            cut = run.scheduler.started["slow"]  # a run has just begun: 1.5 s to go
            assert run.scheduler.completed["slow"] != cut
            reloaded = time.monotonic()
            assert await run.exporter.reload() == []
            await run.until(lambda: run.starts["slow"][-1] > reloaded, timeout=20)
        finally:
            await run.exporter.stop()
        return cut, reloaded, run.starts["slow"]

    try:
        cut, reloaded, starts = asyncio.run(main())
    finally:
        crm.reset()
    # within the 5 s a first run may wait, and well before the cut-off run's next tick
    assert starts[-1] - cut < 8, (cut, reloaded, starts)


def test_a_shorter_interval_after_a_reload_counts_no_overruns(crm: SandboxProcess, tmp_path: Path) -> None:
    """From every 30 s to every second: the check goes on at the new pace at once (its last
    run was long enough ago), and no run is counted as having outlasted its interval."""
    config = f"target: {{name: crm, base_url: {crm.url}}}\nprobes:\n  checks:\n"
    path = write_config(tmp_path, config + http_check("shrink", "30s", ", jitter: 0"))

    async def main() -> tuple[int, list[float]]:
        run = Running(Exporter(path, load_config(path), listen="127.0.0.1:0"))
        await run.exporter.start()
        try:
            await run.until(lambda: run.runs("shrink") >= 1)
            await asyncio.sleep(4)  # the last run is now several new intervals ago
            path.write_text(config + http_check("shrink", "1s", ", jitter: 0"))
            assert await run.exporter.reload() == []
            await run.until(lambda: run.runs("shrink") >= 4)
            return run.exporter.metrics.checks.series[("crm", "shrink")].overruns, run.starts["shrink"]
        finally:
            await run.exporter.stop()

    overruns, starts = asyncio.run(main())
    assert overruns == 0, starts
    assert all(gap >= 1 - EARLY for gap in (b - a for a, b in itertools.pairwise(starts))), starts


def test_a_check_without_jitter_stays_on_its_ticks(crm: SandboxProcess, tmp_path: Path) -> None:
    """``jitter: 0``: 20 checks every 100 ms, 100 runs each. The floor is measured from each
    actual start, and a wake-up a little late must not push the next start later and later
    (until the check falls off its ticks and counts overruns no run caused): how late a
    start is after its tick does not grow from the first 20 runs to the last 20."""
    names = [f"c{i}" for i in range(20)]
    checks = "".join(http_check(name, "100ms", ", jitter: 0", "90ms") for name in names)
    path = write_config(tmp_path, f"target: {{name: crm, base_url: {crm.url}}}\nprobes:\n"
                                  f"  concurrency: 20\n  checks:\n{checks}")

    async def main() -> tuple[float, dict[str, list[float]]]:
        run = Running(Exporter(path, load_config(path), listen="127.0.0.1:0"))
        await run.exporter.start()
        try:
            await run.until(lambda: min(run.runs(name) for name in names) >= 100, timeout=60)
            return run.exporter.epoch, run.starts
        finally:
            await run.exporter.stop()

    epoch, starts = asyncio.run(main())
    growth = {}
    for name in names:  # from the second run on: the first comes at random
        late = [(at - epoch - phase_of(name) * 0.1) % 0.1 for at in starts[name][1:]]
        growth[name] = round(statistics.median(late[-20:]) - statistics.median(late[:20]), 4)
    # left to drift, the lateness grows by 45-60 ms over these runs (measured); a busy
    # moment may add to single runs, not to the median over checks
    assert statistics.median(growth.values()) < 0.025, growth


BRUTEFORCE = """\
target:
  name: crm
  base_url: {url}
  credentials:
    canary: {{type: basic, username: canary@sandbox.example, password: "${{env:CANARY_PASSWORD}}"}}
probes:
  checks:
    - name: login_lockout
      kind: bruteforce
      credential: canary
      account: canary@sandbox.example
      login: {{operation: login, with: {{username: "{{{{ username }}}}", password: "{{{{ password }}}}"}}}}
      interval: 4s
      jitter: 0
      timeout: 3500ms
"""


def test_a_bruteforce_run_a_reload_cuts_off_still_counts(crm: SandboxProcess, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The attempts of a bruteforce run the reload cut off may have locked the canary: unlike
    any other check, it is not run again at once but waits its interval out from that start."""
    monkeypatch.setenv("CANARY_PASSWORD", "canary-password")
    path = write_config(tmp_path, BRUTEFORCE.format(url=crm.url))
    crm.admin.put("/admin/settings", json={"login_lockout_s": 1})

    async def main() -> tuple[float, float]:
        run = Running(Exporter(path, load_config(path), listen="127.0.0.1:0"))
        await run.exporter.start()
        try:
            await run.until(lambda: run.runs("login_lockout") >= 1)
            crm.faults(latency_ms=150)  # a dozen sign-ins: a run now takes about 2 s
            cut = run.scheduler.started["login_lockout"]
            await run.until(lambda: run.scheduler.started["login_lockout"] != cut, timeout=20)
            cut = run.scheduler.started["login_lockout"]
            assert await run.exporter.reload() == []
            assert run.scheduler.completed.get("login_lockout") != cut  # it was cut off
            await run.until(lambda: run.scheduler.started.get("login_lockout", cut) != cut, timeout=20)
            return cut, run.scheduler.started["login_lockout"]
        finally:
            await run.exporter.stop()

    try:
        cut, again = asyncio.run(main())
    finally:
        crm.reset()
        crm.admin.put("/admin/settings", json={"login_lockout_s": 60})
    assert again - cut >= 4 - EARLY, again - cut

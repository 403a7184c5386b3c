"""``crmpulse loadtest``: check the rails, print the plan, run Locust, return its verdict.

Locust runs as a child process with crmpulse's locustfile, so its own options keep
working: ``--workers N`` becomes ``--processes N`` (one master and N workers on this
machine), ``--master``/``--worker --master-host H`` run one side of a distributed run,
``--web`` opens Locust's web UI instead of running headless, and the report, CSV and
Locust's own HTML report land in ``--report-dir``.

Interruption. Locust runs in its own session, so a terminal's Ctrl-C (SIGINT to the
foreground process group) reaches this process only; it forwards SIGINT or SIGTERM to
Locust exactly as received, and Locust's run object stops the users, cleans up and
writes the report (verdict INTERRUPTED). The handlers are installed explicitly, so a
run started with SIGINT ignored (a background job of a non-interactive shell) still
stops on it. If this process dies, the kernel sends Locust SIGTERM (PR_SET_PDEATHSIG),
and the run ends the same way. If Locust itself dies without a report (kill -9), this
process sweeps the run's marker and writes the report.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from crmpulse import Client, LoadedConfig
from crmpulse.markers import family_marker, loadtest_targets, run_marker, sweep

from .capacity import CapacityFinder, capacity_problem, capacity_stages
from .cleanup import CleanupTotals, call_retrying, sweep_run
from .journeys import JOURNEYS
from .latency import PRECISION_NOTE
from .quota import plan_problems, read_quota
from .report import EXIT_CODES, write_reports
from .safety import check, make_plan
from .shapes import plan_stages, scale_stages

__all__ = ["IGNORED_LOCUST_OPTIONS", "LOCUSTFILE", "leftovers", "refused_options", "run_loadtest"]

LOCUSTFILE = Path(__file__).with_name("locustfile.py")

#: Locust options that a crmpulse run would silently ignore or that crmpulse sets itself,
#: and what to use instead.
IGNORED_LOCUST_OPTIONS = {
    ("-t", "--run-time"): "the shape sets the run's length: use --duration",
    ("-u", "--users"): "the shape sets the users: use --users MULTIPLIER",
    ("-r", "--spawn-rate"): "the shape sets spawn rates (loadtest.shape.spawn_rate)",
    ("-i", "--iterations"): "the shape sets the run's length: use --duration",
    ("-f", "--locustfile"): "crmpulse runs its own locustfile (`crmpulse locustfile`)",
    ("-H", "--host"): "the target's base_url is the host",
    ("--processes",): "use --workers N",
    ("--master", "--worker", "--master-host", "--master-port", "--expect-workers"):
        "use crmpulse loadtest --master/--worker/--master-host/--expect-workers",
    ("--headless", "--headful", "--autostart", "--autoquit"): "crmpulse runs headless unless --web",
    ("--csv", "--html", "--json", "--json-file"): "reports go to --report-dir",
}


def refused_options(extra: list[str]) -> list[str]:
    """One message per pass-through option that must not be given to Locust."""
    problems = []
    for arg in extra:
        name = arg.split("=", 1)[0]
        for names, instead in IGNORED_LOCUST_OPTIONS.items():
            if name in names:
                problems.append(f"crmpulse: refusing Locust option {name}: {instead}")
    return problems


def leftovers(loaded: LoadedConfig) -> dict[str, int]:
    """Records earlier load tests of this target left behind, by list operation (none sent if
    the profile has no sweep section)."""
    family = family_marker(loaded.target.name)
    found: dict[str, int] = {}
    with Client(loaded) as client:
        call = call_retrying(client, deadline=time.monotonic() + 20)
        variables = client.session.variables({})
        for target in loadtest_targets(loaded, family, lambda markers: True):
            result = sweep(call, target, variables, dry_run=True)
            if result.matched:
                found[target.label] = result.matched
    return found


def run_loadtest(loaded: LoadedConfig, config_path: str, dry_run: bool = False, workers: int = 0,
                 report_dir: str = "crmpulse-report", web: bool = False,
                 metrics_listen: str | None = None, extra: list[str] | None = None,
                 log: Path | None = None, out: TextIO | None = None, duration: float | None = None,
                 users: float = 1.0, rate: float = 1.0, master: bool = False, worker: bool = False,
                 master_host: str = "127.0.0.1", master_port: int = 5557,
                 expect_workers: int = 1, quiet: bool = False, find_capacity: bool = False,
                 capacity_step: float = 10.0, capacity_start: float = 10.0) -> int:
    """Run the load test; return its exit code (report.EXIT_CODES; 2 when refused).

    The verdict and every figure are in ``<report_dir>/report.json``. With ``log``, Locust's
    output (progress lines, gate results) goes to that file instead of the terminal, and
    ``out`` takes what this function prints itself (the plan).
    """
    out = out or sys.stdout
    extra = list(extra or [])
    received: list[tuple[str, float]] = []
    child: list[subprocess.Popen[bytes]] = []

    def forward(signum: int, _frame: Any) -> None:
        received.append((signal.Signals(signum).name, time.time()))
        if child:
            with contextlib.suppress(ProcessLookupError):
                child[0].send_signal(signum)

    # Installed first, and explicitly: a run started with SIGINT ignored still stops on it.
    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        capacity = (capacity_step, capacity_start) if find_capacity else None
        return _run(loaded, config_path, dry_run, workers, report_dir, web, metrics_listen, extra,
                    log, out, duration, users, rate, master, worker, master_host, master_port,
                    expect_workers, quiet, received, child, capacity)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _run(loaded: LoadedConfig, config_path: str, dry_run: bool, workers: int, report_dir: str,
         web: bool, metrics_listen: str | None, extra: list[str], log: Path | None, out: TextIO,
         duration: float | None, users: float, rate: float, master: bool, worker: bool,
         master_host: str, master_port: int, expect_workers: int, quiet: bool,
         received: list[tuple[str, float]], child: list[subprocess.Popen[bytes]],
         capacity: tuple[float, float] | None) -> int:
    refused = refused_options(extra)
    if capacity is not None:
        problem = capacity_problem(loaded)
        if problem:
            refused.append(f"crmpulse: {problem}")
    if rate != 1.0:
        base = plan_stages(loaded.config.loadtest.shape, loaded.path.parent)
        if not any(s.rps for s in base):
            refused.append("crmpulse: --rate multiplies a target rate, and this shape has none "
                           "(set loadtest.shape.rps or stages[].rps)")
    if refused:
        for problem in refused:
            print(problem, file=sys.stderr)
        return 2
    stages = scale_stages(plan_stages(loaded.config.loadtest.shape, loaded.path.parent),
                          duration, users, rate)
    if capacity is not None:
        stages = capacity_stages(loaded, capacity[0], CapacityFinder(1, 1).max_steps)
    plan = make_plan(loaded, stages)
    marker = run_marker(loaded.target.name)
    folder = Path(report_dir)
    if not worker:
        print(plan.describe(loaded.target.name, str(marker)), file=out, flush=True)
        if capacity is not None:
            print(f"  capacity search: from {capacity[1]:g} req/s, doubling, then bisecting, up to the "
                  f"{loaded.target.safety.max_rps:g} req/s cap; each rate held {capacity[0]:g}s "
                  "(the duration above is the longest it may take)", file=out, flush=True)
        problems = check(loaded, plan, list(JOURNEYS))
        if problems:
            for problem in problems:
                print(f"crmpulse: refusing to run: {problem}", file=sys.stderr)
            return 2
    if dry_run:
        print("Dry run: nothing was sent.", file=out)
        return 0
    if not worker and loaded.profile.quota:
        problems, notes = plan_problems(loaded, plan.requests, plan.duration, read_quota(loaded))
        for note in notes:
            print(f"  {note}", file=out, flush=True)
        if problems:
            for problem in problems:
                print(f"crmpulse: refusing to run: {problem}", file=sys.stderr)
            return 2
    if not worker:
        found = leftovers(loaded)
        if found:
            print(f"crmpulse: {sum(found.values())} record(s) left by earlier load tests of "
                  f"{loaded.target.name} ({', '.join(f'{k}: {v}' for k, v in found.items())}); "
                  f"delete them with: crmpulse sweep -c {config_path}", file=out, flush=True)
    if received:  # interrupted before Locust started: nothing was sent but the look for leftovers
        return _interrupted_early(loaded, marker.name, folder, received, out, worker)
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--crmpulse-config", config_path,
               "--host", loaded.target.base_url, "--loglevel", "WARNING",
               "--crmpulse-run-id", marker.name, "--crmpulse-report-dir", str(folder)]
    if duration:
        command += ["--crmpulse-duration", repr(duration)]
    if users != 1.0:
        command += ["--crmpulse-users", repr(users)]
    if rate != 1.0:
        command += ["--crmpulse-rate", repr(rate)]
    if metrics_listen is not None:
        command += ["--crmpulse-metrics-listen", metrics_listen]
    if quiet:
        command += ["--crmpulse-quiet"]
    if capacity is not None:
        command += ["--crmpulse-find-capacity", "--crmpulse-capacity-step", repr(capacity[0]),
                    "--crmpulse-capacity-start", repr(capacity[1])]
    if worker:
        command += ["--worker", "--master-host", master_host, "--master-port", str(master_port)]
    else:
        folder.mkdir(parents=True, exist_ok=True)
        if not web:
            command += ["--headless", "--only-summary", "--csv", str(folder / "locust"),
                        "--html", str(folder / "locust.html")]
        if master:
            command += ["--master", "--master-bind-port", str(master_port),
                        "--expect-workers", str(expect_workers)]
        elif workers > 0:
            command += ["--processes", str(workers)]
    command += extra
    # the test suite keeps Locust's monkey patching out of its own process; a real run needs it
    env = {k: v for k, v in os.environ.items() if k != "LOCUST_SKIP_MONKEY_PATCH"}
    role = "worker" if worker else "master" if master else "web UI" if web else "headless"
    print(f"Running Locust ({role}{f', {workers} workers' if workers and not master else ''}); "
          "Ctrl-C stops the run and cleans up.", file=out, flush=True)
    with open(log, "ab") if log else contextlib.nullcontext() as output:
        # Its own session: a terminal's Ctrl-C reaches this process, which forwards it once
        # Locust can take it. SIGINT starts ignored in Locust so that one arriving while it
        # imports is not a traceback; the run object installs its handlers in events.init,
        # and signals are forwarded again until Locust has ended.
        proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=output,
                                stderr=subprocess.STDOUT if output else None,
                                start_new_session=True, preexec_fn=_child_setup)
        child.append(proc)
        forwarded = 0
        while True:
            try:
                code = proc.wait(timeout=FORWARD_AGAIN)
                break
            except subprocess.TimeoutExpired:
                if received and forwarded < REFORWARDS:
                    forwarded += 1
                    with contextlib.suppress(ProcessLookupError):
                        proc.send_signal(signal.Signals[received[-1][0]])
    if worker:
        return code
    return _after(loaded, marker.name, folder, code, received, out)


#: While Locust has not ended after a signal, it is sent again this often (it may have
#: arrived before Locust's handlers were installed), at most REFORWARDS times.
FORWARD_AGAIN = 3.0
REFORWARDS = 20


def _child_setup() -> None:  # runs in the child between fork and exec
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: Locust stops when this process dies


def _interrupted_early(loaded: LoadedConfig, run_id: str, folder: Path,
                       received: list[tuple[str, float]], out: TextIO, worker: bool) -> int:
    print(f"crmpulse: received {received[0][0]} before Locust started: nothing was sent",
          file=out, flush=True)
    if not worker:
        data = fallback_report(loaded, run_id, f"received {received[0][0]} before the run started",
                               CleanupTotals())
        data["validity"]["reasons"] = ["the run never started: nothing was sent"]
        write_reports(data, folder)
    return EXIT_CODES["INTERRUPTED"]


def _after(loaded: LoadedConfig, run_id: str, folder: Path, code: int,
           received: list[tuple[str, float]], out: TextIO) -> int:
    """Make sure the run has a report: if Locust died without one, sweep and write it."""
    report = folder / "report.json"
    with contextlib.suppress(OSError, ValueError):
        if json.loads(report.read_text(encoding="utf-8")).get("run_id") == run_id:
            return code
    how = (f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited {code}")
    print(f"crmpulse: Locust {how} without a report; sweeping the run's records", file=out, flush=True)
    totals = CleanupTotals()
    sweep_run(loaded, run_marker(loaded.target.name, run_id), totals,
              deadline=time.monotonic() + 75)
    reason = f"Locust {how}" + (f" after {received[0][0]}" if received else "")
    data = fallback_report(loaded, run_id, reason, totals)
    paths = write_reports(data, folder)
    print(f"crmpulse: records deleted by the sweep {totals.swept}, left {totals.left}")
    print(f"crmpulse: verdict INTERRUPTED; report {paths['html']}", file=out, flush=True)
    return EXIT_CODES["INTERRUPTED"]


def fallback_report(loaded: LoadedConfig, run_id: str, reason: str, totals: CleanupTotals) -> dict[str, Any]:
    """The report of a run whose Locust process died: what is known, and that it is all."""
    return {
        "run_id": run_id, "target": loaded.target.name, "base_url": loaded.target.base_url,
        "profile": loaded.profile.name, "marker": str(run_marker(loaded.target.name, run_id)),
        "duration_s": 0.0, "shape": {"kind": loaded.config.loadtest.shape.kind, "peak_users": 0,
                                     "stages": []},
        "passed": False, "gates": [], "aborted": "", "interrupted": reason, "ended": "interrupted",
        "validity": {"valid": False, "reasons": [f"{reason}: its figures were lost"]},
        "events": [{"t": 0.0, "at": time.time(), "event": reason}], "user_errors": {},
        "summary": {"requests": 0, "failures": 0, "rps": 0.0, "error_ratio": 0.0, "p95_ms": 0.0},
        "operations": {}, "journeys": {}, "histograms": [], "throttled": {}, "errors": [],
        "cleanup": {"created": 0, "deleted": 0, "swept": totals.swept, "failed": 0,
                    "left": totals.left, "errors": totals.sweep_errors},
        "timeline": [], "percentiles": PRECISION_NOTE, "verdict": "INTERRUPTED",
        "exit_code": EXIT_CODES["INTERRUPTED"],
    }

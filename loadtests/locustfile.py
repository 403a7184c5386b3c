"""crmpulse's locustfile: assembles journeys, the load shape, gates, metrics and cleanup.

Run it through ``crmpulse loadtest --config crmpulse.yaml`` or with Locust directly:

    locust -f loadtests/locustfile.py --crmpulse-config crmpulse.yaml            # web UI
    locust -f loadtests/locustfile.py --crmpulse-config crmpulse.yaml --headless --html r.html

Everything here only assembles: journeys live in ``loadtests/journeys/``, the shape in
``shapes.py``, the gate in ``gate.py``, live metrics in ``metrics.py``, cleanup in
``cleanup.py``. The safety rails are checked on import, so plain ``locust`` is held
to them too.
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import gevent
from locust import events
from locust.runners import MasterRunner, WorkerRunner

try:
    import crmpulse  # noqa: F401
except ImportError:  # `locust -f loadtests/locustfile.py` in a clone that was never installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crmpulse import ConfigError
from crmpulse.loadtests.cleanup import CleanupTotals, clean_sessions, sweep_marker
from crmpulse.loadtests.context import context
from crmpulse.loadtests.gate import PERCENTILE_NOTE, evaluate, operation_entries, percentile
from crmpulse.loadtests.journeys import JOURNEYS
from crmpulse.loadtests.metrics import LoadTestCollector
from crmpulse.loadtests.report import verdict_of, write_reports
from crmpulse.loadtests.safety import check, make_plan
from crmpulse.loadtests.shapes import CRMShape, plan_stages


def _option(name: str) -> str | None:
    for i, arg in enumerate(sys.argv):
        if arg == name and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


try:
    CTX = context(_option("--crmpulse-config"))
except ConfigError as exc:
    for located in exc.problems:
        print(str(located), file=sys.stderr)
    print(f"crmpulse: {len(exc.problems)} problem(s) in the config", file=sys.stderr)
    sys.exit(2)

LOADED = CTX.loaded
LT = LOADED.config.loadtest
STAGES = plan_stages(LT.shape, LOADED.path.parent)
PLAN = make_plan(LOADED, STAGES)
PROBLEMS = check(LOADED, PLAN, list(JOURNEYS))
if PROBLEMS:
    for problem in PROBLEMS:
        print(f"crmpulse: refusing to run: {problem}", file=sys.stderr)
    sys.exit(2)

# -- users and shape: concrete classes Locust discovers in this module ---------------------
for _name, _weight in LT.journeys.items():
    if _weight > 0:
        _cls = type("".join(p.title() for p in _name.split("_")), (JOURNEYS[_name],),
                    {"weight": _weight, "abstract": False, "__module__": __name__})
        globals()[_cls.__name__] = _cls
        del _cls
del _name, _weight  # Locust collects every User class in this module's namespace
PeakShape = type("PeakShape", (CRMShape,), {"stages": STAGES, "abstract": False,
                                            "__module__": __name__})

# -- run state on the master (or the only process) -----------------------------------------
STATE: dict[str, Any] = {"users": 0, "target_rps": 0.0, "achieved_rps": 0.0, "running": 0,
                         "gates_passing": True, "timeline": [], "aborted": "", "started": 0.0}
TOTALS = CleanupTotals()
REPORT_DIR = Path(os.environ.get("CRMPULSE_REPORT_DIR", "crmpulse-report"))
PROGRESS = os.environ.get("CRMPULSE_PROGRESS", "1") != "0"


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--crmpulse-config", default=os.environ.get("CRMPULSE_CONFIG", "crmpulse.yaml"),
                        help="crmpulse config file (env CRMPULSE_CONFIG)")


@events.init.add_listener
def _init(environment: Any, **_: Any) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        runner.register_message("crmpulse_rate",
                                lambda msg, **kw: CTX.pacer.set_rate(float(msg.data["rate"])))
        return
    if isinstance(runner, MasterRunner):
        def on_cleanup(msg: Any, **kw: Any) -> None:
            TOTALS.add(msg.data)
        runner.register_message("crmpulse_cleanup", on_cleanup)
    _serve_metrics(environment)


def _serve_metrics(environment: Any) -> None:
    from prometheus_client import CollectorRegistry, start_http_server

    from crmpulse.serving import parse_listen

    listen = os.environ.get("CRMPULSE_METRICS_LISTEN", LT.metrics_listen)
    if listen in ("", "off"):
        return
    thresholds = [(name, q, getattr(g, q)) for name, g in
                  [("*", LT.gates.global_), *LT.gates.operations.items()]
                  for q in ("p50", "p95", "p99") if getattr(g, q) is not None]
    registry = CollectorRegistry()
    LoadTestCollector(environment, LOADED.target.name, CTX.run_id, thresholds,
                      lambda: STATE).register(registry)
    host, port = parse_listen(listen)
    try:
        start_http_server(port, addr=host, registry=registry)
        print(f"crmpulse: live metrics on http://{host}:{port}/metrics", flush=True)
    except OSError as exc:
        print(f"crmpulse: live metrics disabled, cannot listen on {listen}: {exc.strerror}",
              file=sys.stderr)


@events.test_start.add_listener
def _start(environment: Any, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    STATE.update(running=1, started=time.monotonic())
    gevent.spawn(_monitor, environment)


def _snapshot(environment: Any, history: dict[str, deque[dict[int, int]]], t: float,
              last: dict[str, float]) -> dict[str, Any]:
    operations, _, total = operation_entries(environment.stats)
    ops = {}
    for name, entry in operations.items():
        past = history.setdefault(name, deque(maxlen=5))
        current = dict(entry.response_times)
        oldest = past[0] if past else {}
        window = {k: v - oldest.get(k, 0) for k, v in current.items() if v - oldest.get(k, 0) > 0}
        past.append(current)
        ops[name] = {q: percentile(window, p) for q, p in (("p50", .5), ("p95", .95), ("p99", .99))}
    throttled = sum(e.occurrences for e in environment.stats.errors.values()
                    if str(e.error).startswith("throttled"))
    elapsed = max(1e-6, t - last.get("t", 0.0))
    point = {"t": round(t, 1), "users": environment.runner.user_count,
             "rps": (total.num_requests - last.get("requests", 0)) / elapsed,
             "failures_per_s": (total.num_failures - last.get("failures", 0)) / elapsed,
             "throttled_per_s": (throttled - last.get("throttled", 0)) / elapsed,
             "target_rps": STATE["target_rps"] if STATE.get("paced") else 0.0, "ops": ops}
    last.update(t=t, requests=total.num_requests, failures=total.num_failures, throttled=throttled)
    return point


def _monitor(environment: Any) -> None:
    runner = environment.runner
    shape = environment.shape_class
    cap = LOADED.target.safety.max_rps
    history: dict[str, deque[dict[int, int]]] = {}
    last: dict[str, float] = {}
    tick = 0
    while STATE["running"]:
        target = shape.target_rps() if shape is not None else None
        STATE["paced"] = target is not None
        rate = min(target if target is not None else cap, cap)
        STATE["target_rps"] = rate
        if isinstance(runner, MasterRunner):
            workers = max(1, runner.worker_count)
            runner.send_message("crmpulse_rate", {"rate": rate / workers})
        else:
            CTX.pacer.set_rate(rate)
        t = time.monotonic() - STATE["started"]
        STATE["users"] = runner.user_count
        if tick % 2 == 0:
            point = _snapshot(environment, history, t, last)
            STATE["achieved_rps"] = point["rps"]
            STATE["timeline"].append(point)
        if tick % 5 == 0 and tick:
            _judge_live(environment, t)
        tick += 1
        gevent.sleep(1.0)


def _judge_live(environment: Any, t: float) -> None:
    results = evaluate(LT.gates, environment.stats)
    STATE["gates_passing"] = all(r.passed for r in results)
    _, _, total = operation_entries(environment.stats)
    errors = total.fail_ratio * 100
    if PROGRESS:
        p95 = total.get_response_time_percentile(0.95) if total.num_requests else 0
        print(f"crmpulse [{t:5.0f}s] users {environment.runner.user_count:4d}  "
              f"{STATE['achieved_rps']:7.1f} req/s (target {STATE['target_rps']:g})  "
              f"errors {errors:5.1f}%  p95 {p95:.0f} ms  gates "
              f"{'ok' if STATE['gates_passing'] else 'BREACHED'}", flush=True)
    if total.num_requests >= 50 and errors > LT.abort_error_ratio:
        _abort(environment, f"error ratio {errors:.1f} % passed abort_error_ratio "
                            f"{LT.abort_error_ratio:g} %")
    elif LT.abort_on_breach and t > LT.grace and not STATE["gates_passing"]:
        failed = [r.describe() for r in results if not r.passed]
        _abort(environment, "gate breached after the grace period: " + "; ".join(failed[:3]))


def _abort(environment: Any, reason: str) -> None:
    if STATE["aborted"]:
        return
    STATE["aborted"] = reason
    print(f"crmpulse: aborting the run: {reason}", file=sys.stderr, flush=True)
    gevent.spawn(environment.runner.quit)


@events.test_stop.add_listener
def _stop(environment: Any, **_: Any) -> None:
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        return
    counts = clean_sessions(LOADED, CTX.sessions)
    CTX.sessions.clear()
    if isinstance(runner, WorkerRunner):
        runner.send_message("crmpulse_cleanup", counts)
    else:
        TOTALS.add(counts)


@events.quitting.add_listener
def _quitting(environment: Any, **_: Any) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner) or not STATE["started"]:
        return
    STATE["running"] = 0
    if isinstance(runner, MasterRunner):
        gevent.sleep(1.0)  # let the workers' cleanup reports arrive
    duration = time.monotonic() - STATE["started"]
    sweep_marker(LOADED, CTX.marker, TOTALS)
    results = evaluate(LT.gates, environment.stats)
    validity = _validity(runner)
    if TOTALS.left != 0:
        validity["reasons"].append(f"{TOTALS.left} marked record(s) could not be deleted")
    data = _report_data(environment, results, validity, duration)
    data["verdict"] = verdict_of(data)
    paths = write_reports(data, REPORT_DIR)
    for result in results:
        print(f"crmpulse gate: {result.describe()}")
    print(f"crmpulse: records created {TOTALS.created}, deleted {TOTALS.deleted + TOTALS.swept}, "
          f"left {TOTALS.left}")
    print(f"crmpulse: verdict {verdict_of(data)}; report {paths['html']} "
          f"(also {paths['json'].name}, {paths['markdown'].name})", flush=True)
    environment.process_exit_code = 0 if verdict_of(data) == "PASS" else 1


def _validity(runner: Any) -> dict[str, Any]:
    reasons = []
    if getattr(runner, "cpu_warning_emitted", False) or getattr(runner, "worker_cpu_warning_emitted", False):
        reasons.append("the load generator's CPU passed 90 %: its timings are not trustworthy "
                       "(use --workers or more machines)")
    paced = [p for p in STATE["timeline"] if p["target_rps"] and p["t"] > 5]
    if paced:
        achieved = sum(p["rps"] for p in paced) / len(paced)
        wanted = sum(p["target_rps"] for p in paced) / len(paced)
        if achieved < 0.9 * wanted:
            reasons.append(f"the generator reached {achieved:.1f} req/s of the {wanted:.1f} req/s "
                           "target: add users or workers")
    if STATE["aborted"]:
        reasons.append(f"aborted: {STATE['aborted']}")
    return {"valid": not reasons, "reasons": reasons}


def _report_data(environment: Any, results: list[Any], validity: dict[str, Any],
                 duration: float) -> dict[str, Any]:
    operations, journeys, total = operation_entries(environment.stats)

    def row(entry: Any) -> dict[str, Any]:
        return {"requests": entry.num_requests, "failures": entry.num_failures,
                "p50_ms": entry.get_response_time_percentile(0.5),
                "p95_ms": entry.get_response_time_percentile(0.95),
                "p99_ms": entry.get_response_time_percentile(0.99),
                "avg_ms": entry.avg_response_time, "rps": entry.total_rps}

    return {
        "run_id": CTX.run_id, "target": LOADED.target.name, "base_url": LOADED.target.base_url,
        "profile": LOADED.profile.name, "marker": CTX.marker, "duration_s": duration,
        "shape": {"kind": LT.shape.kind, "peak_users": PLAN.peak_users,
                  "stages": [vars(s) for s in STAGES]},
        "passed": all(r.passed for r in results) and validity["valid"],
        "gates": [r.as_dict() for r in results], "validity": validity,
        "aborted": STATE["aborted"],
        "summary": {"requests": total.num_requests, "failures": total.num_failures,
                    "rps": total.num_requests / max(duration, 1e-6),
                    "error_ratio": total.fail_ratio * 100,
                    "p95_ms": total.get_response_time_percentile(0.95)},
        "operations": {n: row(e) for n, e in operations.items()},
        "journeys": {n: row(e) for n, e in journeys.items()},
        "errors": [{"name": e.name, "error": str(e.error), "occurrences": e.occurrences}
                   for e in environment.stats.errors.values()],
        "cleanup": {"created": TOTALS.created, "deleted": TOTALS.deleted, "swept": TOTALS.swept,
                    "failed": TOTALS.failed, "left": TOTALS.left, "errors": TOTALS.sweep_errors},
        "timeline": STATE["timeline"], "percentiles": PERCENTILE_NOTE,
    }

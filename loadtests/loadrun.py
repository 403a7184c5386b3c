"""The run object: one per Locust process, created in ``events.init``, owning the run's state.

The locustfile declares crmpulse's options in ``events.init_command_line_parser`` and
builds a :class:`LoadRun` from ``environment.parsed_options`` in ``events.init``, so
``locust.conf``, ``LOCUST_CRMPULSE_CONFIG`` and ``--crmpulse-config`` all work, and
nothing happens when the locustfile is imported. The run object owns:

- the config, the plan (stages scaled by ``--crmpulse-duration/-users/-rate``) and the
  journeys' weights, which it gives the locustfile's generic journey classes;
- pacing (the rate cap, the open-model rate, divided among workers);
- the HDR latency book (:mod:`.latency`): workers send theirs with Locust's stats reports,
  the master adds them exactly;
- the monitor: progress, live metrics, gate judging, aborts, a lost worker;
- interruption: SIGINT and SIGTERM (through gevent, so a run started with SIGINT ignored
  still stops on it) stop the run gracefully: users stop, every process deletes what its
  users created, the master sweeps the run's marker, and the report says INTERRUPTED;
- cleanup and the report (verdicts in :mod:`.report`).

How a run ends, whatever ends it (the shape's last stage, an abort, a signal, a lost
worker): the users stop; each process cleans up and (a worker) sends its cleanup counts
and its last latencies to the master; the master waits for every worker's report (or a
deadline), sweeps the marker, then quits; the report is written when Locust quits.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import weakref
from collections import deque
from pathlib import Path
from typing import Any

import gevent
import gevent.event
from locust.runners import MasterRunner, WorkerRunner

from crmpulse import ConfigError, LoadedConfig, load_config
from crmpulse.client import Session
from crmpulse.markers import Marker, family_marker, run_marker
from crmpulse.quota import Quota, QuotaBook

from .capacity import CapacityFinder, Step, capacity_problem, capacity_stages
from .cleanup import CleanupTotals, clean_sessions, sweep_run
from .gate import GateResult, evaluate
from .journeys import JOURNEYS
from .latency import PRECISION_NOTE, LatencyBook
from .pacing import Pacer
from .quota import read_quota, spent, under_floor
from .report import EXIT_CODES, capacity_summary, quota_lines, verdict_of, write_reports
from .safety import Plan, check, make_plan
from .shapes import CRMShape, StagePlan, plan_stages, scale_stages

__all__ = ["CLEANUP_DEADLINE", "LoadRun", "add_options", "run_of"]

#: How long the end of a run may spend deleting records, so that a SIGTERM's stop fits in
#: Kubernetes' terminationGracePeriodSeconds (deploy/kubernetes/locust.yaml sets 120 s).
CLEANUP_DEADLINE = 75.0
#: How long the master waits for each worker's cleanup report.
WORKER_REPORT_DEADLINE = 90.0
TICK = 1.0

_RUNS: weakref.WeakKeyDictionary[Any, LoadRun] = weakref.WeakKeyDictionary()


def run_of(environment: Any) -> LoadRun:
    """The run object of a Locust environment (users find theirs here)."""
    return _RUNS[environment]


def add_options(parser: Any) -> None:
    """crmpulse's Locust options (also settable in locust.conf and as LOCUST_* variables)."""
    group = parser.add_argument_group("crmpulse")
    group.add_argument("--crmpulse-config", env_var="LOCUST_CRMPULSE_CONFIG",
                       default=os.environ.get("CRMPULSE_CONFIG", "crmpulse.yaml"),
                       help="crmpulse config file")
    group.add_argument("--crmpulse-run-id", env_var="LOCUST_CRMPULSE_RUN_ID", default="",
                       help="run id (default: a new one; workers take the master's)")
    group.add_argument("--crmpulse-report-dir", env_var="LOCUST_CRMPULSE_REPORT_DIR",
                       default=os.environ.get("CRMPULSE_REPORT_DIR", "crmpulse-report"),
                       help="where report.html/json and summary.md go")
    group.add_argument("--crmpulse-metrics-listen", env_var="LOCUST_CRMPULSE_METRICS_LISTEN",
                       default="", help="host:port of live metrics, or off (default: the config's)")
    group.add_argument("--crmpulse-duration", env_var="LOCUST_CRMPULSE_DURATION", type=float,
                       default=0.0, help="stretch the configured shape to this many seconds")
    group.add_argument("--crmpulse-users", env_var="LOCUST_CRMPULSE_USERS", type=float,
                       default=1.0, help="multiply every stage's users")
    group.add_argument("--crmpulse-rate", env_var="LOCUST_CRMPULSE_RATE", type=float,
                       default=1.0, help="multiply every stage's target rate")
    group.add_argument("--crmpulse-find-capacity", env_var="LOCUST_CRMPULSE_FIND_CAPACITY",
                       action="store_true", default=False,
                       help="search the highest request rate at which every gate holds")
    group.add_argument("--crmpulse-capacity-step", env_var="LOCUST_CRMPULSE_CAPACITY_STEP", type=float,
                       default=10.0, help="seconds each rate of the capacity search is held")
    group.add_argument("--crmpulse-capacity-start", env_var="LOCUST_CRMPULSE_CAPACITY_START",
                       type=float, default=10.0, help="the capacity search's first rate (req/s)")
    group.add_argument("--crmpulse-quiet", env_var="LOCUST_CRMPULSE_QUIET", action="store_true",
                       default=os.environ.get("CRMPULSE_PROGRESS") == "0", help="no progress lines")


def _fail(messages: list[str]) -> None:
    for message in messages:
        print(message, file=sys.stderr, flush=True)
    raise SystemExit(2)


class LoadRun:
    """The state and the lifecycle of one load test in one Locust process."""

    def __init__(self, environment: Any, user_classes: list[type[Any]], shape: CRMShape | None) -> None:
        options = environment.parsed_options
        self.environment = environment
        self.runner = environment.runner
        try:
            self.loaded: LoadedConfig = load_config(options.crmpulse_config)
        except ConfigError as exc:
            _fail([str(p) for p in exc.problems]
                  + [f"crmpulse: {len(exc.problems)} problem(s) in the config"])
        self.lt = self.loaded.config.loadtest
        try:
            stages = plan_stages(self.lt.shape, self.loaded.path.parent)
        except ConfigError as exc:
            _fail([str(p) for p in exc.problems])
        if options.crmpulse_rate != 1.0 and not any(s.rps for s in stages):
            _fail(["crmpulse: --rate multiplies a target rate, and this shape has none "
                   "(set loadtest.shape.rps or stages[].rps)"])
        self.stages: list[StagePlan] = scale_stages(stages, options.crmpulse_duration or None,
                                                    options.crmpulse_users, options.crmpulse_rate)
        self.finder: CapacityFinder | None = None
        self.think_time = self.lt.think_time
        if options.crmpulse_find_capacity:
            problem = capacity_problem(self.loaded)
            if problem:
                _fail([f"crmpulse: {problem}"])
            self.finder = CapacityFinder(options.crmpulse_capacity_start,
                                         self.loaded.target.safety.max_rps)
            self.step_seconds = max(2.0, options.crmpulse_capacity_step)
            self.stages = capacity_stages(self.loaded, self.step_seconds, self.finder.max_steps)
            self.think_time = 0.0  # the pacer sets the rate; users only wait for their turn
        self.plan: Plan = make_plan(self.loaded, self.stages)
        self.is_master = isinstance(self.runner, MasterRunner)
        self.is_worker = isinstance(self.runner, WorkerRunner)
        if not self.is_worker:
            problems = check(self.loaded, self.plan, list(JOURNEYS))
            if problems:
                _fail([f"crmpulse: refusing to run: {p}" for p in problems])
        self.run_id = options.crmpulse_run_id or run_marker(self.loaded.target.name).name
        if not self.is_worker:
            options.crmpulse_run_id = self.run_id  # shipped to the workers with the spawn message
        self.report_dir = Path(options.crmpulse_report_dir)
        self.progress = not options.crmpulse_quiet
        self.metrics_listen = options.crmpulse_metrics_listen or self.lt.metrics_listen
        self.pacer = Pacer(self.loaded.target.safety.max_rps)
        self.sessions: list[Session] = []
        # every user's responses report the CRM's API quotas here (crmpulse.quota)
        self.quota = QuotaBook(self.loaded.profile.quota)
        self.quota_before: list[Quota] = []
        self.quota_since = 0.0  # unix: readings from then on count for the floor
        self.book = LatencyBook()  # what this process's users recorded, not yet sent or merged
        self.pending = LatencyBook()  # merged since the monitor's last snapshot (the timeline)
        self.step_book = LatencyBook()  # merged since the capacity step began
        self.step_started = 0.0
        self.resting_until = 0.0
        self.verdict = ""
        self.merged = LatencyBook()  # master/local: the whole run
        self.throttled: dict[str, int] = {}
        self.throttled_total: dict[str, int] = {}
        self.totals = CleanupTotals()
        self.cleanup_started = False
        self.cleanup_done = gevent.event.Event()
        # the run's state, on the master (or the only process)
        self.state: dict[str, Any] = {"users": 0, "target_rps": 0.0, "achieved_rps": 0.0,
                                      "running": 0, "gates_passing": True, "paced": False}
        self.timeline: list[dict[str, Any]] = []
        self.windows: deque[LatencyBook] = deque(maxlen=5)
        self.started = 0.0  # monotonic
        self.started_at = 0.0  # unix
        self.stopping = ""  # why the run is ending: completed | aborted | interrupted
        self.aborted = ""
        self.interrupted = ""
        self.events_log: list[dict[str, Any]] = []
        self.repeats: set[str] = set()
        self.user_errors: dict[str, int] = {}
        self.workers_seen: set[str] = set()
        self.reports_from: set[str] = set()
        self.finished = False
        self.monitor: gevent.Greenlet | None = None
        _RUNS[environment] = self
        self._weights(user_classes)
        if shape is not None:
            shape.stages = self.stages
        self._listen()

    # -- set-up ------------------------------------------------------------------------

    @property
    def marker(self) -> Marker:
        return run_marker(self.loaded.target.name, self.run_id)

    @property
    def tags(self) -> list[str]:
        return [str(self.marker), str(family_marker(self.loaded.target.name))]

    def _weights(self, user_classes: list[type[Any]]) -> None:
        """Give each generic journey class its configured weight; drop those weighted 0."""
        keep = []
        for cls in user_classes:
            weight = self.lt.journeys.get(getattr(cls, "journey", ""), 0)
            cls.weight = weight
            if weight > 0:
                keep.append(cls)
        self.environment.user_classes[:] = keep

    def _listen(self) -> None:
        events = self.environment.events
        events.test_start.add_listener(self.on_test_start)
        events.test_stop.add_listener(self.on_test_stop)
        events.quitting.add_listener(self.on_quitting)
        events.user_error.add_listener(self.on_user_error)
        if self.is_worker:
            events.report_to_master.add_listener(self.on_report_to_master)
            self.runner.register_message("crmpulse_rate", self.on_rate)
            self.runner.register_message("crmpulse_stop", self.on_stop_message)
        else:
            if self.is_master:
                events.worker_report.add_listener(self.on_worker_report)
                self.runner.register_message("crmpulse_cleanup", self.on_worker_cleanup)
                self.runner.register_message("crmpulse_interrupted", self.on_worker_interrupted)
            self._serve_metrics()
        # gevent's signal handlers run in their own greenlet, replace an inherited SIG_IGN,
        # and never raise KeyboardInterrupt into whatever greenlet happens to run
        for signum in (signal.SIGINT, signal.SIGTERM):
            gevent.signal_handler(signum, self.on_signal, signum)

    def _serve_metrics(self) -> None:
        from prometheus_client import CollectorRegistry, start_http_server

        from crmpulse.serving import parse_listen

        from .metrics import LoadTestCollector

        listen = self.metrics_listen
        if listen in ("", "off"):
            return
        thresholds = [(name, q, getattr(g, q)) for name, g in
                      [("*", self.lt.gates.global_), *self.lt.gates.operations.items()]
                      for q in ("p50", "p95", "p99") if getattr(g, q) is not None]
        registry = CollectorRegistry()
        LoadTestCollector(self, thresholds).register(registry)
        try:
            host, port = parse_listen(listen)
            start_http_server(port, addr=host, registry=registry)
            print(f"crmpulse: live metrics on http://{host}:{port}/metrics", flush=True)
        except (OSError, ValueError) as exc:
            print(f"crmpulse: live metrics disabled, cannot listen on {listen}: "
                  f"{getattr(exc, 'strerror', None) or exc}", file=sys.stderr)

    # -- the run's clock and events ------------------------------------------------------

    def elapsed(self) -> float:
        return time.monotonic() - self.started if self.started else 0.0

    def note(self, what: str) -> None:
        """An event the report lists with its time (a signal, an abort, a lost worker)."""
        self.events_log.append({"t": round(self.elapsed(), 1), "at": time.time(), "event": what})

    def on_test_start(self, environment: Any, **_: Any) -> None:
        if self.is_worker:
            # the master's run id came with the spawn message: mark records alike
            self.run_id = environment.parsed_options.crmpulse_run_id or self.run_id
            return
        if self.quota:  # what is spent before the first user starts: the report's "before"
            read_quota(self.loaded, self.quota)
            self.quota_before = self.quota.readings()
        self.quota_since = time.time()
        self.started, self.started_at = time.monotonic(), time.time()
        self.state["running"] = 1
        self.monitor = gevent.spawn(self._monitor)

    # -- distributed: latencies and cleanup reports ------------------------------------

    def on_report_to_master(self, client_id: str, data: dict[str, Any]) -> None:
        data["crmpulse"] = {"book": self.book.take().encode(), "throttled": self._take_throttled(),
                            "quota": [vars(q) for q in self.quota.readings()]}

    def _take_throttled(self) -> dict[str, int]:
        taken, self.throttled = self.throttled, {}
        return taken

    def on_worker_report(self, client_id: str, data: dict[str, Any]) -> None:
        self.workers_seen.add(client_id)
        payload = data.get("crmpulse")
        if payload:
            self._merge(LatencyBook.decode(payload["book"]), payload.get("throttled", {}))
            for reading in payload.get("quota", []):
                self.quota.put(Quota(**reading))

    def _merge(self, book: LatencyBook, throttled: dict[str, int]) -> None:
        self.merged.add(book)
        self.pending.add(book)
        if self.finder is not None:
            self.step_book.add(book)
        for name, count in throttled.items():
            self.throttled_total[name] = self.throttled_total.get(name, 0) + int(count)

    def on_worker_cleanup(self, msg: Any, **_: Any) -> None:
        data = msg.data
        self.totals.add(data["counts"])
        self._merge(LatencyBook.decode(data["book"]), data.get("throttled", {}))
        for name, count in data.get("user_errors", {}).items():
            self.user_errors[name] = self.user_errors.get(name, 0) + int(count)
        self.reports_from.add(msg.node_id)

    def on_worker_interrupted(self, msg: Any, **_: Any) -> None:
        self.interrupt(f"worker {msg.node_id} received {msg.data['signal']}")

    def on_rate(self, msg: Any, **_: Any) -> None:
        self.pacer.set_rate(float(msg.data["rate"]))

    def on_user_error(self, user_instance: Any, exception: Exception, tb: Any, **_: Any) -> None:
        """A user that crashed counts as a failed iteration of its journey, never vanishes."""
        name = getattr(user_instance, "journey", "") or type(user_instance).__name__
        self.user_errors[name] = self.user_errors.get(name, 0) + 1
        self.book.record("journey", name, 0.0, False)
        self.environment.events.request.fire(
            request_type="journey", name=name, response_time=0, response_length=0,
            exception=Exception(f"user error: {exception.__class__.__name__}: {exception}"),
            context={})

    # -- the monitor ---------------------------------------------------------------------

    def _monitor(self) -> None:
        tick = 0
        shape = self.environment.shape_class
        while self.state["running"]:
            t = self.elapsed()
            self._pace(shape)
            self.state["users"] = self.runner.user_count
            floor = under_floor(self.loaded, self.quota, self.quota_since) if self.quota else None
            if floor and not self.stopping and not self.is_worker:
                self.abort(floor)
            if not self.is_master:
                self._merge(self.book.take(), self._take_throttled())
            if tick % 2 == 0:
                self._snapshot(t)
            if tick % 5 == 0 and tick:
                self._judge_live(t)
            if self.is_master:
                self._watch_workers()
            if self.finder is not None and not self.stopping:
                self._capacity_step(t)
            tick += 1
            gevent.sleep(TICK)

    def _pace(self, shape: CRMShape | None) -> None:
        from .shapes import stage_at

        cap = self.loaded.target.safety.max_rps
        stage = stage_at(self.stages, self.elapsed()) if shape is not None else None
        target = stage.rps if stage else None
        if self.finder is not None:
            resting = time.monotonic() < self.resting_until
            target = 1.0 if resting or self.finder.rate is None else self.finder.rate
        self.state["paced"] = target is not None
        rate = min(target if target is not None else cap, cap)
        self.state["target_rps"] = rate if target is not None else 0.0
        if self.is_master:
            workers = max(1, self.runner.worker_count)
            self.runner.send_message("crmpulse_rate", {"rate": rate / workers})
        else:
            self.pacer.set_rate(rate)

    def _snapshot(self, t: float) -> None:
        interval = self.pending.take()
        self.windows.append(interval)
        window = LatencyBook()
        for book in self.windows:
            window.add(book)
        last = self.timeline[-1]["t"] if self.timeline else 0.0
        span = max(1e-6, t - last)
        total = interval.total("operation")
        throttled = sum(self.throttled_total.values())
        previous_throttled = getattr(self, "_last_throttled", 0)
        self._last_throttled = throttled
        point = {"t": round(t, 1), "users": self.runner.user_count,
                 "rps": total.requests / span, "failures_per_s": total.failures / span,
                 "throttled_per_s": (throttled - previous_throttled) / span,
                 "target_rps": self.state["target_rps"],
                 "ops": {name: {q: entry.percentile_ms(p) for q, p in
                                (("p50", 50.0), ("p95", 95.0), ("p99", 99.0))}
                         for name, entry in window.of_kind("operation").items()}}
        self.state["achieved_rps"] = point["rps"]
        self.timeline.append(point)

    def _capacity_step(self, t: float) -> None:
        """Judge the capacity step that just ended, then start the next rate (or finish)."""
        finder = self.finder
        assert finder is not None
        now = time.monotonic()
        if now < self.resting_until:
            self.step_book.take()
            self.step_started = 0.0
            return
        if not self.step_started:  # a step begins: at its rate from now on, judged from now on
            self._pace(self.environment.shape_class)
            self.step_book.take()
            self.step_started = now
        duration = now - self.step_started
        if duration < self.step_seconds or finder.rate is None:
            return
        book = self.step_book.take()
        results = evaluate(self.lt.gates, book, duration)
        total = book.total("operation")
        step = Step(rate=finder.rate, achieved=total.requests / duration, requests=total.requests,
                    p50_ms=total.percentile_ms(50), p95_ms=total.percentile_ms(95),
                    p99_ms=total.percentile_ms(99), error_ratio=total.error_ratio,
                    held=all(r.passed for r in results),
                    broken=[r.describe() for r in results if not r.passed and r.metric != "min_rps"])
        step.held = not step.broken
        finder.steps.append(step)
        if self.progress:
            print(f"crmpulse capacity: step {len(finder.steps)}: {step.rate:g} req/s for "
                  f"{duration:.0f}s, reached {step.achieved:.1f}: "
                  + ("held" if step.held else "BROKE " + "; ".join(step.broken[:2])), flush=True)
        if finder.judge(step.held, step.achieved) is None:
            self.stop("completed")
            return
        if not step.held:  # let the CRM drain what queued up before the next rate
            self.resting_until = now + self.step_seconds
        self.step_started = 0.0
        self._capacity_step(t)  # the next step (or the rest) starts now, not at the next tick

    def _judge_live(self, t: float) -> None:
        results = evaluate(self.lt.gates, self.merged, max(t, 1e-6))
        self.state["gates_passing"] = all(r.passed for r in results)
        total = self.merged.total("operation")
        errors = total.error_ratio
        if self.progress and not self.stopping:
            target = (f"target {self.state['target_rps']:g}" if self.state["paced"] else "no target")
            print(f"crmpulse [{t:5.0f}s] users {self.runner.user_count:4d}  "
                  f"{self.state['achieved_rps']:7.1f} req/s ({target})  "
                  f"errors {errors:5.1f}%  p95 {total.percentile_ms(95):.0f} ms  gates "
                  f"{'ok' if self.state['gates_passing'] else 'BREACHED'}", flush=True)
        if self.stopping or self.finder is not None:  # the capacity search breaks gates on purpose
            return
        if total.requests >= 50 and errors > self.lt.abort_error_ratio:
            self.abort(f"error ratio {errors:.1f} % passed abort_error_ratio "
                       f"{self.lt.abort_error_ratio:g} %")
        elif self.lt.abort_on_breach and t > self.lt.grace and not self.state["gates_passing"]:
            failed = [r.describe() for r in results if not r.passed]
            self.abort("gate breached after the grace period: " + "; ".join(failed[:3]))

    def _watch_workers(self) -> None:
        from locust.runners import STATE_MISSING

        for client in list(self.runner.clients.values()):
            self.workers_seen.add(client.id)
            if client.state == STATE_MISSING and not self.stopping:
                self.interrupt(f"worker {client.id} stopped answering (lost)")

    # -- ending ------------------------------------------------------------------------

    def abort(self, reason: str) -> None:
        if self.stopping:
            return
        self.aborted = reason
        print(f"crmpulse: aborting the run: {reason}", file=sys.stderr, flush=True)
        self.note(f"aborted: {reason}")
        self.stop("aborted")

    def interrupt(self, reason: str) -> None:
        """Stop the run because something outside it said so; the verdict is INTERRUPTED."""
        if self.finished:
            return
        if self.stopping:
            if reason not in self.repeats:  # the launcher forwards a signal until Locust ends
                self.repeats.add(reason)
                self.note(f"{reason} (already stopping)")
                print(f"crmpulse: {reason}: already stopping, cleaning up "
                      "(kill -9 and `crmpulse sweep` if you cannot wait)", file=sys.stderr, flush=True)
            return
        self.interrupted = self.interrupted or reason
        self.note(f"interrupted: {reason}")
        print(f"crmpulse: interrupted ({reason}) at {self.elapsed():.0f}s: stopping users and "
              "cleaning up", file=sys.stderr, flush=True)
        if not self.started:  # nothing was started, so nothing was created
            self.stopping = "interrupted"
            self.finish()
            sys.stdout.flush()
            os._exit(EXIT_CODES["INTERRUPTED"])
        self.stop("interrupted")

    def on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self.is_worker:
            # a worker leaving changes the load: the master ends the run, and says why
            if not self.stopping:
                self.stopping = "interrupted"
                print(f"crmpulse: worker received {name}: cleaning up and leaving", file=sys.stderr,
                      flush=True)
                gevent.spawn(self._worker_leave, name)
            return
        self.interrupt(f"received {name}")

    def _worker_leave(self, name: str) -> None:
        self.runner.send_message("crmpulse_interrupted", {"signal": name})
        self.runner.stop()  # fires test_stop: clean up and report
        self.runner.quit()

    def stop(self, why: str) -> None:
        """End the run: Locust stops the users, every process cleans up, then Locust quits."""
        if self.stopping:
            return
        self.stopping = why
        shape = self.environment.shape_class
        if isinstance(shape, CRMShape) and self.runner.shape_greenlet is not None:
            # Locust's own path (the shape's end) stops and quits with one greenlet; killing
            # the shape from here would race Locust's main greenlet into quitting early
            shape.finish_now = True
            gevent.spawn_later(3 * TICK, self._quit_if_stuck)
        else:
            gevent.spawn(self._end)

    def _quit_if_stuck(self) -> None:
        """The shape's greenlet is blocked in a long ramp-up: stop from here instead."""
        from locust.runners import STATE_CLEANUP, STATE_STOPPED, STATE_STOPPING

        if self.runner.state not in (STATE_STOPPING, STATE_STOPPED, STATE_CLEANUP):
            self._end()

    def _end(self) -> None:
        if self.stopping == "completed" and not self.environment.parsed_options.headless:
            self.runner.stop()  # the web UI stays up; the report comes at quit
        else:
            self.runner.quit()

    def on_test_stop(self, environment: Any, **_: Any) -> None:
        """Users have stopped: clean up (a worker: and report), or collect the workers' reports.

        Locust may call this more than once as it stops and quits (from the shape's end,
        a "last worker quit", a signal): the first call does the work, later ones wait for
        it, so nothing quits while records are still being deleted.
        """
        if self.cleanup_started:
            self.cleanup_done.wait(CLEANUP_DEADLINE + WORKER_REPORT_DEADLINE)
            return
        self.cleanup_started = True
        self.stopping = self.stopping or "completed"  # the shape's last stage ended
        try:
            if self.is_master:
                self._collect_worker_reports()
            else:
                self._clean_up()
        finally:
            self.cleanup_done.set()

    def _collect_worker_reports(self) -> None:
        for client_id in list(self.runner.clients.keys()):  # a quit does not tell workers to stop
            self.runner.send_message("crmpulse_stop", None, client_id)
        deadline = time.monotonic() + WORKER_REPORT_DEADLINE
        while self._awaited_reports() and time.monotonic() < deadline:
            gevent.sleep(0.2)
        lost = self.workers_seen - self.reports_from
        if lost:
            self.note(f"no cleanup report from {len(lost)} worker(s): the sweep by marker "
                      "deletes their records; their last seconds of latencies are missing")

    def _awaited_reports(self) -> set[str]:
        from locust.runners import STATE_MISSING

        clients = self.runner.clients
        return {c for c in self.workers_seen - self.reports_from
                if c in clients and clients[c].state != STATE_MISSING}

    def on_stop_message(self, msg: Any, **_: Any) -> None:
        gevent.spawn(self.runner.stop)  # fires test_stop: clean up and report

    def _clean_up(self) -> None:
        try:
            counts = clean_sessions(self.loaded, self.sessions,
                                    deadline=time.monotonic() + CLEANUP_DEADLINE)
        except Exception as exc:  # report what is known: the master's sweep deletes the rest
            print(f"crmpulse: cleanup failed: {exc.__class__.__name__}: {exc}", file=sys.stderr)
            counts = {"created": sum(s.ledger.report.created for s in self.sessions),
                      "deleted": sum(s.ledger.report.deleted for s in self.sessions),
                      "failed": sum(len(s.ledger.pending) for s in self.sessions)}
        self.sessions.clear()
        if self.is_worker:
            self.runner.send_message("crmpulse_cleanup", {
                "counts": counts, "book": self.book.take().encode(),
                "throttled": self._take_throttled(), "user_errors": self.user_errors})
        else:
            self.totals.add(counts)

    def on_quitting(self, environment: Any, **_: Any) -> None:
        if self.is_worker or not self.started or self.finished:
            return
        self.cleanup_done.wait(CLEANUP_DEADLINE + WORKER_REPORT_DEADLINE)
        self.finish()
        environment.process_exit_code = EXIT_CODES[self.verdict]

    def finish(self) -> None:
        """Sweep the marker, judge, write the reports (once)."""
        if self.finished:
            return
        self.finished = True
        self.state["running"] = 0
        if self.monitor is not None:
            self.monitor.kill(block=False)
        duration = self.elapsed()
        if not self.is_master:
            self._merge(self.book.take(), self._take_throttled())
        if self.started:
            sweep_run(self.loaded, self.marker, self.totals, deadline=time.monotonic() + CLEANUP_DEADLINE)
        quota_after = read_quota(self.loaded, self.quota).readings() if (
            self.quota and self.started and not self.is_worker) else []
        results = evaluate(self.lt.gates, self.merged, max(duration, 1e-6))
        if self.finder is not None:  # the search breaks gates on purpose: its steps are the result
            results = []
        validity = self._validity()
        data = self._report_data(results, validity, duration)
        data["quota"] = spent(self.quota_before, quota_after, duration)
        if self.finder is not None:
            data["passed"] = validity["valid"] and self.finder.highest_held is not None
            data["capacity"] = self.finder.result()
        self.verdict = verdict_of(data)
        data["verdict"] = self.verdict
        data["exit_code"] = EXIT_CODES[self.verdict]
        paths = write_reports(data, self.report_dir)
        if self.finder is not None:
            print(f"crmpulse: {capacity_summary(data['capacity'])}")
        for result in results:
            print(f"crmpulse gate: {result.describe()}")
        if self.interrupted:
            print(f"crmpulse: interrupted: {self.interrupted}")
        for line in quota_lines(data):
            print(f"crmpulse: {line}")
        print(f"crmpulse: records created {self.totals.created}, deleted "
              f"{self.totals.deleted + self.totals.swept}, left {self.totals.left}")
        print(f"crmpulse: verdict {self.verdict}; report {paths['html']} "
              f"(also {paths['json'].name}, {paths['markdown'].name})", flush=True)

    def _validity(self) -> dict[str, Any]:
        reasons = []
        runner = self.runner
        if getattr(runner, "cpu_warning_emitted", False) or getattr(
                runner, "worker_cpu_warning_emitted", False):
            reasons.append("the load generator's CPU passed 90 %: its timings are not trustworthy "
                           "(use --workers or more machines)")
        paced = [p for p in self.timeline if p["target_rps"] and p["t"] > 5]
        if paced and self.stopping != "interrupted" and self.finder is None:
            achieved = sum(p["rps"] for p in paced) / len(paced)
            wanted = sum(p["target_rps"] for p in paced) / len(paced)
            if achieved < 0.9 * wanted:
                reasons.append(f"the generator reached {achieved:.1f} req/s of the {wanted:.1f} req/s "
                               "target: add users or workers")
        if self.finder is not None and self.finder.stopped.startswith("the generator"):
            reasons.append(self.finder.stopped)
        if self.user_errors:
            reasons.append("users failed at run time: " + ", ".join(
                f"{name} {count}" for name, count in sorted(self.user_errors.items())))
        if self.totals.left != 0:
            reasons.append(f"{self.totals.left if self.totals.left > 0 else 'some'} marked record(s) "
                           "could not be deleted: run `crmpulse sweep`")
        return {"valid": not reasons, "reasons": reasons}

    def _report_data(self, results: list[GateResult], validity: dict[str, Any],
                     duration: float) -> dict[str, Any]:
        def row(entry: Any) -> dict[str, Any]:
            return {"requests": entry.requests, "failures": entry.failures,
                    "p50_ms": entry.percentile_ms(50), "p95_ms": entry.percentile_ms(95),
                    "p99_ms": entry.percentile_ms(99), "max_ms": entry.percentile_ms(100),
                    "avg_ms": entry.mean_ms, "rps": entry.requests / max(duration, 1e-6)}

        total = self.merged.total("operation")
        errors = self.environment.stats.errors.values()
        return {
            "run_id": self.run_id, "target": self.loaded.target.name,
            "base_url": self.loaded.target.base_url, "profile": self.loaded.profile.name,
            "marker": str(self.marker), "duration_s": duration, "started_at": self.started_at,
            "planned_duration_s": self.plan.duration,
            "shape": {"kind": self.lt.shape.kind, "peak_users": self.plan.peak_users,
                      "stages": [vars(s) for s in self.stages]},
            "plan": {"requests": self.plan.requests, "records": self.plan.records},
            "passed": all(r.passed for r in results) and validity["valid"],
            "gates": [r.as_dict() for r in results], "validity": validity,
            "aborted": self.aborted, "interrupted": self.interrupted, "ended": self.stopping,
            "events": self.events_log, "user_errors": self.user_errors,
            "summary": {"requests": total.requests, "failures": total.failures,
                        "rps": total.requests / max(duration, 1e-6), "error_ratio": total.error_ratio,
                        "p95_ms": total.percentile_ms(95)},
            "operations": {n: row(e) for n, e in sorted(self.merged.of_kind("operation").items())},
            "journeys": {n: row(e) for n, e in sorted(self.merged.of_kind("journey").items())},
            "histograms": self.merged.encode(),
            "throttled": self.throttled_total,
            "errors": [{"name": e.name, "error": str(e.error), "occurrences": e.occurrences}
                       for e in errors],
            "cleanup": {"created": self.totals.created, "deleted": self.totals.deleted,
                        "swept": self.totals.swept, "failed": self.totals.failed,
                        "left": self.totals.left, "errors": self.totals.sweep_errors},
            "timeline": self.timeline, "percentiles": PRECISION_NOTE,
        }

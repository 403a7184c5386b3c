"""``crmpulse loadtest``: check the rails, print the plan, run Locust, return its verdict.

Locust runs as a child process with crmpulse's locustfile, so its own options keep
working: ``--workers N`` becomes ``--processes N`` (one master and N workers on this
machine), ``--web`` opens Locust's web UI instead of running headless, and the
report, CSV and Locust's own HTML report land in ``--report-dir``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TextIO

from crmpulse import LoadedConfig

from .context import marker_for_run
from .journeys import JOURNEYS
from .safety import check, make_plan
from .shapes import plan_stages

__all__ = ["LOCUSTFILE", "run_loadtest"]

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def run_loadtest(loaded: LoadedConfig, config_path: str, dry_run: bool = False, workers: int = 0,
                 report_dir: str = "crmpulse-report", web: bool = False,
                 metrics_listen: str | None = None, extra: list[str] | None = None,
                 log: Path | None = None, out: TextIO | None = None) -> int:
    """Run the load test; return its exit code (0 PASS, 1 a gate or validity failed, 2 refused).

    The verdict and every figure are in ``<report_dir>/report.json``. With ``log``, Locust's
    output (progress lines, gate results) goes to that file instead of the terminal, and
    ``out`` takes what this function prints itself (the plan).
    """
    out = out or sys.stdout
    stages = plan_stages(loaded.config.loadtest.shape, loaded.path.parent)
    plan = make_plan(loaded, stages)
    run_id = time.strftime("%Y%m%d-%H%M%S")
    print(plan.describe(loaded.target.name, marker_for_run(loaded.target.name, run_id)), file=out,
          flush=True)
    problems = check(loaded, plan, list(JOURNEYS))
    if problems:
        for problem in problems:
            print(f"crmpulse: refusing to run: {problem}", file=sys.stderr)
        return 2
    if dry_run:
        print("Dry run: nothing was sent.", file=out)
        return 0
    folder = Path(report_dir)
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--crmpulse-config", config_path,
               "--host", loaded.target.base_url, "--loglevel", "WARNING"]
    if not web:
        command += ["--headless", "--only-summary", "--csv", str(folder / "locust"),
                    "--html", str(folder / "locust.html")]
    if workers > 0:
        command += ["--processes", str(workers)]
    command += extra or []
    # the test suite keeps Locust's monkey patching out of its own process; a real run needs it
    env = {k: v for k, v in os.environ.items() if k != "LOCUST_SKIP_MONKEY_PATCH"}
    env |= {"CRMPULSE_RUN_ID": run_id, "CRMPULSE_REPORT_DIR": str(folder),
            "CRMPULSE_CONFIG": config_path}
    if metrics_listen is not None:
        env["CRMPULSE_METRICS_LISTEN"] = metrics_listen
    print(f"Running Locust ({'web UI' if web else 'headless'}"
          f"{f', {workers} workers' if workers else ''}); Ctrl-C stops the run and cleans up.",
          file=out, flush=True)
    with open(log, "ab") if log else contextlib.nullcontext() as output:
        proc = subprocess.Popen(command, env=env, stdout=output,
                                stderr=subprocess.STDOUT if output else None)
        previous = signal.signal(signal.SIGINT, lambda *_: proc.send_signal(signal.SIGINT))
        try:
            return proc.wait()
        finally:
            signal.signal(signal.SIGINT, previous)

"""Honest accounting: what cannot run is refused before the run, what fails at run time is
counted under its journey, the plan's estimate is close to what happens, the progress line
and live metrics say what is true, and command-line lengths and rates do what they say."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from crmpulse.profile import BUILTIN_DIR
from tests.helpers import SandboxProcess, reserve_port, write_config
from tests.integration.test_loadtest import ENV, config, marked, run


def profile_with(tmp_path: Path, old: str, new: str) -> Path:
    text = (BUILTIN_DIR / "sandbox.yaml").read_text()
    assert old in text
    path = tmp_path / "profile.yaml"
    path.write_text(text.replace(old, new))
    return path


def test_a_journey_whose_operation_needs_an_unknown_variable_is_refused_by_the_dry_run(
        crm: SandboxProcess, tmp_path: Path) -> None:
    profile = profile_with(tmp_path, 'currency: "{{ currency? }}"',
                           'currency: "{{ currency? }}"\n      close_date: "{{ closed_on }}"')
    body = config(crm.url) + f"profile: {profile}\n"
    before = crm.stats()["requests"]
    proc, _ = run(tmp_path, body, "--dry-run")
    assert proc.returncode == 2
    assert ("journey sales_rep: operation create_deal needs variable 'closed_on', which the journey "
            "does not pass") in proc.stderr
    proc, _ = run(tmp_path, body)  # and a real run refuses before sending anything
    assert proc.returncode == 2 and "closed_on" in proc.stderr
    assert crm.stats()["requests"] == before


def test_operations_a_journey_can_skip_may_be_missing_and_unknown_journeys_are_refused(
        crm: SandboxProcess, tmp_path: Path) -> None:
    profile = profile_with(tmp_path, "pipeline_report", "pipeline_report_v2")
    body = config(crm.url, extra="  journeys: {sales_rep: 1, manager_reporting: 1}") + f"profile: {profile}\n"
    proc, _ = run(tmp_path, body, "--dry-run")
    assert proc.returncode == 0, proc.stderr  # manager_reporting skips a missing pipeline_report
    profile = profile_with(tmp_path, "list_deals", "list_deals_v2")
    proc, _ = run(tmp_path, config(crm.url) + f"profile: {profile}\n", "--dry-run")
    assert proc.returncode == 0, proc.stderr  # and a missing list_deals
    body = config(crm.url, extra="  journeys: {sales_rep: 1, nightly_batch: 1}")
    proc, _ = run(tmp_path, body, "--dry-run")
    assert proc.returncode == 2 and 'unknown journey "nightly_batch"' in proc.stderr


def test_users_that_fail_at_run_time_are_errors_of_their_journey_and_the_run_is_invalid(
        crm: SandboxProcess, tmp_path: Path) -> None:
    # create_deal needs an account id, and the account list comes back empty: every sales
    # rep's start fails at run time, which no check before the run can know
    profile = profile_with(tmp_path, 'account_id: "{{ account_id? }}"\n      contact_id',
                           'account_id: "{{ account_id }}"\n      contact_id')
    profile.write_text(profile.read_text().replace('query: {per_page: "{{ page_size }}"}',
                                                   'query: {per_page: "{{ page_size }}", page: 100000}'))
    body = config(crm.url, shape="{kind: soak, users: 4, duration: 6s}",
                  gates="{global: {error_ratio: 100}}") + f"profile: {profile}\n"
    proc, data = run(tmp_path, body)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert data["verdict"] == "INVALID"
    assert data["user_errors"].get("sales_rep", 0) >= 1
    assert data["journeys"]["sales_rep"]["failures"] >= data["user_errors"]["sales_rep"]
    assert any(r.startswith("users failed at run time: sales_rep") for r in data["validity"]["reasons"])
    assert "failed at run time" in (tmp_path / "report" / "summary.md").read_text()
    assert not any("generator reached" in r for r in data["validity"]["reasons"])
    assert marked(crm) == 0


def test_the_dry_runs_record_estimate_is_within_a_quarter_of_what_the_run_creates(
        crm: SandboxProcess, tmp_path: Path) -> None:
    for shape in ("{kind: peak_season, users: 3, multiple: 2, duration: 12s}",
                  "{kind: step, users: 6, duration: 12s}"):
        proc, data = run(tmp_path, config(crm.url, shape=shape))
        assert proc.returncode == 0, proc.stdout[-2000:]
        planned = int(re.search(r"about ([\d,]+) records created", proc.stdout).group(1).replace(",", ""))
        created = data["cleanup"]["created"]
        assert planned == data["plan"]["records"]
        assert abs(planned - created) <= 0.25 * created, (shape, planned, created)


def test_duration_from_the_command_line_stretches_the_shape(crm: SandboxProcess, tmp_path: Path) -> None:
    body = config(crm.url, shape="{kind: soak, users: 2, duration: 10m}")
    start = time.monotonic()
    proc, data = run(tmp_path, body, "--duration", "4s", "--users", "1.5")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "duration 4s, peak 3 users" in proc.stdout
    assert data["shape"]["stages"][-1]["end"] == 4 and data["duration_s"] < 15
    assert time.monotonic() - start < 120


def test_locust_options_it_would_ignore_are_refused_not_ignored(crm: SandboxProcess, tmp_path: Path) -> None:
    before = crm.stats()["requests"]
    proc, _ = run(tmp_path, config(crm.url), "--", "--run-time", "5s")
    assert proc.returncode == 2
    assert "refusing Locust option --run-time: the shape sets the run's length: use --duration" in proc.stderr
    proc, _ = run(tmp_path, config(crm.url), "--rate", "2")
    assert proc.returncode == 2 and "--rate multiplies a target rate" in proc.stderr
    assert crm.stats()["requests"] == before


def test_the_live_metrics_pass_promtool_and_the_progress_line_says_no_target(
        crm: SandboxProcess, tmp_path: Path) -> None:
    port = reserve_port()
    body = config(crm.url, shape="{kind: soak, users: 2, duration: 8s}").replace(
        'metrics_listen: "off"', f'metrics_listen: "127.0.0.1:{port}"')
    path = write_config(tmp_path, body)
    proc = subprocess.Popen([sys.executable, "-m", "crmpulse", "loadtest", "-c", str(path),
                             "--report-dir", str(tmp_path / "report")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
    text = ""
    deadline = time.monotonic() + 60
    while "crmpulse_loadtest_request_duration_seconds_bucket" not in text:
        assert time.monotonic() < deadline and proc.poll() is None
        with contextlib.suppress(httpx.HTTPError):
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        time.sleep(0.2)
    checked = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    out, _ = proc.communicate(timeout=120)
    assert re.search(r"req/s \(no target\)", out), out[-2000:]
    assert "(target 300)" not in out

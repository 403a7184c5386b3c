"""The README's journey: a new user runs the demo and sees every operation succeed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_readme_gives_exactly_two_commands_and_they_are_the_ones_ci_runs() -> None:
    readme = (REPO / "README.md").read_text()
    quickstart = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(?:sh|bash|console)?\n(.*?)```", quickstart, re.S)
    commands = [line for block in blocks for line in block.splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    assert len(commands) == 2
    assert "crmpulse demo" in commands[0]
    assert commands[1].strip() in (REPO / ".ci" / "run").read_text()


def test_crmpulse_demo_quick_prints_the_operation_table_and_exits_0() -> None:
    run = subprocess.run([sys.executable, "-m", "crmpulse", "demo", "--quick", "--seed", "100"],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert run.returncode == 0, run.stdout + run.stderr
    table = run.stdout.split("Running each operation", 1)[1]
    rows = [line for line in table.splitlines() if re.match(r"^[a-z_]+\s+[a-z_]+\s+\d{3}\s", line)]
    assert len(rows) == 23  # the smoke steps: every sandbox operation, access ones included
    assert all(line.rstrip().split("  ")[-1].strip().startswith("ok") for line in rows)
    assert "records created 4, deleted 4, left 0" in run.stdout


def test_the_full_demo_tells_the_whole_story_and_the_page_arrives(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "crmpulse", "demo", "--dir", str(tmp_path / "demo")],
                         capture_output=True, text=True, timeout=400, cwd=REPO)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    out = run.stdout
    for step in ("== 1/4", "== 2/4", "== 3/4", "== 4/4"):
        assert step in out
    assert "23 of 23 steps succeeded" in out
    assert re.search(r"verdict PASS; report: \S+report\.html", out)
    assert re.search(r"records created [1-9]\d*, deleted [1-9]\d*, left 0", out)
    assert re.search(r"probe api_read failed [\d.]+ s after the outage began", out)
    assert re.search(r"page CrmAvailabilityBurnRateFast arrived at the webhook receiver", out)
    assert re.search(r"the page resolved [\d.]+ s after recovery", out)
    assert "Demo finished." in out


def test_help_lists_every_verb_with_a_description() -> None:
    run = subprocess.run([sys.executable, "-m", "crmpulse", "--help"], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0
    for verb in ("demo", "sandbox", "check-config", "init", "smoke", "call", "probe", "loadtest",
                 "alerts", "dashboards", "stack"):
        assert re.search(rf"^\s+{verb}\s+\S", run.stdout, re.M), verb


def test_no_verb_is_a_usage_error() -> None:
    run = subprocess.run([sys.executable, "-m", "crmpulse"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2

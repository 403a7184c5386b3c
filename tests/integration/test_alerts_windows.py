"""Any SLO window from 1 to 90 days, any objective from 99 % to 99.99 %: the generated rules hold.

For each window x objective, the generated promtool tests run (``group_eval_order`` set):
errors exactly at and just under the budget never fire any alert at any evaluation, a
full outage pages by the time ``--explain`` documents, 10x and 50x the budget page,
5x tickets and never pages, recovery resolves. This is the property rescaled factors
broke (a 99 %/7d SLO ticketed at half its budget).

The suite runs a covering set, not the whole grid: every window and every objective at least
once, the four corners (shortest and longest window at the loosest and tightest objective)
and the default 99.9 %/30d; 8 cases instead of 30, because each runs promtool over up to 90
days of minutes and the grid alone took a third of CI's time budget. The arithmetic for
every window from 1 to 90 days is in tests/unit/test_slo_windows.py. The whole grid:
``CRMPULSE_FULL=1 bash scripts/test tests/integration/test_alerts_windows.py``.
"""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from crmpulse import load_config
from crmpulse.alerts.generate import explain, generate
from crmpulse.alerts.slo import detection, slo_specs
from tests.helpers import PROMTOOL, write_config

WINDOWS = ("1d", "7d", "14d", "28d", "30d", "90d")
OBJECTIVES = ("99", "99.5", "99.9", "99.95", "99.99")
COVERING = [("1d", "99"), ("1d", "99.99"), ("7d", "99.5"), ("14d", "99.9"), ("28d", "99.95"),
            ("30d", "99.9"), ("90d", "99"), ("90d", "99.99")]
CASES = [(w, o) for w in WINDOWS for o in OBJECTIVES] if os.environ.get("CRMPULSE_FULL") else COVERING

CONFIG = """
target:
  name: sandbox
  base_url: http://127.0.0.1:8085
  auth: {{type: none}}
slos:
  - {{name: availability, kind: availability, objective: {objective}, window: {window}}}
probes:
  checks:
    - {{name: api_read, kind: http, operation: list_accounts, interval: 30s}}
"""


def test_the_covering_set_covers_every_window_and_objective() -> None:
    assert {w for w, _ in COVERING} == set(WINDOWS) and {o for _, o in COVERING} == set(OBJECTIVES)


@pytest.mark.parametrize(("window", "objective"), CASES)
def test_the_generated_tests_pass_for_every_window_and_objective(window: str, objective: str,
                                                                 tmp_path: Path) -> None:
    loaded = load_config(write_config(tmp_path, CONFIG.format(window=window, objective=objective)))
    written = generate(loaded, tmp_path / "out")
    tests = sorted(path for name, path in written.items() if name.startswith("tests/slo-"))
    assert [p.name for p in tests] == ["slo-availability-fast.test.yml", "slo-availability-slow.test.yml"]
    # a full outage pages by the documented time (plus one evaluation and 5 % for rate())
    spec = slo_specs(loaded)[0]
    documented = detection(spec, 1.0)["critical"]
    assert documented is not None
    fast = yaml.safe_load(tests[0].read_text())
    outage = next(t for t in fast["tests"] if "full outage pages" in t["name"])
    history = max(p.long for p in spec.pairs if p.severity == "critical") // 60
    paged = [int(e["eval_time"][:-1]) - history for e in outage["promql_expr_test"]]
    assert paged == [math.ceil(documented * 1.05) + 1]
    assert f"{objective} % over {window}" in explain(loaded)
    for doc in (fast, yaml.safe_load(tests[1].read_text())):
        assert doc["group_eval_order"] == ["crmpulse-slo-availability-sli", "crmpulse-slo-availability-alerts",
                                           "crmpulse-companions"][:len(doc["group_eval_order"])]
    slow = yaml.safe_load(tests[1].read_text())
    for words in ("(exactly at budget) never fire", "(under budget) never fire"):
        test = next(t for t in slow["tests"] if words in t["name"])
        assert {e["expr"].split("[")[0] for e in test["promql_expr_test"]} == {
            'absent_over_time(ALERTS{alertname="CrmAvailabilityBurnRateFast"}',
            'absent_over_time(ALERTS{alertname="CrmAvailabilityBurnRateSlow"}'}
    runs = [subprocess.Popen([*PROMTOOL, "test", "rules", str(path)], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env=os.environ) for path in tests]
    for path, run in zip(tests, runs, strict=True):
        out, _ = run.communicate(timeout=900)
        assert run.returncode == 0, f"{window} {objective} {path.name}:\n{out[-3000:]}"

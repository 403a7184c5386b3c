"""The worked examples in docs/examples are complete: a load test's dry run accepts each."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import write_config

EXAMPLES = sorted((Path(__file__).parents[2] / "docs" / "examples").glob("*.yaml"))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_a_worked_example_passes_check_config_and_the_load_test_dry_run(example: Path, tmp_path: Path) -> None:
    path = write_config(tmp_path, f"""
        target:
          name: example
          base_url: http://127.0.0.1:9
          auth: {{type: oauth2_client_credentials, client_id: crmpulse,
                 client_secret: "${{env:T_EXAMPLE_SECRET}}"}}
          safety: {{allow_loadtest: true, allowed_hosts: [127.0.0.1]}}
        profile: {example}
        loadtest:
          shape: {{kind: ramp, users: 2, duration: 10s, spawn_rate: 1}}
        """)
    env = {**os.environ, "T_EXAMPLE_SECRET": "not-used-in-a-dry-run"}
    for args in (["check-config", str(path)], ["loadtest", "--config", str(path), "--dry-run"]):
        run = subprocess.run([sys.executable, "-m", "crmpulse", *args], capture_output=True, text=True,
                             timeout=120, env=env)
        assert run.returncode == 0, f"{args[0]}: {run.stdout}{run.stderr}"
    assert "Dry run: nothing was sent." in run.stdout

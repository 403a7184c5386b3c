"""What access checks leave behind when the CRM fails mid-run, `crmpulse sweep` finds and deletes,
and neither the run's messages nor the sweep's report shows a synthetic personal value.

The leftovers are made the way a real incident makes them: reads and deletes of single
contacts fail (the sandbox answers 500 on /api/v1/contacts/<id>) while creates succeed, so
each run creates its record and cannot delete it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.helpers import SandboxProcess, write_config
from tests.integration.test_access_native import SECRETS, run_once

CONFIG = """
target:
  name: sandbox
  base_url: URL
  auth: {type: oauth2_client_credentials, client_id: crmpulse, client_secret: "${env:CRMPULSE_CLIENT_SECRET}"}
  credentials:
    tenant2: {type: oauth2_client_credentials, client_id: crmpulse-tenant2, client_secret: "${env:TENANT2_SECRET}"}
probes:
  checks:
    - name: tenant_isolation
      kind: isolation
      timeout: 5s
      observer: tenant2
      reads:
        get: {operation: get_contact, with: {id: "{{ id }}"}}
    - name: personal_data
      kind: exposure
      timeout: 5s
      create:
        operation: create_contact
        with: {first_name: Crmpulse, last_name: "Access {{ nonce }}", email: "{{ email }}", phone: "{{ phone }}", tags: ["{{ marker }}"]}
      reads: [{operation: get_contact, with: {id: "{{ id }}"}}]
      allow: [{detector: email, path: $.email}, {detector: phone, path: $.phone}]
"""


def contacts(crm: SandboxProcess) -> list[dict]:
    """Every contact the target's own credential sees, as the export lists them."""
    response = httpx.get(crm.url + "/api/v1/export/contacts", headers={"Authorization": f"Bearer {crm.token()}"})
    lines = response.text.splitlines()
    header = lines[0].split(",")
    return [dict(zip(header, line.split(","), strict=False)) for line in lines[1:]]


def test_sweep_deletes_what_failed_access_runs_left_and_reports_no_personal_value(
        crm: SandboxProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    path = write_config(tmp_path, CONFIG.replace("URL", crm.url))
    before = len(contacts(crm))
    crm.faults(error_rate=1.0, path_prefix="/api/v1/contacts/")
    try:
        results = run_once(path)
    finally:
        crm.reset()
    assert not any(ok for ok, _ in results.values()), results  # the CRM failed them, not a leak
    left = [c for c in contacts(crm) if "crmpulse-sandbox-access-" in str(c)]
    assert len(left) == 2, left  # one record per check, each under its check's marker
    # the export guards cells against formula injection with a leading quote
    values = {c[field].lstrip("'") for c in left for field in ("email", "phone", "last_name") if c[field]}
    assert len(values) == 5, left  # two emails, two names, the exposure check's phone

    swept = subprocess.run([sys.executable, "-m", "crmpulse", "sweep", "-c", str(path)],
                           capture_output=True, text=True, timeout=60, env={**os.environ, **SECRETS})
    report = swept.stdout + swept.stderr
    assert swept.returncode == 0, report
    assert "access check tenant_isolation" in report and "access check personal_data" in report
    assert [c for c in contacts(crm) if "crmpulse-sandbox-access-" in str(c)] == []
    assert len(contacts(crm)) == before  # nothing but the leftovers was deleted
    outputs = {"sweep report": report, **{f"run {name}": message for name, (_, message) in results.items()}}
    assert sorted(f"{where}: {value}" for where, text in outputs.items() for value in values
                  if value in text) == []

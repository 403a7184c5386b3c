"""Access probes against the sandbox's Salesforce dialect with the Salesforce preset, through the
real exporter: every kind holds with no fault, and each fault knob the dialect has fails
exactly its probe in the first run that starts after it.

The profile is the preset plus the two operations docs/probes.md's Salesforce example adds:
``read_contact`` (a Contact with every field the user may see: the preset's reads name their
fields, and an exposure check must see what a client asking for everything gets) and
``revoke_token`` (Salesforce's /services/oauth2/revoke).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from crmpulse.profile import BUILTIN_DIR
from tests.helpers import ExporterProcess, SandboxProcess, sample, write_config
from tests.integration.test_access_native import docs_block, healthy_before, holds, run_once, wait_runs

SECRETS = {"SALESFORCE_CLIENT_SECRET": "sandbox-secret", "TENANT2_SECRET": "tenant2-secret",
           "RESTRICTED_SECRET": "restricted-secret", "REVOKED_TOKEN": "sandbox-integration-token",
           "CANARY_PASSWORD": "canary-password"}

#: what docs/probes.md's Salesforce example adds to the preset (tested there to match)
EXTRA_OPERATIONS = """\
read_contact:
  description: A Contact with every field this user may see (no field list).
  path: /services/data/{{ api_version }}/sobjects/Contact/{{ id }}
  expect: [200]
revoke_token:
  description: Revoke an OAuth token (RFC 7009); holding it is the proof.
  method: POST
  path: /services/oauth2/revoke
  auth: false
  form: {token: "{{ token }}"}
  expect: [200]
"""

CONFIG = """
target:
  name: salesforce
  base_url: {url}
  auth: {{type: oauth2_client_credentials, client_id: crmpulse, client_secret: "${{env:SALESFORCE_CLIENT_SECRET}}"}}
  credentials:
    tenant2: {{type: oauth2_client_credentials, client_id: crmpulse-tenant2, client_secret: "${{env:TENANT2_SECRET}}"}}
    restricted: {{type: oauth2_client_credentials, client_id: crmpulse-restricted, client_secret: "${{env:RESTRICTED_SECRET}}"}}
    integration: {{type: oauth2_client_credentials, client_id: crmpulse, client_secret: "${{env:SALESFORCE_CLIENT_SECRET}}"}}
    rotated_out: {{type: bearer, token: "${{env:REVOKED_TOKEN}}"}}
    canary: {{type: oauth2_password, client_id: crmpulse, client_secret: "${{env:SALESFORCE_CLIENT_SECRET}}", username: canary@sandbox.example, password: "${{env:CANARY_PASSWORD}}"}}
profile: {profile}
probes:
  checks:
    - name: org_isolation
      kind: isolation
      interval: 2s
      timeout: 1800ms
      observer: tenant2
      reads:
        get: {{operation: get_contact, with: {{id: "{{{{ id }}}}"}}}}
        list: {{operation: list_contacts}}
        search: {{operation: search_contacts, with: {{email: "{{{{ email }}}}"}}, within: 1500ms}}
    - name: restricted_user
      kind: role_scope
      interval: 2s
      timeout: 1800ms
      credential: restricted
      own: {{operation: create_contact, with: {{last_name: "Own {{{{ nonce }}}}", email: "{{{{ email }}}}", tags: ["{{{{ marker }}}}"]}}}}
      denied:
        - {{operation: get_contact, with: {{id: "{{{{ other_id }}}}"}}, status: [404]}}
        - {{operation: delete_contact, with: {{id: "{{{{ own_id }}}}"}}, status: [403]}}
      hidden_fields:
        - {{operation: read_contact, with: {{id: "{{{{ own_id }}}}"}}, fields: [Phone]}}
    - name: personal_data
      kind: exposure
      interval: 2s
      timeout: 1800ms
      reads: [{{operation: read_contact, with: {{id: "{{{{ id }}}}"}}}}]
      allow: [{{detector: email, path: $.Email}}]
    - name: token_revocation
      kind: revocation
      interval: 2s
      timeout: 1800ms
      credential: integration
      revoke: {{operation: revoke_token, with: {{token: "{{{{ token }}}}"}}}}
      read: {{operation: limits}}
      within: 1s
    - {{name: revoked_token, kind: revocation, interval: 2s, timeout: 1800ms, credential: rotated_out, read: {{operation: limits}}}}
    # the next run's control sign-in needs the last run's lock (1 s here) to be over: a run
    # ends within its timeout, its lock 1 s later, and the next run starts no sooner than an
    # interval less its jitter (5.4 s) after the last one started, the second run and runs
    # after a reload too (scheduler.py); 3.5 s + 1 s leaves 0.9 s when CI slows runs down
    - {{name: login_lockout, kind: bruteforce, interval: 6s, timeout: 3500ms, credential: canary, account: canary@sandbox.example}}
"""

SERIES = [("org_isolation", "isolation", p) for p in ("get", "list", "search")] + [
    ("restricted_user", "role_scope", p) for p in ("get_contact", "delete_contact", "fields:read_contact")] + [
    ("personal_data", "exposure", "read_contact"), ("token_revocation", "revocation", "revoke"),
    ("revoked_token", "revocation", "revoked"), ("login_lockout", "bruteforce", "login")]

KNOBS: list[tuple[dict, set[tuple[str, str]]]] = [
    ({"unfiltered_reads": ["get"]}, {("org_isolation", "get"), ("restricted_user", "get_contact")}),
    ({"unfiltered_reads": ["list"]}, {("org_isolation", "list")}),
    ({"unfiltered_reads": ["search"]}, {("org_isolation", "search")}),
    ({"widen_role": True}, {("restricted_user", p) for p in ("get_contact", "delete_contact",
                                                               "fields:read_contact")}),
    ({"expose_sensitive": True}, {("personal_data", "read_contact")}),
    ({"exposed_fields": ["iban"]}, {("personal_data", "read_contact")}),
    ({"ignore_revocation": True}, {("token_revocation", "revoke"), ("revoked_token", "revoked")}),
    ({"login_throttle": False}, {("login_lockout", "login")}),
]


def access_profile(folder: Path) -> Path:
    profile = yaml.safe_load((BUILTIN_DIR / "salesforce.yaml").read_text())
    profile["operations"].update(yaml.safe_load(EXTRA_OPERATIONS))
    path = folder / "salesforce-access.yaml"
    path.write_text(yaml.safe_dump(profile, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def sf() -> Iterator[SandboxProcess]:
    crm = SandboxProcess("--dialect", "salesforce", "--seed", "60", "--sync-lag", "200ms")
    # the canary stays locked for a second, so every 2 s run finds it unlocked and locks it again
    crm.admin.put("/admin/settings", json={"login_lockout_s": 1})
    crm.admin.post("/admin/access/revoke", json={"token": "sandbox-integration-token"})
    yield crm
    crm.stop()


def test_the_salesforce_example_in_the_docs_adds_these_operations_and_holds(
        sf: SandboxProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs before the module's exporter starts: both would try the same canary's password."""
    assert yaml.safe_load(docs_block("salesforce-access operations")) == yaml.safe_load(EXTRA_OPERATIONS)
    for name, value in {**SECRETS, "OTHER_ORG_SECRET": "tenant2-secret"}.items():
        monkeypatch.setenv(name, value)
    access_profile(tmp_path)
    text = docs_block("access-salesforce").replace("http://127.0.0.1:8085", sf.url)
    results = run_once(write_config(tmp_path, text))
    assert len(results) == 5 and all(ok for ok, _ in results.values()), results
    sf.faults(widen_role=True)
    try:
        results = run_once(write_config(tmp_path, text))
    finally:
        sf.admin.delete("/admin/faults")
    assert not results["restricted_user"][0]
    assert results["restricted_user"][1].startswith(
        "role scope broken: read_contact shows credential restricted hidden field(s) at $.Phone")
    # both runs locked the canary (for 1 s): the module's exporter, started next, signs in as
    # the canary at once, and Salesforce answers a locked account as a wrong password (400)
    deadline = time.monotonic() + 30
    while sf.admin.get("/admin/access").json()["logins"]["locked"]:
        assert time.monotonic() < deadline, "the canary stayed locked"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def running(sf: SandboxProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExporterProcess]:
    folder = tmp_path_factory.mktemp("sf-access")
    path = write_config(folder, CONFIG.format(url=sf.url, profile=access_profile(folder)))
    exporter = ExporterProcess(path, env=SECRETS)
    try:
        yield exporter
    finally:
        exporter.stop()


def test_with_no_fault_every_access_check_holds_against_the_salesforce_dialect(running: ExporterProcess,
                                                                             sf: SandboxProcess) -> None:
    checks = {check for check, _, _ in SERIES}
    for _ in range(2):
        metrics = wait_runs(running, checks, 1, target="salesforce")
        for check, kind, path in SERIES:
            assert holds(metrics, check, kind, path, target="salesforce") == 1, (
                check, path, running.output.text()[-2000:])
        for check in checks:
            assert sample(metrics, "crmpulse_check_success", target="salesforce", check=check) == 1, (
                check, running.output.text()[-3000:])


@pytest.mark.parametrize(("knob", "broken"), KNOBS, ids=[
    "unfiltered_get", "unfiltered_list", "unfiltered_search", "widen_role", "expose_sensitive",
    "exposed_fields", "ignore_revocation", "login_throttle_off"])
def test_each_fault_knob_fails_its_probe_in_the_salesforce_dialect(
        running: ExporterProcess, sf: SandboxProcess, knob: dict, broken: set[tuple[str, str]]) -> None:
    sf.admin.delete("/admin/faults")
    affected = {check for check, _ in broken}
    healthy_before(running, broken, SERIES, target="salesforce")
    sf.faults(**knob)
    try:
        metrics = wait_runs(running, {check for check, _, _ in SERIES}, 2, target="salesforce")
        for check, kind, path in SERIES:
            expected = 0 if (check, path) in broken else 1
            assert holds(metrics, check, kind, path, target="salesforce") == expected, (knob, check, path)
    finally:
        sf.admin.delete("/admin/faults")
    metrics = wait_runs(running, affected, 2, target="salesforce")
    for check, kind, path in SERIES:
        if check in affected:
            assert holds(metrics, check, kind, path, target="salesforce") == 1, ("after recovery", check)


def test_a_reload_does_not_run_the_bruteforce_check_into_its_own_lockout(running: ExporterProcess,
                                                                        sf: SandboxProcess) -> None:
    """A reload used to run every check again within seconds: the canary, locked by the run
    just before, had its own password refused (Salesforce answers a lock as a wrong password)
    and the check failed for nothing. A kept check now goes on an interval after its last run."""
    sf.admin.put("/admin/settings", json={"login_lockout_s": 2.5})  # still over by the next tick
    try:
        wait_runs(running, {"login_lockout"}, 1, target="salesforce")  # it has just locked the canary
        assert httpx.post(running.url + "/-/reload", timeout=10).status_code == 200
        results = []
        for _ in range(2):
            metrics = wait_runs(running, {"login_lockout"}, 1, target="salesforce")
            results.append(sample(metrics, "crmpulse_check_success", target="salesforce",
                                  check="login_lockout"))
    finally:
        sf.admin.put("/admin/settings", json={"login_lockout_s": 1})
    assert results == [1, 1], running.output.text()[-2000:]

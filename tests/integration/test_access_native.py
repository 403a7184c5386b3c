"""Access probes against the native sandbox, through the real exporter: every kind holds with no
fault, and each fault knob fails exactly the probe that exists for it within one interval.

"Within one interval" is counted in runs, not seconds: the run in progress when the knob
turns may have read the CRM before it; the next run, which starts after it, must fail.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import ExporterProcess, SandboxProcess, sample, write_config

#: The sandbox's public test values (docs/sandbox.md), passed as a config passes secrets.
SECRETS = {"CRMPULSE_CLIENT_SECRET": "sandbox-secret", "TENANT2_SECRET": "tenant2-secret",
           "RESTRICTED_SECRET": "restricted-secret", "REVOKED_TOKEN": "sandbox-integration-token",
           "CANARY_PASSWORD": "canary-password"}

CREDENTIALS = """\
  credentials:
    tenant2: {type: oauth2_client_credentials, client_id: crmpulse-tenant2, client_secret: "${env:TENANT2_SECRET}"}
    restricted: {type: oauth2_client_credentials, client_id: crmpulse-restricted, client_secret: "${env:RESTRICTED_SECRET}"}
    integration: {type: oauth2_client_credentials, client_id: crmpulse, client_secret: "${env:CRMPULSE_CLIENT_SECRET}"}
    rotated_out: {type: bearer, token: "${env:REVOKED_TOKEN}"}
    canary: {type: basic, username: canary@sandbox.example, password: "${env:CANARY_PASSWORD}"}
"""

CHECKS = """\
    - name: tenant_isolation
      kind: isolation
      observer: tenant2
      reads:
        get: {operation: get_contact, with: {id: "{{ id }}"}}
        list: {operation: list_contacts, with: {tag: "{{ marker }}"}}
        search: {operation: search_contacts, with: {email: "{{ email }}"}, within: 1500ms}
        export: {operation: export_contacts}
    - name: restricted_role
      kind: role_scope
      credential: restricted
      own: {operation: create_contact, with: {first_name: Crmpulse, last_name: "Own {{ nonce }}", email: "{{ email }}", tags: ["{{ marker }}"]}}
      denied:
        - {operation: get_contact, with: {id: "{{ other_id }}"}, status: [404]}
        - {operation: delete_contact, with: {id: "{{ own_id }}"}, status: [403]}
        - {operation: register_webhook, with: {url: "http://127.0.0.1:9/crmpulse-access"}, status: [403]}
      hidden_fields:
        - {operation: get_contact, with: {id: "{{ own_id }}"}, fields: [phone]}
    - name: personal_data
      kind: exposure
      create:
        operation: create_contact
        with: {first_name: Crmpulse, last_name: "Access {{ nonce }}", email: "{{ email }}", phone: "{{ phone }}", tags: ["{{ marker }}"]}
      reads:
        - {operation: get_contact, with: {id: "{{ id }}"}}
        - {operation: list_contacts, with: {tag: "{{ marker }}"}}
        - {operation: export_contacts}
      allow:
        - {detector: email, path: $..email}
        - {detector: phone, path: $..phone}
        - {detector: email, path: csv.email}
        - {detector: phone, path: csv.phone}
    - name: token_revocation
      kind: revocation
      credential: integration
      revoke: {operation: revoke_token, with: {token: "{{ token }}"}}
      read: {operation: whoami}
      within: 1s
    - name: revoked_token
      kind: revocation
      credential: rotated_out
      read: {operation: whoami}
    - name: login_lockout
      kind: bruteforce
      credential: canary
      account: canary@sandbox.example
      login: {operation: login, with: {username: "{{ username }}", password: "{{ password }}"}}
"""


def access_config(url: str, interval: str = "2s", timeout: str = "1800ms") -> str:
    checks = CHECKS.replace("      kind: ", f"      interval: {interval}\n      timeout: {timeout}\n      kind: ")
    return f"""
target:
  name: sandbox
  base_url: {url}
  auth: {{type: oauth2_client_credentials, client_id: crmpulse, client_secret: "${{env:CRMPULSE_CLIENT_SECRET}}"}}
{CREDENTIALS}
probes:
  checks:
{checks}"""


#: (check, kind, path) of every access series the config above creates
SERIES = [("tenant_isolation", "isolation", p) for p in ("get", "list", "search", "export")] + [
    ("restricted_role", "role_scope", p) for p in ("get_contact", "delete_contact",
                                                   "register_webhook", "fields:get_contact")] + [
    ("personal_data", "exposure", p) for p in ("get_contact", "list_contacts", "export_contacts")] + [
    ("token_revocation", "revocation", "revoke"), ("revoked_token", "revocation", "revoked"),
    ("login_lockout", "bruteforce", "login")]

#: knob -> the series it must break (every other series keeps holding)
KNOBS: list[tuple[dict, set[tuple[str, str]]]] = [
    ({"unfiltered_reads": ["get"]}, {("tenant_isolation", "get"), ("restricted_role", "get_contact")}),
    ({"unfiltered_reads": ["list"]}, {("tenant_isolation", "list")}),
    ({"unfiltered_reads": ["search"]}, {("tenant_isolation", "search")}),
    ({"unfiltered_reads": ["export"]}, {("tenant_isolation", "export")}),
    ({"widen_role": True}, {("restricted_role", p) for p in ("get_contact", "delete_contact",
                                                               "register_webhook", "fields:get_contact")}),
    ({"expose_sensitive": True}, {("personal_data", p) for p in ("get_contact", "list_contacts",
                                                                 "export_contacts")}),
    ({"exposed_fields": ["card_number"]}, {("personal_data", p) for p in ("get_contact", "list_contacts",
                                                                          "export_contacts")}),
    ({"ignore_revocation": True}, {("token_revocation", "revoke"), ("revoked_token", "revoked")}),
    ({"login_throttle": False}, {("login_lockout", "login")}),
]

ADMIN = {"X-Admin-Token": "sandbox-admin"}


def marked_contacts(url: str) -> int:
    """Contacts carrying any access check's marker, as the target's own credential sees them."""
    token = httpx.post(url + "/oauth/token", data={"grant_type": "client_credentials", "client_id": "crmpulse",
                                                    "client_secret": "sandbox-secret"}).json()["access_token"]
    rows = httpx.get(url + "/api/v1/export/contacts", headers={"Authorization": f"Bearer {token}"}).text
    return sum(1 for line in rows.splitlines() if "crmpulse-sandbox-access-" in line)


def runs(metrics: dict, check: str, target: str = "sandbox") -> float:
    return sample(metrics, "crmpulse_check_runs_total", target=target, check=check) or 0.0


def holds(metrics: dict, check: str, kind: str, path: str, target: str = "sandbox") -> float | None:
    return sample(metrics, "crmpulse_access_holds", target=target, check=check, kind=kind, path=path)


def wait_runs(exporter: ExporterProcess, checks: set[str], more: int, timeout: float = 90,
              target: str = "sandbox") -> dict:
    """Wait until every check in ``checks`` has completed ``more`` runs from now; the metrics then."""
    start = exporter.metrics()
    wanted = {check: runs(start, check, target) + more for check in checks}
    deadline = time.monotonic() + timeout
    while True:
        metrics = exporter.metrics()
        if all(runs(metrics, check, target) >= n for check, n in wanted.items()):
            return metrics
        assert time.monotonic() < deadline, f"runs did not complete: {wanted}"
        time.sleep(0.1)


def healthy_before(exporter: ExporterProcess, broken: set[tuple[str, str]], series: list[tuple[str, str, str]],
                   target: str = "sandbox") -> None:
    """Every series a knob is to break holds now; one more run when one does not (yet).

    The previous test's recovery already waited for healthy runs, so this usually costs
    nothing, where waiting for a fresh run would cost an interval per knob.
    """
    def healthy(metrics: dict) -> bool:
        return all(holds(metrics, check, kind, path, target) == 1
                   for check, kind, path in series if (check, path) in broken)
    if not healthy(exporter.metrics()):
        assert healthy(wait_runs(exporter, {check for check, _ in broken}, 1, target=target)), broken


DOCS = Path(__file__).resolve().parents[2] / "docs" / "probes.md"


def docs_block(title: str) -> str:
    """The yaml block of docs/probes.md whose first line is ``# <title>``."""
    import re

    return next(b for b in re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), re.S)
                if b.startswith(f"# {title}"))


def run_once(path: Path) -> dict[str, tuple[bool, str]]:
    """Every check of a config, run once as the exporter runs it: name -> (success, message)."""
    import asyncio

    from crmpulse import load_config
    from crmpulse.probes.checks import TargetRunner

    loaded = load_config(path)

    async def go() -> dict[str, tuple[bool, str]]:
        runner = TargetRunner(loaded)
        try:
            return {c.name: ((o := await runner.run(c)).success, o.message)
                    for c in loaded.config.probes.checks}
        finally:
            await runner.aclose()
    return asyncio.run(go())


def test_the_sandbox_example_in_the_docs_holds_against_the_sandbox(
        crm: SandboxProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    text = docs_block("access-sandbox").replace("http://127.0.0.1:8085", crm.url)
    results = run_once(write_config(tmp_path, text))
    assert set(results) == {"tenant_isolation", "restricted_role", "personal_data", "token_revocation",
                            "login_lockout"}
    assert all(ok for ok, _ in results.values()), results
    crm.faults(unfiltered_reads=["search"])
    results = run_once(write_config(tmp_path, text))
    assert results["tenant_isolation"] == (False, "isolation broken: search (search_contacts) shows "
                                           "credential tenant2 a record of target.auth")
    assert marked_contacts(crm.url) == 0


def test_the_key_reference_in_the_docs_loads_and_names_every_key_of_every_access_kind(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    from crmpulse import load_config
    from crmpulse.config import ACCESS_CHECKS

    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    text = docs_block("access-reference")
    loaded = load_config(write_config(tmp_path, text))  # a bad key or name would exit 2 here
    assert [c.kind for c in loaded.config.probes.checks] == [
        "isolation", "role_scope", "exposure", "revocation", "bruteforce"]
    written = {c["kind"]: set(c) for c in yaml.safe_load(text)["probes"]["checks"]}
    for model in ACCESS_CHECKS:
        keys = {field.alias or name for name, field in model.model_fields.items()}
        kind = model.model_fields["kind"].annotation.__args__[0]  # type: ignore[union-attr]
        assert written[kind] <= keys, (kind, written[kind] - keys)
        common = {"interval", "timeout", "jitter", "any_target", "phase_series"}  # shown once, on the first check
        assert keys - common <= written[kind], (kind, "keys the docs do not show:",
                                                keys - common - written[kind])


@pytest.fixture(scope="module")
def running(sandbox: SandboxProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExporterProcess]:
    sandbox.admin.post("/admin/reset")
    # the config names this token as revoked: an admin revoked it (docs/sandbox.md)
    sandbox.admin.post("/admin/access/revoke", json={"token": "sandbox-integration-token"})
    path = write_config(tmp_path_factory.mktemp("access"), access_config(sandbox.url))
    exporter = ExporterProcess(path, env=SECRETS)
    try:
        yield exporter
    finally:
        exporter.stop()
        sandbox.admin.post("/admin/reset")


def test_with_no_fault_every_access_check_holds_run_after_run(running: ExporterProcess,
                                                             sandbox: SandboxProcess) -> None:
    sandbox.admin.delete("/admin/faults")
    checks = {check for check, _, _ in SERIES}
    for _ in range(3):
        metrics = wait_runs(running, checks, 1)
        for check, kind, path in SERIES:
            assert holds(metrics, check, kind, path) == 1, (check, path, running.output.text()[-2000:])
        for check in checks:
            assert sample(metrics, "crmpulse_check_success", target="sandbox", check=check) == 1, check
    exposed = [v for (name, _), v in metrics.items() if name == "crmpulse_access_exposed_values"]
    assert len(exposed) == 15 and set(exposed) == {0.0}  # 3 reads x 5 detectors, all at zero
    revocation = sample(metrics, "crmpulse_access_revocation_seconds", target="sandbox",
                        check="token_revocation")
    assert revocation is not None and 0 <= revocation < 2
    attempts = sample(metrics, "crmpulse_access_login_attempts", target="sandbox", check="login_lockout")
    assert attempts is not None and 0 <= attempts <= 10


@pytest.mark.parametrize(("knob", "broken"), KNOBS, ids=[
    "unfiltered_get", "unfiltered_list", "unfiltered_search", "unfiltered_export", "widen_role",
    "expose_sensitive", "exposed_fields", "ignore_revocation", "login_throttle_off"])
def test_each_fault_knob_fails_its_probe_within_one_interval_and_only_its_probe(
        running: ExporterProcess, sandbox: SandboxProcess, knob: dict, broken: set[tuple[str, str]]) -> None:
    sandbox.admin.delete("/admin/faults")
    affected = {check for check, _ in broken}
    healthy_before(running, broken, SERIES)  # the knob, not a leftover, breaks it
    sandbox.faults(**knob)
    try:
        metrics = wait_runs(running, {check for check, _, _ in SERIES}, 2)
        for check, kind, path in SERIES:
            expected = 0 if (check, path) in broken else 1
            assert holds(metrics, check, kind, path) == expected, (knob, check, path)
        for check in affected:
            assert sample(metrics, "crmpulse_check_success", target="sandbox", check=check) == 0
            assert sample(metrics, "crmpulse_check_failures_total", target="sandbox", check=check,
                          reason="protection") >= 1
        if "exposed_fields" in knob:  # only the exposed field's detector counts
            for path in ("get_contact", "list_contacts", "export_contacts"):
                assert sample(metrics, "crmpulse_access_exposed_values", target="sandbox",
                              check="personal_data", path=path, detector="card_number") == 1
                assert sample(metrics, "crmpulse_access_exposed_values", target="sandbox",
                              check="personal_data", path=path, detector="iban") == 0
    finally:
        sandbox.admin.delete("/admin/faults")
    metrics = wait_runs(running, affected, 2)
    for check, kind, path in SERIES:
        if check in affected:
            assert holds(metrics, check, kind, path) == 1, ("after recovery", check, path)


def test_nothing_the_probes_created_is_left_behind(running: ExporterProcess, sandbox: SandboxProcess,
                                                   tmp_path: Path) -> None:
    sandbox.admin.delete("/admin/faults")
    wait_runs(running, {"tenant_isolation", "restricted_role", "personal_data"}, 2)
    running.stop()  # the last runs finish and clean up before the exporter exits
    assert marked_contacts(sandbox.url) == 0
    hooks = httpx.get(sandbox.url + "/api/v1/webhooks", headers={
        "Authorization": f"Bearer {sandbox.token()}"}).json()["data"]
    assert hooks == []  # the webhook a widened role was allowed to make is gone too

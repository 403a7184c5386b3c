"""``crmpulse demo``: start the sandbox, exercise every profile operation once, print a table.

The steps are the profile's ``smoke`` list, so the demo shows the operations engine,
the auth provider (an OAuth2 token fetched and reused), pagination, the search
index's real sync lag (the search step retries until the new contact appears) and
cleanup (every record the demo created is deleted, even if a step fails).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from .._yamlfile import SecretValue
from ..client import Client, StepResult
from ..config import Config, LoadedConfig, OAuth2ClientCredentials, Target
from ..profile import load_profile

__all__ = ["format_table", "run_demo", "run_smoke", "sandbox_config"]


def sandbox_config(base_url: str) -> LoadedConfig:
    """A config for a local sandbox, using its public, documented test client."""
    target = Target(
        name="sandbox", base_url=base_url,
        auth=OAuth2ClientCredentials(
            type="oauth2_client_credentials", client_id="crmpulse",
            client_secret=SecretValue("sandbox-secret", "<sandbox test secret>")))
    return LoadedConfig(Config(target=target), load_profile("sandbox"), Path("<demo>"))


def format_table(results: list[StepResult]) -> str:
    rows = [("step", "operation", "status", "latency", "result")]
    for item in results:
        r = item.result
        latency = f"{r.elapsed * 1000:.1f} ms" if r.elapsed else "-"
        outcome = "ok" if r.ok else f"FAILED: {r.message or r.reason}"
        if r.ok and item.attempts > 1:
            outcome += f" (visible after {item.waited:.2f} s, {item.attempts} tries)"
        if r.ok and r.pages > 1:
            outcome += f" ({r.pages} pages, {len(r.items or [])} records)"
        rows.append((item.step, r.operation, str(r.status or "-"), latency, outcome))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths, strict=True)) + "  " + row[4]
             for row in rows]
    lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n".join(lines)


def run_smoke(loaded: LoadedConfig, out: TextIO | None = None) -> int:
    """Run the profile's smoke steps against the config's target, then clean up.

    Returns 0 when every step succeeded and nothing created was left behind. ``out`` is
    sys.stdout as it is when called (the CLI's redacting stream), not as it was at import.
    """
    out = out or sys.stdout
    with Client(loaded) as crm:
        print(f"Running each operation of profile '{loaded.profile.name}' once against "
              f"{loaded.target.base_url} ...\n", file=out)
        results = crm.steps(loaded.profile.smoke, {})
        report = crm.cleanup()
    print(format_table(results), file=out)
    failed = [r for r in results if not r.result.ok]
    ran = {r.result.operation for r in results}
    skipped = sorted(set(loaded.profile.operations) - ran)
    print(f"\n{len(results) - len(failed)} of {len(loaded.profile.smoke)} steps succeeded; "
          f"records created {report.created}, deleted {report.deleted}, left {report.left}.",
          file=out)
    if skipped:
        print(f"Operations not run: {', '.join(skipped)}", file=out)
    complete = not failed and len(results) == len(loaded.profile.smoke)
    return 0 if complete and report.left == 0 else 1


def run_demo(seed: int = 200, sync_lag_ms: float = 500.0, out: TextIO | None = None) -> int:
    """Start a sandbox on a free loopback port and run the smoke steps against it."""
    out = out or sys.stdout
    from ..sandbox import SandboxServer, SandboxSettings

    print(f"Starting the sandbox CRM ({seed} seeded contacts, search sync lag "
          f"{sync_lag_ms:g} ms) ...", file=out)
    with SandboxServer(SandboxSettings(seed=seed, sync_lag_ms=sync_lag_ms)) as sandbox:
        print(f"Sandbox CRM listening on {sandbox.url}", file=out)
        return run_smoke(sandbox_config(sandbox.url), out)


def run_full_demo(out: TextIO | None = None, folder: Path | None = None) -> int:
    """The whole story on the sandbox, in a few minutes (README, Quick start).

    1. the sandbox CRM, and every profile operation once;
    2. probes running against it;
    3. a short peak-season load test, its verdict and report;
    4. an outage injected: the probes react, and with Prometheus and Alertmanager
       installed, the page arrives at the webhook receiver and resolves after recovery.
    """
    out = out or sys.stdout
    import json
    import os
    import socket
    import tempfile
    import time

    import httpx

    from crmpulse.loadtests.run import run_loadtest

    from ..config import load_config
    from .stack import Stack, StackPorts, binaries

    def port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    folder = folder or Path(tempfile.mkdtemp(prefix="crmpulse-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    ports = StackPorts(*(port() for _ in range(6)))
    alerting = all(binaries().values())
    stack = Stack(folder, ports)
    admin = {"X-Admin-Token": "sandbox-admin"}
    sandbox = f"http://127.0.0.1:{ports.sandbox}"
    metrics = f"http://127.0.0.1:{ports.probe}/metrics"
    say("== 1/4 The sandbox CRM" + (", the probe exporter, Prometheus and Alertmanager" if alerting
                                    else " and the probe exporter"))
    if not alerting:
        say("   (install prometheus and prometheus-alertmanager to also see the page arrive)")
    shape = {"kind": "peak_season", "users": 4, "multiple": 2, "duration": "24s"}
    if stack.up(check_interval=2.0, scrape_interval=1.0, eval_interval=1.0, compress=60,
                out=out, alerting=alerting, loadtest_shape=shape) != 0:
        return 1
    failures = []
    try:
        loaded = load_config(folder / "crmpulse.yaml")
        if run_smoke(loaded, out) != 0:
            failures.append("a profile operation failed")

        say(f"\n== 2/4 Probes: checks every 2 s; metrics on {metrics}, "
            f"landing page http://127.0.0.1:{ports.probe}/")
        checks = [c.name for c in loaded.config.probes.checks]
        deadline = time.monotonic() + 30
        states: dict[str, float] = {}
        while time.monotonic() < deadline:
            states = _samples(metrics, "crmpulse_check_success")
            if all(states.get(c) == 1 for c in checks):
                break
            time.sleep(0.5)
        for name in checks:
            say(f"   {name:20} {'ok' if states.get(name) == 1 else 'FAILING'}")
        lags = _samples(metrics, "crmpulse_sync_lag_seconds", "pair")
        for pair, lag in lags.items():
            say(f"   sync pair {pair:10} lag {lag:.2f} s")

        say("\n== 3/4 A short peak-season load test (24 s, up to 8 users)")
        report = folder / "report"
        code = run_loadtest(loaded, str(folder / "crmpulse.yaml"), report_dir=str(report),
                            log=folder / "loadtest.log", out=open(os.devnull, "w"))  # noqa: SIM115
        result = report / "report.json"
        if code not in (0, 1) or not result.exists():
            failures.append(f"the load test did not complete (exit {code}; see {folder / 'loadtest.log'})")
        else:
            data = json.loads(result.read_text())
            summary, cleanup = data["summary"], data["cleanup"]
            say(f"   {summary['requests']} requests at {summary['rps']:.1f} req/s, errors "
                f"{summary['error_ratio']:.1f} %, p95 {summary['p95_ms']:.0f} ms")
            for gate in data["gates"]:
                say(f"   gate {gate['scope']} {gate['name']} {gate['metric']}: "
                    f"{'ok' if gate['passed'] else 'FAILED'} ({gate['actual']:.3g} against "
                    f"{gate['threshold']:g})")
            say(f"   records created {cleanup['created']}, deleted "
                f"{cleanup['deleted'] + cleanup['swept']}, left {cleanup['left']}")
            say(f"   verdict {data['verdict']}; report: {report / 'report.html'} "
                "(and summary.md for a change ticket)")
            if data["verdict"] != "PASS":
                failures.append(f"the load test's verdict is {data['verdict']}")

        say("\n== 4/4 An outage: the sandbox stops answering")
        httpx.put(sandbox + "/admin/faults", json={"outage": True}, headers=admin)
        start = time.monotonic()
        while time.monotonic() - start < 30 and _samples(metrics, "crmpulse_check_success").get(
                checks[0]) != 0:
            time.sleep(0.2)
        reasons = _samples(metrics, "crmpulse_check_failures_total", "reason",
                           {"check": checks[0]})
        say(f"   probe {checks[0]} failed {time.monotonic() - start:.1f} s after the outage began "
            f"(failures by reason: {', '.join(f'{k}={v:g}' for k, v in reasons.items() if v)})")
        if alerting:
            page = _wait_notification(folder, "CrmAvailabilityBurnRateFast", "firing", 60)
            if page is None:
                failures.append("no page arrived")
            else:
                say(f"   page CrmAvailabilityBurnRateFast arrived at the webhook receiver "
                    f"{time.monotonic() - start:.1f} s after the outage began "
                    f"(alert windows compressed 60x for the demo)")
        httpx.delete(sandbox + "/admin/faults", headers=admin)
        recovered = time.monotonic()
        say("   the sandbox is back")
        if alerting:
            resolved = _wait_notification(folder, "CrmAvailabilityBurnRateFast", "resolved", 120)
            if resolved is None:
                failures.append("the page did not resolve")
            else:
                say(f"   the page resolved {time.monotonic() - recovered:.1f} s after recovery")
            say(f"   Prometheus: http://127.0.0.1:{ports.prometheus}/alerts, notifications: "
                f"{folder / 'alerts.jsonl'}")
    finally:
        say("\nStopping the demo's processes ...")
        stack.down(out=open(os.devnull, "w"))  # noqa: SIM115
    if failures:
        say("Demo finished with problems: " + "; ".join(failures))
        return 1
    say(f"Demo finished. Reports and logs stay in {folder}. Next: crmpulse init, then docs/.")
    return 0


def _samples(url: str, name: str, label: str = "check",
             match: dict[str, str] | None = None) -> dict[str, float]:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = httpx.get(url, timeout=5).text
    except httpx.HTTPError:
        return {}
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in (match or {}).items()):
                out[sample.labels.get(label, "")] = sample.value
    return out


def _wait_notification(folder: Path, alertname: str, status: str, timeout: float) -> float | None:
    import json
    import time

    start = time.monotonic()
    path = folder / "alerts.jsonl"
    while time.monotonic() - start < timeout:
        if path.exists():
            for line in path.read_text().splitlines():
                for alert in json.loads(line)["alerts"]:
                    if alert["labels"].get("alertname") == alertname and alert["status"] == status:
                        return time.monotonic() - start
        time.sleep(0.5)
    return None

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

from ._yamlfile import SecretValue
from .client import Client, StepResult
from .config import Config, LoadedConfig, OAuth2ClientCredentials, Target
from .profile import load_profile

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


def run_smoke(loaded: LoadedConfig, out: TextIO = sys.stdout) -> int:
    """Run the profile's smoke steps against the config's target, then clean up.

    Returns 0 when every step succeeded and nothing created was left behind.
    """
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


def run_demo(seed: int = 200, sync_lag_ms: float = 500.0, out: TextIO = sys.stdout) -> int:
    """Start a sandbox on a free loopback port and run the smoke steps against it."""
    from .sandbox import SandboxServer, SandboxSettings

    print(f"Starting the sandbox CRM ({seed} seeded contacts, search sync lag "
          f"{sync_lag_ms:g} ms) ...", file=out)
    with SandboxServer(SandboxSettings(seed=seed, sync_lag_ms=sync_lag_ms)) as sandbox:
        print(f"Sandbox CRM listening on {sandbox.url}", file=out)
        return run_smoke(sandbox_config(sandbox.url), out)

"""How accurate are the sync-lag probes? Known lags injected in the sandbox, measured back.

For each injected sync lag (0.2 s, 1 s, 5 s, 20 s) the canary and heartbeat modes
measure it a few times; the webhook mode measures injected webhook delays. Then a
stall: how soon after it starts does the heartbeat gauge rise above anything it
showed while healthy? The peer of every measurement is the injected value itself,
set in the same run: the ratio measured/injected and the error are printed, with
the goals (canary and heartbeat within max(50 ms, 5 %), webhook within 20 ms, the
stall visible within one heartbeat interval).

    python bench/synclag_accuracy.py [--runs 3] [--stall 60]

Everything runs on 127.0.0.1 and stops by itself (about five minutes by default).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from crmpulse import load_config  # noqa: E402
from crmpulse.probes.exporter import Exporter, create_app  # noqa: E402
from crmpulse.serving import bind, server_for  # noqa: E402

ADMIN = {"X-Admin-Token": "sandbox-admin"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(sandbox: str) -> str:
    marker_email = '"{{ marker }}-{{ canary }}@crmpulse.example"'
    create = ("{operation: create_contact, with: {first_name: Crmpulse, last_name: Bench, "
              f"email: {marker_email}, tags: [\"{{{{ marker }}}}\"]}}}}")
    sweep = '{operation: list_contacts, with: {tag: "{{ marker }}"}}'
    return f"""
target:
  name: bench
  base_url: {sandbox}
  auth: {{type: api_key, key: "${{env:BENCH_KEY}}"}}
probes:
  sync:
    - name: canary
      mode: canary
      interval: 1h
      sla: 60s
      create: {create}
      read: {{operation: search_contacts, with: {{email: "{{{{ email }}}}"}}, found: "$.data[0].id"}}
      sweep: {sweep}
    - name: beat
      mode: heartbeat
      interval: 1h
      sla: 120s
      create: {create}
      update:
        operation: update_contact
        with: {{id: "{{{{ id }}}}", custom: {{hb: "{{{{ heartbeat }}}}"}}}}
      read: {{operation: search_contacts, with: {{tag: "{{{{ marker }}}}"}}, value: "$.data[0].custom.hb"}}
      sweep: {sweep}
    - name: hook
      mode: webhook
      interval: 1h
      sla: 30s
      create: {create}
      webhook:
        subscribe: {{operation: register_webhook, with: {{url: "{{{{ url }}}}", events: [contact.created]}}}}
      sweep: {sweep}
"""


def verdict(measured: float, injected: float, tolerance: float) -> str:
    error = measured - injected
    return f"{measured:8.3f} s  ratio {measured / injected if injected else float('nan'):5.3f}  " \
           f"error {error * 1000:+7.1f} ms  {'ok' if abs(error) <= tolerance else 'MISSED'}"


async def run(args: argparse.Namespace, sandbox: str) -> None:
    folder = Path(tempfile.mkdtemp(prefix="crmpulse-accuracy-"))
    (folder / "crmpulse.yaml").write_text(config(sandbox))
    os.environ["BENCH_KEY"] = "sandbox-api-key"
    loaded = load_config(folder / "crmpulse.yaml")
    sock = bind("127.0.0.1", 0)
    listen = f"127.0.0.1:{sock.getsockname()[1]}"
    exporter = Exporter(folder / "crmpulse.yaml", loaded, listen=listen)
    server = server_for(create_app(exporter))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    admin = httpx.AsyncClient(base_url=sandbox, headers=ADMIN)
    try:
        while not server.started:
            await asyncio.sleep(0.05)
        canary, beat, hook = (exporter.pairs[n] for n in ("canary", "beat", "hook"))
        print(f"{'mode':10} {'injected':>9}   measured (mean of {args.runs})")
        for lag in (0.2, 1.0, 5.0, 20.0):
            await admin.put("/admin/faults", json={"sync_lag_ms": lag * 1000})
            tolerance = max(0.05, 0.05 * lag)
            canary.observations.clear()
            for _ in range(args.runs):
                await canary.canary_once()
            measured = statistics.mean(canary.observations)
            print(f"{'canary':10} {lag:8.1f}s  {verdict(measured, lag, tolerance)}")
            beat.observations.clear()
            for _ in range(args.runs):
                await beat.heartbeat_once()
            measured = statistics.mean(beat.observations)
            print(f"{'heartbeat':10} {lag:8.1f}s  {verdict(measured, lag, tolerance)}")
        await admin.put("/admin/faults", json={"sync_lag_ms": 0})
        for delay in (0.0, 0.2, 1.0):
            await admin.put("/admin/faults", json={"webhook_delay_ms": delay * 1000})
            hook.observations.clear()
            for _ in range(args.runs):
                await hook.webhook_once()
            print(f"{'webhook':10} {delay:8.1f}s  {verdict(statistics.mean(hook.observations), delay, 0.02)}")
        await admin.put("/admin/faults", json={"webhook_delay_ms": 0, "sync_lag_ms": 200})

        # The stall: heartbeats every `interval`, as in production.
        interval = args.heartbeat_interval

        async def beat_for(seconds: float, watch: float | None) -> tuple[float, float | None]:
            """Heartbeat every interval for `seconds`; the gauge's max, and when it passed `watch`."""
            highest, passed, start = 0.0, None, time.monotonic()
            while time.monotonic() < start + seconds:
                tick = time.monotonic()
                stamp = asyncio.create_task(beat.heartbeat_once())
                while time.monotonic() < tick + interval:
                    lag = beat.current_lag()
                    highest = max(highest, lag)
                    if watch is not None and passed is None and lag > watch:
                        passed = time.monotonic() - start
                    await asyncio.sleep(0.05)
                stamp.cancel()  # a stamp not yet visible stays pending and is resolved later
            return highest, passed

        await beat.heartbeat_once()  # the newest stamp is visible: the gauge starts fresh
        healthy_max, _ = await beat_for(3 * interval, None)
        await admin.put("/admin/faults", json={"sync_stall": True})
        peak, risen_after = await beat_for(args.stall, healthy_max)
        await admin.put("/admin/faults", json={"sync_stall": False})
        risen = f"{risen_after:.2f}s" if risen_after is not None else "never"
        ok = risen_after is not None and risen_after <= interval
        print(f"stall of {args.stall:g}s, heartbeat every {interval:g}s at {0.2:g}s lag: healthy gauge "
              f"max {healthy_max:.2f}s; passed {risen} after the stall began ({'ok' if ok else 'MISSED'}: "
              f"goal within one interval); {peak:.1f}s at the stall's end")
    finally:
        await admin.aclose()
        server.should_exit = True
        await serving


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--stall", type=float, default=60.0)
    parser.add_argument("--heartbeat-interval", type=float, default=5.0)
    args = parser.parse_args()
    port = free_port()
    sandbox = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "crmpulse", "sandbox", "--port", str(port),
                             "--seed", "200"], stdout=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                httpx.get(sandbox + "/healthz")
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        asyncio.run(run(args, sandbox))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())

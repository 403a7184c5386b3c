"""Reload is atomic: a new config runs only once every runner of it is built.

The reproduction from issue 12: a config that validates but whose CA file is missing
used to stop every check while /-/ready still said Ready.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx

from crmpulse import load_config
from crmpulse.probes.exporter import Exporter, create_app
from crmpulse.serving import bind, server_for
from tests.badservers import make_certificate
from tests.helpers import ExporterProcess, SandboxProcess, sample, write_config

CONFIG = """
target:
  name: crm
  base_url: {url}
{tls}
probes:
  checks:
    - {{name: status, kind: http, request: {{path: /healthz, auth: false}}, interval: 1s, timeout: 800ms}}
    - {{name: again, kind: http, request: {{path: /healthz, auth: false}}, interval: 1s, timeout: 800ms}}
{more}"""
THIRD = "    - {name: third, kind: http, request: {path: /healthz, auth: false}, interval: 1s, timeout: 800ms}\n"


def config(url: str, ca_file: str | None = None, third: bool = False) -> str:
    tls = f"  tls: {{ca_file: '{ca_file}'}}" if ca_file else ""
    return CONFIG.format(url=url, tls=tls, more=THIRD if third else "")


def runs(exporter: ExporterProcess, check: str) -> float:
    return sample(exporter.metrics(), "crmpulse_check_runs_total", target="crm", check=check) or 0


def test_a_reload_whose_ca_file_is_missing_keeps_the_running_checks_and_says_why(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    path = write_config(tmp_path, config(sandbox.url))
    exporter = ExporterProcess(path)
    try:
        exporter.wait_for("crmpulse_check_success", 1, target="crm", check="again")
        assert httpx.get(exporter.url + "/-/ready").text == "Ready: 2 checks and 0 sync pairs running\n"
        missing = tmp_path / "missing-ca.pem"
        path.write_text(config(sandbox.url, str(missing), third=True))
        response = httpx.post(exporter.url + "/-/reload", timeout=10)
        assert response.status_code == 500
        refusal = f"{path}:5 target.tls.ca_file: file {missing} not found"
        assert response.text == f"failed to reload config:\n{refusal}\n"
        metrics = exporter.metrics()
        assert sample(metrics, "crmpulse_config_reloads_total", result="failure") == 1
        assert sample(metrics, "crmpulse_config_last_reload_successful") == 0
        assert sample(metrics, "crmpulse_checks_running", target="crm") == 2
        assert sample(metrics, "crmpulse_check_runs_total", target="crm", check="third") is None
        before = runs(exporter, "status")
        exporter.wait_until("crmpulse_check_runs_total", lambda v: v > before, target="crm",
                            check="status")  # the old set keeps running
        ready = httpx.get(exporter.url + "/-/ready")
        assert (ready.status_code, ready.text) == (200, "Ready: 2 checks and 0 sync pairs running\n")

        exporter.proc.send_signal(signal.SIGHUP)  # the same through SIGHUP: counted again
        exporter.wait_for("crmpulse_config_reloads_total", 2, result="failure")

        cert, _ = make_certificate(tmp_path, "ca", days_valid=30)
        path.write_text(config(sandbox.url, cert, third=True))
        assert httpx.post(exporter.url + "/-/reload", timeout=10).status_code == 200
        exporter.wait_for("crmpulse_check_success", 1, target="crm", check="third")
        assert httpx.get(exporter.url + "/-/ready").text == "Ready: 3 checks and 0 sync pairs running\n"
    finally:
        log = exporter.stop()
    assert f"reload rejected: {refusal}" in log
    assert "reload rejected: the running config keeps running (2 checks)" in log
    assert "Traceback" not in log


def test_a_reload_keeps_the_counters_of_checks_it_keeps(sandbox: SandboxProcess, tmp_path: Path) -> None:
    path = write_config(tmp_path, config(sandbox.url))
    exporter = ExporterProcess(path)
    try:
        exporter.wait_until("crmpulse_check_runs_total", lambda v: v >= 2, target="crm", check="status")
        kept = runs(exporter, "status")
        path.write_text(config(sandbox.url, third=True).replace("name: again", "name: renamed"))
        assert httpx.post(exporter.url + "/-/reload", timeout=10).status_code == 200
        metrics = exporter.metrics()
        assert (sample(metrics, "crmpulse_check_runs_total", target="crm", check="status") or 0) >= kept
        assert sample(metrics, "crmpulse_check_runs_total", target="crm", check="again") is None
        assert sample(metrics, "crmpulse_checks_configured", target="crm") == 3
    finally:
        exporter.stop()


def test_ready_says_not_ready_when_a_checks_schedule_is_no_longer_running(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    path = write_config(tmp_path, config(sandbox.url))

    async def main() -> tuple[list[tuple[int, str]], float | None]:
        exporter = Exporter(path, load_config(path), listen="127.0.0.1:0")
        sock = bind("127.0.0.1", 0)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        server = server_for(create_app(exporter))
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        seen: list[tuple[int, str]] = []
        try:
            deadline = time.monotonic() + 20
            while not server.started:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            async with httpx.AsyncClient(base_url=url) as client:
                response = await client.get("/-/ready")
                seen.append((response.status_code, response.text))
                assert exporter.scheduler is not None
                dead = exporter.scheduler.tasks[0]
                dead.cancel()  # a schedule that ends, as one killed by a bug would
                while not dead.done():
                    await asyncio.sleep(0.01)
                response = await client.get("/-/ready")
                seen.append((response.status_code, response.text))
                text = (await client.get("/metrics")).text
        finally:
            server.should_exit = True
            await serving
        running = next((float(line.split()[-1]) for line in text.splitlines()
                        if line.startswith('crmpulse_checks_running{target="crm"}')), None)
        return seen, running

    seen, running = asyncio.run(main())
    assert seen == [(200, "Ready: 2 checks and 0 sync pairs running\n"),
                    (503, "Not ready: 1 of 2 checks running\n")]
    assert running == 1

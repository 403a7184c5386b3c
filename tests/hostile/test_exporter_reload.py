"""TLS files that do not load: refused at start with exit 2, refused at reload with the old
checks still running, counted and logged; never a traceback, never an exporter running nothing.

Most of these are caught when the config is validated (crmpulse/config.py); building the
runners loads the files again, and the last test shows that step refusing a file on its own.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from crmpulse import ConfigError, load_config
from crmpulse.probes.exporter import Exporter
from tests.badservers import make_certificate
from tests.helpers import ExporterProcess, SandboxProcess, sample, write_config

GOOD = """
target:
  name: crm
  base_url: {url}
{tls}
probes:
  checks:
    - {{name: status, kind: http, request: {{path: /healthz, auth: false}}, interval: 1s, timeout: 800ms}}
"""


def bad_tls(folder: Path) -> dict[str, tuple[str, str]]:
    """name -> (the target's tls block, a fragment the refusal must contain)."""
    cert, key = make_certificate(folder, "pair", days_valid=5)
    (folder / "garbage.pem").write_text("not a certificate\n")
    (folder / "a-directory").mkdir(exist_ok=True)
    return {
        "missing CA file": (f"ca_file: '{folder}/nowhere.pem'", f"{folder}/nowhere.pem"),
        "CA file that is not PEM": (f"ca_file: '{folder}/garbage.pem'", "garbage.pem"),
        "CA file that is a directory": (f"ca_file: '{folder}/a-directory'", "a-directory"),
        "certificate and key swapped": (f"client_cert: '{key}', client_key: '{cert}'", "client_"),
        "client key missing": (f"client_cert: '{cert}', client_key: '{folder}/no.key'", "no.key"),
    }


CASES = ["missing CA file", "CA file that is not PEM", "CA file that is a directory",
         "certificate and key swapped", "client key missing"]


def config(url: str, tls: str = "") -> str:
    return GOOD.format(url=url, tls=f"  tls: {{{tls}}}" if tls else "")


@pytest.mark.parametrize("case", CASES)
def test_a_tls_file_that_does_not_load_stops_the_start_with_exit_2_and_its_key(
        case: str, tmp_path: Path) -> None:
    tls, named = bad_tls(tmp_path)[case]
    path = write_config(tmp_path, config("https://127.0.0.1:9", tls))
    run = subprocess.run([sys.executable, "-m", "crmpulse", "probe", "--config", str(path),
                          "--listen", "127.0.0.1:0"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "target.tls" in run.stderr and named in run.stderr
    assert "Traceback" not in run.stderr + run.stdout and "metrics on" not in run.stdout


@pytest.fixture(scope="module")
def running(sandbox: SandboxProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        tuple[ExporterProcess, Path]]:
    folder = tmp_path_factory.mktemp("reload")
    path = write_config(folder, config(sandbox.url))
    exporter = ExporterProcess(path)
    exporter.wait_for("crmpulse_check_success", 1, target="crm", check="status")
    yield exporter, path
    exporter.stop()


@pytest.mark.parametrize("case", CASES)
def test_a_reload_to_tls_files_that_do_not_load_is_refused_and_the_checks_keep_running(
        case: str, running: tuple[ExporterProcess, Path], sandbox: SandboxProcess) -> None:
    exporter, path = running
    tls, named = bad_tls(path.parent)[case]
    before = sample(exporter.metrics(), "crmpulse_config_reloads_total", result="failure") or 0
    path.write_text(config(sandbox.url.replace("http://", "https://"), tls))
    response = httpx.post(exporter.url + "/-/reload", timeout=10)
    assert response.status_code == 500
    assert response.text.startswith("failed to reload config:\n") and named in response.text
    metrics = exporter.metrics()
    assert sample(metrics, "crmpulse_config_reloads_total", result="failure") == before + 1
    assert sample(metrics, "crmpulse_checks_running", target="crm") == 1
    runs = sample(metrics, "crmpulse_check_runs_total", target="crm", check="status") or 0
    exporter.wait_until("crmpulse_check_runs_total", lambda v: v > runs, target="crm", check="status")
    assert httpx.get(exporter.url + "/-/ready").status_code == 200


def test_building_refuses_a_ca_file_that_vanished_after_the_config_was_validated(tmp_path: Path) -> None:
    cert, _ = make_certificate(tmp_path, "ca", days_valid=5)
    path = write_config(tmp_path, config("https://127.0.0.1:9", f"ca_file: '{cert}'"))
    loaded = load_config(path)
    Path(cert).unlink()
    with pytest.raises(ConfigError) as caught:
        Exporter(path, loaded).build()
    assert [str(p) for p in caught.value.problems] == [
        f'{path} target.tls: cannot load ca_file "{cert}": No such file or directory']

"""The wheel, as a user gets it: installed into a fresh venv outside the repository, run from an
unrelated folder that has folders named like the components (they must not shadow anything)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.helpers import Output, wait_http

REPO = Path(__file__).resolve().parents[2]


class Installed:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.bin = root / "venv" / "bin"
        self.work = root / "work"  # where the user runs commands: not the repository
        # the environment a user has: no PYTHONPATH into the clone, no test-suite switches
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("PYTHONPATH", "LOCUST_SKIP_MONKEY_PATCH", "VIRTUAL_ENV")}
        self.env["CRMPULSE_CLIENT_SECRET"] = "sandbox-secret"

    def run(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.bin / args[0]), *args[1:]], cwd=self.work, env=self.env,
                              capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", str(REPO),
                            "-w", str(out)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    (path,) = out.glob("crmpulse-*.whl")
    return path


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    root = tmp_path_factory.mktemp("user")
    assert REPO not in root.parents
    venv.create(root / "venv", with_pip=True)
    inst = Installed(root)
    inst.work.mkdir()
    pip = inst.run("pip", "install", "--quiet", "--disable-pip-version-check", str(wheel), timeout=600)
    assert pip.returncode == 0, pip.stdout[-3000:] + pip.stderr[-3000:]
    for decoy in ("probes", "alerts", "loadtests", "dashboards"):  # would shadow generic top-level names
        (inst.work / decoy).mkdir()
        (inst.work / decoy / "__init__.py").write_text("raise ImportError('the decoy was imported')\n")
    yield inst


def test_the_wheel_installs_exactly_one_top_level_package_with_its_assets(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names if ".dist-info" not in n.split("/")[0]} == {"crmpulse"}
    for asset in ("crmpulse/loadtests/locustfile.py", "crmpulse/alerts/runbooks/CrmProbesAbsent.md",
                  "crmpulse/dashboards/overview.dashboard.py", "crmpulse/deploy/prometheus/prometheus.yml",
                  "crmpulse/deploy/kubernetes/kustomization.yaml", "crmpulse/profiles/sandbox.yaml",
                  "crmpulse/starter.yaml"):
        assert asset in names, asset


def test_the_quick_demo_runs_from_the_wheel(installed: Installed) -> None:
    run = installed.run("crmpulse", "demo", "--quick", "--seed", "50")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "records created 4, deleted 4, left 0" in run.stdout


def test_alerts_dashboards_and_deploy_files_are_written_from_the_wheel(installed: Installed) -> None:
    assert installed.run("crmpulse", "init").returncode == 0
    check = installed.run("python", "-m", "crmpulse", "probe", "--check-config")
    assert check.returncode == 0, check.stdout + check.stderr
    alerts = installed.run("crmpulse", "alerts", "--out", "out/alerts")
    assert alerts.returncode == 0, alerts.stdout + alerts.stderr
    runbooks = sorted(p.name for p in (installed.work / "out/alerts/runbooks").glob("*.md"))
    assert "CrmAvailabilityBurnRateFast.md" in runbooks and len(runbooks) >= 10
    listed = set(re.findall(r"[\w/.-]+\.(?:yml|json|md)", alerts.stdout.split(":", 1)[1].splitlines()[0]))
    on_disk = {p.relative_to(installed.work / "out/alerts").as_posix()
               for p in (installed.work / "out/alerts").rglob("*") if p.is_file()}
    assert listed == on_disk
    dashboards = installed.run("crmpulse", "dashboards", "--out", "out/dashboards")
    assert dashboards.returncode == 0, dashboards.stdout + dashboards.stderr
    assert len(list((installed.work / "out/dashboards").glob("*.json"))) == 5
    deploy = installed.run("crmpulse", "deploy", "--out", "mydeploy")
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    assert (installed.work / "mydeploy/grafana/dashboards.yml").exists()
    assert (installed.work / "mydeploy/kubernetes/kustomization.yaml").exists()
    again = installed.run("crmpulse", "deploy", "--out", "mydeploy")
    assert again.returncode == 2 and "--force" in again.stderr


def test_the_sandbox_smoke_and_a_plain_locust_run_work_from_the_wheel(installed: Installed) -> None:
    sandbox = subprocess.Popen([str(installed.bin / "crmpulse"), "sandbox", "--port", "0", "--seed", "30"],
                               cwd=installed.work, env=installed.env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        output = Output(sandbox)
        url = output.wait_for(r"Sandbox CRM on (http://127\.0\.0\.1:\d+)").group(1)
        wait_http(url + "/healthz", sandbox)
        config = yaml.safe_load((REPO / "crmpulse" / "starter.yaml").read_text())
        config["target"]["base_url"] = url
        config["loadtest"]["shape"] = {"kind": "soak", "users": 2, "duration": "6s"}
        config["loadtest"]["metrics_listen"] = "off"
        (installed.work / "wheel.yaml").write_text(yaml.safe_dump(config))
        smoke = installed.run("crmpulse", "smoke", "-c", "wheel.yaml")
        assert smoke.returncode == 0, smoke.stdout[-2000:] + smoke.stderr[-2000:]
        locustfile = installed.run("crmpulse", "locustfile").stdout.strip()
        assert Path(locustfile).is_file() and installed.root in Path(locustfile).parents
        run = subprocess.run([str(installed.bin / "locust"), "-f", locustfile, "--crmpulse-config",
                              "wheel.yaml", "--headless", "--only-summary"], cwd=installed.work,
                             env={**installed.env, "CRMPULSE_REPORT_DIR": "lt-report"},
                             capture_output=True, text=True, timeout=180)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        report = yaml.safe_load((installed.work / "lt-report" / "report.json").read_text())
        assert report["verdict"] == "PASS" and report["cleanup"]["left"] == 0
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=20)

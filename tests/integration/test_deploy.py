"""deploy/: every file validates with the tool its users run, and matches the generators."""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from crmpulse.app.cli import main

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
KUBE = DEPLOY / "kubernetes"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("generated")
    os.environ.setdefault("CRMPULSE_CLIENT_SECRET", "x")
    assert main(["alerts", "--config", str(REPO / "crmpulse" / "starter.yaml"), "--out", str(out),
                 "--kubernetes"]) == 0
    return out


def test_the_prometheus_config_passes_promtool_with_its_rules() -> None:
    run = subprocess.run(["promtool", "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "rule files found" in run.stdout and "SUCCESS" in run.stdout


def test_the_committed_rules_and_alertmanager_config_are_what_the_generator_writes(generated: Path) -> None:
    committed = sorted(p.name for p in (DEPLOY / "prometheus" / "rules").glob("*.rules.yml"))
    assert committed == sorted(p.name for p in generated.glob("*.rules.yml"))
    for name in committed:
        assert (DEPLOY / "prometheus" / "rules" / name).read_text() == (generated / name).read_text(), name
    assert (DEPLOY / "alertmanager" / "alertmanager.yml").read_text() == (generated / "alertmanager.yml").read_text()


def test_the_alertmanager_config_passes_amtool() -> None:
    run = subprocess.run(["amtool", "check-config", str(DEPLOY / "alertmanager" / "alertmanager.yml")],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def kube_documents() -> list[dict]:
    docs = []
    for path in sorted(KUBE.glob("*.yaml")):
        if path.name in ("kustomization.yaml", "crmpulse.yaml"):
            continue
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


@pytest.mark.parametrize("doc", kube_documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_kubernetes_manifests_validate_against_their_schemas(doc: dict) -> None:
    if doc["apiVersion"].startswith("monitoring.coreos.com/"):
        # Prometheus-operator kinds: no bundled schema, so check the structure they need
        assert doc["kind"] in ("ServiceMonitor", "PrometheusRule")
        if doc["kind"] == "ServiceMonitor":
            assert doc["spec"]["selector"]["matchLabels"] and doc["spec"]["endpoints"][0]["port"]
        else:
            for group in doc["spec"]["groups"]:
                assert group["name"] and group["rules"]
                assert all(("alert" in r or "record" in r) and r["expr"] for r in group["rules"])
        return
    kubernetes_validate.validate(doc, "1.30.0", strict=True)


def test_the_kustomization_lists_existing_files_and_the_service_monitor_selects_the_exporter() -> None:
    kustomization = yaml.safe_load((KUBE / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (KUBE / resource).exists(), resource
    for generator in kustomization["configMapGenerator"]:
        for file in generator["files"]:
            assert (KUBE / file).exists()
    docs = {(d["kind"], d["metadata"]["name"]): d for d in kube_documents()}
    monitor = docs[("ServiceMonitor", "crmpulse-probe")]
    service = docs[("Service", "crmpulse-probe")]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}


def test_the_prometheusrule_is_the_generated_one(generated: Path) -> None:
    committed = yaml.safe_load((KUBE / "prometheusrule.yaml").read_text())
    fresh = yaml.safe_load((generated / "prometheusrule.yaml").read_text())
    assert committed["spec"] == fresh["spec"]


def test_the_clusters_crmpulse_yaml_is_a_valid_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMPULSE_CLIENT_SECRET", "x")
    assert main(["check-config", str(KUBE / "crmpulse.yaml")]) == 0


@pytest.mark.parametrize("unit", sorted((DEPLOY / "systemd").glob("*.service")), ids=lambda p: p.name)
def test_systemd_units_have_what_they_need(unit: Path) -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    parser.read(unit)
    assert parser["Unit"]["Description"]
    assert parser["Service"]["ExecStart"].startswith("/opt/crmpulse/.venv/bin/crmpulse ")
    assert parser["Service"]["EnvironmentFile"] == "/etc/crmpulse/secrets.env"
    if shutil.which("systemd-analyze"):
        run = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
        assert "Invalid" not in run.stderr


def test_the_compose_file_mounts_files_that_exist() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert (DEPLOY / source).exists(), source
    assert (REPO / "Dockerfile").exists()


def test_the_grafana_provisioning_points_at_the_datasource_uid_dashboards_use() -> None:
    datasource = yaml.safe_load((DEPLOY / "grafana" / "datasources" / "prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    overview = json.loads((DEPLOY / "grafana" / "dashboards" / "overview.json").read_text())
    variable = overview["templating"]["list"][0]
    assert variable["type"] == "datasource" and variable["current"]["value"] == uid


def test_the_sharded_exporter_gives_each_pod_the_shard_of_its_ordinal() -> None:
    from crmpulse.probes.sharding import parse_shard

    docs = {(d["kind"], d["metadata"]["name"]): d
            for d in yaml.safe_load_all((KUBE / "exporter-sharded.yaml").read_text()) if d}
    statefulset = docs[("StatefulSet", "crmpulse-probe-shard")]
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    shard = args[args.index("--shard") + 1]
    assert shard.startswith("$(POD_NAME)/")
    assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in container["env"]
    replicas = statefulset["spec"]["replicas"]
    pods = [f"{statefulset['metadata']['name']}-{ordinal}" for ordinal in range(replicas)]
    assert [parse_shard(shard.replace("$(POD_NAME)", pod)) for pod in pods] == [
        (ordinal, replicas) for ordinal in range(replicas)]
    service = docs[("Service", "crmpulse-probe-shard")]
    monitor = docs[("ServiceMonitor", "crmpulse-probe-shard")]
    labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["selector"].items() <= labels.items()
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    assert "exporter-sharded.yaml" not in yaml.safe_load((KUBE / "kustomization.yaml").read_text())[
        "resources"]  # a variant: used instead of exporter.yaml, never beside it

"""`crmpulse alerts`: rules pass promtool, their generated tests pass (and can fail), runbooks exist."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from crmpulse.alerts.companions import ALERT_NAMES
from crmpulse.app.cli import main
from tests.helpers import PROMTOOL

REPO = Path(__file__).resolve().parents[2]
RUNBOOKS = REPO / "alerts" / "runbooks"


ACCESS = """\
    - {name: certificate, kind: tls, interval: 1h, host: 127.0.0.1, port: 8443}
    - name: tenant_isolation
      kind: isolation
      observer: tenant2
      reads: {get: {operation: get_contact, with: {id: "{{ id }}"}}}
    - name: restricted_role
      kind: role_scope
      credential: restricted
      denied: [{operation: get_contact, with: {id: "{{ other_id }}"}, status: [404]}]
    - name: personal_data
      kind: exposure
      reads: [{operation: get_contact, with: {id: "{{ id }}"}}]
      allow: [{detector: email, path: $.email}]
    - name: token_revocation
      kind: revocation
      credential: tenant2
      revoke: {operation: revoke_token, with: {token: "{{ token }}"}}
      read: {operation: whoami}
    - {name: login_lockout, kind: bruteforce, credential: canary, account: canary@sandbox.example}
  sync:
    - name: webhooks
      mode: webhook
      interval: 1m
      sla: 30s
      create: {operation: create_contact, with: {first_name: C, last_name: W, email: "{{ marker }}-{{ canary }}@crmpulse.example", tags: ["{{ marker }}"]}}
      webhook:
        subscribe: {operation: register_webhook, with: {url: "{{ url }}", secret: "{{ webhook_secret }}"}}
        signature: {header: X-Sandbox-Signature, prefix: "sha256="}
      sweep: {operation: list_contacts, with: {tag: "{{ marker }}"}}
"""
CREDENTIALS = """\
  credentials:
    tenant2: {type: oauth2_client_credentials, client_id: crmpulse-tenant2, client_secret: "${env:CRMPULSE_CLIENT_SECRET}"}
    restricted: {type: oauth2_client_credentials, client_id: crmpulse-restricted, client_secret: "${env:CRMPULSE_CLIENT_SECRET}"}
    canary: {type: oauth2_password, client_id: crmpulse, username: canary@sandbox.example, password: "${env:CRMPULSE_CLIENT_SECRET}"}
  tls:
"""


def example_config(tmp_path: Path) -> Path:
    """The starter config, plus a TLS check, access checks of every kind, a webhook pair and
    an API quota, so every companion alert is generated."""
    text = (REPO / "crmpulse" / "starter.yaml").read_text()
    profile = (REPO / "crmpulse" / "profiles" / "sandbox.yaml").read_text()
    (tmp_path / "sandbox-quota.yaml").write_text(profile + "\nquota:\n  - {name: daily, window: 24h, "
                                                 "used: 'header:X-Quota-Used', limit: 'header:X-Quota-Limit'}\n")
    text = text.replace("\nprofile: sandbox\n", "\nprofile: sandbox-quota.yaml\n", 1)
    text = text.replace("  sync:\n", ACCESS, 1).replace("  tls:\n", CREDENTIALS, 1)
    path = tmp_path / "crmpulse.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("alerts")
    import os

    os.environ.setdefault("CRMPULSE_CLIENT_SECRET", "sandbox-secret")
    assert main(["alerts", "--config", str(example_config(folder)), "--out", str(folder / "out"),
                 "--kubernetes"]) == 0
    return folder / "out"


def rules_of(out: Path) -> list[dict]:
    return [rule for path in out.glob("*.rules.yml")
            for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def test_promtool_check_rules_passes(generated: Path) -> None:
    run = subprocess.run(["promtool", "check", "rules", *map(str, sorted(generated.glob("*.rules.yml")))],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout


def test_the_generated_rule_tests_pass_in_promtool(generated: Path) -> None:
    files = sorted((generated / "tests").glob("*.test.yml"))
    assert len(files) >= 6
    procs = [(f, subprocess.Popen([*PROMTOOL, "test", "rules", str(f)], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)) for f in files]
    for path, proc in procs:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{path.name}:\n{out[-3000:]}"


def test_the_tests_include_must_not_fire_cases_and_a_two_minute_outage_page(generated: Path) -> None:
    doc = yaml.safe_load((generated / "tests" / "slo-availability-fast.test.yml").read_text())
    assert doc["group_eval_order"] == ["crmpulse-slo-availability-sli", "crmpulse-slo-availability-alerts",
                                       "crmpulse-companions"]
    outage = next(t for t in doc["tests"] if "full outage" in t["name"])
    history = 360
    firing = [int(r["eval_time"][:-1]) - history for r in outage["promql_expr_test"]
              if 'alertname="CrmAvailabilityBurnRateFast",alertstate="firing"' in r["expr"]]
    silent = [int(r["eval_time"][:-1]) - history for r in outage["alert_rule_test"] if not r["exp_alerts"]]
    assert firing == [2] and silent == [0]  # silent as the outage begins, paging 2 minutes in
    slow = yaml.safe_load((generated / "tests" / "slo-availability-slow.test.yml").read_text())
    assert slow["group_eval_order"][:2] == doc["group_eval_order"][:2]
    names = [t["name"] for t in doc["tests"] + slow["tests"]]
    for expected in ("5.00% errors pages", "1.00% errors pages", "0.50% errors ticket and never page",
                     "0.100% errors (exactly at budget) never fire",
                     "0.090% errors (under budget) never fire", "recovery resolves the page",
                     "no traffic fires the companion"):
        assert any(expected in n for n in names), expected
    at_budget = next(t for t in slow["tests"] if "exactly at budget" in t["name"])
    never = [e["expr"] for e in at_budget["promql_expr_test"]]
    assert 'absent_over_time(ALERTS{alertname="CrmAvailabilityBurnRateSlow"}[4385m])' in never


def test_a_broken_rule_makes_its_generated_test_fail(generated: Path, tmp_path: Path) -> None:
    broken = tmp_path / "out"
    (broken / "tests").mkdir(parents=True)
    for path in generated.glob("*.rules.yml"):
        (broken / path.name).write_text(path.read_text().replace("> 0.0144", "> 0.05"))
    test = generated / "tests" / "slo-availability-fast.test.yml"
    (broken / "tests" / test.name).write_text(test.read_text())
    run = subprocess.run([*PROMTOOL, "test", "rules", str(broken / "tests" / test.name)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode != 0 and "FAILED" in run.stdout + run.stderr


def test_every_alert_has_the_house_shape_and_a_runbook(generated: Path) -> None:
    alerts = [r for r in rules_of(generated) if "alert" in r]
    assert {a["alert"] for a in alerts} == set(ALERT_NAMES)  # the example config covers them all
    for alert in alerts:
        assert re.fullmatch(r"Crm[A-Z][A-Za-z]+", alert["alert"])
        assert alert["labels"]["severity"] in ("critical", "warning")
        assert "{{ $labels.target }}" in alert["annotations"]["description"]
        assert "Check first: " in alert["annotations"]["description"]
        assert alert["annotations"]["runbook_url"].endswith(f"/{alert['alert']}.md")
        assert "dashboard_url" not in alert["annotations"]  # alerting.dashboard_url is not set
        runbook = RUNBOOKS / f"{alert['alert']}.md"
        assert runbook.exists(), f"{alert['alert']} has no runbook"


def test_burn_rate_summaries_read_the_burn_rates_and_the_budget_from_recorded_series(generated: Path) -> None:
    fast = next(r for r in rules_of(generated) if r.get("alert") == "CrmAvailabilityBurnRateFast")
    summary = fast["annotations"]["summary"]
    assert ('{{ with query `crmpulse_slo:sli_error:ratio_rate1h{slo="availability",target="sandbox"} '
            '/ 0.001` }}{{ . | first | value | printf "%.1f" }}{{ end }}x over 1h') in summary
    assert ("{{ with query `100 * sum by (target, slo, kind) (crmpulse_slo:error_budget_remaining:ratio"
            '{slo="availability",target="sandbox"})` }}{{ . | first | value | printf "%.1f" }}'
            "{{ end }}% of the 30d budget left") in summary
    description = fast["annotations"]["description"]
    for words in ("the availability SLO (99.9 % of probe runs that succeed over 30d; error budget 0.1 %)",
                  "more than 14.4x over both 1h and 5m or 6x over both 6h and 30m",
                  "Failures by reason panel"):
        assert words in description


@pytest.mark.parametrize("name", ALERT_NAMES)
def test_each_runbook_answers_the_on_call_questions(name: str) -> None:
    text = (RUNBOOKS / f"{name}.md").read_text()
    for section in ("## What it means", "## Where to look first", "## PromQL to run",
                    "## First checks", "## Mitigation", "## When to escalate"):
        assert section in text, f"{name}: missing {section}"


def test_the_alertmanager_example_passes_amtool_and_routes_by_severity(generated: Path) -> None:
    config = str(generated / "alertmanager.yml")
    run = subprocess.run(["amtool", "check-config", config], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    for labels, receiver in ((["severity=critical", "alertname=CrmAvailabilityBurnRateFast"], "pager"),
                             (["severity=warning", "alertname=CrmAvailabilityBurnRateSlow"], "ticket")):
        run = subprocess.run(["amtool", "config", "routes", "test", f"--config.file={config}", *labels],
                             capture_output=True, text=True)
        assert run.stdout.strip() == receiver, run.stdout + run.stderr


def test_grafana_rules_mirror_the_prometheus_alerts(generated: Path) -> None:
    document = json.loads((generated / "grafana-alerting.json").read_text())
    grafana = {(r["title"], r["labels"].get("slo")): r for g in document["groups"] for r in g["rules"]}
    alerts = [r for r in rules_of(generated) if "alert" in r]
    assert len(grafana) == len(alerts)
    for alert in alerts:
        twin = grafana[alert["alert"], alert["labels"].get("slo")]
        query = next(d for d in twin["data"] if d["refId"] == "query")
        assert query["model"]["expr"] == alert["expr"]
        assert query["model"]["instant"] is True and query["model"]["range"] is False
        assert twin["labels"] == alert["labels"]
        assert twin["for"] == alert.get("for", "0s")
        assert twin["condition"] == "threshold"
        assert (twin["noDataState"], twin["execErrState"]) == ("OK", "KeepLast")
        assert set(twin["annotations"]) == set(alert["annotations"])
        assert twin["annotations"]["runbook_url"] == alert["annotations"]["runbook_url"]
        assert "query `" not in json.dumps(twin["annotations"])  # Grafana has no query in templates


def test_the_kubernetes_prometheusrule_holds_every_group(generated: Path) -> None:
    document = yaml.safe_load((generated / "prometheusrule.yaml").read_text())
    assert document["kind"] == "PrometheusRule" and document["apiVersion"] == "monitoring.coreos.com/v1"
    groups = [g["name"] for path in generated.glob("*.rules.yml") for g in yaml.safe_load(path.read_text())["groups"]]
    assert sorted(g["name"] for g in document["spec"]["groups"]) == sorted(groups)


def test_explain_prints_the_detection_table(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMPULSE_CLIENT_SECRET", "x")
    assert main(["alerts", "--config", str(example_config(tmp_path)), "--explain"]) == 0
    out = capsys.readouterr().out
    table = out.split("SLO latency")[0]
    assert re.search(r"100%\s+52s\s+2\.00%", table)       # the workbook: 2 % of the budget
    assert re.search(r"1%\s+3h36m\s+5\.00%", table)        # only the slow pair, after hours


@pytest.mark.parametrize("window", ["12h", "91d"])
def test_slo_windows_outside_one_to_ninety_days_are_refused_before_writing(
        window: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = example_config(tmp_path)
    path.write_text(path.read_text().replace("    window: 30d", f"    window: {window}"))
    run = subprocess.run([sys.executable, "-m", "crmpulse", "alerts", "--config", str(path), "--out",
                          str(tmp_path / "out")], capture_output=True, text=True,
                         env={**__import__("os").environ, "CRMPULSE_CLIENT_SECRET": "x"})
    assert run.returncode == 2
    assert f"slos[0].window: expected an SLO window from 1d to 90d, got {window}" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "out").exists()


def test_the_committed_grafana_alert_provisioning_matches_the_generator(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMPULSE_CLIENT_SECRET", "x")
    assert main(["alerts", "--config", str(REPO / "crmpulse" / "starter.yaml"), "--out", str(tmp_path)]) == 0
    committed = json.loads((REPO / "deploy" / "grafana" / "alerting" / "crmpulse-alerts.json").read_text())
    assert committed == json.loads((tmp_path / "grafana-alerting.json").read_text()), (
        "regenerate: crmpulse alerts -c crmpulse/starter.yaml --out out && "
        "cp out/grafana-alerting.json deploy/grafana/alerting/crmpulse-alerts.json")


def test_every_series_the_rules_record_or_read_is_named_in_the_contract(generated: Path) -> None:
    from crmpulse import contract

    raw = {m.series for m in contract.METRICS} | {f(m) for m in contract.METRICS
                                                   for f in (contract.Metric.bucket, contract.Metric.count)}
    recorded = {r.name for r in contract.RECORDED}
    rules = rules_of(generated)
    records = {rule["record"] for rule in rules if "record" in rule}
    assert records, "the rules record the SLO series"
    for name in records:
        assert name in recorded or any(name.startswith(r) and name.endswith(("m", "h", "d"))
                                       for r in recorded if r.endswith("_rate")), name
    for rule in rules:
        for name in re.findall(r"\b(crmpulse_[a-z0-9_:]+)", rule["expr"]):
            assert name in raw or name in records, f"{name} in {rule.get('alert') or rule['record']}"


def test_each_companions_stated_delay_is_the_one_promtool_measures(generated: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """promtool is asked, minute by minute, whether each companion fires; the first minute it does
    must be the delay its description states (to one evaluation interval)."""
    import math

    from crmpulse import load_config
    from crmpulse.alerts.rules import build_rules
    from crmpulse.alerts.ruletests import _segments, scenarios
    from crmpulse.units import parse_duration

    monkeypatch.setenv("CRMPULSE_CLIENT_SECRET", "x")
    loaded = load_config(example_config(tmp_path))
    rules = build_rules(loaded)
    descriptions = {r["alert"]: r["annotations"]["description"] for r in rules_of(generated) if "alert" in r}
    measured_any = set()
    for s in (s for s in scenarios(rules, loaded) if s.file == "companions"):
        alert = s.checks[0].alert
        found = re.search(r"It fires (?:at the first evaluation after|(\S+) after)", descriptions[alert])
        assert found, f"{alert}: its description states no delay"
        stated = parse_duration(found.group(1)) if found.group(1) else 0.0
        last = max(len(v) for v in s.series.values()) - 1
        probes = [{"expr": f'count(ALERTS{{alertname="{alert}",alertstate="firing"}}) or vector(0)',
                   "eval_time": f"{m}m", "exp_samples": [{"labels": "{}", "value": 0}]}
                  for m in range(s.start - 1, last + 1)]
        path = tmp_path / f"probe-{len(measured_any)}.test.yml"
        path.write_text(yaml.safe_dump({
            "rule_files": [str(generated / "companions.rules.yml")], "evaluation_interval": "1m",
            "group_eval_order": ["crmpulse-companions"],
            "tests": [{"interval": "1m", "input_series": [{"series": n, "values": _segments(v)}
                                                          for n, v in s.series.items()],
                       "promql_expr_test": probes}]}, sort_keys=False, width=1000))
        run = subprocess.run([*PROMTOOL, "test", "rules", str(path)], capture_output=True, text=True)
        firing = sorted(parse_duration(t) / 60 for t in re.findall(r"time: (\w+),", run.stdout + run.stderr))
        assert firing, f"{s.name}: never fired\n{run.stdout[-2000:]}"
        delay = firing[0] - s.start
        assert math.ceil(stated / 60) <= delay <= math.ceil(stated / 60) + 1, (s.name, stated, delay)
        measured_any.add(alert)
    assert measured_any == {c for c in ALERT_NAMES if "BurnRate" not in c}


def test_a_dashboard_url_that_is_not_a_url_is_refused_with_its_line(tmp_path: Path) -> None:
    path = example_config(tmp_path)
    path.write_text(path.read_text() + "alerting:\n  dashboard_url: grafana please\n")
    run = subprocess.run([sys.executable, "-m", "crmpulse", "alerts", "--config", str(path), "--out",
                          str(tmp_path / "out")], capture_output=True, text=True,
                         env={**__import__("os").environ, "CRMPULSE_CLIENT_SECRET": "x"})
    assert run.returncode == 2
    assert re.search(r"crmpulse\.yaml:\d+ alerting\.dashboard_url: .*grafana please", run.stderr), run.stderr
    assert not (tmp_path / "out").exists()


def test_the_list_of_written_files_is_what_is_on_disk_and_paths_are_clean(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CRMPULSE_CLIENT_SECRET", "x")
    out = tmp_path / "out"
    assert main(["alerts", "--config", str(example_config(tmp_path)), "--out", f"{out}/"]) == 0
    printed = capsys.readouterr().out
    listed = printed.split(": ", 1)[1].splitlines()[0].split(", ")
    on_disk = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert listed == on_disk
    assert "tests/companions.test.yml" in listed and "companions.test.yml" not in listed
    assert "//" not in printed
    assert f"promtool test rules {out}/tests/*.test.yml" in printed


def test_explain_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    path = example_config(tmp_path)
    # `true` exits at once without reading: every write of ours meets a closed pipe
    pipe = subprocess.Popen(f"{sys.executable} -m crmpulse alerts --config {path} --explain | true; "
                            f"echo ${{PIPESTATUS[0]}}", shell=True, executable="/bin/bash",
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**__import__("os").environ, "CRMPULSE_CLIENT_SECRET": "x"})
    out, err = pipe.communicate(timeout=60)
    assert err == "", err  # no "internal error: BrokenPipeError", no traceback
    assert out.strip() == "141"  # what a tool killed by SIGPIPE exits with


def test_no_placeholder_is_left_unrendered_in_any_annotation(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """``[[name|format]]`` placeholders become templates in both engines; a placeholder
    without a format, or a typo, would reach on-call as literal brackets."""
    from crmpulse import load_config
    from crmpulse.alerts.rules import build_rules

    monkeypatch.setenv("CRMPULSE_CLIENT_SECRET", "x")
    rules = build_rules(load_config(example_config(tmp_path)))
    assert {a.name for a in rules.alerts} == set(ALERT_NAMES)
    for alert in rules.alerts:
        for flavour in ("prometheus", "grafana"):
            for key, text in alert.annotations(flavour).items():
                assert "[[" not in text and "]]" not in text, (alert.name, flavour, key, text)

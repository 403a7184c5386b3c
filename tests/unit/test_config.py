"""The config model: valid files load; every kind of bad input gets its exact, located message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from crmpulse import ConfigError, load_config
from crmpulse.app.cli import main
from tests.helpers import write_config

VALID = """
target:
  name: shop_crm
  base_url: https://crm.example.com/
  auth:
    type: oauth2_client_credentials
    client_id: crmpulse
    client_secret: ${env:TEST_CLIENT_SECRET}
slos:
  - name: availability
    kind: availability
    objective: "99.9%"
  - name: latency
    kind: latency
    objective: 99
    threshold: 800ms
    window: 7d
probes:
  checks:
    - name: read
      kind: http
      operation: list_accounts
      interval: 1m30s
      timeout: 250ms
"""


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_CLIENT_SECRET", "s3cr3t-value")


def test_a_valid_config_loads_with_units_converted(tmp_path: Path) -> None:
    loaded = load_config(write_config(tmp_path, VALID))
    config = loaded.config
    assert config.target.base_url == "https://crm.example.com"
    assert config.slos[0].objective == 99.9
    assert config.slos[0].window == 30 * 86400
    assert config.slos[1].threshold == 0.8
    assert config.slos[1].window == 7 * 86400
    assert config.probes.checks[0].interval == 90.0
    assert config.probes.checks[0].timeout == 0.25
    assert loaded.profile.name == "sandbox"


def test_secret_references_resolve_but_never_print(tmp_path: Path) -> None:
    loaded = load_config(write_config(tmp_path, VALID))
    secret = loaded.config.target.auth.client_secret  # type: ignore[union-attr]
    assert secret.get_secret_value() == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(loaded.config)
    assert "s3cr3t-value" not in str(loaded.config.model_dump())


def test_file_references_are_read_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("from-a-file\n")
    path = write_config(tmp_path, VALID.replace("${env:TEST_CLIENT_SECRET}", "${file:secret.txt}"))
    secret = load_config(path).config.target.auth.client_secret  # type: ignore[union-attr]
    assert secret.get_secret_value() == "from-a-file"


# (what to replace in VALID, by what) -> the exact problem line expected
BAD = [
    pytest.param("timeout: 250ms", "timeout: fast",
                 'crmpulse.yaml:23 probes.checks[0].timeout: expected a duration like "30s", got "fast"',
                 id="bad-duration"),
    pytest.param("timeout: 250ms", "timeout: 5",
                 'crmpulse.yaml:23 probes.checks[0].timeout: expected a duration like "30s", got 5 (int)',
                 id="duration-without-unit"),
    pytest.param('objective: "99.9%"', "objective: 100",
                 "crmpulse.yaml:11 slos[0].objective: expected a percentage above 0 and below 100, got 100",
                 id="objective-100"),
    pytest.param('objective: "99.9%"', "objective: high",
                 'crmpulse.yaml:11 slos[0].objective: expected a percentage like 99.9, got "high"',
                 id="objective-words"),
    pytest.param("    threshold: 800ms\n", "",
                 'crmpulse.yaml:12 slos[1].threshold: a latency SLO needs a threshold like "800ms"',
                 id="latency-without-threshold"),
    pytest.param("  name: shop_crm", "  name: Shop CRM",
                 'crmpulse.yaml:2 target.name: expected a name of lowercase letters, digits and "_" '
                 'starting with a letter (it becomes a metric label and a PromQL selector), got "Shop CRM"',
                 id="name-not-a-label"),
    pytest.param("      interval: 1m30s", "      intervall: 1m30s",
                 'crmpulse.yaml:22 probes.checks[0].intervall: unknown key (did you mean "interval"?)',
                 id="typo-key"),
    pytest.param("  base_url: https://crm.example.com/", "  base_url: crm.example.com",
                 'crmpulse.yaml:3 target.base_url: expected an http(s) URL like "https://crm.example.com", '
                 'got "crm.example.com"', id="url-without-scheme"),
    pytest.param("${env:TEST_CLIENT_SECRET}", "${env:NOT_SET_ANYWHERE}",
                 "crmpulse.yaml:7 target.auth.client_secret: "
                 "environment variable NOT_SET_ANYWHERE is not set",
                 id="unset-env"),
    pytest.param("${env:TEST_CLIENT_SECRET}", "${vault:x}",
                 'crmpulse.yaml:7 target.auth.client_secret: unknown reference "${vault:...}" '
                 "(expected ${env:NAME} or ${file:PATH})", id="unknown-reference"),
    pytest.param("${env:TEST_CLIENT_SECRET}", "hunter2",
                 "crmpulse.yaml:7 target.auth.client_secret: expected a reference like ${env:NAME} or "
                 "${file:PATH}: secrets are never written in the file, which ends up in git and in tickets",
                 id="literal-secret"),
    pytest.param("type: oauth2_client_credentials", "type: kerberos",
                 "crmpulse.yaml:5 target.auth.type: expected one of 'none', 'basic', 'bearer', 'api_key', "
                 "'oauth2_client_credentials', 'oauth2_password', got \"kerberos\"", id="unknown-auth"),
    pytest.param("      interval: 1m30s", "      interval: 1m30s\n      interval: 1m",
                 "crmpulse.yaml:23 probes.checks[0].interval: key appears twice", id="duplicate-key"),
    pytest.param("operation: list_accounts", "operation: list_acounts",
                 'crmpulse.yaml:21 probes.checks[0].operation: expected an operation of profile sandbox, '
                 'got "list_acounts" (did you mean "list_accounts"?)',
                 id="unknown-operation"),
    pytest.param("timeout: 250ms", "timeout: 5m",
                 "crmpulse.yaml:23 probes.checks[0].timeout: expected a timeout no longer than the interval",
                 id="timeout-over-interval"),
    pytest.param("    window: 7d", "    window: 7d\n    colour: red",
                 "crmpulse.yaml:17 slos[1].colour: unknown key (expected one of: checks, description, kind, "
                 "name, objective, pairs, threshold, window)", id="unknown-key"),
    pytest.param("slos:", "profile: ./missing-profile.yaml\nslos:",
                 'crmpulse.yaml:8 profile: expected a built-in profile (sandbox) or a profile file, '
                 'got "./missing-profile.yaml" (not found)', id="missing-profile"),
    pytest.param("  - name: latency", "  - name: availability",
                 'crmpulse.yaml:12 slos[1].name: name "availability" is used twice', id="duplicate-name"),
    pytest.param("probes:", "probes: [1, 2\n",
                 "crmpulse.yaml:18: invalid YAML: while parsing a flow sequence (line 17): "
                 "expected ',' or ']', but got '<stream end>'",
                 id="malformed-yaml"),
]


@pytest.mark.parametrize(("old", "new", "expected"), BAD)
def test_bad_configs_get_exact_located_messages(tmp_path: Path, old: str, new: str,
                                               expected: str) -> None:
    assert old in VALID
    text = VALID.replace(old, new, 1)
    if "probes: [1, 2" in new:
        text = text[: text.index("probes: [1, 2") + len("probes: [1, 2\n")]
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    messages = [str(p).replace(str(tmp_path) + "/", "") for p in caught.value.problems]
    assert messages == [expected]


def test_every_problem_is_reported_together(tmp_path: Path) -> None:
    text = (VALID.replace("timeout: 250ms", "timeout: fast")
            .replace('objective: "99.9%"', "objective: 120")
            .replace("  name: shop_crm", "  name: shop_crm\n  colour: red"))
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path, text))
    keys = [p.key for p in caught.value.problems]
    assert keys == ["target.colour", "slos[0].objective", "probes.checks[0].timeout"]


def test_a_resolved_secret_is_never_echoed_in_an_error(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_URL", "not a url with password hunter2")
    path = write_config(tmp_path, VALID.replace("https://crm.example.com/", "${env:TEST_URL}"))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "hunter2" not in str(caught.value)
    assert "target.base_url" in str(caught.value)


def test_check_config_exits_0_when_valid_and_2_with_one_line_per_problem(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write_config(tmp_path, VALID, "good.yaml")
    assert main(["check-config", str(good)]) == 0
    assert "valid" in capsys.readouterr().out
    bad = write_config(tmp_path, VALID.replace("timeout: 250ms", "timeout: fast")
                       .replace("objective: 99\n", "objective: 0\n"), "bad.yaml")
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == "crmpulse: 2 problems found"
    assert all(line.startswith(f"{bad}:") for line in err[:-1])


@pytest.mark.parametrize("content", ["", "[1, 2]", ": :", "target: 5", "\x00\x01"])
def test_check_config_never_shows_a_traceback(tmp_path: Path, content: str) -> None:
    path = tmp_path / "weird.yaml"
    path.write_text(content)
    run = subprocess.run([sys.executable, "-m", "crmpulse", "check-config", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr + run.stdout
    assert str(path) in run.stderr


def test_check_config_on_a_missing_file_says_so(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(tmp_path / "nope.yaml")]) == 2
    assert f"{tmp_path / 'nope.yaml'}: file not found" in capsys.readouterr().err


def test_a_user_profile_file_is_validated_with_its_own_locations(tmp_path: Path) -> None:
    (tmp_path / "mycrm.yaml").write_text(
        "name: mycrm\noperations:\n  get_contact:\n    path: /c/{{ id }}\n    methd: GET\n")
    path = write_config(tmp_path, VALID.replace("slos:", "profile: mycrm.yaml\nslos:", 1))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    messages = [str(p).replace(str(tmp_path) + "/", "") for p in caught.value.problems]
    assert 'mycrm.yaml:5 operations.get_contact.methd: unknown key (did you mean "method"?)' in messages
    assert "mycrm.yaml:2 operations: required operation create_contact is missing" in messages


def test_the_starter_config_from_init_is_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMPULSE_CLIENT_SECRET", "sandbox-secret")
    target = tmp_path / "crmpulse.yaml"
    assert main(["init", str(target)]) == 0
    assert main(["init", str(target)]) == 2  # never overwrites without --force
    loaded = load_config(target)
    assert loaded.config.target.name == "sandbox"
    assert {c.kind for c in loaded.config.probes.checks} == {"http", "journey", "protection"}

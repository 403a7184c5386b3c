"""Credentials go only to the origins configured for them, whoever asks and whatever a CRM answers.

A scraper naming another port on the CRM's host, a profile with an absolute URL, a
CRM whose pagination link points elsewhere, a load test told to hit a host outside
its rails: each is refused before anything is sent, and a recording server on the
other origin shows that nothing reached it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from crmpulse import AsyncClient, Client, ConfigError, load_config
from tests.badservers import Recorder
from tests.helpers import ExporterProcess, SandboxProcess, parse_metrics, sample, write_config

SECRETS = {"T_CLIENT_SECRET": "sandbox-secret", "T_PASSWORD": "sandbox-password",
           "T_TENANT_KEY": "tenant-key-31337"}

CONFIG = """
target:
  name: sandbox
  base_url: {url}
  headers: {{X-Tenant-Key: "${{env:T_TENANT_KEY}}"}}
  auth: {{type: oauth2_password, client_id: crmpulse, client_secret: "${{env:T_CLIENT_SECRET}}",
         username: rep@sandbox.example, password: "${{env:T_PASSWORD}}"}}
probes:
{extra}
  checks:
    - {{name: api_read, kind: http, operation: list_accounts, interval: 1m, timeout: 5s}}
    - {{name: open_read, kind: http, operation: list_accounts, interval: 1m, timeout: 5s, any_target: true}}
"""


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


def exporter_for(tmp_path: Path, url: str, extra: str = "") -> ExporterProcess:
    return ExporterProcess(write_config(tmp_path, CONFIG.format(url=url, extra=extra)), env=SECRETS)


def test_probe_of_another_port_on_the_crm_host_is_refused_and_nothing_is_sent(
        tmp_path: Path, crm: SandboxProcess, recorder: Recorder) -> None:
    exporter = exporter_for(tmp_path, crm.url)
    try:
        response = httpx.get(exporter.url + "/probe", params={"target": recorder.url + "/x",
                                                              "module": "api_read"})
    finally:
        exporter.stop()
    assert response.status_code == 403
    assert response.text == (
        f"target origin {recorder.url} is not configured for module api_read's credentials: add it "
        "to probes.probe_hosts to probe it with them, or set any_target: true on the module to probe "
        "any target without credentials\n")
    assert recorder.connections == 0


def test_an_origin_listed_in_probe_hosts_gets_the_credentials(
        tmp_path: Path, crm: SandboxProcess, recorder: Recorder) -> None:
    exporter = exporter_for(tmp_path, crm.url, f"  probe_hosts: ['{recorder.url}']")
    try:
        response = httpx.get(exporter.url + "/probe", params={"target": recorder.url, "module": "api_read"})
    finally:
        exporter.stop()
    assert response.status_code == 200
    assert [(m, p) for m, p, _, _ in recorder.seen] == [("POST", "/oauth/token")]
    assert b"password=sandbox-password" in recorder.seen[0][3]


def test_an_any_target_module_probes_another_origin_without_any_credentials(
        tmp_path: Path, crm: SandboxProcess, recorder: Recorder) -> None:
    exporter = exporter_for(tmp_path, crm.url)
    try:
        response = httpx.get(exporter.url + "/probe", params={"target": recorder.url, "module": "open_read"})
    finally:
        exporter.stop()
    assert response.status_code == 200
    assert sample(parse_metrics(response.text), "probe_success") == 1
    assert [(m, p) for m, p, _, _ in recorder.seen] == [("GET", "/api/v1/accounts?per_page=50")]
    headers = {k.lower() for k in recorder.seen[0][2]}
    assert "authorization" not in headers and "x-tenant-key" not in headers
    for secret in SECRETS.values():
        assert secret not in recorder.text()


def test_the_same_module_on_the_configured_target_still_sends_credentials(
        tmp_path: Path, crm: SandboxProcess) -> None:
    exporter = exporter_for(tmp_path, crm.url)
    try:
        response = httpx.get(exporter.url + "/probe", params={"target": crm.url, "module": "open_read"})
    finally:
        exporter.stop()
    assert sample(parse_metrics(response.text), "probe_success") == 1  # the sandbox needs a token


LINKED = """
  list_linked:
    path: /api/v1/linked
    paginate: {style: link, items: $.data, next: $.next}
"""


def linked_config(tmp_path: Path, crm_url: str) -> Path:
    profile = (Path(__file__).parents[2] / "crmpulse" / "profiles" / "sandbox.yaml").read_text()
    (tmp_path / "linked.yaml").write_text(profile.replace("operations:\n", "operations:" + LINKED, 1))
    return write_config(tmp_path, f"""
        target:
          name: fake
          base_url: {crm_url}
          auth: {{type: bearer, token: "${{env:T_CLIENT_SECRET}}"}}
        profile: linked.yaml
        """)


def test_a_pagination_link_to_another_origin_is_not_followed_with_credentials_by_either_client(
        tmp_path: Path, recorder: Recorder) -> None:
    crm = Recorder(body=f'{{"data": [1], "next": "{recorder.url}/steal"}}'.encode())
    try:
        loaded = load_config(linked_config(tmp_path, crm.url))
        with Client(loaded) as client:
            sync_result = client.call("list_linked", max_pages=3)

        async def run() -> object:
            async with AsyncClient(loaded) as client:
                return await client.call("list_linked", max_pages=3)

        async_result = asyncio.run(run())
    finally:
        crm.close()
    expected = (f"list_linked: not sent: it would carry target fake's credentials to "
                f"{recorder.url}, and they go only to {crm.url}")
    for result in (sync_result, async_result):
        assert (result.ok, result.reason, result.message) == (False, "assertion", expected)  # type: ignore[attr-defined]
    assert recorder.connections == 0


def test_an_absolute_url_with_credentials_to_another_origin_is_a_config_error(tmp_path: Path) -> None:
    profile = (Path(__file__).parents[2] / "crmpulse" / "profiles" / "sandbox.yaml").read_text()
    (tmp_path / "abs.yaml").write_text(profile.replace(
        "operations:\n", "operations:\n  export_all:\n    path: http://127.0.0.1:9/export\n", 1))
    path = write_config(tmp_path, """
        target:
          name: shop
          base_url: http://127.0.0.1:8085
          auth: {type: bearer, token: "${env:T_CLIENT_SECRET}"}
        profile: abs.yaml
        """)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:5 profile: operation export_all sends target shop's credentials to http://127.0.0.1:9, "
        "which is not an origin configured for them (http://127.0.0.1:8085): give it auth: false, or "
        "reach that API as a system of its own"]


def abs_url_loadtest_config(tmp_path: Path, crm_url: str, other: str, hosts: str) -> Path:
    profile = (Path(__file__).parents[2] / "crmpulse" / "profiles" / "sandbox.yaml").read_text()
    (tmp_path / "abs.yaml").write_text(profile.replace(
        "operations:\n", f"operations:\n  export_all:\n    path: {other}/export\n    auth: false\n", 1))
    return write_config(tmp_path, f"""
        target:
          name: shop
          base_url: {crm_url}
          auth: {{type: bearer, token: "${{env:T_CLIENT_SECRET}}"}}
          safety: {{allow_loadtest: true, allowed_hosts: [{hosts}]}}
        profile: abs.yaml
        loadtest:
          shape: {{kind: ramp, users: 2, duration: 10s}}
        """)


def test_the_dry_run_lists_hosts_of_absolute_urls_and_refuses_one_outside_allowed_hosts(
        tmp_path: Path, recorder: Recorder) -> None:
    other = recorder.url.replace("127.0.0.1", "localhost")
    path = abs_url_loadtest_config(tmp_path, "http://127.0.0.1:8085", other, "127.0.0.1")
    run = subprocess.run([sys.executable, "-m", "crmpulse", "loadtest", "--config", str(path), "--dry-run"],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, **SECRETS})
    assert run.returncode == 2
    assert "  hosts it will hit: 127.0.0.1, localhost\n" in run.stdout
    assert run.stderr == ("crmpulse: refusing to run: host localhost is not in "
                          "target.safety.allowed_hosts (127.0.0.1)\n")
    assert recorder.connections == 0


def test_each_request_outside_allowed_hosts_is_refused_whatever_its_url(
        tmp_path: Path, recorder: Recorder) -> None:
    other = recorder.url.replace("127.0.0.1", "localhost")
    loaded = load_config(abs_url_loadtest_config(tmp_path, "http://127.0.0.1:8085", other,
                                                 "127.0.0.1, localhost"))
    with Client(loaded, allowed_hosts=["127.0.0.1"]) as client:
        result = client.call("export_all")
    assert (result.ok, result.reason, result.message) == (
        False, "assertion", "export_all: not sent: host localhost is not in "
        "target.safety.allowed_hosts (127.0.0.1)")
    assert recorder.connections == 0


# -- named credentials and instance URLs ----------------------------------------------------

NAMED = """
credentials:
  session:
    type: operation
    operation: session_login
    token: $.access_token
operations:
  session_login: {method: POST, path: /oauth/token, auth: false, json: {grant_type: client_credentials,
          client_id: crmpulse, client_secret: "{{ secret }}"}}
  export_named: {path: "http://127.0.0.1:{{ port }}/export", auth: session}
"""


def named_config(tmp_path: Path, crm_url: str, extra_operation: str = "") -> Path:
    profile = (Path(__file__).parents[2] / "crmpulse" / "profiles" / "sandbox.yaml").read_text()
    head, _, rest = profile.partition("operations:\n")
    credentials, _, operations = NAMED.partition("operations:\n")
    (tmp_path / "named.yaml").write_text(head + credentials + "operations:\n" + operations
                                         + extra_operation + rest)
    return write_config(tmp_path, f"""
        target:
          name: shop
          base_url: {crm_url}
          auth: {{type: bearer, token: "${{env:T_CLIENT_SECRET}}"}}
          credentials:
            client: {{type: oauth2_client_credentials, client_id: crmpulse,
                     client_secret: "${{env:T_CLIENT_SECRET}}", token_url: /oauth/token}}
          variables: {{secret: "${{env:T_CLIENT_SECRET}}"}}
        profile: named.yaml
        """)


def test_a_named_credential_to_another_origin_in_the_profile_is_a_config_error(tmp_path: Path) -> None:
    path = named_config(tmp_path, "http://127.0.0.1:8085",
                        "  export_client: {path: 'http://127.0.0.1:9/export', auth: client}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:9 profile: operation export_client sends target shop's credentials to "
        "http://127.0.0.1:9, which is not an origin configured for them (http://127.0.0.1:8085): give it "
        "auth: false, or reach that API as a system of its own"]


def test_a_named_credential_is_never_sent_to_an_origin_a_variable_names(
        tmp_path: Path, crm: SandboxProcess, recorder: Recorder) -> None:
    with Client(load_config(named_config(tmp_path, crm.url))) as client:
        result = client.call("export_named", port=recorder.port)
        session = client.session.credentials["session"]
        token = session.headers().get("Authorization", "")
    assert (result.ok, result.reason) == (False, "assertion")
    assert result.message == (f"export_named: not sent: it would carry target shop's credentials to "
                              f"{recorder.url}, and they go only to {crm.url}")
    assert token.startswith("Bearer ")  # the token was fetched from the CRM ...
    assert recorder.connections == 0     # ... and went nowhere else


def test_an_unknown_credential_name_is_a_config_error_naming_those_defined(tmp_path: Path) -> None:
    path = named_config(tmp_path, "http://127.0.0.1:8085",
                        "  whoami_jwt: {path: /api/v1/me, auth: jwt}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:5 target.credentials: operation whoami_jwt of profile sandbox is sent with credential "
        '"jwt", which neither target.credentials nor the profile defines (defined: client, session)']


def test_an_instance_url_on_another_origin_is_refused_and_nothing_is_sent_there(
        tmp_path: Path, recorder: Recorder) -> None:
    token_server = Recorder(body=json.dumps({"access_token": "tok-" + "x" * 20,
                                             "instance_url": recorder.url}).encode())
    try:
        profile = (Path(__file__).parents[2] / "crmpulse" / "profiles" / "sandbox.yaml").read_text()
        (tmp_path / "inst.yaml").write_text(profile.replace("operations:\n",
                                                            "instance_url: $.instance_url\noperations:\n", 1))
        path = write_config(tmp_path, f"""
            target:
              name: shop
              base_url: {token_server.url}
              auth: {{type: oauth2_client_credentials, client_id: crmpulse,
                     client_secret: "${{env:T_CLIENT_SECRET}}"}}
            profile: inst.yaml
            """)
        with Client(load_config(path)) as client:
            result = client.call("whoami")
    finally:
        token_server.close()
    assert (result.ok, result.reason) == (False, "assertion")
    assert result.message == (f"whoami: not used: the token response names instance {recorder.url}, "
                              f"and target shop's credentials go only to {token_server.url} (set "
                              "target.base_url to the instance's URL)")
    assert [seen[1] for seen in token_server.seen] == ["/oauth/token"]
    assert recorder.connections == 0


def test_an_instance_url_on_the_targets_origin_moves_every_later_request_there(
        tmp_path: Path, crm: SandboxProcess) -> None:
    token_server = Recorder(body=json.dumps({"access_token": crm.token(), "expires_in": 600,
                                             "instance_url": crm.url}).encode())
    try:
        profile = (Path(__file__).parents[2] / "crmpulse" / "profiles" / "sandbox.yaml").read_text()
        (tmp_path / "inst.yaml").write_text(profile.replace("operations:\n",
                                                            "instance_url: $.instance_url\noperations:\n", 1))
        path = write_config(tmp_path, f"""
            target:
              name: shop
              base_url: {crm.url}
              auth: {{type: oauth2_client_credentials, client_id: crmpulse,
                     client_secret: "${{env:T_CLIENT_SECRET}}", token_url: {token_server.url}/token}}
            profile: inst.yaml
            """)
        with Client(load_config(path)) as client:
            before = crm.stats()["requests"]
            result = client.call("whoami")
            assert client.session.base_url == crm.url
    finally:
        token_server.close()
    assert result.ok, result.message
    assert crm.stats()["requests"] - before == 1
    assert [seen[1] for seen in token_server.seen] == ["/token"]


def test_an_any_target_probe_fetches_no_named_credential_and_sends_nothing_secret(
        tmp_path: Path, crm: SandboxProcess, recorder: Recorder) -> None:
    path = named_config(tmp_path, crm.url, "  whoami_session: {path: /api/v1/me, auth: session}\n")
    path.write_text(path.read_text() + textwrap.dedent("""
        probes:
          checks:
            - {name: open_session, kind: http, operation: whoami_session, interval: 1m, timeout: 5s,
               any_target: true}
        """))
    exporter = ExporterProcess(path, env=SECRETS)
    try:
        elsewhere = httpx.get(exporter.url + "/probe", params={"target": recorder.url, "module": "open_session"})
        home = httpx.get(exporter.url + "/probe", params={"target": crm.url, "module": "open_session"})
    finally:
        exporter.stop()
    assert sample(parse_metrics(elsewhere.text), "probe_success") == 0
    assert recorder.connections == 0  # no token fetch, no request: the secret in variables stays home
    assert sample(parse_metrics(home.text), "probe_success") == 1

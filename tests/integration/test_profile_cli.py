"""`crmpulse call` against real servers: what a failing CRM said, masked and bounded; NAME=VALUE typing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from crmpulse.app.cli import _typed, main
from tests.badservers import Recorder
from tests.helpers import SandboxProcess, write_config

SANDBOX = (Path(__file__).parents[2] / "crmpulse" / "profiles" / "sandbox.yaml").read_text()


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_SECRET", "sandbox-secret")


def config_for(tmp_path: Path, url: str, profile: str = "sandbox") -> Path:
    return write_config(tmp_path, f"""
        target:
          name: shop
          base_url: {url}
          auth: {{type: oauth2_client_credentials, client_id: crmpulse, client_secret: "${{env:T_SECRET}}",
                 token_url: {url}/oauth/token}}
        profile: {profile}
        """)


@pytest.mark.parametrize(("text", "value"), [
    ("12000", 12000), ("2.5", 2.5), ("true", True), ("null", None), ('["a","b"]', ["a", "b"]),
    ('{"k": 1}', {"k": 1}), ('"123"', "123"), ("2030-01-31", "2030-01-31"), ("01234", "01234"),
    ("yes", "yes"), ("0x1F", "0x1F"), ("NaN", "NaN"), ("", ""), ("smith", "smith"), ("[1,", "[1,"),
    ("[" * 100_000, "[" * 100_000),
])
def test_a_value_that_is_json_is_that_json_and_anything_else_is_text(text: str, value: object) -> None:
    assert _typed(text) == value
    assert type(_typed(text)) is type(value)


def test_a_date_argument_stays_text_and_reaches_the_crm(tmp_path: Path, crm: SandboxProcess,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "dated.yaml").write_text(SANDBOX.replace(
        '      stage: "{{ stage? }}"\n      account_id: "{{ account_id? }}"\n',
        '      stage: "{{ stage? }}"\n      close_date: "{{ closed_on? }}"\n      account_id: "{{ account_id? }}"\n', 1))
    path = config_for(tmp_path, crm.url, "dated.yaml")
    code = main(["call", "-c", str(path), "--keep", "create_deal", "name=Dated", "amount=12000",
                 "closed_on=2030-01-31"])
    out = capsys.readouterr().out
    assert code == 0, out
    deal_id = json.loads(out[out.index("{"):])["id"]
    token = crm.token()
    deal = httpx.get(f"{crm.url}/api/v1/deals/{deal_id}", headers={"Authorization": f"Bearer {token}"}).json()
    httpx.delete(f"{crm.url}/api/v1/deals/{deal_id}", headers={"Authorization": f"Bearer {token}"})
    assert (deal["close_date"], deal["amount"]) == ("2030-01-31", 12000)


def test_a_failed_call_shows_what_the_crm_answered(tmp_path: Path, crm: SandboxProcess,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["call", "-c", str(config_for(tmp_path, crm.url)), "get_contact", "id=con_missing"])
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert out[0].startswith("get_contact: FAILED status 404 in ")
    assert out[1] == "  get_contact: expected status 200, got 404"
    assert out[2].startswith('  the CRM answered: {"error":"not_found"'), out


@pytest.fixture
def echo() -> Iterator[Recorder]:
    """A CRM whose error bodies echo a secret, escape sequences, and go on for 100 KB."""
    body = (b'{"error": "bad token sandbox-secret \x1b[31mred\x1b[0m", "pad": "' + b"x" * 100_000 + b'"}')
    server = Recorder(status=400, body=body)
    yield server
    server.close()


def test_an_error_body_is_masked_escaped_and_cut_at_2000_characters(tmp_path: Path, echo: Recorder,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "noauth.yaml").write_text(SANDBOX.replace("operations:\n", "operations:\n  probe_me: "
                                                          "{path: /x, auth: false, expect: [200]}\n", 1))
    path = config_for(tmp_path, echo.url, "noauth.yaml")
    code = main(["call", "-c", str(path), "probe_me"])
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    answer = out[2]
    assert answer.startswith('  the CRM answered: {"error": "bad token **** \\x1b[31mred\\x1b[0m", "pad": "xxx')
    assert answer.endswith("... (100061 bytes in all)")
    assert len(answer) == len("  the CRM answered: ") + 2000 + len("... (100061 bytes in all)")
    assert "sandbox-secret" not in "\n".join(out) and "\x1b" not in "\n".join(out)

"""The published contract: what each journey, probe kind and sync mode calls, and check-config's
report of what a profile lacks for it."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from crmpulse import load_config
from crmpulse.app.cli import _journeys, main
from crmpulse.callers import check_journeys, contract_table, needs
from tests.helpers import write_config

DOCS = Path(__file__).parents[2] / "docs" / "profiles.md"
BEGIN, END = "<!-- contract:begin (generated: tests/unit/test_profile_contract.py) -->", "<!-- contract:end -->"


@dataclass
class FakeJourney:
    calls: dict[str, frozenset[str]]
    optional: frozenset[str] = field(default_factory=frozenset)


JOURNEYS = {
    "buyer": FakeJourney({"authenticate": frozenset(), "create_deal": frozenset({"name", "amount", "tags"}),
                          "pipeline_report": frozenset(), "get_thing": frozenset({"id"})},
                         frozenset({"pipeline_report"})),
    "idle": FakeJourney({"list_contacts": frozenset({"page_size"})}),
}

PROFILE = """\
name: lean
operations:
  create_contact: {method: POST, path: /c, json: {email: "{{ email }}"}}
  get_contact: {path: "/c/{{ id }}"}
  update_contact: {method: PATCH, path: "/c/{{ id }}"}
  delete_contact: {method: DELETE, path: "/c/{{ id }}"}
  search_contacts: {path: /s, query: {q: "{{ q }}"}}
  list_contacts: {path: /c, query: {limit: "{{ limit }}"}}
  list_accounts: {path: /a}
  create_deal: {method: POST, path: /d, json: {name: "{{ name }}", owner: "{{ owner_id or team_id }}"}}
  log_activity: {method: POST, path: /x, json: {kind: "{{ kind }}"}}
"""


def loaded_for(tmp_path: Path, weights: str = "{buyer: 1, idle: 0}"):  # type: ignore[no-untyped-def]
    (tmp_path / "lean.yaml").write_text(PROFILE)
    return load_config(write_config(tmp_path, f"""
        target: {{name: shop, base_url: "http://127.0.0.1:8085", safety: {{allow_loadtest: true}}}}
        profile: lean.yaml
        loadtest:
          journeys: {weights}
        """))


def test_a_weighted_journeys_missing_operation_and_variables_are_problems_at_its_line(tmp_path: Path) -> None:
    loaded = loaded_for(tmp_path)
    problems, notes = check_journeys(loaded.config, loaded.profile, JOURNEYS, loaded.lines)
    assert [str(p).split(" ", 1)[1] for p in problems] == [
        "loadtest.journeys.buyer: journey buyer calls create_deal with amount, name, tags; the operation "
        'needs "owner_id" or "team_id" (define it in target.variables, or give it a fallback: '
        '"{{ owner_id or ... }}")',
        "loadtest.journeys.buyer: journey buyer calls get_thing, which profile lean does not define "
        "(add it, or set loadtest.journeys.buyer: 0)",
    ]
    assert all(str(p).startswith(f"{loaded.path}:4 ") for p in problems)
    assert notes == ["journey buyer passes amount, tags to create_deal, which ignores them",
                     "journey buyer skips pipeline_report: profile lean does not define it"]


def test_a_journey_weighted_zero_is_not_checked_and_authenticate_needs_no_operation(tmp_path: Path) -> None:
    loaded = loaded_for(tmp_path, "{buyer: 0, idle: 2}")
    problems, _ = check_journeys(loaded.config, loaded.profile, JOURNEYS, loaded.lines)
    assert [p.message for p in problems] == [
        "journey idle calls list_contacts with page_size; the operation needs \"limit\" (define it in "
        'target.variables, or give it a fallback: "{{ limit or ... }}")']


def test_a_fallback_is_satisfied_by_any_of_its_names_or_a_literal() -> None:
    assert needs(["{{ a or b }}", "{{ c }}", "{{ d? }}", "{{ e or 5 }}"], {"b"}) == ["c"]
    assert needs(["{{ a or b }}"], set()) == ['a" or "b']


def test_check_config_reports_journey_problems_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = loaded_for(tmp_path, "{buyer: 1}")
    monkeypatch.setattr("crmpulse.app.cli._journeys", lambda: JOURNEYS)
    assert main(["check-config", str(loaded.path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == "crmpulse: 2 problems found"
    assert err[0].startswith(f"{loaded.path}:4 loadtest.journeys.buyer: journey buyer calls create_deal")


def test_the_built_in_profiles_serve_every_journey(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    journeys = _journeys()
    for name in ("sandbox", "salesforce", "hubspot", "dynamics365"):
        loaded = load_config(write_config(tmp_path, f"""
            target: {{name: shop, base_url: "http://127.0.0.1:8085", safety: {{allow_loadtest: true}}}}
            profile: {name}
            """))
        problems, _ = check_journeys(loaded.config, loaded.profile, journeys, loaded.lines)
        assert problems == [], name


def test_the_contract_table_in_docs_is_what_the_code_declares() -> None:
    """docs/profiles.md holds the generated table; regenerate it with `python -m tests.unit.test_profile_contract`."""
    text = DOCS.read_text()
    found = re.search(re.escape(BEGIN) + r"\n(.*?)" + re.escape(END), text, re.S)
    assert found, f"docs/profiles.md lacks the {BEGIN} ... {END} block"
    assert found.group(1) == contract_table(_journeys()), (
        "docs/profiles.md's contract table is stale: run `python -m tests.unit.test_profile_contract`")


def regenerate() -> None:
    text = DOCS.read_text()
    start, end = text.index(BEGIN) + len(BEGIN) + 1, text.index(END)
    DOCS.write_text(text[:start] + contract_table(_journeys()) + text[end:])


if __name__ == "__main__":
    os.environ.setdefault("LOCUST_SKIP_MONKEY_PATCH", "1")
    regenerate()

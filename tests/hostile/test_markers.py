"""Markers cannot collide: a CRM whose search matches prefixes or substrings lists other
records too, and the sweepers must delete only records carrying their marker exactly.

The reproduction from issue 12: pairs named `search` and `search_heartbeat`; with the old
markers (`crmpulse-<target>-<pair>`, `_` turned into `-`) the `search` pair's sweeper
listed and deleted `search_heartbeat`'s live heartbeat record.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from crmpulse.markers import (
    Marker,
    SweepTarget,
    carries,
    family_marker,
    markers_in,
    pair_marker,
    parse,
    run_marker,
    sweep,
)
from crmpulse.profile import OperationResult
from tests.helpers import ExporterProcess, SandboxProcess, write_config

ENV = {"CRMPULSE_CLIENT_SECRET": "sandbox-secret"}


@pytest.mark.parametrize(("text", "expected"), [
    ("crmpulse-shop-sync-search", Marker("sync", "shop", "search")),
    ("crmpulse-shop-sync-search_heartbeat", Marker("sync", "shop", "search_heartbeat")),
    ("crmpulse-shop_eu-lt-20261129t101500-3f9a1c0b7d2e", Marker("lt", "shop_eu", "20261129t101500-3f9a1c0b7d2e")),
    ("crmpulse-shop-lt", Marker("lt", "shop")),
    ("crmpulse-shop-sync-search-", None),
    ("crmpulse-shop-sync-search-heartbeat", None),  # the old shape of search_heartbeat's marker
    ("crmpulse-shop-search", None),
    ("xcrmpulse-shop-sync-search", None),
    ("crmpulse-shop-sync-search ", None),
    ("crmpulse-Shop-sync-search", None),
    ("crmpulse-shop-lt-20261129t101500", None),
    ("crmpulse-shop-lt-20261129t101500-3f9a1c0b7d2e-x", None),
    ("crmpulse-shop-sync-search\n", None),
])
def test_a_marker_parses_back_exactly_or_not_at_all(text: str, expected: Marker | None) -> None:
    assert parse(text) == expected
    if expected is not None:
        assert str(expected) == text


def test_no_pair_marker_is_another_pairs_marker_whatever_the_names() -> None:
    names = ["search", "search_heartbeat", "search_h", "s", "searchheartbeat", "heartbeat"]
    markers = {name: pair_marker("crm", name) for name in names}
    for a in names:
        for b in names:
            assert (markers[a] in markers_in({"tags": [str(markers[b])]})) == (a == b)


def test_two_runs_started_in_the_same_second_never_share_a_marker() -> None:
    assert len({run_marker("crm") for _ in range(2000)}) == 2000


def test_a_marker_inside_an_email_is_found_and_a_longer_token_is_not() -> None:
    run = run_marker("crm")
    assert markers_in({"email": f"ava.smith.3.{run}@crmpulse.example"}) == {run}
    assert markers_in({"email": "crmpulse-crm-sync-search-1a2b3c4d@crmpulse.example"}) == set()
    assert carries({"tags": [str(run)]}, family_marker("crm"))
    assert not carries({"tags": [str(run)]}, family_marker("crm_eu"))


class SubstringCRM:
    """A CRM whose list filter matches substrings of any field: the hostile search."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records

    def call(self, operation: str, max_pages: int = 1, **variables: Any) -> OperationResult:
        if operation == "list":
            needle = str(variables["q"])
            items = [r for r in self.records if needle in str(r)]
            return OperationResult(operation, 200, items=items)
        self.records = [r for r in self.records if r["id"] != variables["id"]]
        return OperationResult(operation, 204)


def test_the_sweep_deletes_only_exact_markers_from_a_substring_search() -> None:
    search, beat = pair_marker("crm", "search"), pair_marker("crm", "search_heartbeat")
    crm = SubstringCRM([{"id": "1", "tags": [str(search)]}, {"id": "2", "tags": [str(beat)]},
                        {"id": "3", "note": f"customer asked about {search}-like tags"},
                        {"id": "4", "tags": [str(search) + "x"]}])
    target = SweepTarget("search", "list", {"q": "{{ marker }}"}, "delete", {"id": "{{ id }}"},
                         search, lambda found: search in found)
    result = sweep(crm.call, target, {})
    assert (result.listed, result.matched, result.deleted) == (4, 1, 1)
    assert [r["id"] for r in crm.records] == ["2", "3", "4"]


PAIRS = """
probes:
  sync:
    - name: search
      mode: canary
      interval: 500ms
      sla: 5s
      sweep_after: 0s
      sweep_every: 1s
      create:
        operation: create_contact
        with: {first_name: Crmpulse, last_name: Canary, email: "{{ marker }}-{{ canary }}@crmpulse.example",
               tags: ["{{ marker }}"]}
      read:
        operation: search_contacts
        with: {email: "{{ email }}"}
        found: "$.data[0].id"
      sweep:
        operation: list_contacts
        with: {email_prefix: "{{ marker }}"}
"""
HEARTBEAT = """
    - name: search_heartbeat
      mode: heartbeat
      interval: 1s
      sla: 30s
      create:
        operation: create_contact
        with: {first_name: Crmpulse, last_name: Heartbeat, email: "{{ marker }}@crmpulse.example",
               tags: ["{{ marker }}"]}
      update:
        operation: update_contact
        with: {id: "{{ id }}", custom: {crmpulse_heartbeat: "{{ heartbeat }}"}}
      read:
        operation: search_contacts
        with: {tag: "{{ marker }}"}
        value: "$.data[0].custom.crmpulse_heartbeat"
      sweep:
        operation: list_contacts
        with: {email_prefix: "{{ marker }}"}
"""


def config(url: str, pairs: str) -> str:
    return f"""
target:
  name: sandbox
  base_url: {url}
  auth: {{type: oauth2_client_credentials, client_id: crmpulse, client_secret: "${{env:CRMPULSE_CLIENT_SECRET}}"}}
{pairs}
"""


def heartbeat_ids(crm: SandboxProcess) -> list[str]:
    response = httpx.get(crm.url + "/api/v1/contacts", params={
        "email_prefix": "crmpulse-sandbox-sync-search_heartbeat@", "limit": 50},
        headers={"Authorization": f"Bearer {crm.token()}"})
    return [r["id"] for r in response.json()["data"]]


@pytest.fixture
def exporters(crm: SandboxProcess) -> Iterator[list[ExporterProcess]]:
    started: list[ExporterProcess] = []
    yield started
    for exporter in started:
        exporter.stop()
    crm.reset()


def test_a_prefix_search_never_lets_pair_search_sweep_search_heartbeats_live_record(
        crm: SandboxProcess, tmp_path: Path, exporters: list[ExporterProcess]) -> None:
    both = write_config(tmp_path, config(crm.url, PAIRS + HEARTBEAT), "both.yaml")
    exporter = ExporterProcess(both, env=ENV)
    exporters.append(exporter)
    exporter.wait_for("crmpulse_sync_canaries_seen_total", 2, timeout=30, target="sandbox",
                      pair="search_heartbeat")
    [beat] = heartbeat_ids(crm)
    # pair `search` sweeps every second, every marked record older than 0 s: with
    # prefix matching it would take the heartbeat; with exact markers it never does
    start = time.monotonic()
    while time.monotonic() - start < 4:  # an invariant watched over four of its sweeps
        assert heartbeat_ids(crm) == [beat]
        time.sleep(0.25)
    # the one-off sweeps, with only pair `search` configured, leave it alone too
    only_search = write_config(tmp_path, config(crm.url, PAIRS), "search.yaml")
    swept = subprocess.run([sys.executable, "-m", "crmpulse", "sweep", "-c", str(only_search)],
                           capture_output=True, text=True, timeout=60, env={**os.environ, **ENV})
    assert swept.returncode == 0, swept.stdout + swept.stderr
    assert "sync pair search: listed" in swept.stdout
    probe = subprocess.run([sys.executable, "-m", "crmpulse", "probe", "--config", str(only_search),
                            "--sweep-only", "--sweep-older-than", "0s"],
                           capture_output=True, text=True, timeout=60, env={**os.environ, **ENV})
    assert probe.returncode == 0, probe.stdout + probe.stderr
    assert heartbeat_ids(crm) == [beat]

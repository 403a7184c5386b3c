"""Alerts deep-link dashboard panels by id: every id the contract names is that panel's id."""

from __future__ import annotations

from pathlib import Path

import pytest

from crmpulse import contract, load_config
from crmpulse.alerts.rules import build_rules
from crmpulse.dashboards.generate import build_all
from tests.helpers import write_config


def panels_of(dashboard: dict) -> dict[int, str]:
    out = {}
    for panel in dashboard["panels"]:
        out[panel["id"]] = panel["title"]
        for inner in panel.get("panels", []):
            out[inner["id"]] = inner["title"]
    return out


def test_every_panel_alerts_link_to_has_the_contracts_id_and_title() -> None:
    dashboards = {d["uid"]: d for d in build_all().values()}
    for anchor in contract.PANELS:
        assert panels_of(dashboards[anchor.dashboard]).get(anchor.id) == anchor.title, anchor
    ids = [p["id"] for d in dashboards.values() for p in d["panels"]]
    for d in dashboards.values():
        found = list(panels_of(d))
        assert len(found) == len(set(found)), d["uid"]  # anchored ids never meet layout ids
    assert ids


@pytest.fixture
def loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CRMPULSE_CLIENT_SECRET", "x")
    text = (Path(__file__).resolve().parents[2] / "crmpulse" / "starter.yaml").read_text()
    text += "\nalerting:\n  dashboard_url: https://grafana.example.com/\n"
    return load_config(write_config(tmp_path, text))


def test_each_alert_links_the_panel_of_what_fired_over_its_window(loaded) -> None:  # type: ignore[no-untyped-def]
    rules = build_rules(loaded)
    links = {(a.name, a.labels.get("slo")): a for a in rules.alerts}
    fast = links["CrmAvailabilityBurnRateFast", "availability"]
    url = fast.annotations("prometheus")["dashboard_url"]
    assert url.startswith("https://grafana.example.com/d/crmpulse-overview?orgId=1&viewPanel=101"
                          "&var-target=sandbox&var-slo=availability&from=")
    assert "vector((time() - 21600) * 1000)" in url  # the page's longest window, 6 h
    assert links["CrmLatencyBurnRateSlow", "latency"].panel == contract.PANEL_LATENCY
    assert links["CrmSyncStalled", None].panel == contract.PANEL_SYNC_LAG
    assert links["CrmProtectionBroken", None].panel == contract.PANEL_PROTECTIONS
    grafana = fast.annotations("grafana")["dashboard_url"]
    assert "{{ with $values.link_from }}{{ .Value | printf \"%.0f\" }}{{ end }}" in grafana
    assert all(a.panel in contract.PANELS for a in rules.alerts)

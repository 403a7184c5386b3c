"""Dashboard structure, and the committed JSON matching what the sources generate."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from crmpulse import contract
from crmpulse.dashboards.common import DASHBOARDS
from crmpulse.dashboards.generate import build_all

REPO = Path(__file__).resolve().parents[2]
BUILT = build_all()


def panels(dashboard: dict) -> list[dict]:
    return [p for p in dashboard["panels"]]


def test_there_are_five_dashboards_with_their_uids() -> None:
    assert {d["uid"] for d in BUILT.values()} == set(DASHBOARDS)


@pytest.mark.parametrize("area", sorted(BUILT))
def test_panel_ids_and_titles_are_unique_and_grid_positions_do_not_overlap(area: str) -> None:
    items = panels(BUILT[area])
    ids = [p["id"] for p in items]
    titles = [p["title"] for p in items]
    assert len(ids) == len(set(ids)) and len(titles) == len(set(titles))
    cells: set[tuple[int, int]] = set()
    for p in items:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine, f"{p['title']} overlaps another panel"
        cells |= mine


@pytest.mark.parametrize("area", sorted(BUILT))
def test_current_panel_types_and_datasource_by_uid(area: str) -> None:
    for p in panels(BUILT[area]):
        assert p["type"] in ("row", "timeseries", "stat", "table", "state-timeline"), p["type"]
        if p["type"] != "row":
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert p["targets"] and all(t["expr"] for t in p["targets"])
    names = [v["name"] for v in BUILT[area]["templating"]["list"]]
    assert names[:2] == ["datasource", "target"]


@pytest.mark.parametrize("area", sorted(BUILT))
def test_every_link_resolves_to_a_generated_dashboard_or_the_runbooks(area: str) -> None:
    for link in BUILT[area]["links"]:
        url = link["url"]
        if url.startswith("/d/"):
            assert url[3:] in DASHBOARDS
        else:
            assert url.endswith("/alerts/runbooks") and (REPO / "alerts" / "runbooks").is_dir()


def contract_names() -> set[str]:
    known = {m.series for m in contract.METRICS} | {m.bucket() for m in contract.METRICS} | \
        {m.count() for m in contract.METRICS} | {m.sum() for m in contract.METRICS}
    recorded = {r.name for r in contract.RECORDED if not r.name.endswith("_rate")}
    rates = {r.at(w) for r in contract.RECORDED if r.name.endswith("_rate")
             for w in ("5m", "30m", "1h", "2h", "6h", "1d", "3d")}
    return known | recorded | rates


def test_queries_use_only_contract_metrics_and_recorded_series() -> None:
    known = contract_names()
    seen = set()
    for area, dashboard in BUILT.items():
        queries = [t["expr"] for p in panels(dashboard) for t in p.get("targets", [])]
        queries += [v.get("query", "") for v in dashboard["templating"]["list"]]
        for query in queries:
            for name in re.findall(r"\b(crmpulse_[a-z0-9_:]+)", str(query)):
                assert name in known, f"{area}: {name} is not in the contract"
                seen.add(name)
    assert any(":" in name for name in seen), "the recorded SLO series must be checked too"


def test_a_second_build_with_another_config_uses_that_config() -> None:
    from crmpulse.config import Alerting, Config, Target

    def build(url: str) -> dict:
        config = Config(target=Target(name="crm", base_url="https://crm.example"),
                        alerting=Alerting(runbook_base_url=url))
        return build_all(config)["overview"]

    first, second = build("https://wiki.example/a"), build("https://wiki.example/b")
    assert [link["url"] for link in first["links"]][-1] == "https://wiki.example/a"
    assert [link["url"] for link in second["links"]][-1] == "https://wiki.example/b"


@pytest.mark.parametrize("area", sorted(BUILT))
def test_the_committed_json_is_what_the_sources_generate(area: str) -> None:
    committed = json.loads((REPO / "deploy" / "grafana" / "dashboards" / f"{area}.json").read_text())
    assert committed == BUILT[area], ("regenerate: crmpulse dashboards -c crmpulse/starter.yaml "
                                      "--out deploy/grafana/dashboards")

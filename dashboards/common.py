"""What every crmpulse dashboard shares: the datasource and template variables, panel
builders with queries taken from the metric contract, a grid layout that never
overlaps, and links between the dashboards and to the runbooks."""

from __future__ import annotations

from typing import Any

from grafanalib.core import (
    Dashboard,
    DashboardLink,
    GridPos,
    RowPanel,
    Stat,
    StateTimeline,
    Table,
    Target,
    Template,
    Templating,
    TimeSeries,
)

from crmpulse import contract as c

__all__ = ["DASHBOARDS", "DS", "SEL", "Layout", "dashboard", "stat", "table", "timeline",
           "timeseries"]

DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'target=~"$target"'
#: uid -> title of every crmpulse dashboard, for links (a test checks each resolves)
DASHBOARDS = {
    "crmpulse-overview": "CRM overview",
    "crmpulse-journeys": "CRM journeys",
    "crmpulse-synclag": "CRM sync lag",
    "crmpulse-loadtest": "CRM load tests",
    "crmpulse-exporter": "crmpulse exporter health",
}


def targets(*queries: tuple[str, str]) -> list[Target]:
    return [Target(expr=expr, legendFormat=legend, refId=chr(ord("A") + i), datasource=DS)
            for i, (expr, legend) in enumerate(queries)]


def timeseries(title: str, description: str, *queries: tuple[str, str], unit: str = "",
               stacked: bool = False, thresholds: list[dict[str, Any]] | None = None) -> TimeSeries:
    return TimeSeries(title=title, description=description, dataSource=DS, targets=targets(*queries),
                      unit=unit, stacking={"mode": "normal" if stacked else "none"},
                      thresholds=thresholds or [{"value": None, "color": "green"}],
                      legendDisplayMode="table", legendCalcs=["lastNotNull", "max"])


def stat(title: str, description: str, *queries: tuple[str, str], unit: str = "",
         decimals: int | None = None, thresholds: list[dict[str, Any]] | None = None) -> Stat:
    return Stat(title=title, description=description, dataSource=DS, targets=targets(*queries),
                format=unit, decimals=decimals, reduceCalc="lastNotNull", textMode="value_and_name",
                thresholdType="absolute",
                thresholds=thresholds or [{"value": None, "color": "green"}])


def timeline(title: str, description: str, *queries: tuple[str, str]) -> StateTimeline:
    return StateTimeline(
        title=title, description=description, dataSource=DS, targets=targets(*queries),
        mappings=[{"type": "value", "options": {
            "0": {"text": "failing", "color": "red"}, "1": {"text": "ok", "color": "green"}}}])


def table(title: str, description: str, *queries: tuple[str, str]) -> Table:
    panel = Table(title=title, description=description, dataSource=DS, targets=targets(*queries))
    for t in panel.targets:
        t.instant = True
        t.format = "table"
    return panel


class Layout:
    """Places panels left to right, wrapping at 24 columns; rows start on a new line."""

    def __init__(self) -> None:
        self.panels: list[Any] = []
        self.x = self.y = self.row_height = 0
        self.next_id = 1

    def row(self, title: str) -> None:
        self._newline()
        self._place(RowPanel(title=title), 24, 1)

    def add(self, panel: Any, width: int = 8, height: int = 8, anchor: c.Panel | None = None) -> None:
        """Place ``panel``; an ``anchor`` (a contract panel alerts deep-link to) fixes its id."""
        if self.x + width > 24:
            self._newline()
        if anchor is not None:
            assert panel.title == anchor.title, (panel.title, anchor.title)
        self._place(panel, width, height, anchor.id if anchor is not None else None)

    def _newline(self) -> None:
        self.y += self.row_height
        self.x = self.row_height = 0

    def _place(self, panel: Any, width: int, height: int, panel_id: int | None = None) -> None:
        panel.gridPos = GridPos(h=height, w=width, x=self.x, y=self.y)
        if panel_id is None:
            panel.id = self.next_id
            self.next_id += 1
        else:
            panel.id = panel_id
        self.panels.append(panel)
        self.x += width
        self.row_height = max(self.row_height, height)


def variables(*extra: str) -> Templating:
    items = [
        Template(name="datasource", label="Prometheus", query="prometheus", type="datasource",
                 default="crmpulse-prometheus"),
        Template(name="target", label="target", dataSource=DS, includeAll=True, multi=True,
                 query='label_values({__name__=~"crmpulse_checks_configured|crmpulse_loadtest_users"}, '
                       'target)',
                 default="$__all"),
    ]
    queries = {
        "check": 'label_values(crmpulse_check_runs_total{target=~"$target"}, check)',
        "pair": 'label_values(crmpulse_sync_canaries_created_total{target=~"$target"}, pair)',
        "slo": f'label_values({c.SLO_OBJECTIVE.series}{{target=~"$target"}}, slo)',
        "operation": 'label_values(crmpulse_loadtest_requests_total{target=~"$target",'
                     'kind="operation"}, name)',
    }
    for name in extra:
        items.append(Template(name=name, label=name, dataSource=DS, includeAll=True, multi=True,
                              query=queries[name], default="$__all", allValue=".*"))
    return Templating(list=items)


def dashboard(uid: str, layout: Layout, description: str, extra_variables: tuple[str, ...] = (),
              runbooks: str = "", annotations: Any = None) -> Dashboard:
    links = [DashboardLink(title=title, uri=f"/d/{other}", type="link", keepTime=True,
                           includeVars=True) for other, title in DASHBOARDS.items() if other != uid]
    if runbooks:
        links.append(DashboardLink(title="Runbooks", uri=runbooks, type="link", targetBlank=True))
    kwargs: dict[str, Any] = {}
    if annotations is not None:
        kwargs["annotations"] = annotations
    return Dashboard(title=DASHBOARDS[uid], uid=uid, description=description, panels=layout.panels,
                     templating=variables(*extra_variables), links=links, tags=["crmpulse"],
                     timezone="browser", refresh="30s", editable=True, **kwargs).auto_panel_ids()

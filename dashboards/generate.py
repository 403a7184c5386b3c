"""``crmpulse dashboards``: run every ``dashboards/*.dashboard.py`` and write Grafana JSON.

Like grafanalib's ``generate-dashboard``: each file defines ``dashboard``. The JSON is
what Grafana's dashboard provisioning reads (deploy/grafana/dashboards.yml).
"""

from __future__ import annotations

import json
import os
import runpy
from pathlib import Path
from typing import Any

from grafanalib._gen import DashboardEncoder

from crmpulse import LoadedConfig

__all__ = ["SOURCES", "build_all", "write_dashboards"]

SOURCES = sorted(Path(__file__).parent.glob("*.dashboard.py"))


def build_all(loaded: LoadedConfig | None = None) -> dict[str, dict[str, Any]]:
    """area -> dashboard JSON (as Python data), from every *.dashboard.py."""
    if loaded is not None:
        os.environ["CRMPULSE_RUNBOOKS"] = loaded.config.alerting.runbook_base_url
    out = {}
    for source in SOURCES:
        namespace = runpy.run_path(str(source))
        dashboard = namespace["dashboard"]
        out[source.name.removesuffix(".dashboard.py")] = json.loads(
            json.dumps(dashboard.to_json_data(), cls=DashboardEncoder, sort_keys=True))
    return out


def write_dashboards(loaded: LoadedConfig | None, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for area, data in build_all(loaded).items():
        path = out / f"{area}.json"
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written

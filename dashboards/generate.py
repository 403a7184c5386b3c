"""``crmpulse dashboards``: build every ``dashboards/*.dashboard.py`` and write Grafana JSON.

Like grafanalib's ``generate-dashboard``, one file per dashboard; each defines
``build(config) -> Dashboard`` and is handed the config as an argument, so two builds
with different configs in one process give two different results. The JSON is what
Grafana's dashboard provisioning reads (deploy/grafana/dashboards.yml).
"""

from __future__ import annotations

import json
import runpy
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grafanalib._gen import DashboardEncoder
from grafanalib.core import Dashboard

from crmpulse import LoadedConfig
from crmpulse.config import Config, Target

__all__ = ["SOURCES", "build_all", "builders", "write_dashboards"]

SOURCES = sorted(Path(__file__).parent.glob("*.dashboard.py"))


def builders() -> dict[str, Callable[[Config], Dashboard]]:
    """area -> the ``build`` function of ``<area>.dashboard.py`` (files are run once each)."""
    return {source.name.removesuffix(".dashboard.py"): runpy.run_path(str(source))["build"]
            for source in SOURCES}


def _defaults() -> Config:
    """What a dashboard reads when no config is given: every default of the model."""
    return Config(target=Target(name="crm", base_url="https://crm.example"))


def build_all(config: Config | None = None) -> dict[str, dict[str, Any]]:
    """area -> dashboard JSON (as Python data), from every *.dashboard.py."""
    config = config or _defaults()
    return {area: json.loads(json.dumps(build(config).to_json_data(), cls=DashboardEncoder,
                                        sort_keys=True))
            for area, build in builders().items()}


def write_dashboards(loaded: LoadedConfig | None, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for area, data in build_all(loaded.config if loaded else None).items():
        path = out / f"{area}.json"
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written

"""crmpulse's locustfile: assembles journeys, the load shape and the run object.

Run it through ``crmpulse loadtest --config crmpulse.yaml`` or with Locust directly:

    locust -f loadtests/locustfile.py --crmpulse-config crmpulse.yaml            # web UI
    locust -f loadtests/locustfile.py --crmpulse-config crmpulse.yaml --headless
    echo "crmpulse-config = crmpulse.yaml" > locust.conf && locust -f loadtests/locustfile.py

Nothing happens on import. crmpulse's options are declared the way Locust plugins
declare theirs (``events.init_command_line_parser``), so ``locust.conf``, ``LOCUST_*``
environment variables and the command line all work; in ``events.init`` a
:class:`~crmpulse.loadtests.loadrun.LoadRun` is built from ``environment.parsed_options``
and owns the rest: the journeys' weights (each journey below is a generic User class
whose weight the run sets from ``loadtest.journeys``), the shape's stages, pacing, the
monitor, gates, aborts, interruption, cleanup and the report.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from locust import events

try:
    import crmpulse  # noqa: F401
except ImportError:  # `locust -f loadtests/locustfile.py` in a clone that was never installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crmpulse.loadtests.journeys import JOURNEYS
from crmpulse.loadtests.loadrun import LoadRun, add_options
from crmpulse.loadtests.shapes import CRMShape

# Concrete User classes for Locust to discover, one per journey. Their weights are 1
# until the run object reads the config; journeys weighted 0 are dropped then.
JOURNEY_USERS: list[type[Any]] = []
for _name, _journey in JOURNEYS.items():
    _cls = type(_journey.__name__, (_journey,), {"abstract": False, "__module__": __name__})
    globals()[_cls.__name__] = _cls
    JOURNEY_USERS.append(_cls)
del _name, _journey, _cls


class CRMPulseShape(CRMShape):
    """The configured load shape; the run object gives it its stages."""

    abstract = False


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    add_options(parser)


@events.init.add_listener
def _init(environment: Any, **_: Any) -> None:
    LoadRun(environment, JOURNEY_USERS, environment.shape_class)

"""Bench helper: the CPU time this Locust process spent while the test ran, and its requests.

Loaded beside each locustfile (``-f locustfile.py,cpu_probe.py``), in every process of a
run; each appends ``pid cpu_seconds requests`` to $BENCH_CPU_FILE when the test stops.
CPU time per request does not depend on how much of the machine other work takes, which
the request rate does: on a shared machine it is the steadier measure of the same cost.
"""

import os
import time
from typing import Any

from locust import events

_state: dict[str, Any] = {"running": False, "requests": 0, "cpu": 0.0}


@events.test_start.add_listener
def _start(**_: Any) -> None:
    _state.update(running=True, requests=0, cpu=time.process_time())


@events.request.add_listener
def _request(request_type: str, **_: Any) -> None:
    if _state["running"] and request_type != "journey":  # journey rows are not requests
        _state["requests"] += 1


@events.test_stop.add_listener
def _stop(**_: Any) -> None:
    if not _state["running"]:
        return
    _state["running"] = False
    with open(os.environ["BENCH_CPU_FILE"], "a") as out:
        out.write(f"{os.getpid()} {time.process_time() - _state['cpu']:.6f} {_state['requests']}\n")

"""Peers for ``bench/loadtest_overhead.py --ablation``: plain Locust doing what the journey
layer asks of Locust beyond plain requests, one thing at a time, so the price Locust itself
charges for it is measured in the same run as the plain peer:

- ``PlainCatchResponse``: each request judged by hand (``catch_response=True``, then
  ``response.success()``, no redirects), as crmpulse reports the flow's verdict;
- ``PlainJourneyRow``: the plain requests plus one ``journey`` row per iteration in Locust's
  statistics, as crmpulse's ``journey_timer`` fires;
- ``PlainDirect``: the requests sent with geventhttpclient's ``urlopen`` under Locust's
  ``FastHttpSession`` and reported with ``events.request`` directly (Locust's documented way
  for custom clients), pricing Locust's request wrapper itself.

Which class runs is chosen by ``BENCH_PEER`` (one User class per run keeps the runs alike).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from locust import FastHttpUser, constant, task

PEER = os.environ.get("BENCH_PEER", "")


class _Peer(FastHttpUser):
    abstract = True
    wait_time = constant(0)


class PlainCatchResponse(_Peer):
    abstract = PEER != "catch"

    @task
    def handle_a_ticket(self) -> None:
        for method, path, name, body in REQUESTS:
            with self.client.request(method, path, name=name, json=body, catch_response=True,
                                     allow_redirects=False) as response:
                response.success()


class PlainJourneyRow(_Peer):
    abstract = PEER != "row"

    @task
    def handle_a_ticket(self) -> None:
        start = time.perf_counter()
        for method, path, name, body in REQUESTS:
            self.client.request(method, path, name=name, json=body)
        self.environment.events.request.fire(
            request_type="journey", name="support_agent", response_time=(time.perf_counter() - start) * 1000,
            response_length=0, exception=None, context={})


class PlainDirect(_Peer):
    abstract = PEER != "direct"

    def send(self, method: str, path: str, name: str, body: Any) -> None:
        headers = {"Accept-Encoding": "gzip, deflate, br"}
        payload = None
        if body is not None:
            payload, headers["Content-Type"] = json.dumps(body), "application/json"
        start = time.perf_counter()
        try:
            content, error = self.client.client.urlopen(f"{self.host}{path}", method=method, payload=payload,
                                                        headers=headers).content, None
        except Exception as exc:  # reported as Locust reports a connection error
            content, error = b"", exc
        self.environment.events.request.fire(
            request_type=method, name=name, response_time=(time.perf_counter() - start) * 1000,
            response_length=len(content or b""), exception=error, context={})

    @task
    def handle_a_ticket(self) -> None:
        for request in REQUESTS:
            self.send(*request)


#: the plain peer's three requests (bench/loadtest/plain_locustfile.py)
REQUESTS: list[tuple[str, str, str, Any]] = [
    ("GET", "/api/v1/search/contacts?q=smith", "search_contacts", None),
    ("GET", "/api/v1/contacts/c1", "get_contact", None),
    ("PATCH", "/api/v1/contacts/c1", "update_contact", {"title": "Buyer"}),
]

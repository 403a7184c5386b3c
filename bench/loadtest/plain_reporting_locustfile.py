"""Peers for ``bench/loadtest_overhead.py --ablation``: plain requests on thinner HTTP paths,
so what each layer costs is measured in the same run as the plain FastHttpUser peer:

- ``PlainDirect``: the requests sent with geventhttpclient's ``UserAgent.urlopen`` under
  Locust's ``FastHttpSession`` and reported with ``events.request`` directly (Locust's
  documented way for custom clients), pricing Locust's session and response wrappers;
- ``PlainRaw``: the requests sent with geventhttpclient's pooled ``HTTPClient`` itself,
  one per user, reported with ``events.request``: the path crmpulse's users take
  (loadtests/wire.py), so crmpulse's CPU per request less this peer's is what the
  journey layer itself costs (templates, the Session flow, judging, pacing, HDR).

Which class runs is chosen by ``BENCH_PEER`` (one User class per run keeps the runs alike).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

from geventhttpclient.client import HTTPClient
from locust import FastHttpUser, constant, task

PEER = os.environ.get("BENCH_PEER", "")


class _Peer(FastHttpUser):
    """Sends REQUESTS with ``fetch`` and reports each with ``events.request`` directly."""

    abstract = True
    wait_time = constant(0)
    #: (method, path, payload, headers) -> the response body; each peer defines it
    fetch: Callable[[str, str, str | None, dict[str, str]], bytes]

    @task
    def handle_a_ticket(self) -> None:
        for method, path, name, body in REQUESTS:
            headers = {"Accept-Encoding": "gzip, deflate, br"}
            payload = None
            if body is not None:
                payload, headers["Content-Type"] = json.dumps(body), "application/json"
            start = time.perf_counter()
            try:
                content, error = self.fetch(method, path, payload, headers), None
            except Exception as exc:  # reported as Locust reports a connection error
                content, error = b"", exc
            self.environment.events.request.fire(
                request_type=method, name=name, response_time=(time.perf_counter() - start) * 1000,
                response_length=len(content or b""), exception=error, context={})


class PlainDirect(_Peer):
    abstract = PEER != "direct"

    def fetch(self, method: str, path: str, payload: str | None, headers: dict[str, str]) -> bytes:
        content: bytes = self.client.client.urlopen(f"{self.host}{path}", method=method, payload=payload,
                                                    headers=headers).content
        return content


class PlainRaw(_Peer):
    abstract = PEER != "raw"

    def on_start(self) -> None:
        self.http = HTTPClient.from_url(self.host, concurrency=1)

    def fetch(self, method: str, path: str, payload: str | None, headers: dict[str, str]) -> bytes:
        return self.http.request(method, path, body=payload, headers=headers).read()


#: the plain peer's three requests (bench/loadtest/plain_locustfile.py)
REQUESTS: list[tuple[str, str, str, Any]] = [
    ("GET", "/api/v1/search/contacts?q=smith", "search_contacts", None),
    ("GET", "/api/v1/contacts/c1", "get_contact", None),
    ("PATCH", "/api/v1/contacts/c1", "update_contact", {"title": "Buyer"}),
]

"""Webhooks: the sandbox POSTs every change to registered loopback receivers."""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.helpers import SandboxProcess


class Receiver:
    """A real HTTP receiver on loopback that records what it is sent."""

    def __init__(self, fail_first: int = 0) -> None:
        self.events: queue.Queue[tuple[dict[str, Any], dict[str, str], bytes]] = queue.Queue()
        self.fail_first = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.fail_first > 0:
                    receiver.fail_first -= 1
                    self.send_response(500)
                else:
                    receiver.events.put((json.loads(body), dict(self.headers), body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def next(self, timeout: float = 5) -> tuple[dict[str, Any], dict[str, str], bytes]:
        return self.events.get(timeout=timeout)

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def register(api: httpx.Client, url: str, **extra: Any) -> str:
    response = api.post("/api/v1/webhooks", json={"url": url, **extra})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def new_contact(api: httpx.Client) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    return dict(api.post("/api/v1/contacts", json={
        "first_name": "Hook", "last_name": tag, "email": f"h{tag}@t.example"}).json())


def test_a_change_is_delivered_with_its_record_and_a_valid_signature(
        api: httpx.Client, receiver: Receiver) -> None:
    hook = register(api, receiver.url, events=["contact.created"], secret="s3")
    try:
        contact = new_contact(api)
        event, headers, raw = receiver.next()
        assert event["type"] == "contact.created"
        assert event["data"]["id"] == contact["id"]
        assert isinstance(event["occurred_at_unix"], float)
        expected = hmac.new(b"s3", raw, hashlib.sha256).hexdigest()
        assert headers["X-Sandbox-Signature"] == f"sha256={expected}"
    finally:
        api.delete(f"/api/v1/webhooks/{hook}")
        api.delete(f"/api/v1/contacts/{contact['id']}")


def test_only_subscribed_events_are_sent(api: httpx.Client, receiver: Receiver) -> None:
    hook = register(api, receiver.url, events=["contact.deleted"])
    contact = new_contact(api)
    api.delete(f"/api/v1/contacts/{contact['id']}")
    event, _, _ = receiver.next()
    assert (event["type"], event["data"]["id"]) == ("contact.deleted", contact["id"])
    assert receiver.events.empty()
    api.delete(f"/api/v1/webhooks/{hook}")


def test_a_failed_delivery_is_retried(api: httpx.Client, crm: SandboxProcess) -> None:
    flaky = Receiver(fail_first=1)
    hook = register(api, flaky.url, events=["contact.created"])
    try:
        contact = new_contact(api)
        event, _, _ = flaky.next(timeout=5)
        assert event["data"]["id"] == contact["id"]
    finally:
        api.delete(f"/api/v1/webhooks/{hook}")
        api.delete(f"/api/v1/contacts/{contact['id']}")
        flaky.close()


def test_webhook_delay_knob_holds_deliveries(api: httpx.Client, crm: SandboxProcess,
                                             receiver: Receiver) -> None:
    crm.faults(webhook_delay_ms=600)
    hook = register(api, receiver.url, events=["contact.created"])
    contact = new_contact(api)
    with pytest.raises(queue.Empty):
        receiver.next(timeout=0.4)
    event, _, _ = receiver.next(timeout=3)
    assert event["data"]["id"] == contact["id"]
    api.delete(f"/api/v1/webhooks/{hook}")
    api.delete(f"/api/v1/contacts/{contact['id']}")


def test_a_deleted_webhook_gets_nothing_more(api: httpx.Client, receiver: Receiver) -> None:
    hook = register(api, receiver.url)
    assert api.delete(f"/api/v1/webhooks/{hook}").status_code == 204
    contact = new_contact(api)
    with pytest.raises(queue.Empty):
        receiver.next(timeout=0.5)
    api.delete(f"/api/v1/contacts/{contact['id']}")


@pytest.mark.parametrize("url", ["http://192.0.2.10/hook", "https://hooks.example.com/x", "ftp://127.0.0.1/"])
def test_only_loopback_receivers_can_be_registered(api: httpx.Client, url: str) -> None:
    response = api.post("/api/v1/webhooks", json={"url": url})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "url"]

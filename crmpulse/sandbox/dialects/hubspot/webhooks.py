"""HubSpot webhooks: JSON arrays of events, signed with the app's client secret.

Each change of a contact, company or deal the subscription covers is POSTed as an array
of events ``{eventId, subscriptionId, portalId, appId, occurredAt, subscriptionType,
attemptNumber, objectId, changeSource, changeFlag}`` (``propertyName`` and
``propertyValue`` for a ``propertyChange``, one event per changed property), signed both
ways HubSpot signs CRM webhooks: ``X-HubSpot-Signature`` = hex SHA-256 of client secret
+ body, with ``X-HubSpot-Signature-Version: v1``; and ``X-HubSpot-Signature-v3`` =
base64 HMAC-SHA256 (key: the client secret) of method + URI + body + timestamp, with
``X-HubSpot-Request-Timestamp`` in milliseconds (research/hubspot.md section 7). A
failed delivery is retried up to ten times with exponential backoff, never after a 400,
401, 403, 404 or 405.

Differences, on purpose: retries come after 0.5, 1, 2, ... 256 seconds (HubSpot waits
minutes); ``attemptNumber`` stays 0 on retries (the signed body is not rebuilt); the
subscriptions are registered through the sandbox's admin API (a private app's are set in
HubSpot's settings).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import time
from typing import Any

from ...engine import Sandbox
from ...webhooks import Delivery, Hook, Retry
from .auth import OAUTH_APP_ID
from .objects import OBJECTS, portal_id, to_wire

__all__ = ["EVENTS", "RETRY", "render", "signatures"]

KINDS = {"contacts": ("contact", "contacts"), "accounts": ("company", "companies"), "deals": ("deal",
                                                                                              "deals")}
EVENTS = tuple(f"{kind}.{what}" for kind, _ in KINDS.values()
               for what in ("creation", "deletion", "propertyChange"))
RETRY = Retry(delays=tuple(0.5 * 2**n for n in range(10)), final=frozenset({400, 401, 403, 404, 405}))
_EVENT_IDS = itertools.count(1)


def signatures(secret: str, url: str, body: bytes, timestamp: int) -> dict[str, str]:
    v1 = hashlib.sha256(secret.encode() + body).hexdigest()
    source = b"POST" + url.encode() + body + str(timestamp).encode()
    v3 = base64.b64encode(hmac.new(secret.encode(), source, hashlib.sha256).digest()).decode()
    return {"X-HubSpot-Signature": v1, "X-HubSpot-Signature-Version": "v1",
            "X-HubSpot-Signature-v3": v3, "X-HubSpot-Request-Timestamp": str(timestamp)}


def render(sb: Sandbox) -> Any:
    def one(hook: Hook, table: str, op: str, record: dict[str, Any],
            changed: tuple[str, ...]) -> list[Delivery]:
        if table not in KINDS:
            return []
        kind, name = KINDS[table]
        obj = OBJECTS[name]
        now = int(time.time() * 1000)
        base = {"subscriptionId": hook.options["subscription"], "portalId": portal_id(record["tenant_id"]),
                "appId": OAUTH_APP_ID, "occurredAt": now, "attemptNumber": 0,
                "objectId": int(to_wire(obj.key, record["id"], {}) or 0), "changeSource": "CRM"}
        events: list[dict[str, Any]] = []
        if op == "created" and f"{kind}.creation" in hook.events:
            events.append({**base, "subscriptionType": f"{kind}.creation", "changeFlag": "NEW"})
        elif op == "deleted" and f"{kind}.deletion" in hook.events:
            events.append({**base, "subscriptionType": f"{kind}.deletion", "changeFlag": "DELETED"})
        elif op == "updated" and f"{kind}.propertyChange" in hook.events:
            for field in obj.fields:
                if field.column not in changed or field.sensitive or not field.writable:
                    continue
                if hook.options.get("property") not in (None, field.name):
                    continue
                events.append({**base, "subscriptionType": f"{kind}.propertyChange",
                               "propertyName": field.name,
                               "propertyValue": to_wire(field, field.get(record), sb.users_by_id) or ""})
        if not events:
            return []
        for event in events:
            event["eventId"] = next(_EVENT_IDS)
        body = json.dumps(events).encode()
        return [Delivery(body, {"Content-Type": "application/json",
                                **signatures(hook.secret or "", hook.url, body, now)})]
    return one

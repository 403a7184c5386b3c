"""Dataverse webhooks: the RemoteExecutionContext of each Create, Update and Delete, POSTed.

A webhook step sends the execution context of the message as JSON, with the headers
``x-ms-dynamics-organization``, ``x-ms-dynamics-entity-name``,
``x-ms-dynamics-request-name`` and ``x-ms-correlation-request-id``. Dataverse signs
nothing: the receiver authenticates the sender by a shared secret, sent one of three
ways the webhook registration chooses: ``HttpHeader`` (headers of its own), ``WebhookKey``
(``?code=`` on the URL) or ``HttpQueryString`` (query parameters of its own). Delivery
waits up to 60 seconds for an answer; a non-2xx answer is a failure, retried once only
for 502, 503 and 504 (research/dynamics.md section 8; sources webhooks, regwh, svcep).
The sandbox sends what the step asks, the same way; registration is through its admin
API (Dataverse's is the Plug-in Registration tool).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any
from urllib.parse import urlencode

from ...engine import Sandbox
from ...webhooks import Delivery, Hook, Retry
from .objects import LOGICAL, ORGANIZATION_ID, business_unit, to_wire, user_guid
from .webapi import ENTITIES

__all__ = ["MESSAGES", "RETRY", "render"]

MESSAGES = {"created": "Create", "updated": "Update", "deleted": "Delete"}
RETRY = Retry(delays=(1.0,), only=frozenset({502, 503, 504}), timeout=60.0)
ENTITY = "Entity:http://schemas.microsoft.com/xrm/2011/Contracts"
REFERENCE = "EntityReference:http://schemas.microsoft.com/xrm/2011/Contracts"


def _date(stamp: str | None) -> str | None:
    from datetime import datetime

    if not stamp:
        return None
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return f"/Date({int(moment.timestamp() * 1000)})/"


def render(sb: Sandbox, base: dict[str, str]) -> Any:
    """Deliveries in Dataverse's shape; ``base["host"]`` is the organization's host as clients
    reach it (learned from their token requests, read at delivery so a hook registered
    before any token request still names the right host)."""
    def one(hook: Hook, table: str, op: str, record: dict[str, Any],
            changed: tuple[str, ...]) -> list[Delivery]:
        obj = next((o for o in ENTITIES.values() if o.table == table and o.member(record)), None)
        if obj is None or LOGICAL[obj.name] not in hook.options["entities"] or \
                MESSAGES[op] not in hook.events:
            return []
        logical, message = LOGICAL[obj.name], MESSAGES[op]
        key = to_wire(obj.key, record["id"], {})
        exposed = sb.access.exposed()
        attributes: list[dict[str, Any]] = []
        for f in obj.fields:
            if f.sensitive and f.column not in exposed:
                continue
            value = f.get(record)
            if value is None:
                continue
            if f.kind in ("ref", "owner", "id"):
                reference = to_wire(f, value, sb.users_by_id)
                name = f.name.removeprefix("_").removesuffix("_value")
                pointed = "systemuser" if f.kind == "owner" else LOGICAL.get(
                    next((n for n, o in ENTITIES.items() if o.table == f.ref), ""), logical)
                attributes.append({"key": name, "value": {"__type": REFERENCE, "Id": reference,
                                                          "KeyAttributes": [],
                                                          "LogicalName": pointed, "Name": None,
                                                          "RowVersion": None}})
            elif f.kind == "datetime":
                attributes.append({"key": f.name, "value": _date(value)})
            else:
                attributes.append({"key": f.name, "value": to_wire(f, value, sb.users_by_id)})
        owner = sb.users_by_id.get(record.get("owner_id") or "")
        caller = user_guid(owner) if owner else "00000000-0000-0000-0000-000000000000"
        target: dict[str, Any]
        if op == "deleted":
            target = {"__type": REFERENCE, "Id": key, "KeyAttributes": [], "LogicalName": logical,
                      "Name": None,
                      "RowVersion": None}
        else:
            target = {"__type": ENTITY, "Attributes": attributes, "EntityState": None, "FormattedValues": [],
                      "Id": key, "KeyAttributes": [], "LogicalName": logical, "RelatedEntities": [],
                      "RowVersion": None}
        correlation = str(uuid.uuid4())
        context = {
            "BusinessUnitId": business_unit(record["tenant_id"]), "CorrelationId": correlation, "Depth": 1,
            "InitiatingUserId": caller, "InputParameters": [{"key": "Target", "value": target}],
            "IsExecutingOffline": False, "IsInTransaction": False, "IsOfflinePlayback": False,
                   "IsolationMode": 1,
            "MessageName": message, "Mode": 1, "OperationCreatedOn": f"/Date({int(time.time() * 1000)})/",
            "OperationId": str(uuid.uuid4()), "OrganizationId": ORGANIZATION_ID,
                   "OrganizationName": "sandbox",
            "OutputParameters": [{"key": "id", "value": key}] if op == "created" else [],
            "OwningExtension": {"Id": hook.options["step"], "KeyAttributes": [],
                                "LogicalName": "sdkmessageprocessingstep",
                                "Name": f"crmpulse: {message} of {logical}",
                                "RowVersion": None},
            "ParentContext": None, "PostEntityImages": [], "PreEntityImages": [], "PrimaryEntityId": key,
            "PrimaryEntityName": logical, "RequestId": str(uuid.uuid4()), "SecondaryEntityName": "none",
            "SharedVariables": [], "Stage": 40, "UserId": caller}
        headers = {"Content-Type": "application/json",
                   "x-ms-dynamics-organization": base.get("host", "127.0.0.1"),
                   "x-ms-dynamics-entity-name": logical, "x-ms-dynamics-request-name": message,
                   "x-ms-correlation-request-id": correlation}
        url = None
        auth, value = hook.options["auth"], hook.options.get("value") or {}
        if auth == "HttpHeader":
            headers.update(value)
        elif auth in ("WebhookKey", "HttpQueryString"):
            query = urlencode({"code": value.get("code", "")} if auth == "WebhookKey" else value)
            url = f"{hook.url}{'&' if '?' in hook.url else '?'}{query}"
        return [Delivery(json.dumps(context).encode(), headers, url)]
    return one




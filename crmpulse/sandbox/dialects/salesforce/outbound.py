"""Salesforce outbound messages: SOAP notifications of created and changed records.

Salesforce has no signed JSON webhooks. A workflow rule or flow sends an outbound
message: a SOAP 1.1 ``notifications`` envelope (namespace
``http://soap.sforce.com/2005/09/outbound``) holding the org id, an action id, the
org's enterprise and partner URLs and ``Notification`` elements, each with an id and
the record's selected fields. The listener must answer 200 with
``<Ack>true</Ack>``; anything else is a failure, retried with exponential backoff.
Nothing signs the message: Salesforce's advice is to check the ``OrganizationId``,
use TLS, allow only Salesforce's IP ranges and optionally verify its client
certificate (research/salesforce.md section 9; sources om, om-obs). The sandbox
sends the org id, never a signature, and no session id unless asked to.

Differences from Salesforce, on purpose: one notification per message (Salesforce
batches up to 100); retries after 1, 2, 4, 8, 16 and 32 seconds, then the message is
dropped (Salesforce backs off up to two hours and keeps trying for 24 hours);
workflow rules fire on create and update, never on delete, so deletes send nothing.
"""

from __future__ import annotations

import re
import secrets
from typing import Any
from xml.sax.saxutils import escape

import httpx

from ...access import SENSITIVE_FIELDS
from ...engine import Sandbox
from ...webhooks import Delivery, Hook, Retry
from ..ids import salesforce_id
from .objects import OBJECTS, TABLE_OBJECT, org_id, to_wire

__all__ = ["RETRY", "render"]

_ACK = re.compile(rb"<(?:\w+:)?Ack>\s*true\s*</(?:\w+:)?Ack>", re.IGNORECASE)


def _acknowledged(response: httpx.Response) -> bool:
    return response.status_code == 200 and _ACK.search(response.content) is not None


RETRY = Retry(delays=(1.0, 2.0, 4.0, 8.0, 16.0, 32.0), accept=_acknowledged)


def render(sb: Sandbox) -> Any:
    """The hook renderer; ``hook.options["base"]`` is the origin the enterprise URLs name."""
    def one(hook: Hook, table: str, op: str, record: dict[str, Any],
            changed: tuple[str, ...]) -> list[Delivery]:
        name = TABLE_OBJECT.get(table)
        if name is None or name not in hook.options["objects"] or op == "deleted":
            return []
        obj = OBJECTS[name]
        if not obj.member(record):
            return []
        exposed = sb.access.exposed()
        wanted = hook.options.get("fields") or [f.name for f in obj.fields]
        cells = []
        for field_name in wanted:
            f = obj.field(field_name)
            if f is None or (f.column in SENSITIVE_FIELDS and f.column not in exposed):
                continue
            value = to_wire(f, f.get(record), sb.users_by_id)
            if value is None:
                continue
            text = str(value).lower() if isinstance(value, bool) else str(value)
            cells.append(f"<sf:{f.name}>{escape(text)}</sf:{f.name}>")
        org = org_id(record["tenant_id"])
        base = hook.options.get("base", "")
        session = (f"<SessionId>{escape(hook.options['session'])}</SessionId>" if hook.options.get("session")
                   else '<SessionId xsi:nil="true"/>')
        notification = salesforce_id(f"ntf_{secrets.token_hex(8)}", "04l")
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            "<soapenv:Body>"
            '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
            f"<OrganizationId>{org}</OrganizationId><ActionId>{hook.options['action']}</ActionId>{session}"
            f"<EnterpriseUrl>{escape(base)}/services/Soap/c/62.0/{org[:15]}</EnterpriseUrl>"
            f"<PartnerUrl>{escape(base)}/services/Soap/u/62.0/{org[:15]}</PartnerUrl>"
            f"<Notification><Id>{notification}</Id>"
            f'<sObject xsi:type="sf:{name}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
            f"{''.join(cells)}</sObject></Notification>"
            "</notifications></soapenv:Body></soapenv:Envelope>")
        return [Delivery(body.encode(), {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'})]
    return one

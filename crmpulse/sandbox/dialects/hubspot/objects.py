"""HubSpot's CRM objects over the sandbox's tables, and their property values on the wire.

    contacts   0-1    contacts            companies  0-2    accounts
    deals      0-3    deals               leads      0-136  leads
    tasks      0-27   activities (calls, emails and to-dos; hs_task_type CALL, EMAIL, TODO)
    notes      0-46   activities (notes)

Property names, the properties returned by default and the required ones follow the
CRM object guides and HubSpot's OpenAPI specs (research/hubspot.md sections 2-3). Every
value travels as a string; ids are decimal strings; date-times are ISO 8601 with
milliseconds. The sandbox's sensitive contact data are the properties ``tax_id``,
``card_number``, ``national_id`` and ``iban``, absent (as if they did not exist) unless an
exposure knob is on.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ...access import User
from ..fields import Field, ObjectMap, picklist
from ..ids import hubspot_id, native_from_hubspot

__all__ = ["ASSOCIATIONS", "OBJECTS", "TYPE_IDS", "from_wire_id", "object_named", "owner_id", "portal_id",
           "to_wire"]

TABLE_PREFIX = {"accounts": "acc", "contacts": "con", "deals": "deal", "leads": "lead", "activities": "act"}


def portal_id(tenant: str) -> int:
    return int(tenant.rsplit("_", 1)[1], 16)


def owner_id(user: User) -> str:
    return hubspot_id(user.id)


def from_wire_id(value: str, table: str) -> str | None:
    return native_from_hubspot(value, TABLE_PREFIX[table])


def iso(stamp: str | None) -> str | None:
    """Store time as HubSpot writes it: ``2019-10-30T03:30:17.883Z``."""
    if not stamp:
        return None
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    moment = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))


def to_wire(field: Field, value: Any, users: Mapping[str, User]) -> str | None:
    if value is None or value == "":
        return None
    if field.kind in ("id", "ref"):
        return hubspot_id(value)
    if field.kind == "owner":
        user = users.get(value)
        return owner_id(user) if user else None
    if field.kind == "number":
        return _number(value)
    if field.kind == "bool":
        return "true" if value else "false"
    if field.kind == "datetime":
        return iso(value)
    if field.kind == "date":  # a date property HubSpot keeps as midnight UTC
        return f"{value}T00:00:00.000Z"
    return str(value)


# The custom property a preset's setup guide asks for, on every object: marks what a probe
# or load test created, so that a sweep can find it (a single-line text property).
MARKER = Field("crmpulse_run")


def _system(table: str, created: str, modified: str) -> tuple[Field, ...]:
    return (
        MARKER,
        Field("hs_object_id", "id", "id", ref=table, writable=False),
        Field(created, "created_at", "datetime", writable=False),
        Field(modified, kind="datetime", writable=False,
              getter=lambda r: r.get("updated_at") or r.get("created_at"),
              sql_expr="coalesce(updated_at, created_at)"),
        Field("hubspot_owner_id", "owner_id", "owner"),
    )


def _domain(record: Mapping[str, Any]) -> str | None:
    website = record.get("website") or ""
    return website.split("://", 1)[-1].split("/", 1)[0] or None


STAGES = {"appointmentscheduled": "prospecting", "qualifiedtobuy": "qualification",
          "presentationscheduled": "proposal", "decisionmakerboughtin": "proposal",
          "contractsent": "negotiation", "closedwon": "closed_won", "closedlost": "closed_lost"}
STAGE_OF_NATIVE = {"prospecting": "appointmentscheduled", "qualification": "qualifiedtobuy",
                   "proposal": "presentationscheduled", "negotiation": "contractsent",
                   "closed_won": "closedwon", "closed_lost": "closedlost"}
STAGE_LABELS = [("appointmentscheduled", "Appointment Scheduled", "0.2"),
                ("qualifiedtobuy", "Qualified To Buy", "0.4"),
                ("presentationscheduled", "Presentation Scheduled", "0.6"),
                ("decisionmakerboughtin", "Decision Maker Bought-In", "0.8"),
                ("contractsent", "Contract Sent", "0.9"), ("closedwon", "Closed Won", "1.0"),
                ("closedlost", "Closed Lost", "0.0")]
TASK_TYPES = {"TODO": "task", "CALL": "call", "EMAIL": "email"}
LEAD_LABELS = {"NEW": "new", "ATTEMPTING": "working", "CONNECTED": "working", "QUALIFIED": "qualified",
               "UNQUALIFIED": "disqualified"}

CONTACTS = ObjectMap("contacts", "contacts", (
    *_system("contacts", "createdate", "lastmodifieddate"),
    Field("email", "email"), Field("firstname", "first_name"), Field("lastname", "last_name"),
    Field("phone", "phone"), Field("jobtitle", "title"),
    Field("associatedcompanyid", "account_id", "ref", ref="accounts", writable=False),
    Field("company"), Field("website"), Field("lifecyclestage"), Field("city"), Field("country"),
    Field("hs_lead_status"),
    Field("tax_id", "tax_id", writable=False), Field("card_number", "card_number", writable=False),
    Field("national_id", "national_id", writable=False), Field("iban", "iban", writable=False),
), id_field="hs_object_id", case_insensitive=False)

COMPANIES = ObjectMap("companies", "accounts", (
    *_system("accounts", "createdate", "hs_lastmodifieddate"),
    Field("name", "name"),
    Field("domain", getter=_domain, setter=lambda v: {"website": f"https://{v}" if v else None},
          sql_expr="replace(replace(website, 'https://', ''), 'http://', '')"),
    Field("industry", "industry"), Field("country", "country"),
    Field("phone"), Field("city"), Field("description"), Field("numberofemployees", kind="number"),
), id_field="hs_object_id", case_insensitive=False)

DEALS = ObjectMap("deals", "deals", (
    *_system("deals", "createdate", "hs_lastmodifieddate"),
    Field("dealname", "name", required=True), Field("amount", "amount", "number"),
    picklist("dealstage", "stage", STAGES, STAGE_OF_NATIVE, required=True),
    Field("pipeline", choices=("default",), getter=lambda r: (r.get("extra") or {}).get("pipeline",
                                                                                        "default"),
          setter=lambda v: {"extra.pipeline": v},
          sql_expr="coalesce(json_extract(extra, '$.pipeline'), 'default')"),
    Field("closedate", "close_date", "date"),
    Field("deal_currency_code", "currency"),
    Field("dealtype"), Field("description"),
), id_field="hs_object_id", defaults={"currency": "USD", "tags": []}, case_insensitive=False)

TASKS = ObjectMap("tasks", "activities", (
    *_system("activities", "hs_createdate", "hs_lastmodifieddate"),
    Field("hs_timestamp", "occurred_at", "datetime", required=True),
    Field("hs_task_subject", "subject"), Field("hs_task_body", "notes"),
    Field("hs_task_status", choices=("NOT_STARTED", "IN_PROGRESS", "WAITING", "COMPLETED", "DEFERRED"),
          getter=lambda r: (r.get("extra") or {}).get("hs_task_status", "NOT_STARTED"),
          setter=lambda v: {"extra.hs_task_status": v},
          sql_expr="coalesce(json_extract(extra, '$.hs_task_status'), 'NOT_STARTED')"),
    Field("hs_task_priority", choices=("NONE", "LOW", "MEDIUM", "HIGH")),
    picklist("hs_task_type", "kind", TASK_TYPES, {v: k for k, v in TASK_TYPES.items()}),
), id_field="hs_object_id", where="kind IN ('task', 'call', 'email')", defaults={"kind": "task", "tags": []},
    member=lambda r: r.get("kind") in ("task", "call", "email"), case_insensitive=False)

NOTES = ObjectMap("notes", "activities", (
    *_system("activities", "hs_createdate", "hs_lastmodifieddate"),
    Field("hs_timestamp", "occurred_at", "datetime", required=True),
    Field("hs_note_body", "notes", max_length=65536),
), id_field="hs_object_id", where="kind = 'note'", defaults={"kind": "note", "subject": "", "tags": []},
    member=lambda r: r.get("kind") == "note", case_insensitive=False)

LEADS = ObjectMap("leads", "leads", (
    *_system("leads", "hs_createdate", "hs_lastmodifieddate"),
    Field("hs_lead_name", required=True), Field("hs_lead_type"),
    picklist("hs_lead_label", "status", LEAD_LABELS,
             {"new": "NEW", "working": "ATTEMPTING", "qualified": "QUALIFIED",
              "disqualified": "UNQUALIFIED"}),
), id_field="hs_object_id", defaults={"status": "new", "tags": []}, case_insensitive=False)

OBJECTS = {o.name: o for o in (CONTACTS, COMPANIES, DEALS, TASKS, NOTES, LEADS)}
TYPE_IDS = {"0-1": "contacts", "0-2": "companies", "0-3": "deals", "0-27": "tasks", "0-46": "notes",
            "0-136": "leads"}
DEFAULTS = {"contacts": ("firstname", "lastname", "email", "createdate", "hs_object_id", "lastmodifieddate"),
            "companies": ("name", "domain", "createdate", "hs_lastmodifieddate", "hs_object_id"),
            "deals": ("dealname", "amount", "closedate", "pipeline", "dealstage", "createdate",
                      "hs_lastmodifieddate", "hs_object_id"),
            "tasks": ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
            "notes": ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
            "leads": ("hs_lead_name", "hs_createdate", "hs_lastmodifieddate", "hs_object_id")}
SEARCHABLE = {"contacts": ("first_name", "last_name", "email", "phone", "title"),
              "companies": ("name", "website"), "deals": ("name",), "tasks": ("subject", "notes"),
              "notes": ("notes",), "leads": ("first_name", "last_name", "email")}

# (from object, HubSpot-defined association type id) -> (to object, store column holding it)
ASSOCIATIONS: dict[tuple[str, int], tuple[str, str]] = {
    ("contacts", 279): ("companies", "account_id"), ("contacts", 1): ("companies", "account_id"),
    ("deals", 341): ("companies", "account_id"), ("deals", 5): ("companies", "account_id"),
    ("deals", 3): ("contacts", "contact_id"),
    ("tasks", 204): ("contacts", "contact_id"), ("tasks", 216): ("deals", "deal_id"),
    ("notes", 202): ("contacts", "contact_id"), ("notes", 214): ("deals", "deal_id"),
}


def object_named(name: str) -> ObjectMap | None:
    return OBJECTS.get(TYPE_IDS.get(name, name))

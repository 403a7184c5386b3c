"""Salesforce's sObjects over the sandbox's tables, and their values on the wire.

    Account      accounts     key prefix 001
    Contact      contacts     003
    Lead         leads        00Q
    Opportunity  deals        006
    Task         activities   00T   (the calls, emails and tasks; meetings and notes are
                                     Events and Notes in Salesforce, not served here)
    User         the sandbox's users, 005 (OwnerId, CreatedById)

Fields follow the object reference (research/salesforce.md section 3.6): required
fields, system fields, read-only derived ones (Name, IsClosed, ...). The sandbox's
sensitive contact data are custom fields (``Tax_Id__c``, ``Card_Number__c``,
``National_Id__c``, ``IBAN__c``) hidden by field-level security unless an exposure
knob is on; a restricted user's field-level security also hides ``Phone``.

Wire forms: ids are 18-character ids, dates ``YYYY-MM-DD``, date-times
``2024-05-01T12:34:56.000+0000`` (UTC).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ...access import User
from ..fields import Field, ObjectMap, picklist
from ..ids import native_from_salesforce, salesforce_id

__all__ = ["OBJECTS", "PREFIX", "TABLE_PREFIX", "from_wire_id", "org_id", "to_wire", "user_id"]

PREFIX = {"Account": "001", "Contact": "003", "Lead": "00Q", "Opportunity": "006", "Task": "00T",
          "User": "005", "Organization": "00D"}
TABLE_PREFIX = {"accounts": "acc", "contacts": "con", "deals": "deal", "leads": "lead", "activities": "act"}
TABLE_OBJECT = {"accounts": "Account", "contacts": "Contact", "deals": "Opportunity", "leads": "Lead",
                "activities": "Task"}


def org_id(tenant: str, length: int = 18) -> str:
    return salesforce_id(tenant.replace("ten_", "org_"), PREFIX["Organization"])[:length]


def user_id(user: User) -> str:
    return salesforce_id(user.id, PREFIX["User"])


def from_wire_id(value: str, table: str) -> str | None:
    """The store id of a Salesforce id of this table's object, or None."""
    return native_from_salesforce(value, PREFIX[TABLE_OBJECT[table]], TABLE_PREFIX[table])


def _datetime(stamp: str | None) -> str | None:
    """Store time (ISO 8601, Z) as Salesforce writes it: ``2024-05-01T12:34:56.000+0000``."""
    if not stamp:
        return None
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    moment = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def to_wire(field: Field, value: Any, users: Mapping[str, User]) -> Any:
    """A neutral value as the REST API writes it."""
    if value is None:
        return None
    if field.kind == "datetime":
        return _datetime(value)
    if field.kind in ("id", "ref"):
        table = field.ref or ""
        return salesforce_id(value, PREFIX[TABLE_OBJECT[table]]) if table in TABLE_OBJECT else value
    if field.kind == "owner":
        user = users.get(value)
        return user_id(user) if user else None
    if field.kind == "number":
        return float(value) if not isinstance(value, bool) else value
    if field.kind == "bool":
        return bool(value)
    return value


def _name(record: Mapping[str, Any]) -> str:
    return " ".join(p for p in (record.get("first_name"), record.get("last_name")) if p)


NAME_SQL = "trim(coalesce(first_name, '') || ' ' || coalesce(last_name, ''))"


# The custom field a preset's setup guide asks for, on every object: marks what a probe or
# load test created, so that a sweep can find it (Text(255), filterable).
MARKER = Field("Crmpulse_Run__c", max_length=255)


def _system(table: str) -> tuple[Field, ...]:
    return (
        Field("Id", "id", "id", ref=table, writable=False),
        Field("IsDeleted", kind="bool", getter=lambda r: False, sql_expr="0", writable=False),
        Field("OwnerId", "owner_id", "owner"),
        Field("CreatedDate", "created_at", "datetime", writable=False),
        Field("LastModifiedDate", kind="datetime", writable=False,
              getter=lambda r: r.get("updated_at") or r.get("created_at"),
              sql_expr="coalesce(updated_at, created_at)"),
        Field("SystemModstamp", kind="datetime", writable=False,
              getter=lambda r: r.get("updated_at") or r.get("created_at"),
              sql_expr="coalesce(updated_at, created_at)"),
        Field("CreatedById", kind="owner", writable=False, getter=lambda r: r.get("owner_id"),
              sql_expr="owner_id"),
        Field("LastModifiedById", kind="owner", writable=False, getter=lambda r: r.get("owner_id"),
              sql_expr="owner_id"),
        MARKER,
    )


STAGES = {  # Salesforce's default stages -> the nearest native stage, and the default probability
    "Prospecting": ("prospecting", 10), "Qualification": ("qualification", 10),
    "Needs Analysis": ("qualification", 20), "Value Proposition": ("proposal", 50),
    "Id. Decision Makers": ("proposal", 60), "Perception Analysis": ("proposal", 70),
    "Proposal/Price Quote": ("proposal", 75), "Negotiation/Review": ("negotiation", 90),
    "Closed Won": ("closed_won", 100), "Closed Lost": ("closed_lost", 0),
}
STAGE_OF_NATIVE = {"prospecting": "Prospecting", "qualification": "Qualification",
                   "proposal": "Proposal/Price Quote", "negotiation": "Negotiation/Review",
                   "closed_won": "Closed Won", "closed_lost": "Closed Lost"}
LEAD_STATUS = {"Open - Not Contacted": "new", "Working - Contacted": "working",
               "Closed - Converted": "qualified", "Closed - Not Converted": "disqualified"}
LEAD_STATUS_OF_NATIVE = {v: k for k, v in LEAD_STATUS.items()}
TASK_SUBTYPE = {"Task": "task", "Call": "call", "Email": "email"}
TASK_STATUS = ("Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred")


def _stage(record: Mapping[str, Any]) -> str | None:
    kept = (record.get("extra") or {}).get("StageName")
    return kept if kept is not None else STAGE_OF_NATIVE.get(record.get("stage") or "")


ACCOUNT = ObjectMap("Account", "accounts", (
    *_system("accounts"),
    Field("Name", "name", required=True, max_length=255),
    Field("Industry", "industry", max_length=40),
    Field("Website", "website", max_length=255),
    Field("BillingCountry", "country", max_length=80),
    Field("Phone", max_length=40), Field("BillingCity", max_length=40), Field("Type", max_length=40),
    Field("Description", max_length=32000),
    Field("NumberOfEmployees", kind="int"), Field("AnnualRevenue", kind="number"),
))

CONTACT = ObjectMap("Contact", "contacts", (
    *_system("contacts"),
    Field("FirstName", "first_name", max_length=40),
    Field("LastName", "last_name", required=True, max_length=80),
    Field("Name", writable=False, getter=_name, sql_expr=NAME_SQL),
    Field("Email", "email", max_length=80),
    Field("Phone", "phone", max_length=40),
    Field("Title", "title", max_length=128),
    Field("AccountId", "account_id", "ref", ref="accounts"),
    Field("Department", max_length=80), Field("MobilePhone", max_length=40),
    Field("LeadSource", max_length=40), Field("MailingCity", max_length=40),
    Field("MailingCountry", max_length=80), Field("Description", max_length=32000),
    Field("Tax_Id__c", "tax_id", writable=False), Field("Card_Number__c", "card_number", writable=False),
    Field("National_Id__c", "national_id", writable=False), Field("IBAN__c", "iban", writable=False),
))

LEAD = ObjectMap("Lead", "leads", (
    *_system("leads"),
    Field("FirstName", "first_name", max_length=40),
    Field("LastName", "last_name", required=True, max_length=80),
    Field("Name", writable=False, getter=_name, sql_expr=NAME_SQL),
    Field("Company", "company", required=True, max_length=255),
    Field("Email", "email", max_length=80),
    picklist("Status", "status", LEAD_STATUS, LEAD_STATUS_OF_NATIVE),
    Field("LeadSource", "source", max_length=40),
    Field("Phone", max_length=40), Field("Title", max_length=128), Field("Industry", max_length=40),
    Field("IsConverted", kind="bool", writable=False, getter=lambda r: False, sql_expr="0"),
), defaults={"status": "new", "extra": {"Status": "Open - Not Contacted"}})

OPPORTUNITY = ObjectMap("Opportunity", "deals", (
    *_system("deals"),
    Field("Name", "name", required=True, max_length=120),
    Field("Amount", "amount", "number"),
    picklist("StageName", "stage", {k: v[0] for k, v in STAGES.items()}, STAGE_OF_NATIVE, required=True),
    Field("CloseDate", "close_date", "date", required=True),
    Field("AccountId", "account_id", "ref", ref="accounts"),
    Field("ContactId", "contact_id", "ref", ref="contacts"),
    Field("Probability", kind="number", writable=False,
          getter=lambda r: float(STAGES.get(_stage(r) or "", ("", 0))[1])),
    Field("IsClosed", kind="bool", writable=False,
          getter=lambda r: r.get("stage") in ("closed_won", "closed_lost"),
          sql_expr="(stage IN ('closed_won', 'closed_lost'))"),
    Field("IsWon", kind="bool", writable=False, getter=lambda r: r.get("stage") == "closed_won",
          sql_expr="(stage = 'closed_won')"),
    Field("Type", max_length=40), Field("LeadSource", max_length=40), Field("NextStep", max_length=255),
    Field("Description", max_length=32000),
), defaults={"currency": "USD", "tags": []})

TASK = ObjectMap("Task", "activities", (
    *_system("activities"),
    Field("Subject", "subject", max_length=255),
    Field("Description", "notes", max_length=32000),
    Field("ActivityDate", kind="date", getter=lambda r: (r.get("occurred_at") or "")[:10] or None,
          setter=lambda v: {"occurred_at": f"{v}T00:00:00Z" if v else None},
          sql_expr="substr(occurred_at, 1, 10)"),
    Field("WhoId", "contact_id", "ref", ref="contacts"),
    Field("WhatId", "deal_id", "ref", ref="deals"),
    picklist("TaskSubtype", "kind", TASK_SUBTYPE, {v: k for k, v in TASK_SUBTYPE.items()}),
    Field("Status", choices=TASK_STATUS, getter=lambda r: (r.get("extra") or {}).get("Status", "Not Started"),
          setter=lambda v: {"extra.Status": v},
          sql_expr="coalesce(json_extract(extra, '$.Status'), 'Not Started')"),
    Field("Priority", choices=("High", "Normal", "Low"),
          getter=lambda r: (r.get("extra") or {}).get("Priority", "Normal"),
          setter=lambda v: {"extra.Priority": v},
          sql_expr="coalesce(json_extract(extra, '$.Priority'), 'Normal')"),
    Field("IsClosed", kind="bool", writable=False,
          getter=lambda r: (r.get("extra") or {}).get("Status") == "Completed",
          sql_expr="(coalesce(json_extract(extra, '$.Status'), '') = 'Completed')"),
), where="kind IN ('task', 'call', 'email')", defaults={"kind": "task", "tags": []},
    member=lambda r: r.get("kind") in ("task", "call", "email"))

OBJECTS = {o.name: o for o in (ACCOUNT, CONTACT, LEAD, OPPORTUNITY, TASK)}

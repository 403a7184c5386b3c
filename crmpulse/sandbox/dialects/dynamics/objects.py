"""Dataverse's tables over the sandbox's, and their values on the wire (Web API v9.2).

    accounts       accounts     accountid        code 2 in the GUIDs the sandbox makes
    contacts       contacts     contactid        1
    leads          leads        leadid           4
    opportunities  deals        opportunityid    3
    tasks          activities   activityid       5   (the to-dos; calls, emails, meetings and
                                                    notes are other tables in Dataverse)
    systemusers    the sandbox's users           6

Columns follow the table reference (research/dynamics.md section 2.1): lookups are read
as ``_x_value`` and written with ``x@odata.bind``; ``fullname``, ``statecode`` and the
like are computed; dates-only are ``YYYY-MM-DD``; date-times ``2016-09-28T22:57:53Z``;
money columns are numbers. The sandbox's sensitive contact data are the custom columns
``crmpulse_taxid``, ``crmpulse_cardnumber``, ``crmpulse_nationalid`` and ``crmpulse_iban``,
absent unless an exposure knob is on.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ...access import TENANT_1, TENANT_2, User
from ..fields import Field, ObjectMap
from ..ids import guid, native_from_guid

__all__ = ["BINDS", "CODES", "ENTITIES", "LOGICAL", "ORGANIZATION_ID", "TENANT_ID", "business_unit",
           "from_guid", "to_wire", "user_guid"]

CODES = {"contacts": 1, "accounts": 2, "deals": 3, "leads": 4, "activities": 5, "users": 6, "units": 7}
TABLE_PREFIX = {"accounts": "acc", "contacts": "con", "deals": "deal", "leads": "lead", "activities": "act"}
ORGANIZATION_ID = "5a1d0000-0000-4000-8000-00000000000a"
TENANT_ID = "5a1d0000-0000-4000-8000-0000000e0001"  # the Entra tenant every app user lives in
USD = "5a1d0000-0000-4000-8000-0000000000d1"  # the transactioncurrency of every money column
UNITS = {TENANT_1.id: "Sandbox", TENANT_2.id: "Second Unit"}


def from_guid(value: str, table: str) -> str | None:
    return native_from_guid(value, CODES[table], TABLE_PREFIX[table])


def user_guid(user: User) -> str:
    return guid(user.id, CODES["users"])


def business_unit(tenant: str) -> str:
    return guid(tenant.replace("ten_", "bu_"), CODES["units"])


def _stamp(value: str | None) -> str | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    moment = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def to_wire(field: Field, value: Any, users: Mapping[str, User]) -> Any:
    if value is None:
        return None
    if field.kind in ("id", "ref"):
        return guid(value, CODES[field.ref or "contacts"])
    if field.kind == "owner":
        user = users.get(value)
        return user_guid(user) if user else None
    if field.kind == "datetime":
        return _stamp(value)
    if field.kind == "int":
        return int(value)
    if field.kind == "number":
        return float(value)
    return value


def version(record: Mapping[str, Any]) -> int:
    """A row version that changes with every write: the last write's time in microseconds."""
    stamp = record.get("updated_at") or record.get("created_at") or ""
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return 1
    return int(moment.timestamp() * 1_000_000) % 10**12


# The custom column a preset's setup guide asks for, on every table: marks what a probe or
# load test created, so that a sweep can find it (a single line of text).
MARKER = Field("crmpulse_run", max_length=100)


def _system(table: str, key: str) -> tuple[Field, ...]:
    return (
        Field(key, "id", "id", ref=table, writable=False),
        MARKER,
        Field("_ownerid_value", "owner_id", "owner", writable=False),
        Field("createdon", "created_at", "datetime", writable=False),
        Field("modifiedon", kind="datetime", writable=False,
              getter=lambda r: r.get("updated_at") or r.get("created_at"),
              sql_expr="coalesce(updated_at, created_at)"),
        Field("versionnumber", kind="int", writable=False, getter=version),
    )


def _fullname(record: Mapping[str, Any]) -> str | None:
    return " ".join(p for p in (record.get("first_name"), record.get("last_name")) if p) or None


FULLNAME_SQL = "trim(coalesce(first_name, '') || ' ' || coalesce(last_name, ''))"
SALES_STAGE = {0: "qualification", 1: "qualification", 2: "proposal", 3: "negotiation"}
SALES_STAGE_OF = {"prospecting": 0, "qualification": 0, "proposal": 2, "negotiation": 3, "closed_won": 3,
                  "closed_lost": 3}
LEAD_STATUS = {"new": (0, 1), "working": (0, 2), "qualified": (1, 3), "disqualified": (2, 4)}


def _salesstage(record: Mapping[str, Any]) -> int | None:
    kept = (record.get("extra") or {}).get("salesstage")
    return kept if kept is not None else SALES_STAGE_OF.get(record.get("stage") or "")


def _opportunity_state(record: Mapping[str, Any]) -> tuple[int, int]:
    stage = record.get("stage")
    return (1, 3) if stage == "closed_won" else (2, 4) if stage == "closed_lost" else (0, 1)


CONTACTS = ObjectMap("contacts", "contacts", (
    *_system("contacts", "contactid"),
    Field("firstname", "first_name", max_length=50), Field("lastname", "last_name", max_length=50),
    Field("fullname", writable=False, getter=_fullname, sql_expr=FULLNAME_SQL),
    Field("emailaddress1", "email", max_length=100), Field("telephone1", "phone", max_length=50),
    Field("jobtitle", "title", max_length=100),
    Field("_parentcustomerid_value", "account_id", "ref", ref="accounts", writable=False),
    Field("description", max_length=2000), Field("address1_city", max_length=80),
    Field("statecode", kind="int", writable=False, getter=lambda r: 0, sql_expr="0"),
    Field("statuscode", kind="int", writable=False, getter=lambda r: 1, sql_expr="1"),
    Field("crmpulse_taxid", "tax_id", writable=False), Field("crmpulse_cardnumber", "card_number",
                                                             writable=False),
    Field("crmpulse_nationalid", "national_id", writable=False), Field("crmpulse_iban", "iban",
                                                                       writable=False),
), id_field="contactid", case_insensitive=False)

ACCOUNTS = ObjectMap("accounts", "accounts", (
    *_system("accounts", "accountid"),
    Field("name", "name", max_length=160), Field("websiteurl", "website", max_length=200),
    Field("address1_country", "country", max_length=80), Field("telephone1", max_length=50),
    Field("description", max_length=2000), Field("revenue", kind="number"),
    Field("numberofemployees", kind="int"), Field("industrycode", kind="int"),
    Field("statecode", kind="int", writable=False, getter=lambda r: 0, sql_expr="0"),
), id_field="accountid", case_insensitive=False)

OPPORTUNITIES = ObjectMap("opportunities", "deals", (
    *_system("deals", "opportunityid"),
    Field("name", "name", max_length=300), Field("estimatedvalue", "amount", "number"),
    Field("estimatedclosedate", "close_date", "date"),
    Field("salesstage", kind="int", choices=(0, 1, 2, 3), getter=_salesstage,
          setter=lambda v: {"stage": SALES_STAGE.get(v, "prospecting") if v is not None else None,
                            "extra.salesstage": v},
          sql_expr="coalesce(json_extract(extra, '$.salesstage'), CASE stage WHEN 'prospecting' THEN 0 "
                   "WHEN 'qualification' THEN 0 WHEN 'proposal' THEN 2 ELSE 3 END)"),
    Field("stepname", max_length=200), Field("description", max_length=2000),
    Field("statecode", kind="int", writable=False, getter=lambda r: _opportunity_state(r)[0],
          sql_expr="CASE stage WHEN 'closed_won' THEN 1 WHEN 'closed_lost' THEN 2 ELSE 0 END"),
    Field("statuscode", kind="int", writable=False, getter=lambda r: _opportunity_state(r)[1],
          sql_expr="CASE stage WHEN 'closed_won' THEN 3 WHEN 'closed_lost' THEN 4 ELSE 1 END"),
    Field("_parentaccountid_value", "account_id", "ref", ref="accounts", writable=False),
    Field("_customerid_value", "account_id", "ref", ref="accounts", writable=False),
    Field("_parentcontactid_value", "contact_id", "ref", ref="contacts", writable=False),
    Field("_transactioncurrencyid_value", writable=False, getter=lambda r: USD, sql_expr=f"'{USD}'"),
), id_field="opportunityid", defaults={"currency": "USD", "stage": "prospecting", "tags": []},
    case_insensitive=False)

LEADS = ObjectMap("leads", "leads", (
    *_system("leads", "leadid"),
    Field("subject", max_length=300), Field("firstname", "first_name", max_length=50),
    Field("lastname", "last_name", max_length=50),
    Field("fullname", writable=False, getter=_fullname, sql_expr=FULLNAME_SQL),
    Field("emailaddress1", "email", max_length=100), Field("companyname", "company", max_length=100),
    Field("leadsourcecode", kind="int"),
    Field("statecode", kind="int", writable=False, getter=lambda r: LEAD_STATUS.get(r.get("status") or "new",
                                                                                  (0, 1))[0],
          sql_expr="CASE status WHEN 'qualified' THEN 1 WHEN 'disqualified' THEN 2 ELSE 0 END"),
    Field("statuscode", kind="int", choices=(1, 2),
          getter=lambda r: LEAD_STATUS.get(r.get("status") or "new", (0, 1))[1],
          setter=lambda v: {"status": "working" if v == 2 else "new"},
          sql_expr="CASE status WHEN 'working' THEN 2 WHEN 'qualified' THEN 3 WHEN 'disqualified' THEN 4 "
                   "ELSE 1 END"),
), id_field="leadid", defaults={"status": "new", "tags": []}, case_insensitive=False)

TASKS = ObjectMap("tasks", "activities", (
    *_system("activities", "activityid"),
    Field("subject", "subject", max_length=200), Field("description", "notes", max_length=2000),
    Field("scheduledend", "occurred_at", "datetime"),
    Field("prioritycode", kind="int", choices=(0, 1, 2)),
    Field("_regardingobjectid_value", writable=False,
          getter=lambda r: guid(r["contact_id"], CODES["contacts"]) if r.get("contact_id") else
          guid(r["deal_id"], CODES["deals"]) if r.get("deal_id") else None),
    Field("statecode", kind="int", writable=False, getter=lambda r: 0, sql_expr="0"),
), id_field="activityid", where="kind = 'task'", defaults={"kind": "task", "tags": []},
    member=lambda r: r.get("kind") == "task", case_insensitive=False)

ENTITIES = {o.name: o for o in (ACCOUNTS, CONTACTS, LEADS, OPPORTUNITIES, TASKS)}
LOGICAL = {"accounts": "account", "contacts": "contact", "leads": "lead", "opportunities": "opportunity",
           "tasks": "task"}
OTC = {"accounts": 1, "contacts": 2, "opportunities": 3, "leads": 4, "tasks": 4212}
# navigation properties a body binds with "name@odata.bind": "/set(guid)" -> (entity set, store column)
BINDS: dict[str, dict[str, tuple[str, str]]] = {
    "contacts": {"parentcustomerid_account": ("accounts", "account_id")},
    "opportunities": {"parentaccountid": ("accounts", "account_id"),
                      "customerid_account": ("accounts", "account_id"),
                      "parentcontactid": ("contacts", "contact_id")},
    "tasks": {"regardingobjectid_contact_task": ("contacts", "contact_id"),
              "regardingobjectid_opportunity_task": ("opportunities", "deal_id")},
    "accounts": {}, "leads": {},
}

"""Every input the native API accepts, as pydantic models: bodies and query parameters.

These models are the contract: handlers receive instances of them, the 422s explain
their constraints, and GET /openapi.json is generated from them, so the document
cannot drift from what is enforced. Bodies are strict (no type coercion, no unknown
fields, finite numbers in bounded ranges); query parameters arrive as text and are
parsed as strictly (``limit=²`` is not a number here).

Each field type carries an ``Explain``: the one message a 422 gives for it, so
clients read ``expected an email address`` rather than a validator's internals.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, create_model
from pydantic_core import PydanticCustomError

from ..faults import Faults
from ..seed import LEAD_STATUSES, STAGES
from ..store import decode_cursor
from ..webhooks import EVENT_TYPES, loopback_url_error

__all__ = [
    "AccountCreate", "AccountPage", "ActivityCreate", "ActivityFilters", "Body", "ContactCreate",
    "ContactFilters", "CursorPage", "DealCreate", "DealFilters", "Explain", "FaultsPatch",
    "LeadCreate", "LeadFilters", "LoginRequest", "Query", "RevokeAdmin", "RevokeRequest", "SearchQuery",
    "SettingsPatch", "TokenRequest", "WebhookCreate", "partial",
]

MAX_PAGE = 1_000_000
MAX_CUSTOM_NUMBER = 10**15  # exact as a double, and as a JavaScript number


@dataclass(frozen=True)
class Explain:
    """The message a 422 gives for any problem with a field of this type."""

    text: str


def _fail(message: str) -> PydanticCustomError:
    return PydanticCustomError("crm", message)


# -- reusable field types ----------------------------------------------------------------

Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"\S"),
                 Explain("expected a non-empty string of at most 100 characters")]
Label = Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S"),
                  Explain("expected a non-empty string of at most 200 characters")]
Short = Annotated[str | None, Field(max_length=50),
                  Explain("expected a string of at most 50 characters, or null")]
Line = Annotated[str | None, Field(max_length=200),
                 Explain("expected a string of at most 200 characters, or null")]
Phone = Annotated[str | None, Field(max_length=40),
                  Explain("expected a string of at most 40 characters, or null")]
JobTitle = Annotated[str | None, Field(max_length=100),
                     Explain("expected a string of at most 100 characters, or null")]
Country = Annotated[str | None, Field(max_length=2),
                    Explain("expected a string of at most 2 characters, or null")]
Notes = Annotated[str | None, Field(max_length=5000),
                  Explain("expected a string of at most 5000 characters, or null")]
_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
Email = Annotated[str, Field(max_length=254, pattern=_EMAIL), Explain("expected an email address")]
Id = Annotated[str | None, Field(max_length=64), Explain("expected a record id")]
Tags = Annotated[list[Annotated[str, Field(min_length=1, max_length=64)]], Field(max_length=20),
                 Explain("expected a list of at most 20 short strings")]
_CustomNumber = Annotated[float, Field(ge=-MAX_CUSTOM_NUMBER, le=MAX_CUSTOM_NUMBER)]
_CustomInt = Annotated[int, Field(ge=-MAX_CUSTOM_NUMBER, le=MAX_CUSTOM_NUMBER)]
Custom = Annotated[
    dict[Annotated[str, Field(max_length=64)],
         Annotated[str, Field(max_length=1000)] | bool | _CustomInt | _CustomNumber | None],
    Field(max_length=50),
    Explain("expected an object of at most 50 fields: keys up to 64 characters, values a "
            "string up to 1000 characters, a number from -1e15 to 1e15, true, false or null")]
Amount = Annotated[float, Field(ge=0, le=1e12), Explain("expected a number from 0 to 1e12")]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$"), Explain("expected a 3-letter currency code")]


def _a_date(value: str | None) -> str | None:
    if value is not None:
        try:
            date.fromisoformat(value)
        except ValueError:
            raise _fail("expected a date like 2026-12-31") from None
    return value


def _a_timestamp(value: str | None) -> str | None:
    if value is not None:
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise _fail("expected an ISO 8601 timestamp") from None
    return value


Day = Annotated[str | None, Field(max_length=10, pattern=r"^\d{4}-\d{2}-\d{2}$"),
                AfterValidator(_a_date), Explain("expected a date like 2026-12-31")]
Timestamp = Annotated[str | None, Field(max_length=40, json_schema_extra={"format": "date-time"}),
                      AfterValidator(_a_timestamp), Explain("expected an ISO 8601 timestamp")]
StageName = Literal["prospecting", "qualification", "proposal", "negotiation", "closed_won",
                    "closed_lost"]
Stage = Annotated[StageName, Explain(f"expected one of {', '.join(STAGES)}")]
LeadStatusName = Literal["new", "working", "qualified", "disqualified"]
LeadStatus = Annotated[LeadStatusName, Explain(f"expected one of {', '.join(LEAD_STATUSES)}")]
KindName = Literal["call", "email", "meeting", "note", "task"]
Kind = Annotated[KindName, Explain(f"expected one of {', '.join(get_args(KindName))}")]
if list(get_args(StageName)) != STAGES or list(get_args(LeadStatusName)) != LEAD_STATUSES:
    raise RuntimeError("models.py and seed.py disagree on deal stages or lead statuses")


def _loopback(url: str) -> str:
    problem = loopback_url_error(url)
    if problem:
        raise _fail(problem)
    return url


# -- bodies ------------------------------------------------------------------------------

class Body(BaseModel):
    """A JSON body: strict types, no unknown fields, finite numbers."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    unknown: ClassVar[str] = "unknown field"


def partial(model: type[BaseModel], name: str) -> type[Body]:
    """The PATCH twin of a create model: every field optional, none defaulted.

    A field left out stays as it is; a field sent must be valid, so ``null`` is
    accepted only where the create model accepts it.
    """
    fields: dict[str, Any] = {}
    for field_name, info in model.model_fields.items():
        optional = copy.copy(info)
        optional.default, optional.default_factory = None, None
        optional.json_schema_extra = _no_default
        fields[field_name] = (info.annotation, optional)
    patch: type[Body] = create_model(name, __base__=Body, __doc__=f"Changes to {model.__name__}: "
                                     "only the fields sent are changed.", **fields)
    return patch


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


class ContactCreate(Body):
    """A contact; email is required, account_id must name an existing account."""

    first_name: Name
    last_name: Name
    email: Email
    phone: Phone = None
    title: JobTitle = None
    account_id: Id = None
    tags: Tags = []
    custom: Custom = {}


class AccountCreate(Body):
    name: Label
    industry: Short = None
    website: Line = None
    country: Country = None


class DealCreate(Body):
    name: Label
    amount: Amount
    currency: Currency = "USD"
    stage: Stage = "prospecting"
    account_id: Id = None
    contact_id: Id = None
    close_date: Day = None
    tags: Tags = []


class LeadCreate(Body):
    """A lead: a prospect not yet qualified into a contact."""

    first_name: Name
    last_name: Name
    email: Email
    company: Line = None
    status: LeadStatus = "new"
    source: Short = None
    tags: Tags = []


class ActivityCreate(Body):
    kind: Kind
    subject: Label
    notes: Notes = ""
    contact_id: Id = None
    deal_id: Id = None
    occurred_at: Timestamp = None
    tags: Tags = []


ContactPatch = partial(ContactCreate, "ContactPatch")
AccountPatch = partial(AccountCreate, "AccountPatch")
DealPatch = partial(DealCreate, "DealPatch")
LeadPatch = partial(LeadCreate, "LeadPatch")


class WebhookCreate(Body):
    """A subscription: change events POSTed to a loopback URL, signed when a secret is set."""

    url: Annotated[str, Field(max_length=2000), AfterValidator(_loopback)]
    events: Annotated[list[Literal[tuple(EVENT_TYPES)]], Field(max_length=len(EVENT_TYPES)),  # type: ignore[valid-type]
                      Explain(f"expected a list of {EVENT_TYPES}")] = []
    secret: Annotated[str | None, Field(max_length=200), Explain("expected a string")] = None


FaultsPatch = partial(Faults, "FaultsPatch")
FaultsPatch.unknown = "unknown fault knob"


class SettingsPatch(Body):
    """Run-time settings; fields left out keep their value."""

    token_ttl_s: Annotated[float | None, Field(ge=0, le=86400),
                           Explain("expected seconds, 0 to 86400")] = None
    login_max_failures: Annotated[int | None, Field(ge=1, le=1000),
                                  Explain("expected 1 to 1000 failed logins")] = None
    login_window_s: Annotated[float | None, Field(ge=1, le=86400),
                              Explain("expected seconds, 1 to 86400")] = None
    login_lockout_s: Annotated[float | None, Field(ge=0, le=86400),
                               Explain("expected seconds, 0 to 86400")] = None


class RevokeAdmin(Body):
    """A token to revoke: an issued one, a personal or integration token, a vendor's app token."""

    token: Annotated[str, Field(min_length=1, max_length=4000), Explain("expected a token")]


class TokenRequest(BaseModel):
    """OAuth2 token request parameters (RFC 6749 4.1.3, 4.3.2, 4.4.2); others are ignored."""

    model_config = ConfigDict(extra="ignore", strict=True)

    grant_type: Annotated[str | None, Field(max_length=100)] = None
    client_id: Annotated[str | None, Field(max_length=200)] = None
    client_secret: Annotated[str | None, Field(max_length=200)] = None
    username: Annotated[str | None, Field(max_length=254)] = None
    password: Annotated[str | None, Field(max_length=200)] = None
    scope: Annotated[str | None, Field(max_length=1000)] = None


class LoginRequest(BaseModel):
    """A username and password, as a form or JSON; others parameters are ignored."""

    model_config = ConfigDict(extra="ignore", strict=True)

    username: Annotated[str | None, Field(max_length=254)] = None
    password: Annotated[str | None, Field(max_length=200)] = None


class RevokeRequest(BaseModel):
    """RFC 7009 token revocation parameters."""

    model_config = ConfigDict(extra="ignore", strict=True)

    token: Annotated[str | None, Field(max_length=4000)] = None
    token_type_hint: Annotated[str | None, Field(max_length=100)] = None


# -- query parameters --------------------------------------------------------------------

def _whole_number(value: Any) -> Any:
    """Query text to int, ASCII digits only (int() would take '²', '٣', ' 7' and '1_0')."""
    if isinstance(value, str):
        if not re.fullmatch(r"[0-9]{1,12}", value):
            raise _fail("expected a whole number")
        return int(value)
    return value


def _a_cursor(value: str | None) -> str | None:
    if value is not None and decode_cursor(value) is None:
        raise _fail("invalid cursor")
    return value


class Query(BaseModel):
    """Query parameters: each at most once, unknown ones refused."""

    model_config = ConfigDict(extra="forbid")
    unknown: ClassVar[str] = "unknown parameter"


Limit = Annotated[int, Field(ge=1, le=200), BeforeValidator(_whole_number),
                  Explain("expected 1 to 200")]
PageNumber = Annotated[int, Field(ge=1, le=MAX_PAGE), BeforeValidator(_whole_number),
                       Explain(f"expected a page number from 1 to {MAX_PAGE}")]
Cursor = Annotated[str | None, Field(max_length=32), AfterValidator(_a_cursor),
                   Explain("invalid cursor")]
Filter = Annotated[str | None, Field(max_length=254), Explain("expected at most 254 characters")]
Since = Annotated[str | None, Field(max_length=40, json_schema_extra={"format": "date-time"}),
                  AfterValidator(_a_timestamp),
                  Explain("expected an ISO 8601 timestamp")]


class CursorPage(Query):
    """Cursor pagination: ``next_cursor`` from one page is the ``cursor`` of the next."""

    unknown: ClassVar[str] = "unknown filter"
    limit: Limit = 50
    cursor: Cursor = None


class ContactFilters(CursorPage):
    email: Filter = None
    email_prefix: Filter = None
    account_id: Filter = None
    tag: Filter = None
    updated_since: Since = None


class DealFilters(CursorPage):
    account_id: Filter = None
    stage: Annotated[StageName | None, Explain(f"expected one of {', '.join(STAGES)}")] = None
    tag: Filter = None
    updated_since: Since = None


class LeadFilters(CursorPage):
    email: Filter = None
    email_prefix: Filter = None
    status: Annotated[LeadStatusName | None,
                      Explain(f"expected one of {', '.join(LEAD_STATUSES)}")] = None
    source: Filter = None
    tag: Filter = None
    updated_since: Since = None


class ActivityFilters(CursorPage):
    contact_id: Filter = None
    deal_id: Filter = None
    tag: Filter = None


class AccountPage(Query):
    """Page-number pagination with the total count."""

    page: PageNumber = 1
    per_page: Limit = 50


class SearchQuery(Query):
    """At least one of q, tag and email."""

    q: Annotated[str, Field(max_length=500), Explain("expected at most 500 characters")] = ""
    tag: Filter = None
    email: Filter = None
    limit: Limit = 20

"""A vendor's objects as views of the sandbox's tables: which field is which column.

    ObjectMap   one vendor object (Salesforce's Contact, HubSpot's contacts, Dataverse's
                contacts) over one store table, optionally a subset of it (HubSpot's tasks
                and notes are both activities)
    Field       one vendor field: the column it is, or a key of the record's ``extra``
                (fields the native API has no column for), or a value derived from the
                record; its kind says how a dialect writes it on the wire

Values crossing this module are *neutral*: text, numbers, booleans, ``YYYY-MM-DD``
dates, ISO 8601 timestamps as the store keeps them, and store ids. Each dialect turns
them into its vendor's wire form (a Salesforce id, a HubSpot string, a GUID).

Picklists whose vendor values do not map one to one onto the native vocabulary (a
Salesforce stage such as "Needs Analysis") keep the vendor's value in ``extra`` and
the nearest native value in the column, so the native view stays meaningful and the
vendor reads back exactly what it wrote.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..access import RESTRICTED_FIELDS, SENSITIVE_FIELDS

__all__ = ["Field", "Kind", "ObjectMap", "picklist"]

Kind = Literal["string", "number", "int", "bool", "date", "datetime", "id", "ref", "owner"]


@dataclass(frozen=True)
class Field:
    """One vendor field. ``column`` None and no ``getter``: stored in ``extra[name]``."""

    name: str
    column: str | None = None
    kind: Kind = "string"
    ref: str | None = None  # kind "ref": the store table the id points into
    writable: bool = True
    required: bool = False
    getter: Callable[[Mapping[str, Any]], Any] | None = None
    setter: Callable[[Any], dict[str, Any]] | None = None  # value -> {column: value, "extra.KEY": v}
    sql_expr: str | None = None
    choices: tuple[Any, ...] | None = None  # allowed values (a restricted picklist)
    max_length: int | None = None

    @property
    def sql(self) -> str:
        if self.sql_expr is not None:
            return self.sql_expr
        if self.column is not None:
            return self.column
        return f"json_extract(extra, '$.\"{self.name}\"')"

    @property
    def derived(self) -> bool:
        return self.getter is not None and self.setter is None

    def get(self, record: Mapping[str, Any]) -> Any:
        if self.getter is not None:
            return self.getter(record)
        if self.column is not None:
            return record.get(self.column)
        return (record.get("extra") or {}).get(self.name)

    def set(self, value: Any) -> dict[str, Any]:
        """Store updates for this value: columns by name, ``extra`` keys as ``extra.KEY``."""
        if self.setter is not None:
            return self.setter(value)
        if self.column is not None:
            return {self.column: value}
        return {f"extra.{self.name}": value}

    @property
    def sensitive(self) -> bool:
        return self.column in SENSITIVE_FIELDS

    def restricted_in(self, table: str) -> bool:
        return self.column in RESTRICTED_FIELDS.get(table, frozenset())


def picklist(name: str, column: str, to_native: Mapping[str, str], from_native: Mapping[str, str],
             **options: Any) -> Field:
    """A picklist over a native column: the vendor's value is kept in ``extra`` too.

    ``to_native`` maps every vendor value to the nearest native one; ``from_native`` maps
    a native value (written through another dialect) to the vendor's default for it.
    """
    cases = " ".join(f"WHEN '{n}' THEN '{v}'" for n, v in from_native.items())
    expr = f"COALESCE(json_extract(extra, '$.\"{name}\"'), CASE {column} {cases} END)"

    def get(record: Mapping[str, Any]) -> Any:
        kept = (record.get("extra") or {}).get(name)
        return kept if kept is not None else from_native.get(record.get(column) or "")

    def put(value: Any) -> dict[str, Any]:
        if value is None:
            return {column: None, f"extra.{name}": None}
        return {column: to_native.get(value, value), f"extra.{name}": value}

    return Field(name, column, getter=get, setter=put, sql_expr=expr,
                 choices=tuple(to_native), **options)


@dataclass(frozen=True)
class ObjectMap:
    """A vendor object over a store table (``where``/``defaults`` carve out a subset)."""

    name: str
    table: str
    fields: tuple[Field, ...]
    id_field: str = "Id"
    where: str = ""  # SQL on the table's columns: which rows are this object
    defaults: Mapping[str, Any] = field(default_factory=dict)  # store values of a new record
    case_insensitive: bool = True
    member: Callable[[Mapping[str, Any]], bool] = lambda record: True  # the ``where`` in Python

    @property
    def key(self) -> Field:
        """The field that is the record's id."""
        found = self.field(self.id_field)
        assert found is not None, self.id_field
        return found

    def field(self, name: str) -> Field | None:
        for candidate in self.fields:
            if candidate.name == name or (self.case_insensitive and candidate.name.lower() == name.lower()):
                return candidate
        return None

    def to_store(self, values: Mapping[str, Any], current_extra: Mapping[str, Any] | None = None
                 ) -> dict[str, Any]:
        """Store columns for neutral vendor values (already checked), ``extra`` merged."""
        out: dict[str, Any] = {}
        extra = dict(current_extra or {})
        touched = False
        for name, value in values.items():
            found = self.field(name)
            assert found is not None, name
            for key, stored in found.set(value).items():
                if key.startswith("extra."):
                    touched = True
                    if stored is None:
                        extra.pop(key[6:], None)
                    else:
                        extra[key[6:]] = stored
                else:
                    out[key] = stored
        if touched:
            out["extra"] = extra
        return out

"""Record filters as data: what SOQL's WHERE, OData's $filter and HubSpot's filterGroups
parse into, compiled to SQL for the store or evaluated in Python for the search index.

    Cmp(field, op, value)   one comparison; ``op`` is one of OPS; ``value`` a literal as
                            the dialect parsed it (a tuple for ``in`` and ``notin``)
    And(parts), Or(parts), Not(part)

``to_sql`` and ``matches`` resolve field names through an ``ObjectMap`` and turn each
literal into a neutral value with the dialect's ``literal(field, value)``, which raises
``QueryError`` for a value the field cannot hold. Text compares without regard to case,
as all three vendors do; ``ne`` and ``notin`` also match records where the field is
empty, as SOQL does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Union

from .fields import Field, ObjectMap

__all__ = ["OPS", "And", "Cmp", "Node", "Not", "Or", "QueryError", "matches", "order_sql", "to_sql"]

OPS = ("eq", "ne", "lt", "le", "gt", "ge", "like", "in", "notin", "contains", "startswith", "endswith",
       "has", "nothas")


class QueryError(ValueError):
    """A filter the object cannot run: an unknown field, or a value of the wrong kind."""

    def __init__(self, message: str, field: str | None = None, pos: int = 0) -> None:
        super().__init__(message)
        self.field, self.pos = field, pos


@dataclass(frozen=True)
class Cmp:
    field: str
    op: str
    value: Any = None
    pos: int = 0


@dataclass(frozen=True)
class And:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    part: Node


Node = Union[Cmp, And, Or, Not]  # noqa: UP007 - a runtime alias
Literal = Callable[[Field, Any], Any]


def _field(obj: ObjectMap, cmp: Cmp, filterable: bool = True) -> Field:
    found = obj.field(cmp.field)
    if found is None:
        raise QueryError(f"no such field {cmp.field}", cmp.field, cmp.pos)
    if found.derived and found.sql_expr is None:
        raise QueryError(f"{found.name} cannot be filtered on", cmp.field, cmp.pos)
    return found


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def to_sql(node: Node, obj: ObjectMap, literal: Literal) -> tuple[str, list[Any]]:
    """SQL for the store (column names resolved through ``obj``) and its ``?`` arguments.

    Every comparison is two-valued (a comparison with an empty field is false, never SQL's
    unknown), so ``NOT`` means what it means in Python's ``matches`` and in the vendors'.
    """
    if isinstance(node, Cmp):
        sql, args = _compare(node, obj, literal)
        return f"coalesce({sql}, 0)", args
    if isinstance(node, And | Or):
        parts = [to_sql(p, obj, literal) for p in node.parts]
        glue = " AND " if isinstance(node, And) else " OR "
        return "(" + glue.join(s for s, _ in parts) + ")", [a for _, args in parts for a in args]
    sql, args = to_sql(node.part, obj, literal)
    return f"NOT {sql}", args


def _compare(node: Cmp, obj: ObjectMap, literal: Literal) -> tuple[str, list[Any]]:
    found = _field(obj, node)
    expr = found.sql
    text = found.kind in ("string", "id", "ref", "owner")
    nocase = " COLLATE NOCASE" if text else ""
    op = node.op
    if op == "has":
        return f"({expr} IS NOT NULL AND {expr} <> '')", []
    if op == "nothas":
        return f"({expr} IS NULL OR {expr} = '')", []
    if op in ("in", "notin"):
        values = [literal(found, v) for v in node.value]
        if not values:
            return ("0", []) if op == "in" else ("1", [])
        marks = ", ".join("?" * len(values))
        if op == "in":
            return f"({expr}{nocase} IN ({marks}))", values
        return f"({expr} IS NULL OR {expr}{nocase} NOT IN ({marks}))", values
    if op in ("like", "contains", "startswith", "endswith"):
        given = str(literal(found, node.value))
        pattern = {"like": given, "contains": f"%{_escape_like(given)}%",
                   "startswith": f"{_escape_like(given)}%", "endswith": f"%{_escape_like(given)}"}[op]
        return f"({expr} LIKE ? ESCAPE '\\')", [pattern]
    value = literal(found, node.value)
    if value is None:
        if op in ("eq", "ne"):
            return f"({expr} IS {'NOT ' if op == 'ne' else ''}NULL)", []
        return "0", []  # SOQL: an order against null matches nothing
    if isinstance(value, bool):
        value = int(value)
    sign = {"eq": "=", "ne": "<>", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}[op]
    if op == "ne":
        return f"({expr} IS NULL OR {expr}{nocase} <> ?)", [value]
    return f"({expr}{nocase} {sign} ?)", [value]


def _like(pattern: str, text: str) -> bool:
    import re

    out, i = "", 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            out += re.escape(pattern[i + 1])
            i += 2
            continue
        out += ".*" if char == "%" else "." if char == "_" else re.escape(char)
        i += 1
    return re.fullmatch(out, text, re.IGNORECASE | re.DOTALL) is not None


def _fold(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def matches(node: Node, obj: ObjectMap, record: Mapping[str, Any], literal: Literal) -> bool:
    """Whether a record (store-shaped: columns and ``extra``) passes the filter."""
    if isinstance(node, And):
        return all(matches(p, obj, record, literal) for p in node.parts)
    if isinstance(node, Or):
        return any(matches(p, obj, record, literal) for p in node.parts)
    if isinstance(node, Not):
        return not matches(node.part, obj, record, literal)
    found = _field(obj, node)
    have = found.get(record)
    if isinstance(have, bool):
        have = int(have)
    op = node.op
    if op == "has":
        return have not in (None, "")
    if op == "nothas":
        return have in (None, "")
    if op in ("in", "notin"):
        values = {_fold(literal(found, v)) for v in node.value}
        inside = have is not None and _fold(have) in values
        return inside if op == "in" else not inside
    if op in ("like", "contains", "startswith", "endswith"):
        if have is None:
            return False
        given, text = str(literal(found, node.value)).lower(), str(have).lower()
        if op == "like":
            return _like(given, text)
        return {"contains": given in text, "startswith": text.startswith(given),
                "endswith": text.endswith(given)}[op]
    value = literal(found, node.value)
    if isinstance(value, bool):
        value = int(value)
    if value is None or have is None:
        if op == "eq":
            return value is None and have is None
        if op == "ne":
            return (value is None) != (have is None)
        return False
    have, value = _fold(have), _fold(value)
    try:
        return bool({"eq": have == value, "ne": have != value, "lt": have < value, "le": have <= value,
                     "gt": have > value, "ge": have >= value}[op])
    except TypeError:  # a number against text: SQL would compare them too, never equal
        return op == "ne"


def order_sql(items: list[tuple[str, bool, bool | None]], obj: ObjectMap) -> str:
    """``ORDER BY`` terms for (field, descending, nulls first or None for the default)."""
    terms = []
    for name, descending, nulls_first in items:
        found = obj.field(name)
        if found is None or (found.derived and found.sql_expr is None):
            raise QueryError(f"no such field {name}", name)
        nocase = " COLLATE NOCASE" if found.kind == "string" else ""
        term = f"{found.sql}{nocase} {'DESC' if descending else 'ASC'}"
        if nulls_first is not None:
            term += " NULLS FIRST" if nulls_first else " NULLS LAST"
        terms.append(term)
    return ", ".join([*terms, "rowid"])

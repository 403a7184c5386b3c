"""Journey steps and response expectations, shared by the demo, probes and load tests.

A step names a profile operation, the variables to call it ``with`` (templates over
earlier steps' saved values), what to ``save`` from its result for later steps, an
optional ``expect`` block of assertions, and ``until``/``within`` to retry a read
until a record becomes visible (the search index lags behind writes).

    - operation: create_contact
      with: {first_name: Ada, last_name: Probe, email: "ada-{{ unique }}@crmpulse.example"}
      save: {contact_id: id}
    - operation: search_contacts
      with: {email: "{{ email }}"}
      until: $.data[0].id
      within: 10s
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ._types import Bytes, Duration, JSONPathStr, Regex, compile_jsonpath

__all__ = ["Expect", "JSONAssertion", "Step", "evaluate_expect"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True,
                              allow_inf_nan=False)


class JSONAssertion(_Model):
    """One assertion on a JSON body; every key given must hold."""

    path: JSONPathStr
    equals: Any = None
    contains: Any = None
    exists: bool | None = None
    type: Literal["string", "number", "integer", "boolean", "array", "object", "null"] | None = None
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None


class Expect(_Model):
    """Assertions on a response beyond the operation's own status check."""

    status: list[int] | None = Field(None, description="default: what the operation expects")
    body_regex: list[Regex] = []
    body_not_regex: list[Regex] = []
    json_: list[JSONAssertion] = Field([], alias="json")
    headers: dict[str, Regex] = {}
    max_body: Bytes = 1024 * 1024


class Step(_Model):
    operation: str
    name: str | None = None
    with_: dict[str, Any] = Field({}, alias="with")
    save: dict[str, str] = Field({}, description="variable -> value the operation extracted")
    expect: Expect | None = None
    until: JSONPathStr | None = Field(None, description="retry until this JSONPath matches")
    within: Duration = Field(10.0, description="how long `until` may retry")
    pages: int = Field(1, ge=1, le=10_000, description="pages to follow when the operation paginates")

    @property
    def label(self) -> str:
        return self.name or self.operation


_TYPES: dict[str, Any] = {"string": str, "boolean": bool, "array": list, "object": dict,
                          "null": type(None)}


def evaluate_expect(expect: Expect, status: int, headers: Mapping[str, str],
                    body: bytes) -> str | None:
    """Return a specific failure message, or None when every assertion holds."""
    if expect.status is not None and status not in expect.status:
        return f"expected status {', '.join(map(str, expect.status))}, got {status}"
    if len(body) > expect.max_body:
        return f"expected a body of at most {expect.max_body} bytes, got {len(body)}"
    text = body.decode("utf-8", "replace") if (expect.body_regex or expect.body_not_regex) else ""
    for pattern in expect.body_regex:
        if not re.search(pattern, text):
            return f"expected the body to match /{pattern}/"
    for pattern in expect.body_not_regex:
        if re.search(pattern, text):
            return f"expected the body not to match /{pattern}/"
    lower = {k.lower(): v for k, v in headers.items()}
    for name, pattern in expect.headers.items():
        value = lower.get(name.lower())
        if value is None:
            return f"expected header {name}"
        if not re.search(pattern, value):
            return f"expected header {name} to match /{pattern}/, got {value!r}"
    if expect.json_:
        try:
            document = json.loads(body)
        except ValueError:
            return "expected a JSON body"
        for assertion in expect.json_:
            failure = _check_json(assertion, document)
            if failure:
                return failure
    return None


def _check_json(a: JSONAssertion, document: Any) -> str | None:
    matches = compile_jsonpath(a.path).find(document)
    if a.exists is not None:
        if a.exists and not matches:
            return f"expected {a.path} to exist"
        if not a.exists and matches:
            return f"expected {a.path} not to exist"
    needs_value = any(v is not None for v in (a.equals, a.contains, a.type, a.gt, a.ge, a.lt, a.le))
    if not needs_value:
        return None
    if not matches:
        return f"expected {a.path} in the body, found nothing"
    value = matches[0].value
    if a.equals is not None and value != a.equals:
        return f"expected {a.path} to equal {a.equals!r}, got {value!r}"
    if a.contains is not None:
        ok = (a.contains in value) if isinstance(value, list | str | dict) else False
        if not ok:
            return f"expected {a.path} to contain {a.contains!r}"
    if a.type is not None:
        ok = (isinstance(value, int | float) and not isinstance(value, bool)) if a.type == "number" \
            else (isinstance(value, int) and not isinstance(value, bool)) if a.type == "integer" \
            else isinstance(value, _TYPES[a.type])
        if not ok:
            return f"expected {a.path} to be {a.type}, got {type(value).__name__}"
    for op, bound, holds in (("gt", a.gt, lambda v, b: v > b), ("ge", a.ge, lambda v, b: v >= b),
                             ("lt", a.lt, lambda v, b: v < b), ("le", a.le, lambda v, b: v <= b)):
        if bound is None:
            continue
        if not isinstance(value, int | float) or isinstance(value, bool):
            return f"expected {a.path} to be a number, got {type(value).__name__}"
        if not holds(value, bound):
            return f"expected {a.path} {op} {bound:g}, got {value!r}"
    return None

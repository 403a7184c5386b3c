"""Response assertions shared by probes and journeys."""

from __future__ import annotations

import json

import pytest

from crmpulse.steps import Expect, evaluate_expect

BODY = json.dumps({"data": [{"id": "c1", "score": 7}], "total": 1, "name": "Ada"}).encode()


@pytest.mark.parametrize(("expect", "failure"), [
    ({"status": [200]}, None),
    ({"status": [201]}, "expected status 201, got 200"),
    ({"body_regex": ["Ada"]}, None),
    ({"body_regex": ["Bob"]}, "expected the body to match /Bob/"),
    ({"body_not_regex": ["tax_id"]}, None),
    ({"body_not_regex": ["Ada"]}, "expected the body not to match /Ada/"),
    ({"json": [{"path": "$.total", "equals": 1}]}, None),
    ({"json": [{"path": "$.total", "equals": 2}]}, "expected $.total to equal 2, got 1"),
    ({"json": [{"path": "$.data", "type": "array"}]}, None),
    ({"json": [{"path": "$.name", "type": "number"}]}, "expected $.name to be number, got str"),
    ({"json": [{"path": "$.missing", "exists": True}]}, "expected $.missing to exist"),
    ({"json": [{"path": "$.missing", "exists": False}]}, None),
    ({"json": [{"path": "$.data[0].score", "gt": 5, "le": 7}]}, None),
    ({"json": [{"path": "$.data[0].score", "lt": 5}]}, "expected $.data[0].score lt 5, got 7"),
    ({"json": [{"path": "$.name", "contains": "d"}]}, None),
    ({"headers": {"content-type": "json"}}, None),
    ({"headers": {"x-missing": "."}}, "expected header x-missing"),
    ({"max_body": 10}, f"expected a body of at most 10 bytes, got {len(BODY)}"),
])
def test_each_assertion_passes_or_fails_with_a_specific_message(expect: dict, failure: str | None) -> None:
    headers = {"Content-Type": "application/json"}
    assert evaluate_expect(Expect.model_validate(expect), 200, headers, BODY) == failure


def test_json_assertions_on_a_non_json_body_fail() -> None:
    expect = Expect.model_validate({"json": [{"path": "$.x", "exists": True}]})
    assert evaluate_expect(expect, 200, {}, b"<html>") == "expected a JSON body"

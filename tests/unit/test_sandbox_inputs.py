"""The sandbox's input parsing: strict JSON, cursors, and 422 messages in the API's words."""

from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError

from crmpulse.sandbox.api.common import MalformedJSON, field_errors, parse_json
from crmpulse.sandbox.api.models import AccountPage, ContactCreate, ContactFilters, ContactPatch, FaultsPatch
from crmpulse.sandbox.store import decode_cursor, encode_cursor


@pytest.mark.parametrize(("raw", "message"), [
    (b"", "empty"), (b"{\"a\": NaN}", "NaN is not a JSON number"), (b"[-Infinity]", "-Infinity"),
    (b"[1e999]", "too large for a number"), (b"[" * 100_000, "nested too deeply"),
    (b"{\"a\": \"\\ud800\"}", "lone surrogate"), (b"\xff{}", "not valid UTF-8"),
    (b"\xef\xbb\xbf{}", "BOM"), (b"{\"a\": 1,}", "not valid JSON"),
])
def test_json_that_is_not_strict_rfc_8259_is_refused_with_a_reason(raw: bytes, message: str) -> None:
    with pytest.raises(MalformedJSON, match=message):
        parse_json(raw)


def test_strict_json_parses_including_escaped_surrogate_pairs() -> None:
    assert parse_json(b'{"a": "\\ud83d\\ude00", "n": 1e308, "z": -0.0}') == {"a": "😀", "n": 1e308, "z": -0.0}


def test_cursors_are_only_those_the_api_hands_out() -> None:
    assert decode_cursor(encode_cursor(123)) == 123
    assert decode_cursor(encode_cursor(2**63 - 1)) == 2**63 - 1
    for cursor in ("9" * 30, base64.urlsafe_b64encode(b"9" * 30).decode(), encode_cursor(2**63), "MDEy", "-1",
                   "MTIz=", "", "MTI\u00b2", "x" * 33):
        assert decode_cursor(cursor) is None, cursor


def errors(model: type, data: object, where: str = "body") -> dict[tuple[str, ...], str]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)  # type: ignore[attr-defined]
    return {tuple(e["loc"]): e["msg"] for e in field_errors(caught.value, model, where,
                                                           getattr(model, "unknown", "unknown field"))}


def test_body_errors_are_one_per_field_in_the_fields_own_words() -> None:
    assert errors(ContactCreate, {"first_name": " ", "email": "nope", "custom": {"a": [1]}, "shoe": 9}) == {
        ("body", "first_name"): "expected a non-empty string of at most 100 characters",
        ("body", "last_name"): "field required",
        ("body", "email"): "expected an email address",
        ("body", "custom"): "expected an object of at most 50 fields: keys up to 64 characters, values a "
                            "string up to 1000 characters, a number from -1e15 to 1e15, true, false or null",
        ("body", "shoe"): "unknown field"}


def test_numbers_are_never_coerced_from_other_types() -> None:
    assert errors(FaultsPatch, {"latency_ms": "5", "outage": 1, "error_status": 500.0, "latency": 1}) == {
        ("body", "latency_ms"): "expected a number", ("body", "outage"): "expected true or false",
        ("body", "error_status"): "expected a whole number", ("body", "latency"): "unknown fault knob"}
    assert errors(FaultsPatch, {"error_rate": 1.5}) == {("body", "error_rate"): "expected 0 to 1"}


def test_a_patch_may_leave_fields_out_but_not_null_a_required_one() -> None:
    assert ContactPatch.model_validate({"phone": None}).model_dump(exclude_unset=True) == {"phone": None}
    assert errors(ContactPatch, {"email": None}) == {("body", "email"): "expected an email address"}


@pytest.mark.parametrize("text", ["²", "٣", " 7", "7 ", "1_0", "+7", "0x10", "1e2", "", "9" * 13])
def test_query_numbers_are_ascii_digits_only(text: str) -> None:
    assert errors(ContactFilters, {"limit": text}, "query") == {("query", "limit"): "expected 1 to 200"}


def test_query_numbers_are_bounded() -> None:
    assert errors(AccountPage, {"page": str(10**25)}, "query") == {
        ("query", "page"): "expected a page number from 1 to 1000000"}
    assert AccountPage.model_validate({"page": "1000000", "per_page": "200"}).page == 1_000_000

"""The load test's per-request shortcuts give exactly what the general code gives.

Compiled templates against render/render_path, the inlined HDR record and the C-summed
percentiles against hdrh's own methods, the JSON decoder kept between calls against
json.loads, the query string against urlencode.
"""

from __future__ import annotations

import json
import random
from typing import Any
from urllib.parse import urlencode

import pytest

from crmpulse import OperationError
from crmpulse.loadtests.latency import HIGHEST_US, LOWEST_US, Entry, LatencyBook, new_histogram
from crmpulse.loadtests.wire import query_string as _query
from crmpulse.profile import Operation, Profile, loads_json
from crmpulse.templates import MISSING, compile_path, compile_template, render, render_path

FILTERS: dict[str, Any] = {"upper": str.upper, "stages": lambda v: {"new": "N"}[v]}

TEMPLATES: list[Any] = [
    "plain text", "{{ id }}", "{{ id? }}", "{{ n }}", "{{ contact.id }}", "{{ contact.missing? }}",
    "/contacts/{{ id }}", "/accounts({{ account_id? }})", "{{ a? }}-{{ b? }}", "{{ a? }}-{{ id }}",
    "{{ contact_id or deal_id }}", "{{ missing or 'fallback' }}", "{{ missing or 7 }}",
    "{{ name | upper }}", "{{ stage | stages or 'x' }}", "{{ none? }}", "{{ none }}", "x{{ none? }}",
    "{{ unique }}", 12, None, True,
    {"q": "{{ q? }}", "limit": "{{ n }}", "nested": {"id": "{{ id }}", "gone": "{{ gone? }}"}},
    ["{{ id }}", "{{ gone? }}", "lit", {"k": "{{ n }}"}], [], {},
    {"text": "{{ a? }} and {{ b? }}", "list": ["{{ tags? }}"]},
]

VARIABLE_SETS: list[dict[str, Any]] = [
    {"id": "c1", "n": 5, "contact": {"id": "k9"}, "q": "smith", "name": "ada", "stage": "new",
     "deal_id": "d1", "none": None, "tags": ["a", "b"], "a": "A", "b": 0},
    {"id": "a/b c", "n": 0, "contact": {}, "contact_id": "c7", "none": None, "stage": "new",
     "name": "x"},
    {},
]


def _outcome(function: Any, *args: Any) -> Any:
    try:
        value = function(*args)
    except OperationError as exc:
        return ("error", str(exc))
    return ("missing",) if value is MISSING else ("value", value)


@pytest.mark.parametrize("template", TEMPLATES, ids=repr)
def test_a_compiled_template_renders_what_render_renders_errors_included(template: Any) -> None:
    compiled = compile_template(template, FILTERS)
    for variables in VARIABLE_SETS:
        expected = _outcome(render, template, variables, FILTERS)
        got = _outcome(compiled, variables)
        if "unique" in str(template) and expected[0] == "value":  # fresh randomness each render
            assert got[0] == "value" and len(got[1]) == len(expected[1])
        else:
            assert got == expected, variables


@pytest.mark.parametrize("template", [t for t in TEMPLATES if isinstance(t, str)], ids=repr)
def test_a_compiled_path_renders_what_render_path_renders(template: str) -> None:
    compiled = compile_path(template, FILTERS)
    for variables in VARIABLE_SETS:
        expected = _outcome(render_path, template, variables, FILTERS)
        if "unique" not in template:
            assert _outcome(compiled, variables) == expected, variables


def test_a_compiled_template_returns_new_containers_each_time() -> None:
    compiled = compile_template({"a": ["{{ id }}"]})
    first, second = compiled({"id": "1"}), compiled({"id": "1"})
    assert first == second == {"a": ["1"]}
    assert first is not second and first["a"] is not second["a"]


def test_an_operation_renders_and_judges_the_same_through_its_compiled_plan() -> None:
    profile = Profile.model_validate({"name": "t", "maps": {"kinds": {"call": "CALL"}}, "operations": {
        "op": {"method": "POST", "path": "/x/{{ id }}", "query": {"q": "{{ q? }}"},
               "headers": {"X-Id": "{{ id }}"}, "json": {"kind": "{{ kind | kinds }}"},
               "expect": [201, "3xx"], "extract": {"id": "$.data[0].id", "loc": "header:Location",
                                                   "deep": "$..id", "code": "status"}}}})
    op = profile.operations["op"]
    request = op.render("http://h/", {"id": "a b", "kind": "call"})
    assert (request.url, request.params, request.headers, request.json) == (
        "http://h/x/a%20b", {}, {"X-Id": "a b"}, {"kind": "CALL"})
    with pytest.raises(OperationError, match="operation op: map kinds has no entry for 'x'"):
        op.render("http://h", {"id": "1", "kind": "x"})
    body = b'{"data": [{"id": "r1"}]}'
    result = op.interpret(201, {"Location": "/r1"}, body)
    assert result.ok and result.values == {"id": "r1", "loc": "/r1", "deep": "r1", "code": 201}
    assert op.interpret(302, {"Location": "/r1"}, body).ok
    refused = op.interpret(200, {}, body)
    assert not refused.ok and refused.message == "op: expected status 201, 3xx, got 200"
    assert op.interpret(201, {"Location": "/r1"}, b'{"data": []}').values == {
        "loc": "/r1", "code": 201}


def test_an_operation_built_alone_compiles_its_plan_when_first_used() -> None:
    op = Operation.model_validate({"path": "/c/{{ id }}", "extract": {"id": "$.id"}})
    assert op.render("http://h", {"id": "7"}).url == "http://h/c/7"
    assert op.interpret(200, {}, b'{"id": 7}').values == {"id": 7}


def test_the_inlined_hdr_record_counts_what_record_value_counts() -> None:
    rng = random.Random(7)
    book, reference = LatencyBook(), new_histogram()
    seconds = [0.0, 1e-7, 1e-6, 3600.0, 7200.0] + [rng.lognormvariate(-6, 2) for _ in range(20_000)]
    for value in seconds:
        book.record("operation", "x", value, True)
        reference.record_value(min(max(int(value * 1_000_000), LOWEST_US), HIGHEST_US))
    recorded = book.entries[("operation", "x")].histogram
    assert list(recorded.counts) == list(reference.counts)
    assert (recorded.total_count, recorded.min_value, recorded.max_value) == (
        reference.total_count, reference.min_value, reference.max_value)
    assert recorded.encode() == reference.encode()


@pytest.mark.parametrize("count", [1, 2, 10, 3000])
def test_percentiles_are_the_ones_hdrh_computes(count: int) -> None:
    rng = random.Random(count)
    book = LatencyBook()
    for _ in range(count):
        book.record("operation", "x", rng.lognormvariate(-5, 1.5), rng.random() < 0.9)
    entries = [book.entries[("operation", "x")],
               LatencyBook.decode(book.encode()).entries[("operation", "x")]]
    merged = Entry()
    merged.add(entries[1])
    entries.append(merged)
    for entry in entries:
        for q in (0, 0.1, 1, 50, 90, 95, 99, 99.9, 100):
            assert entry.percentile_ms(q) == entry.histogram.get_value_at_percentile(q) / 1000.0
    before = entries[0].percentile_ms(99)
    book.record("operation", "x", 30.0, True)  # a new slowest value moves the cached totals on
    assert entries[0].percentile_ms(100) == entries[0].histogram.get_value_at_percentile(100) / 1000
    assert entries[0].percentile_ms(100) > before


@pytest.mark.parametrize("body", [
    b'{"a": [1, 2.5, "x", null, true]}', '{"a": 1}', '{"a": 1}'.encode("utf-16"),
    b"\xef\xbb\xbf{}", "\ufeff{}", b'{"a": NaN}', b'[Infinity]', b"{", b"", b'"\xff"',
    bytearray(b"[1]")])
def test_the_kept_json_decoder_parses_and_refuses_what_json_loads_does(body: Any) -> None:
    def strict(text: Any) -> Any:
        return json.loads(text, parse_constant=lambda name: (_ for _ in ()).throw(
            ValueError(f"{name} is not JSON")))
    expected: Any
    try:
        expected = ("value", strict(body))
    except ValueError as exc:
        expected = ("error", type(exc))
    try:
        got: Any = ("value", loads_json(body))
    except ValueError as exc:
        got = ("error", type(exc))
    assert got == expected


@pytest.mark.parametrize("params", [
    {"q": "Smith"}, {"q": "Smith", "limit": "10"}, {"q": "O'Brien & co"}, {"q": ""},
    {"q": 5}, {"tags": ["a", "b"]}, {"q": "Müller"}, {"q e": "x"}, {"a": None}, {b"k": b"v"}])
def test_the_query_string_is_what_urlencode_makes(params: dict[Any, Any]) -> None:
    assert _query(params) == urlencode(params, doseq=True)

"""The profile model's vocabulary: fallbacks, value maps, ids from headers, throttling, quota."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from crmpulse import ConfigError, OperationError, load_profile
from crmpulse.templates import expressions, placeholders, render, syntax_problems

PROFILE = """\
name: tiny
variables: {page_size: 10}
maps:
  stages: {prospecting: PROSPECTING, qualification: QUALIFY, negotiation: 3}
  kinds: {call: Call, note: Task}
throttled:
  - {status: 429}
  - {status: 403, body_regex: REQUEST_LIMIT_EXCEEDED}
quota:
  - name: daily_api_requests
    window: 24h
    used: {from: "header:Sforce-Limit-Info", match: 'api-usage=(\\d+)/'}
    limit: {from: "header:Sforce-Limit-Info", match: 'api-usage=\\d+/(\\d+)'}
  - name: daily
    operation: usage
    used: $.results[0].currentUsage
    limit: $.results[0].usageLimit
    resets_at: $.results[0].resetsAt
operations:
  usage: {path: /usage}
  create_contact:
    method: POST
    path: /contacts
    json: {email: "{{ email }}", note: "{{ tags | join }}"}
    expect: [204]
    extract: {id: {from: "header:OData-EntityId", match: '\\(([0-9a-f-]+)\\)$'}}
  get_contact: {path: "/contacts/{{ id }}"}
  update_contact: {method: PATCH, path: "/contacts/{{ id }}"}
  delete_contact: {method: DELETE, path: "/contacts/{{ id }}"}
  search_contacts: {path: /search}
  list_contacts: {path: /contacts, query: {top: "{{ page_size or 50 }}"}}
  list_accounts: {path: /accounts}
  create_deal:
    method: POST
    path: /deals
    json: {stage: "{{ stage | stages }}", close: "{{ closed_on or '2030-12-31' }}"}
  log_activity:
    method: POST
    path: /activities
    json: {type: "{{ kind | kinds }}", about: "{{ contact_id or deal_id? }}"}
"""


def write(tmp_path: Path, text: str, name: str = "tiny.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_profile(str(write(tmp_path, text)))
    return [str(p).split(" ", 1)[1] for p in caught.value.problems]


# -- templates -----------------------------------------------------------------------------


def test_or_takes_the_first_alternative_that_is_set_and_null_counts_as_unset() -> None:
    template = {"on": "{{ contact_id or deal_id }}"}
    assert render(template, {"contact_id": "c1", "deal_id": "d1"}) == {"on": "c1"}
    assert render(template, {"deal_id": "d1"}) == {"on": "d1"}
    assert render(template, {"contact_id": None, "deal_id": "d1"}) == {"on": "d1"}


def test_a_required_fallback_with_nothing_set_names_every_alternative() -> None:
    with pytest.raises(OperationError, match="needs variable 'contact_id' or 'deal_id', and none is set"):
        render({"on": "{{ contact_id or deal_id }}"}, {})


def test_literal_fallbacks_keep_their_type_and_text_may_use_either_quote() -> None:
    template = {"n": "{{ page_size or 100 }}", "r": "{{ ratio or 0.5 }}", "s": '{{ x or "none" }}',
                "t": "{{ x or 'none' }}", "in_text": "limit={{ page_size or 100 }}"}
    assert render(template, {}) == {"n": 100, "r": 0.5, "s": "none", "t": "none", "in_text": "limit=100"}
    assert render(template, {"page_size": 7, "x": "y"})["n"] == 7


def test_a_trailing_question_mark_makes_a_fallback_optional_and_its_entry_drops() -> None:
    assert render({"about": "{{ contact_id or deal_id? }}", "keep": 1}, {}) == {"keep": 1}
    assert render(["{{ a or b? }}", "x"], {}) == ["x"]


def test_builtin_filters_join_first_and_string() -> None:
    variables = {"tags": ["m-1", "m-2"], "n": 5, "empty": []}
    assert render({"a": "{{ tags | join }}", "b": "{{ tags | first }}", "c": "{{ n | string }}",
                   "d": "{{ empty | first? }}"}, variables) == {"a": "m-1 m-2", "b": "m-1", "c": "5"}


def test_filters_bind_tighter_than_or() -> None:
    upper = {"shout": lambda v: str(v).upper()}
    assert render("{{ kind | shout or 'none' }}", {"kind": "call"}, upper) == "CALL"
    assert render("{{ kind | shout or 'none' }}", {}, upper) == "none"


def test_new_forms_that_are_malformed_are_refused_with_their_text() -> None:
    for bad in ("{{ a or }}", "{{ or b }}", "{{ a | }}", "{{ a ? b }}", "{{ a || b }}",
                "{{ a or b or }}", '{{ "unterminated }}', "{{ a | 1 }}", "{{ a..b }}"):
        found = syntax_problems({"k": bad})
        assert len(found) == 1 and bad in found[0][1], bad


def test_only_a_lone_required_name_counts_as_required_in_placeholders() -> None:
    found = placeholders(["{{ a or b }}", "{{ c }}", "{{ d? }}", "{{ e or 1 }}", "{{ f | join }}"])
    assert found == {("a", True), ("b", True), ("c", False), ("d", True), ("e", True), ("f", False)}
    (fallback,) = expressions("{{ a or b }}")
    assert fallback.required and fallback.names == ("a", "b")
    (literal,) = expressions("{{ e or 1 }}")
    assert not literal.required


# -- profiles ------------------------------------------------------------------------------


def test_a_value_map_turns_crmpulse_words_into_the_crms_and_keeps_its_types(tmp_path: Path) -> None:
    profile = load_profile(str(write(tmp_path, PROFILE)))
    deal = profile.operation("create_deal").render("https://crm.example", {"stage": "prospecting"})
    assert deal.json == {"stage": "PROSPECTING", "close": "2030-12-31"}
    deal = profile.operation("create_deal").render("https://crm.example", {"stage": "negotiation",
                                                                             "closed_on": "2031-01-31"})
    assert deal.json == {"stage": 3, "close": "2031-01-31"}


def test_a_word_the_map_lacks_is_an_error_that_names_the_map_and_what_it_maps(tmp_path: Path) -> None:
    profile = load_profile(str(write(tmp_path, PROFILE)))
    with pytest.raises(OperationError, match=r"operation create_deal: map stages has no entry for "
                       r"'closed_won' \(it maps: negotiation, prospecting, qualification\)"):
        profile.operation("create_deal").render("https://crm.example", {"stage": "closed_won"})


def test_fallbacks_in_a_profile_drop_or_default(tmp_path: Path) -> None:
    profile = load_profile(str(write(tmp_path, PROFILE)))
    activity = profile.operation("log_activity").render("https://crm.example", {"kind": "note",
                                                                               "deal_id": "d9"})
    assert activity.json == {"type": "Task", "about": "d9"}
    listing = profile.operation("list_contacts").render("https://crm.example", {"page_size": None})
    assert listing.params == {"top": 50}


def test_an_id_is_taken_from_a_response_header_by_a_regex_group(tmp_path: Path) -> None:
    profile = load_profile(str(write(tmp_path, PROFILE)))
    op = profile.operation("create_contact")
    url = "https://org.crm.dynamics.com/api/data/v9.2/contacts(00000000-0000-4000-8000-0000000000c1)"
    result = op.interpret(204, {"OData-EntityId": url}, b"")
    assert result.ok and result.values == {"id": "00000000-0000-4000-8000-0000000000c1"}
    odd = op.interpret(204, {"OData-EntityId": "no id here"}, b"")
    assert odd.ok and "id" not in odd.values
    missing = op.interpret(204, {}, b"")
    assert (missing.ok, missing.message) == (False, "create_contact: expected header OData-EntityId, none sent")


def test_a_throttled_rule_turns_salesforces_403_into_throttling_not_an_auth_failure(tmp_path: Path) -> None:
    profile = load_profile(str(write(tmp_path, PROFILE)))
    op = profile.operation("get_contact")
    body = b'[{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]'
    limited = op.interpret(403, {}, body)
    assert (limited.ok, limited.throttled, limited.reason) == (False, True, "status")
    assert limited.message == "throttled: get_contact: expected status 2xx, got 403"
    denied = op.interpret(403, {}, b'[{"errorCode": "INSUFFICIENT_ACCESS"}]')
    assert (denied.throttled, denied.reason) == (False, "auth")
    slow = op.interpret(429, {"Retry-After": "7"}, b"")
    assert (slow.throttled, slow.retry_after) == (True, 7.0)
    assert op.interpret(429, {"retry-after": "soon"}, b"").retry_after is None


def test_every_profile_counts_a_429_as_throttling_by_default() -> None:
    result = load_profile("sandbox").operation("list_accounts").interpret(429, {}, b"")
    assert result.throttled and result.message.startswith("throttled: ")


def test_quota_is_read_from_a_header_by_regex_and_from_a_limits_operation(tmp_path: Path) -> None:
    profile = load_profile(str(write(tmp_path, PROFILE)))
    header, body = profile.quota
    reading = header.read({"Sforce-Limit-Info": "api-usage=120/15000"})
    assert reading is not None and (reading.name, reading.used, reading.limit) == (
        "daily_api_requests", 120.0, 15000.0)
    assert header.read({"Content-Type": "application/json"}) is None
    assert header.read({"sforce-limit-info": "api-usage=lots/15000"}) is None
    usage = {"results": [{"currentUsage": 9, "usageLimit": 625000, "resetsAt": "2026-11-30T00:00:00Z"}]}
    reading = body.read({}, usage)
    assert reading is not None and (reading.used, reading.limit, reading.resets_at) == (
        9.0, 625000.0, "2026-11-30T00:00:00Z")


def test_quota_from_remaining_and_a_fixed_limit(tmp_path: Path) -> None:
    text = PROFILE.replace("quota:\n", "quota:\n  - name: burst\n    window: 5m\n    limit: 6000\n"
                           "    remaining: header:x-ms-ratelimit-burst-remaining-xrm-requests\n")
    spec = load_profile(str(write(tmp_path, text))).quota[0]
    reading = spec.read({"x-ms-ratelimit-burst-remaining-xrm-requests": "5,990"})
    assert reading is not None and (reading.used, reading.limit) == (10.0, 6000.0)


def test_a_profile_without_authenticate_loads(tmp_path: Path) -> None:
    assert "authenticate" not in load_profile(str(write(tmp_path, PROFILE))).operations


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("{{ stage | stages }}", "{{ stage | stagse }}",
     'operations.create_deal.json: unknown filter "stagse" (did you mean "stages"?; a value map is '
     "declared under maps:)"),
    ("  kinds: {call: Call", "  join: {a: b}\n  kinds: {call: Call",
     'maps.join: "join" is a built-in filter; give the map another name'),
    ("  kinds: {call: Call", "  Kinds: {call: Call",
     'maps.Kinds: expected a name of lowercase letters, digits and "_" starting with a letter (it '
     'becomes a metric label and a PromQL selector), got "Kinds"'),
    ("  stages: {prospecting: PROSPECTING,", "  stages: {prospecting: [a, b],",
     "maps.stages.prospecting: expected text, a number or true/false, got a list"),
    ("match: '\\(([0-9a-f-]+)\\)$'", "match: '[0-9a-f-]+'",
     "operations.create_contact.extract.id.match: expected a regular expression with one group "
     "(the value), got '[0-9a-f-]+'"),
    ("match: '\\(([0-9a-f-]+)\\)$'", "match: '(['",
     "operations.create_contact.extract.id.match: expected a regular expression, got '([' "
     "(unterminated character set)"),
    ("extract: {id: {from:", "extract: {id: {form:",
     ['operations.create_contact.extract.id.form: unknown key (did you mean "from"?)',
      "operations.create_contact.extract.id.from: required key is missing"]),
    ("- {status: 403, body_regex", "- {status: 4040, body_regex",
     'throttled[1].status: expected an HTTP status like 200 or "2xx", got 4040'),
    ("    operation: usage\n", "    operation: usgae\n",
     'quota[1].operation: expected an operation of this profile, got "usgae"'),
    ("    used: $.results[0].currentUsage\n", "",
     "quota[1]: a quota needs used or remaining (with limit)"),
    ("match: 'api-usage=\\d+/(\\d+)'}", "match: 'api-usage=\\d+/(\\d+)'}\n    resets_at: $.reset",
     'quota[0]: resets_at: without an operation, quota values come from response headers: expected '
     '"header:NAME", got "$.reset"'),
    ("  - name: daily\n", "  - name: Daily\n",
     'quota[1].name: expected a name of lowercase letters, digits and "_" starting with a letter (it '
     'becomes a metric label and a PromQL selector), got "Daily"'),
])
def test_bad_profile_syntax_is_one_located_problem(tmp_path: Path, old: str, new: str,
                                                  expected: str | list[str]) -> None:
    assert PROFILE.count(old) == 1, old
    wanted = expected if isinstance(expected, list) else [expected]
    assert problems_of(tmp_path, PROFILE.replace(old, new)) == wanted


def test_text_whose_optional_placeholders_are_all_missing_is_dropped() -> None:
    template = {"bind": "/accounts({{ account_id? }})", "both": "{{ notes? }} {{ tags | join? }}",
                "kept": "x={{ q }}-{{ z? }}"}
    assert render(template, {"q": 1}) == {"kept": "x=1-"}
    assert render(template, {"account_id": "g1", "tags": ["m"], "q": 1}) == {
        "bind": "/accounts(g1)", "both": " m", "kept": "x=1-"}


def test_a_cursor_in_a_json_body_moves_to_the_next_requests_body(tmp_path: Path) -> None:
    text = PROFILE.replace("  search_contacts: {path: /search}",
                           "  search_contacts: {method: POST, path: /search, json: {q: x, limit: 2},\n"
                           "                    paginate: {style: cursor, items: $.results, next: $.after,"
                           " param: after, in: json}}")
    op = load_profile(str(write(tmp_path, text, "body.yaml"))).operation("search_contacts")
    request = op.render("https://crm.example", {})
    page = op.interpret(200, {}, b'{"results": [1, 2], "after": "2"}')
    assert page.next_page is not None and op.paginate is not None
    following = request.next(page.next_page, op.paginate)
    assert (following.json, following.params) == ({"q": "x", "limit": 2, "after": "2"}, {})
    last = op.interpret(200, {}, b'{"results": [3]}')
    assert last.next_page is None

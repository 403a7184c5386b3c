"""The pure parts of the sandbox's dialects: quota windows, the login lockout, vendor ids, and the
query languages, each compiled to SQL and evaluated in Python with the same answers."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import pytest

from crmpulse.sandbox.access import LoginGuard
from crmpulse.sandbox.dialects import ids
from crmpulse.sandbox.dialects.dynamics import objects as dv
from crmpulse.sandbox.dialects.dynamics.odata import (
    Bare,
    ODataError,
    cookie,
    page_of,
    parse_filter,
    parse_orderby,
)
from crmpulse.sandbox.dialects.query import Cmp, QueryError, matches, to_sql
from crmpulse.sandbox.dialects.salesforce import objects as sf
from crmpulse.sandbox.dialects.salesforce.soql import DateTimeLiteral, SoqlError, parse_soql, parse_sosl
from crmpulse.sandbox.faults import Faults
from crmpulse.sandbox.quota import DailyWindow, SlidingWindow
from crmpulse.sandbox.store import Store

# -- quota windows and the lockout ----------------------------------------------------------------


def test_a_sliding_window_forgets_what_left_it_and_says_when_it_has_room() -> None:
    window = SlidingWindow(10.0, buckets=10)
    for at in (100.0, 101.0, 105.0):
        window.add(now=at)
    assert window.total(now=105.5) == 3
    assert window.seconds_until_below(3, now=105.5) == pytest.approx(4.5)  # the first leaves at 110
    assert window.seconds_until_below(4, now=105.5) == 0
    assert window.total(now=111.0) == 1  # the ones at 100 and 101 have left, 105 stays
    assert window.total(now=116.0) == 0


def test_a_sliding_window_adds_amounts_such_as_seconds_of_execution() -> None:
    window = SlidingWindow(300.0)
    window.add(0.25, now=1000.0)
    window.add(1.5, now=1001.0)
    assert window.total(now=1002.0) == pytest.approx(1.75)


def test_a_daily_window_starts_again_at_midnight_utc() -> None:
    window = DailyWindow()
    before = datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC).timestamp()
    window.add(now=before)
    window.add(now=before)
    assert window.total(now=before) == 2
    assert window.total(now=before + 2) == 0
    assert DailyWindow.resets_at(before) == datetime(2026, 3, 2, tzinfo=UTC)


def test_the_login_guard_locks_after_n_failures_and_not_with_the_throttle_off() -> None:
    faults = Faults()
    guard = LoginGuard(faults, max_failures=3, window=60, lockout=30)
    for _ in range(2):
        guard.failed("Canary@sandbox.example")
    assert guard.locked("canary@sandbox.example") == 0
    guard.succeeded("canary@sandbox.example")  # a success clears the failures
    for _ in range(3):
        guard.failed("canary@sandbox.example")
    assert 29 < guard.locked("CANARY@sandbox.example") <= 30
    faults.login_throttle = False
    assert guard.locked("canary@sandbox.example") == 0
    for _ in range(10):
        guard.failed("other@sandbox.example")
    assert guard.locked("other@sandbox.example") == 0 and guard.locks == 1


# -- vendor ids ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("id15", "id18"), [("001D000000IqhSL", "001D000000IqhSLIAZ"),
                                           ("003RO0000035WQg", "003RO0000035WQgYAM"),
                                           ("70130000001tcyI", "70130000001tcyIAAQ")])
def test_salesforce_case_safe_ids_match_the_official_examples(id15: str, id18: str) -> None:
    assert ids.salesforce_to18(id15) == id18


@pytest.mark.parametrize("native", ["con_0000000000000000", "con_0123456789abcdef", "con_ffffffffffffffff"])
def test_every_vendor_id_maps_back_to_the_store_id(native: str) -> None:
    sf_id = ids.salesforce_id(native, "003")
    assert len(sf_id) == 18 and sf_id.startswith("003")
    assert ids.native_from_salesforce(sf_id, "003", "con") == native
    assert ids.native_from_salesforce(sf_id[:15], "003", "con") == native
    assert ids.native_from_salesforce(sf_id, "001", "acc") is None  # another object's prefix
    assert ids.native_from_salesforce(sf_id[:17] + ("A" if sf_id[17] != "A" else "B"), "003", "con") is None
    assert ids.native_from_hubspot(ids.hubspot_id(native), "con") == native
    guid = ids.guid(native, 1)
    assert ids.native_from_guid(guid.upper(), 1, "con") == ids.native_from_guid("{" + guid + "}", 1, "con") == native


def test_a_guid_the_sandbox_did_not_make_is_kept_whole() -> None:
    foreign = "7eb682f1-ca75-e511-80d4-00155d2a68d1"
    native = ids.native_from_guid(foreign, 1, "con")
    assert native == "con_7eb682f1ca75e51180d400155d2a68d1" and ids.guid(native, 1) == foreign
    assert ids.native_from_guid("not-a-guid", 1, "con") is None
    assert ids.native_from_hubspot("1" * 21, "con") is None and ids.native_from_hubspot("12a", "con") is None


# -- SOQL and OData ----------------------------------------------------------------------------------


def test_soql_parses_the_documented_subset() -> None:
    query = parse_soql("select Id, Name from Contact where (LastName = 'O\\'Brien' or Email like 'a%') and "
                       "CreatedDate > 2024-01-01T10:00:00+02:00 and Id not in ('a', 'b') "
                       "order by Name desc nulls last, Id limit 5 offset 10")
    assert (query.fields, query.sobject, query.limit, query.offset) == (["Id", "Name"], "Contact", 5, 10)
    assert query.order == [("Name", True, False), ("Id", False, None)]
    parts = query.where.parts  # type: ignore[union-attr]
    assert parts[0].parts[0] == Cmp("LastName", "eq", "O'Brien", 37)
    assert parts[1].value == DateTimeLiteral("2024-01-01T08:00:00.000Z")
    assert parts[2] == Cmp("Id", "notin", ("a", "b"), parts[2].pos)
    assert parse_soql("SELECT COUNT() FROM Lead").count


@pytest.mark.parametrize(("text", "column", "code"), [
    ("SELECT FROM Contact", 8, "MALFORMED_QUERY"),
    ("SELECT Id FROM Contact WHERE Name = 'a' AND Name = 'b' OR Name = 'c'", 56, "MALFORMED_QUERY"),
    ("SELECT Id FROM Contact WHERE Name = 'unterminated", 37, "MALFORMED_QUERY"),
    ("SELECT Id FROM Contact OFFSET 2001", 31, "NUMBER_OUTSIDE_VALID_RANGE"),
    ("SELECT Id FROM Contact LIMIT 5 garbage", 32, "MALFORMED_QUERY"),
])
def test_soql_errors_point_at_their_column(text: str, column: int, code: str) -> None:
    with pytest.raises(SoqlError) as caught:
        parse_soql(text)
    assert (caught.value.column, caught.value.code) == (column, code)


def test_sosl_takes_its_search_words_scope_and_returning_list() -> None:
    search = parse_sosl("FIND {Ava Smith} IN EMAIL FIELDS RETURNING Contact(Id, Name WHERE Title = 'CFO' LIMIT 3), "
                        "Account LIMIT 10")
    assert (search.words, search.scope, search.limit) == ("Ava Smith", "EMAIL", 10)
    assert [(r.sobject, r.fields, r.limit) for r in search.returning] == [("Contact", ["Id", "Name"], 3),
                                                                           ("Account", [], None)]
    with pytest.raises(SoqlError) as caught:
        parse_sosl("FIND {a}")
    assert caught.value.code == "MALFORMED_SEARCH"


def test_odata_filters_parse_with_functions_guids_and_doubled_quotes() -> None:
    node = parse_filter("not (contains(fullname,'a') or lastname eq 'O''Bryan') and contactid eq "
                        "7eb682f1-ca75-e511-80d4-00155d2a68d1 and modifiedon gt 2024-01-01T00:00:00Z")
    assert node.parts[0].part.parts[1] == Cmp("lastname", "eq", "O'Bryan", 31)  # type: ignore[union-attr]
    assert node.parts[1].value == Bare("7eb682f1-ca75-e511-80d4-00155d2a68d1")  # type: ignore[union-attr]
    with pytest.raises(ODataError, match="unterminated literal at position 21"):
        parse_filter("lastname eq 'O'Bryan'")
    assert parse_orderby("lastname desc, firstname") == [("lastname", True, None), ("firstname", False, None)]


def test_the_paging_cookie_is_dataverse_s_double_encoding_and_round_trips() -> None:
    token = cookie("contactid", 1, "49b0be2e-d01c-ed11-b83e-000d3a572421", "d5026a4d-d01c-ed11-b83e-000d3a572421", 50)
    assert token.startswith("%3Ccookie%20pagenumber=%222%22%20pagingcookie=%22%253ccookie%2520page%253d%25221%2522")
    assert "%257bD5026A4D-D01C-ED11-B83E-000D3A572421%257d" in token
    assert page_of(unquote(token)) == (2, 50)
    with pytest.raises(ODataError):
        page_of('<cookie pagenumber="1" pagingcookie="x" istracking="False" />')


# -- one filter, two evaluators ------------------------------------------------------------------------


@pytest.fixture
def contacts() -> Store:
    store = Store()
    for n, (first, last, email, title) in enumerate([("Ava", "Smith", "AVA@t.example", "CFO"),
                                                     ("Liam", "O'Brien", "liam@t.example", None),
                                                     ("Mia", "Smithers", "mia@t.example", "CTO")]):
        store.insert("contacts", {"first_name": first, "last_name": last, "email": email, "title": title,
                                  "tenant_id": "t", "extra": {"Department": "Sales" if n else None}})
    return store


def literal(field: Any, value: Any) -> Any:
    if isinstance(value, str) and field.kind == "ref":
        raise QueryError("not an id", field.name)
    return value


@pytest.mark.parametrize("soql", [
    "SELECT Id FROM Contact WHERE LastName LIKE 'smith%'",
    "SELECT Id FROM Contact WHERE Email = 'ava@T.EXAMPLE'",
    "SELECT Id FROM Contact WHERE Title != 'CFO'",
    "SELECT Id FROM Contact WHERE Title = null",
    "SELECT Id FROM Contact WHERE Name = 'Liam O\\'Brien'",
    "SELECT Id FROM Contact WHERE NOT (Title IN ('CFO', 'CTO'))",
    "SELECT Id FROM Contact WHERE Department = 'Sales' AND FirstName > 'b'",
    "SELECT Id FROM Contact WHERE LastName NOT IN ('Smith', 'Smithers') OR Title = 'CTO'",
])
def test_a_filter_selects_the_same_records_in_sql_and_in_python(contacts: Store, soql: str) -> None:
    query = parse_soql(soql)
    assert query.where is not None
    sql, args = to_sql(query.where, sf.CONTACT, literal)
    in_sql = {r["id"] for r in contacts.find("contacts", sql, args)}
    in_python = {r["id"] for r in contacts.find("contacts") if matches(query.where, sf.CONTACT, r, literal)}
    assert in_sql == in_python and 0 < len(in_sql) < 3


def test_a_field_a_filter_names_must_exist_and_be_filterable() -> None:
    with pytest.raises(QueryError, match="no such field Foo"):
        to_sql(Cmp("Foo", "eq", 1), sf.CONTACT, literal)
    with pytest.raises(QueryError, match="cannot be filtered"):
        to_sql(Cmp("Probability", "eq", 1), sf.OPPORTUNITY, literal)
    assert to_sql(Cmp("statecode", "eq", 0), dv.OPPORTUNITIES, literal)[0].startswith("coalesce((CASE stage")


def test_time_of_writing_is_what_a_vendor_reads_back() -> None:
    stamp = "2026-11-29T12:00:00.123Z"
    created = sf.CONTACT.field("CreatedDate")
    assert created is not None and sf.to_wire(created, stamp, {}) == "2026-11-29T12:00:00.123+0000"
    modified = dv.CONTACTS.field("modifiedon")
    assert modified is not None and dv.to_wire(modified, stamp, {}) == "2026-11-29T12:00:00Z"
    assert time.time() > 0

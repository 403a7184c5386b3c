"""Operations as data: rendering requests and interpreting responses, without a server."""

from __future__ import annotations

import json

import pytest

from crmpulse import OperationError, load_profile
from crmpulse.profile import NextPage
from crmpulse.templates import render

BASE = "https://crm.example.com"


@pytest.fixture(scope="module")
def profile():  # type: ignore[no-untyped-def]
    return load_profile("sandbox")


def test_whole_placeholders_keep_their_type_and_optional_ones_drop_out() -> None:
    template = {"limit": "{{ n }}", "tags": "{{ tags? }}", "q": "name:{{ who }}", "x": "{{ gone? }}"}
    assert render(template, {"n": 5, "who": "ada", "tags": ["a"]}) == {
        "limit": 5, "tags": ["a"], "q": "name:ada"}


def test_a_missing_required_variable_names_the_operation(profile) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(OperationError, match="operation get_contact: needs variable 'id'"):
        profile.operation("get_contact").render(BASE, {})


def test_rendering_builds_a_request_any_client_can_send(profile) -> None:  # type: ignore[no-untyped-def]
    request = profile.operation("create_contact").render(
        BASE, {"first_name": "Ada", "last_name": "L", "email": "a@x.example", "tags": ["crmpulse"]})
    assert (request.method, request.url) == ("POST", BASE + "/api/v1/contacts")
    assert request.json == {"first_name": "Ada", "last_name": "L", "email": "a@x.example",
                            "tags": ["crmpulse"]}
    assert request.operation == "create_contact"


def test_path_variables_are_url_quoted(profile) -> None:  # type: ignore[no-untyped-def]
    request = profile.operation("get_contact").render(BASE, {"id": "a/b?c"})
    assert request.url == BASE + "/api/v1/contacts/a%2Fb%3Fc"


def test_interpret_extracts_values_and_rejects_unexpected_status(profile) -> None:  # type: ignore[no-untyped-def]
    op = profile.operation("create_contact")
    ok = op.interpret(201, {}, json.dumps({"id": "con_1", "email": "a@x.example"}).encode())
    assert ok.ok and ok.values == {"id": "con_1", "email": "a@x.example"}
    denied = op.interpret(401, {}, b"{}")
    assert (denied.ok, denied.reason) == (False, "auth")
    assert denied.message == "create_contact: expected status 201, got 401"
    broken = op.interpret(500, {}, b"oops")
    assert (broken.ok, broken.reason) == (False, "status")


def test_interpret_fails_on_a_body_that_is_not_json(profile) -> None:  # type: ignore[no-untyped-def]
    result = profile.operation("get_contact").interpret(200, {}, b"<html>")
    assert (result.ok, result.reason) == (False, "assertion")


def test_cursor_pagination_yields_the_next_request(profile) -> None:  # type: ignore[no-untyped-def]
    op = profile.operation("list_contacts")
    first = op.render(BASE, {"page_size": 2})
    page = op.interpret(200, {}, json.dumps({"data": [{"id": 1}, {"id": 2}], "next_cursor": "abc"}).encode())
    assert page.items == [{"id": 1}, {"id": 2}]
    assert page.next_page is not None
    second = first.next(page.next_page, op.paginate)
    assert second.params == {"limit": 2, "cursor": "abc"}
    last = op.interpret(200, {}, json.dumps({"data": [{"id": 3}], "next_cursor": None}).encode())
    assert last.next_page is None


def test_page_pagination_counts_pages_until_an_empty_one(profile) -> None:  # type: ignore[no-untyped-def]
    op = profile.operation("list_accounts")
    first = op.render(BASE, {"page_size": 10})
    page = op.interpret(200, {}, b'{"data": [{"id": "a"}]}')
    assert page.next_page == NextPage(advance=1)
    second = first.next(page.next_page, op.paginate)
    third = second.next(page.next_page, op.paginate)
    assert (second.params["page"], third.params["page"]) == (2, 3)
    assert op.interpret(200, {}, b'{"data": []}').next_page is None


def test_link_pagination_follows_the_link_header() -> None:
    from crmpulse.profile import Operation

    op = Operation(path="/items", paginate={"style": "link", "items": "$.items"})
    object.__setattr__(op, "name", "list_items")
    page = op.interpret(200, {"Link": '<https://crm.example.com/items?p=2>; rel="next"'},
                        b'{"items": [1]}')
    assert page.next_page == NextPage(url="https://crm.example.com/items?p=2")

"""The endpoint table of each vendor dialect in docs/sandbox.md is what the dialect serves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.routing import Match, Route

from crmpulse.sandbox import SandboxSettings, create_app

DOC = Path(__file__).resolve().parents[2] / "docs" / "sandbox.md"
ENDPOINT = re.compile(r"^\| `((?:GET|POST|PUT|PATCH|DELETE)(?:, (?:GET|POST|PUT|PATCH|DELETE))*) (/[^` ]*)`")
SECTIONS = {"salesforce": "Dialect: Salesforce", "hubspot": "Dialect: HubSpot", "dynamics": "Dialect: Dynamics 365"}
SAMPLES = {"{tenant}": "sandbox.example", "{type}": "contacts", "{id}": "123", "{ownerId}": "2561",
           "{token}": "abc", "{set}": "contacts", "{Type}": "Contact", "{locator}": "01gAAAAAAAAAAAAAAA",
           "vNN.N": "v62.0"}


def documented(dialect: str) -> set[tuple[str, str]]:
    text = DOC.read_text()
    body = text.split(f"\n## {SECTIONS[dialect]}\n", 1)[1].split("\n## ", 1)[0]
    body = body.split("### Endpoints", 1)[1].split("\n### ", 1)[0]
    pairs = set()
    for line in body.splitlines():
        if match := ENDPOINT.match(line):
            pairs |= {(method, match[2]) for method in match[1].split(", ")}
    return pairs


def concrete(path: str) -> str:
    for placeholder, value in SAMPLES.items():
        path = path.replace(placeholder, value)
    return re.sub(r"\(\{id\}\)|\(\{[a-z]+\}\)", "(00000000-0000-4000-8000-000000000000)", path)


def routes_of(dialect: str) -> list[Route]:
    app = create_app(SandboxSettings(seed=0, dialect=dialect))
    return [r for r in app.routes if isinstance(r, Route)]


@pytest.mark.parametrize("dialect", list(SECTIONS))
def test_every_documented_endpoint_of_a_dialect_is_routed(dialect: str) -> None:
    routes = routes_of(dialect)
    endpoints = documented(dialect)
    assert len(endpoints) >= 8
    for method, path in endpoints:
        scope = {"type": "http", "path": concrete(path).split("?")[0], "method": method}
        assert any(route.matches(scope)[0] is Match.FULL for route in routes), (method, path)


@pytest.mark.parametrize("dialect", list(SECTIONS))
def test_every_route_of_a_dialect_is_documented(dialect: str) -> None:
    endpoints = documented(dialect)
    served = {(method, route.path) for route in routes_of(dialect) for method in route.methods or ()
              if method != "HEAD" and not route.path.startswith(("/admin/", "/healthz"))
              and "{rest:path}" not in route.path and method != "PUT"}
    listed = {(m, p.rstrip("/") or "/") for m, p in endpoints}  # "/x" and "/x/" are one endpoint in the docs
    served = {(m, p.rstrip("/") or "/") for m, p in served}
    missing = {(m, p) for m, p in served if not any(m == lm and concrete(lp) == concrete(p) for lm, lp in listed)
               and not any(m == lm and re.fullmatch(re.sub(r"\\\{\w+\\\}", r"[^/]+", re.escape(p)), concrete(lp))
                           for lm, lp in listed)}
    assert not missing, missing

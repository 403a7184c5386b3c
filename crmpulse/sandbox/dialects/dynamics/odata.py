"""The OData v4 query options the Dataverse dialect runs (research/dynamics.md section 4).

    $filter   comparisons eq ne gt ge lt le; and, or, not, parentheses; contains,
              startswith, endswith; literals 'text' ('' for a quote), numbers, true,
              false, null, 2024-01-31, 2024-01-31T10:00:00Z, and GUIDs (bare or quoted)
    $orderby  column [asc|desc], ...
    $select   column, ...
    paging    Prefer: odata.maxpagesize=N; @odata.nextLink with a $skiptoken paging cookie
              in Dataverse's doubly encoded form

Option names are case-sensitive, as Dataverse's are; ``$skip`` and ``$search`` are not
supported (Dataverse refuses them too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

from ..query import And, Cmp, Node, Not, Or

__all__ = ["Bare", "ODataError", "cookie", "page_of", "parse_filter", "parse_orderby"]


class ODataError(ValueError):
    """A query option Dataverse would refuse; the message is Dataverse's wording where known."""


@dataclass(frozen=True)
class Bare:
    """An unquoted literal: a date, a date-time or a GUID, typed by the column it meets."""

    text: str


_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^']|'')*')
  | (?P<guid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,7})?)?(?:Z|[+-]\d{2}:\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[mMdDfFlL]?)
  | (?P<punct>[(),])
  | (?P<name>[A-Za-z_][A-Za-z0-9_./]*)
""", re.VERBOSE)


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            if text[pos] == "'":  # OData's lexer reports where it ran out of text for the end
                raise ODataError(f"There is an unterminated literal at position {len(text)} in "
                                 f"'{text[:200]}'.")
            raise ODataError(f"Syntax error at position {pos} in '{text[:200]}'.")
        if match.lastgroup != "ws":
            out.append((match.lastgroup or "", match.group(), pos))
        pos = match.end()
    return out


class _Filter:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str, int]:
        token = self.peek()
        if token is None:
            raise ODataError(f"Expression expected at position {len(self.text)} in '{self.text[:200]}'.")
        self.i += 1
        return token

    def word(self, *words: str) -> bool:
        token = self.peek()
        if token is not None and token[0] == "name" and token[1] in words:
            self.i += 1
            return True
        return False

    def expect(self, text: str) -> None:
        token = self.take()
        if token[1] != text:
            raise ODataError(f"')' or ',' expected at position {token[2]} in '{self.text[:200]}'.")

    def expression(self) -> Node:
        parts = [self.conjunction()]
        while self.word("or"):
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def conjunction(self) -> Node:
        parts = [self.unary()]
        while self.word("and"):
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def unary(self) -> Node:
        if self.word("not"):
            return Not(self.unary())
        token = self.peek()
        if token is not None and token[1] == "(":
            self.take()
            inner = self.expression()
            self.expect(")")
            return inner
        kind, name, pos = self.take()
        if kind != "name":
            raise ODataError(f"Syntax error at position {pos} in '{self.text[:200]}'.")
        if name in ("contains", "startswith", "endswith"):
            self.expect("(")
            column = self.take()
            self.expect(",")
            value = self.literal()
            self.expect(")")
            return Cmp(column[1], name, value, column[2])
        op = self.take()
        if op[0] != "name" or op[1] not in ("eq", "ne", "gt", "ge", "lt", "le"):
            raise ODataError(f"Syntax error at position {op[2]} in '{self.text[:200]}'.")
        return Cmp(name, op[1], self.literal(), pos)

    def literal(self) -> Any:
        kind, text, pos = self.take()
        if kind == "string":
            return text[1:-1].replace("''", "'")
        if kind == "number":
            number = text.rstrip("mMdDfFlL")
            return float(number) if any(c in number for c in ".eE") else int(number)
        if kind in ("date", "datetime", "guid"):
            return Bare(text)
        if kind == "name" and text in ("true", "false"):
            return text == "true"
        if kind == "name" and text == "null":
            return None
        raise ODataError(f"Syntax error at position {pos} in '{self.text[:200]}'.")


def parse_filter(text: str) -> Node:
    parser = _Filter(text)
    node = parser.expression()
    if parser.peek() is not None:
        at = parser.tokens[parser.i][2]
        raise ODataError(f"Syntax error at position {at} in '{text[:200]}'.")
    return node


def parse_orderby(text: str) -> list[tuple[str, bool, bool | None]]:
    out: list[tuple[str, bool, bool | None]] = []
    for part in text.split(","):
        words = part.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1] not in ("asc", "desc")):
            raise ODataError(f"Syntax error in $orderby: '{part.strip()[:100]}'.")
        out.append((words[0], len(words) == 2 and words[1] == "desc", None))
    return out


def date_time(text: str) -> str:
    """An OData date-time literal as the store keeps time."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cookie(key: str, page: int, first: str, last: str, offset: int) -> str:
    """The $skiptoken of the page after ``page``: Dataverse's paging cookie, encoded twice.

    The inner cookie also holds the offset of the next row (Dataverse's holds keys only; a
    client treats the token as opaque), so a client that follows the link without sending
    its ``odata.maxpagesize`` again still gets the rows after this page.
    """
    inner = (f'<cookie page="{page}" offset="{offset}"><{key} last="{{{last.upper()}}}" '
             f'first="{{{first.upper()}}}" /></cookie>')
    encoded = "".join(c if c.isalnum() or c in "-._~" else f"%{ord(c):02x}" for c in inner)
    outer = f'<cookie pagenumber="{page + 1}" pagingcookie="{encoded}" istracking="False" />'
    return quote(outer, safe="=/")


def page_of(skiptoken: str) -> tuple[int, int]:
    """The page number and row offset a $skiptoken (as the query string decodes it) asks for."""
    match = re.fullmatch(r'<cookie pagenumber="(\d{1,6})" pagingcookie="([^"]*)" '
                         r'istracking="(?:True|False)" />', skiptoken)
    offset = re.search(r'offset="(\d{1,9})"', unquote(match[2])) if match else None
    if match is None or offset is None or int(match[1]) < 2:
        raise ODataError("Invalid page number in paging cookie.")
    return int(match[1]), int(offset[1])

"""The SOQL and SOSL subsets the Salesforce dialect runs (research/salesforce.md 5.2, 5.3).

SOQL:

    SELECT field[, field...] | COUNT() FROM Object
      [WHERE condition] [ORDER BY field [ASC|DESC] [NULLS FIRST|LAST][, ...]]
      [LIMIT n] [OFFSET m]
    condition := term {AND|OR term}; term := [NOT] (condition) | field op value
               | field [NOT] IN (value, ...) | field LIKE 'pattern'
    op        := = != <> < <= > >=
    value     := 'text' (backslash escapes) | number | true | false | null
               | 2024-01-31 | 2024-01-31T10:00:00Z (or +hh:mm) | TODAY | YESTERDAY
               | LAST_N_DAYS:n

SOSL:

    FIND {words} [IN ALL|NAME|EMAIL|PHONE FIELDS]
      [RETURNING Object[(field, ... [WHERE condition] [LIMIT n])], ...] [LIMIT n]

Keywords and names are case-insensitive. Errors carry the column (1-based) Salesforce
points at in its ``ERROR at Row:1:Column:N`` messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ..query import And, Cmp, Node, Not, Or

__all__ = ["DateLiteral", "DateTimeLiteral", "Select", "SoqlError", "Sosl", "parse_soql", "parse_sosl"]


class SoqlError(ValueError):
    def __init__(self, message: str, column: int, code: str = "MALFORMED_QUERY") -> None:
        super().__init__(message)
        self.column, self.code = column, code


@dataclass(frozen=True)
class DateLiteral:
    value: str  # YYYY-MM-DD


@dataclass(frozen=True)
class DateTimeLiteral:
    value: str  # ISO 8601 in UTC, as the store keeps time: 2024-01-31T10:00:00.000Z


@dataclass
class Select:
    fields: list[str]
    count: bool
    sobject: str
    where: Node | None = None
    order: list[tuple[str, bool, bool | None]] = field(default_factory=list)
    limit: int | None = None
    offset: int = 0


@dataclass
class Returning:
    sobject: str
    fields: list[str] = field(default_factory=list)
    where: Node | None = None
    limit: int | None = None


@dataclass
class Sosl:
    words: str
    scope: str = "ALL"
    returning: list[Returning] = field(default_factory=list)
    limit: int | None = None


_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})(?![\w:])
  | (?P<number>-?\d+(?:\.\d+)?)(?![\w.])
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),])
  | (?P<datefn>(?i:LAST_N_DAYS|NEXT_N_DAYS):\d+)
  | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
""", re.VERBOSE)

_KEYWORDS = {"SELECT", "FROM", "WHERE", "ORDER", "BY", "LIMIT", "OFFSET", "AND", "OR", "NOT", "IN", "LIKE"}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "'": "'", '"': '"', "\\": "\\",
            "%": "\\%", "_": "\\_"}  # \% and \_ stay escaped: they are literal only inside LIKE


@dataclass
class Token:
    kind: str
    text: str
    col: int

    @property
    def upper(self) -> str:
        return self.text.upper()


def _tokens(text: str) -> list[Token]:
    out, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise SoqlError(f"unexpected token: '{text[pos:pos + 20]}'", pos + 1)
        kind = match.lastgroup or ""
        if kind != "ws":
            out.append(Token(kind, match.group(), pos + 1))
        pos = match.end()
    return out


def _unquote(token: Token) -> str:
    body, out, i = token.text[1:-1], "", 0
    while i < len(body):
        if body[i] == "\\":
            nxt = body[i + 1] if i + 1 < len(body) else ""
            if nxt not in _ESCAPES:
                raise SoqlError(f"Invalid string literal '{token.text[:40]}'. Illegal character sequence "
                                f"'\\{nxt}' in string literal.", token.col)
            out += _ESCAPES[nxt]
            i += 2
        else:
            out += body[i]
            i += 1
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.i = 0

    def peek(self, offset: int = 0) -> Token | None:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else None

    def end_col(self) -> int:
        return len(self.text) + 1

    def fail(self, message: str, token: Token | None = None) -> SoqlError:
        return SoqlError(message, token.col if token else self.end_col())

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise self.fail("unexpected end of query")
        self.i += 1
        return token

    def keyword(self, *words: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "name" and token.upper in words:
            self.i += 1
            return True
        return False

    def expect_keyword(self, word: str) -> None:
        token = self.peek()
        if not self.keyword(word):
            found = token.text if token else "end of query"
            raise self.fail(f"unexpected token: '{found}' (expected {word})", token)

    def expect(self, text: str) -> Token:
        token = self.peek()
        if token is None or token.text != text:
            found = token.text if token else "end of query"
            raise self.fail(f"unexpected token: '{found}' (expected '{text}')", token)
        return self.take()

    def name(self, what: str) -> Token:
        token = self.peek()
        if token is None or token.kind != "name":
            found = token.text if token else "end of query"
            raise self.fail(f"unexpected token: '{found}' (expected {what})", token)
        return self.take()

    def field(self) -> Token:
        """A field name: a name that is not a clause's keyword."""
        token = self.peek()
        if token is not None and token.kind == "name" and token.upper in _KEYWORDS:
            raise self.fail(f"unexpected token: '{token.text}' (expected a field name)", token)
        return self.name("a field name")

    def integer(self, what: str) -> int:
        token = self.peek()
        if token is None or token.kind != "number" or not (token.text.isascii() and token.text.isdigit()):
            found = token.text if token else "end of query"
            raise self.fail(f"unexpected token: '{found}' (expected {what})", token)
        self.take()
        return int(token.text[:12])

    # -- conditions ----------------------------------------------------------------------

    def condition(self) -> Node:
        parts = [self.term()]
        glue = None
        while (token := self.peek()) is not None and token.kind == "name" and token.upper in ("AND", "OR"):
            if glue is not None and token.upper != glue:  # SOQL asks for parentheses to mix them
                raise self.fail(f"unexpected token: '{token.text}' (mixing AND and OR needs parentheses)",
                                token)
            glue = token.upper
            self.take()
            parts.append(self.term())
        if len(parts) == 1:
            return parts[0]
        return And(tuple(parts)) if glue == "AND" else Or(tuple(parts))

    def term(self) -> Node:
        if self.keyword("NOT"):
            return Not(self.term())
        token = self.peek()
        if token is not None and token.text == "(":
            self.take()
            inner = self.condition()
            self.expect(")")
            return inner
        name = self.name("a field name")
        negated = self.keyword("NOT")
        if self.keyword("IN"):
            self.expect("(")
            values = [self.value()]
            while self.peek() is not None and self.peek().text == ",":  # type: ignore[union-attr]
                self.take()
                values.append(self.value())
            self.expect(")")
            return Cmp(name.text, "notin" if negated else "in", tuple(values), name.col)
        if negated:
            raise self.fail("unexpected token: 'NOT' (expected IN)", self.peek(-1))
        if self.keyword("LIKE"):
            pattern = self.take()
            if pattern.kind != "string":
                raise self.fail(f"unexpected token: '{pattern.text}' (LIKE needs a quoted pattern)", pattern)
            return Cmp(name.text, "like", _unquote(pattern), name.col)
        op = self.peek()
        if op is None or op.kind != "op":
            found = op.text if op else "end of query"
            raise self.fail(f"unexpected token: '{found}' (expected an operator)", op)
        self.take()
        symbol = {"=": "eq", "!=": "ne", "<>": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}[op.text]
        value = self.value()
        if isinstance(value, tuple):  # a date range (TODAY, LAST_N_DAYS:n)
            start, end = value
            col, at = name.text, name.col
            ranges: dict[str, Node] = {
                "eq": And((Cmp(col, "ge", start, at), Cmp(col, "lt", end, at))),
                "ne": Or((Cmp(col, "lt", start, at), Cmp(col, "ge", end, at))),
                "lt": Cmp(col, "lt", start, at), "ge": Cmp(col, "ge", start, at),
                "gt": Cmp(col, "ge", end, at), "le": Cmp(col, "lt", end, at)}
            return ranges[symbol]
        return Cmp(name.text, symbol, value, name.col)

    def value(self) -> Any:
        token = self.take()
        if token.kind == "string":
            return _unquote(token)
        if token.kind == "number":
            return float(token.text) if "." in token.text else int(token.text)
        if token.kind == "date":
            try:
                date.fromisoformat(token.text)
            except ValueError:
                raise self.fail(f"invalid date: {token.text}", token) from None
            return DateLiteral(token.text)
        if token.kind == "datetime":
            try:
                moment = datetime.fromisoformat(token.text.replace("Z", "+00:00")).astimezone(UTC)
            except ValueError:
                raise self.fail(f"invalid date-time: {token.text}", token) from None
            millis = f"{moment.microsecond // 1000:03d}"
            return DateTimeLiteral(moment.strftime("%Y-%m-%dT%H:%M:%S.") + millis + "Z")
        today = datetime.now(UTC).date()
        if token.kind == "datefn":
            days = int(token.text.split(":")[1][:6])
            if token.text.upper().startswith("LAST"):
                return (_day(today - timedelta(days=days)), _day(today + timedelta(days=1)))
            return (_day(today + timedelta(days=1)), _day(today + timedelta(days=days + 1)))
        if token.kind == "name":
            word = token.upper
            if word in ("TRUE", "FALSE"):
                return word == "TRUE"
            if word == "NULL":
                return None
            if word == "TODAY":
                return (_day(today), _day(today + timedelta(days=1)))
            if word == "YESTERDAY":
                return (_day(today - timedelta(days=1)), _day(today))
        raise self.fail(f"unexpected token: '{token.text}' (expected a value)", token)


def _day(day: date) -> DateLiteral:
    return DateLiteral(day.isoformat())


def parse_soql(text: str) -> Select:
    p = _Parser(text)
    p.expect_keyword("SELECT")
    fields, count = [], False
    token = p.peek()
    if token is not None and token.upper == "COUNT" and (p.peek(1) or Token("", "", 0)).text == "(":
        p.take()
        p.expect("(")
        p.expect(")")
        count = True
    else:
        fields.append(p.field().text)
        while (token := p.peek()) is not None and token.text == ",":
            p.take()
            fields.append(p.field().text)
    p.expect_keyword("FROM")
    sobject = p.name("an object name").text
    query = Select(fields, count, sobject)
    if p.keyword("WHERE"):
        query.where = p.condition()
    if p.keyword("ORDER"):
        p.expect_keyword("BY")
        while True:
            name = p.name("a field name").text
            descending = p.keyword("DESC")
            if not descending:
                p.keyword("ASC")
            nulls = None
            if p.keyword("NULLS"):
                if p.keyword("FIRST"):
                    nulls = True
                else:
                    p.expect_keyword("LAST")
                    nulls = False
            query.order.append((name, descending, nulls))
            if (token := p.peek()) is None or token.text != ",":
                break
            p.take()
    if p.keyword("LIMIT"):
        query.limit = p.integer("a number")
    if p.keyword("OFFSET"):
        column = (p.peek() or Token("", "", p.end_col())).col
        query.offset = p.integer("a number")
        if query.offset > 2000:
            raise SoqlError(f"Maximum SOQL offset allowed is 2000, got {query.offset}", column,
                            "NUMBER_OUTSIDE_VALID_RANGE")
    token = p.peek()
    if token is not None:
        raise p.fail(f"unexpected token: '{token.text}'", token)
    return query


_FIND = re.compile(r"\s*FIND\s*\{((?:[^{}\\]|\\.)*)\}\s*", re.IGNORECASE | re.DOTALL)


def parse_sosl(text: str) -> Sosl:
    match = _FIND.match(text)
    if match is None:
        raise SoqlError("expected FIND {search words}", 1, "MALFORMED_SEARCH")
    words = re.sub(r"\\(.)", r"\1", match.group(1)).strip()
    if len(words.replace("*", "").replace("?", "")) < 2:
        raise SoqlError("search term must be longer than one character", match.start(1) + 1,
                        "MALFORMED_SEARCH")
    search = Sosl(words)
    rest = text[match.end():]
    p = _Parser(rest)
    shift = match.end()
    try:
        if p.keyword("IN"):
            scope = p.name("ALL, NAME, EMAIL or PHONE").upper
            if scope not in ("ALL", "NAME", "EMAIL", "PHONE"):
                raise p.fail(f"unexpected token: '{scope}'", p.peek(-1))
            p.expect_keyword("FIELDS")
            search.scope = scope
        if p.keyword("RETURNING"):
            while True:
                item = Returning(p.name("an object name").text)
                if (token := p.peek()) is not None and token.text == "(":
                    p.take()
                    item.fields.append(p.name("a field name").text)
                    while (token := p.peek()) is not None and token.text == ",":
                        p.take()
                        item.fields.append(p.name("a field name").text)
                    if p.keyword("WHERE"):
                        item.where = p.condition()
                    if p.keyword("LIMIT"):
                        item.limit = p.integer("a number")
                    p.expect(")")
                search.returning.append(item)
                if (token := p.peek()) is None or token.text != ",":
                    break
                p.take()
        if p.keyword("LIMIT"):
            search.limit = p.integer("a number")
        if (token := p.peek()) is not None:
            raise p.fail(f"unexpected token: '{token.text}'", token)
    except SoqlError as exc:
        raise SoqlError(str(exc), exc.column + shift, "MALFORMED_SEARCH") from None
    return search

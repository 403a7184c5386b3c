"""The ``{{ name }}`` templates that profile operations are written in.

A string that is exactly one placeholder keeps the value's type (so ``limit:
"{{ page_size }}"`` sends a number); placeholders inside a longer string are
interpolated as text. Inside the braces:

    {{ name }}                 a required variable (``contact.id`` reads a field of a mapping)
    {{ name? }}                optional: a mapping entry or list item whose value is missing
                               is dropped, so one template serves calls with and without it;
                               text whose placeholders are all optional and all missing
                               ("/accounts({{ id? }})") is dropped the same way
    {{ contact_id or deal_id }}     the first alternative that is set (not missing, not null)
    {{ page_size or 100 }}     a literal fallback: a number, or text in "double" or 'single'
                               quotes (no escapes); a literal is always set
    {{ stage | stages }}       a filter: a value map of the profile (``maps:``) or a built-in
                               (``join``: a list as space-separated text, ``first``: a list's
                               first item, ``string``: the value as text; ``soql``, ``sosl``,
                               ``odata``: a quoted literal of that query language)
    {{ kind | kinds or "note" }}    filters bind tighter than ``or``; a trailing ``?``
                               makes the whole expression optional

Built-in variables, computed only when referenced:
``unique`` (12 random hex characters, fresh each render), ``now`` (UTC ISO 8601 with
milliseconds), ``now_unix`` (seconds as a float).

    >>> render({"path": "/contacts/{{ id }}", "limit": "{{ n }}"}, {"id": "c1", "n": 5})
    {'path': '/contacts/c1', 'limit': 5}
    >>> render({"on": "{{ contact_id or deal_id }}"}, {"deal_id": "d1"})
    {'on': 'd1'}
"""

from __future__ import annotations

import functools
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from ._exceptions import OperationError

__all__ = [
    "BUILTIN_FILTERS",
    "MISSING",
    "Expression",
    "Filters",
    "Renderer",
    "Term",
    "compile_path",
    "compile_template",
    "expressions",
    "filter_names",
    "has_placeholder",
    "map_filter",
    "placeholders",
    "render",
    "render_path",
    "syntax_problems",
]

# a {{ ... }} block; what is inside is parsed by _expression
_BLOCK = re.compile(r"\{\{(.*?)\}\}", re.S)
_TOKEN = re.compile(r"""\s*(?:(?P<name>[A-Za-z_][A-Za-z0-9_.]*)|(?P<string>"[^"{}]*"|'[^'{}]*')
                        |(?P<number>-?\d+(?:\.\d+)?)|(?P<op>[|?]))""", re.X)
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_0-9]+)*")
_FILTER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()

_BUILTINS = {
    "unique": lambda: secrets.token_hex(6),
    "now": lambda: datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    "now_unix": time.time,
}

Filters = Mapping[str, Callable[[Any], Any]]


def _join(value: Any) -> Any:
    return " ".join(str(v) for v in value) if isinstance(value, list | tuple) else str(value)


def _first(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return value[0] if value else MISSING
    return value


_SOSL_RESERVED = re.compile(r"""([?&|!{}\[\]()^~*:\\"'+-])""")


def _soql(value: Any) -> str:
    """A SOQL string literal: quoted, with backslashes and quotes escaped."""
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return "'" + text.replace("\n", "\\n").replace("\r", "\\r") + "'"


def _sosl(value: Any) -> str:
    """A SOSL search term: in braces, each reserved character escaped with a backslash."""
    return "{" + _SOSL_RESERVED.sub(r"\\\1", str(value)) + "}"


def _odata(value: Any) -> str:
    """An OData string literal: quoted, a quote doubled."""
    return "'" + str(value).replace("'", "''") + "'"


#: Filters every template may use; a profile's ``maps`` add theirs (and may not reuse these names).
#: ``soql``, ``sosl`` and ``odata`` quote a value for a query language, so a name with a quote
#: in it (O'Brien) is searched for, not spliced into the query.
BUILTIN_FILTERS: dict[str, Callable[[Any], Any]] = {
    "join": _join, "first": _first, "string": str, "soql": _soql, "sosl": _sosl, "odata": _odata}


def map_filter(name: str, table: Mapping[str, Any]) -> Callable[[Any], Any]:
    """A value map as a filter: crmpulse's word -> the CRM's; a word it lacks is an error."""
    lookup = {str(k): v for k, v in table.items()}

    def apply(value: Any) -> Any:
        key = str(value).lower() if isinstance(value, bool) else str(value)
        try:
            return lookup[key]
        except KeyError:
            shown = str(value)[:40]
            raise OperationError(f"map {name} has no entry for {shown!r} "
                                 f"(it maps: {', '.join(sorted(lookup))})") from None
    return apply


@dataclass(frozen=True)
class Term:
    """One alternative: a variable (``name``) or a literal, then filters applied in order."""

    name: str | None
    literal: Any = None
    filters: tuple[str, ...] = ()


@dataclass(frozen=True)
class Expression:
    """What one ``{{ ... }}`` says: alternatives tried in order, optional or required."""

    terms: tuple[Term, ...]
    optional: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.terms if t.name is not None)

    @property
    def has_literal(self) -> bool:
        return any(t.name is None for t in self.terms)

    @property
    def simple(self) -> bool:
        """One variable, no filter: the common case, rendered on a fast path."""
        return len(self.terms) == 1 and self.terms[0].name is not None and not self.terms[0].filters

    @property
    def required(self) -> bool:
        """Rendering fails unless one of ``names`` is given."""
        return not self.optional and not self.has_literal


@functools.lru_cache(maxsize=8192)
def _expression(inside: str) -> Expression | None:
    """Parse the text between ``{{`` and ``}}``; None when it is malformed."""
    tokens: list[tuple[str, str]] = []
    pos, text = 0, inside.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            return None
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    optional = bool(tokens) and tokens[-1] == ("op", "?")
    if optional:
        tokens.pop()
    terms: list[Term] = []
    i = 0
    while True:
        if i >= len(tokens):
            return None
        kind, value = tokens[i]
        if kind == "name" and value != "or" and _VARIABLE.fullmatch(value):
            term = Term(value)
        elif kind == "string":
            term = Term(None, value[1:-1])
        elif kind == "number":
            term = Term(None, float(value) if "." in value else int(value))
        else:
            return None
        i += 1
        filters: list[str] = []
        while i < len(tokens) and tokens[i] == ("op", "|"):
            if i + 1 >= len(tokens) or tokens[i + 1][0] != "name" or \
                    not _FILTER.fullmatch(tokens[i + 1][1]) or tokens[i + 1][1] == "or":
                return None
            filters.append(tokens[i + 1][1])
            i += 2
        terms.append(Term(term.name, term.literal, tuple(filters)))
        if i == len(tokens):
            break
        if tokens[i] != ("name", "or"):
            return None
        i += 1
    return Expression(tuple(terms), optional)


def _strings(template: Any) -> Iterator[str]:
    if isinstance(template, str):
        yield template
    elif isinstance(template, Mapping):
        for value in template.values():
            yield from _strings(value)
    elif isinstance(template, list):
        for value in template:
            yield from _strings(value)


def expressions(template: Any) -> list[Expression]:
    """Every well-formed expression in a template tree (for checking profiles up front)."""
    found = []
    for text in _strings(template):
        if "{{" not in text:
            continue
        for match in _BLOCK.finditer(text):
            parsed = _expression(match.group(1))
            if parsed is not None:
                found.append(parsed)
    return found


def placeholders(template: Any) -> set[tuple[str, bool]]:
    """Every ``(name, optional)`` a template refers to.

    A name is reported as required only when it is the one way to satisfy its
    expression: in ``{{ contact_id or deal_id }}`` neither is required on its own
    (:func:`expressions` says that one of them is).
    """
    found: set[tuple[str, bool]] = set()
    for expression in expressions(template):
        alone = len(expression.terms) == 1 and not expression.optional
        found.update((name, not alone) for name in expression.names)
    return found


def filter_names(template: Any) -> set[str]:
    """Every filter a template applies (checked against the profile's maps at load)."""
    return {f for e in expressions(template) for t in e.terms for f in t.filters}


def has_placeholder(text: str) -> bool:
    return "{{" in text


Located = list[tuple[tuple[str | int, ...], str]]


def _malformed(text: str) -> bool:
    rest = []
    pos = 0
    for match in _BLOCK.finditer(text):
        if _expression(match.group(1)) is None:
            return True
        rest.append(text[pos:match.start()])
        pos = match.end()
    rest.append(text[pos:])
    return any("{{" in part for part in rest)


def syntax_problems(template: Any, path: tuple[str | int, ...] = ()) -> Located:
    """``(key path, message)`` for every string in a template tree with a malformed placeholder.

    ``"{{ id"``, ``"{{ first-name }}"``, ``"{{ a or }}"`` and ``"{{}}"`` would otherwise be
    sent as literal text; they are refused when the file is loaded.
    """
    found: Located = []
    if isinstance(template, str):
        if "{{" in template and _malformed(template):
            shown = template if len(template) <= 80 else template[:77] + "..."
            found.append((path, 'expected placeholders like "{{ name }}", "{{ name? }}" or '
                          '"{{ name or \'text\' | map }}" (docs/profiles.md, Templates), '
                          f'got "{shown}"'))
    elif isinstance(template, Mapping):
        for key, value in template.items():
            found += syntax_problems(value, (*path, str(key)))
    elif isinstance(template, list):
        for i, value in enumerate(template):
            found += syntax_problems(value, (*path, i))
    return found


def render(template: Any, variables: Mapping[str, Any], filters: Filters | None = None) -> Any:
    """Render a template tree; raise OperationError naming a missing required variable."""
    if isinstance(template, str):
        return _render_str(template, variables, None, filters)
    if isinstance(template, Mapping):
        out = {}
        for key, value in template.items():
            rendered = render(value, variables, filters)
            if rendered is not MISSING:
                out[key] = rendered
        return out
    if isinstance(template, list):
        return [v for v in (render(t, variables, filters) for t in template) if v is not MISSING]
    return template


def _lookup(name: str, optional: bool, variables: Mapping[str, Any]) -> Any:
    head, _, rest = name.partition(".")
    if head in variables:
        value = variables[head]
    elif head in _BUILTINS:
        value = _BUILTINS[head]()
    elif optional:
        return MISSING
    else:
        raise OperationError(f"needs variable {head!r}, which is not set")
    for part in rest.split(".") if rest else ():
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif optional:
            return MISSING
        else:
            raise OperationError(f"variable {name!r} has no field {part!r}")
    if value is None and optional:
        return MISSING
    return value


def _filter(name: str, filters: Filters | None) -> Callable[[Any], Any]:
    found = (filters or {}).get(name) or BUILTIN_FILTERS.get(name)
    if found is None:
        raise OperationError(f"unknown filter {name!r}")
    return found


def _evaluate(expression: Expression, variables: Mapping[str, Any], filters: Filters | None) -> Any:
    terms = expression.terms
    if len(terms) == 1 and terms[0].name is not None:  # keep the one-variable messages
        value = _lookup(terms[0].name, expression.optional, variables)
        for name in terms[0].filters:
            if value is MISSING:
                break
            value = _filter(name, filters)(value)
        return value
    for term in terms:
        value = term.literal if term.name is None else _lookup(term.name, True, variables)
        for name in term.filters:
            if value is MISSING:
                break
            value = _filter(name, filters)(value)
        if value is not MISSING and value is not None:
            return value
    if expression.optional:
        return MISSING
    names = " or ".join(repr(n) for n in expression.names)
    raise OperationError(f"needs variable {names}, and none is set")


@functools.lru_cache(maxsize=4096)
def _parse(template: str) -> tuple[tuple[str, Expression | None], ...] | Expression | None:
    """Split a template once: None (no placeholder), an Expression for a whole-string
    placeholder, or a tuple of (literal, expression) parts."""
    if "{{" not in template:
        return None
    stripped = template.strip()
    whole = _BLOCK.fullmatch(stripped)
    if whole and "{{" not in whole.group(1):
        parsed = _expression(whole.group(1))
        if parsed is not None:
            return parsed
    parts: list[tuple[str, Expression | None]] = []
    pos = 0
    for match in _BLOCK.finditer(template):
        parsed = _expression(match.group(1))
        if parsed is None:  # refused at load; rendered as written if it ever gets here
            continue
        parts.append((template[pos:match.start()], parsed))
        pos = match.end()
    parts.append((template[pos:], None))
    return tuple(parts)


def _render_str(template: str, variables: Mapping[str, Any],
                transform: Callable[[Any], Any] | None = None, filters: Filters | None = None) -> Any:
    parsed = _parse(template)
    if parsed is None:
        return template
    if isinstance(parsed, Expression):  # the whole string is one placeholder
        if parsed.simple:
            value = _lookup(parsed.terms[0].name or "", parsed.optional, variables)
        else:
            value = _evaluate(parsed, variables, filters)
        return value if transform is None or value is MISSING else transform(value)
    return _render_parts(parsed, variables, transform, filters,
                         all(e is None or e.optional for _, e in parsed))


def _render_parts(parsed: tuple[tuple[str, Expression | None], ...], variables: Mapping[str, Any],
                  transform: Callable[[Any], Any] | None, filters: Filters | None,
                  all_optional: bool) -> Any:
    out = []
    filled = False
    for literal, expression in parsed:
        out.append(literal)
        if expression is not None:
            value = _evaluate(expression, variables, filters)
            if value is not MISSING:
                filled = True
                out.append(str(transform(value) if transform else value))
    if not filled and all_optional:
        # every placeholder optional and none given: "/accounts({{ account_id? }})" is dropped
        # like a lone "{{ account_id? }}", not sent as "/accounts()"
        return MISSING
    return "".join(out)


def render_path(template: str, variables: Mapping[str, Any], filters: Filters | None = None) -> str:
    """Render a URL path: every interpolated value is URL-quoted (``a/b`` -> ``a%2Fb``)."""
    rendered = _render_str(template, variables, _quote, filters)
    if rendered is MISSING:  # only optional placeholders, none given: the literal parts remain
        parsed = _parse(template)
        return "".join(literal for literal, _ in parsed) if isinstance(parsed, tuple) else ""
    return str(rendered)


def _quote(value: Any) -> Any:
    if isinstance(value, str):
        # letters and digits are what quote() leaves alone: most ids need no quoting at all
        return value if value.isalnum() and value.isascii() else quote(value, safe="")
    return value


# -- compiled templates ------------------------------------------------------------------
#
# A load test renders the same few templates thousands of times a second. Compiling one
# walks its tree and parses its placeholders once, and returns a function of the
# variables that gives exactly what :func:`render` (or :func:`render_path`) gives, errors
# included: the pieces below are the ones render uses, only chosen ahead of time.

Renderer = Callable[[Mapping[str, Any]], Any]


def _constant(value: Any) -> Renderer:
    return lambda variables: value


def _variable(name: str, optional: bool) -> Renderer:
    """``{{ name }}`` / ``{{ name? }}``: a dict lookup; everything else as _lookup does it."""
    if "." in name:
        return lambda variables: _lookup(name, optional, variables)

    def lookup(variables: Mapping[str, Any]) -> Any:
        if name in variables:
            value = variables[name]
            return MISSING if value is None and optional else value
        return _lookup(name, optional, variables)  # a built-in, MISSING or the error
    return lookup


def _compile_str(template: str, transform: Callable[[Any], Any] | None,
                 filters: Filters | None) -> Renderer:
    parsed = _parse(template)
    if parsed is None:
        return _constant(template)
    if isinstance(parsed, Expression):  # the whole string is one placeholder
        value_of = _compile_expression(parsed, filters)
        if transform is None:
            return value_of

        def transformed(variables: Mapping[str, Any]) -> Any:
            value = value_of(variables)
            return value if value is MISSING else transform(value)
        return transformed
    pieces = tuple((literal, None if e is None else _compile_expression(e, filters))
                   for literal, e in parsed)
    all_optional = all(e is None or e.optional for _, e in parsed)

    def interpolate(variables: Mapping[str, Any]) -> Any:  # _render_parts, step for step
        out = []
        filled = False
        for literal, value_of in pieces:
            out.append(literal)
            if value_of is not None:
                value = value_of(variables)
                if value is not MISSING:
                    filled = True
                    out.append(str(transform(value) if transform else value))
        if not filled and all_optional:
            return MISSING
        return "".join(out)
    return interpolate


def _compile_expression(expression: Expression, filters: Filters | None) -> Renderer:
    """What _evaluate gives for ``expression``."""
    if expression.simple:  # _evaluate's one-variable branch without filters is a _lookup
        return _variable(expression.terms[0].name or "", expression.optional)
    return lambda variables: _evaluate(expression, variables, filters)


def compile_template(template: Any, filters: Filters | None = None) -> Renderer:
    """``render`` with the template fixed: ``compile_template(t, f)(v) == render(t, v, f)``."""
    if isinstance(template, str):
        return _compile_str(template, None, filters)
    if isinstance(template, Mapping):
        items = tuple((key, compile_template(value, filters)) for key, value in template.items())

        def render_mapping(variables: Mapping[str, Any]) -> dict[Any, Any]:
            out = {}
            for key, render_value in items:
                rendered = render_value(variables)
                if rendered is not MISSING:
                    out[key] = rendered
            return out
        return render_mapping
    if isinstance(template, list):
        renderers = tuple(compile_template(value, filters) for value in template)
        return lambda variables: [v for v in (r(variables) for r in renderers) if v is not MISSING]
    return _constant(template)


def compile_path(template: str, filters: Filters | None = None) -> Callable[[Mapping[str, Any]], str]:
    """``render_path`` with the template fixed."""
    render_value = _compile_str(template, _quote, filters)
    parsed = _parse(template)
    literal = "".join(lit for lit, _ in parsed) if isinstance(parsed, tuple) else ""

    def path(variables: Mapping[str, Any]) -> str:
        rendered = render_value(variables)
        # only optional placeholders, none given: the literal parts remain
        return literal if rendered is MISSING else str(rendered)
    return path

"""The ``{{ name }}`` templates that profile operations are written in.

A string that is exactly one placeholder keeps the variable's type (so ``limit:
"{{ page_size }}"`` sends a number); placeholders inside a longer string are
interpolated as text. ``{{ name? }}`` marks an optional variable: a mapping entry
whose value renders to a missing optional variable is dropped, so one template can
serve calls with and without, say, an account id.

Built-in variables, computed only when referenced:
``unique`` (12 random hex characters, fresh each render), ``now`` (UTC ISO 8601 with
milliseconds), ``now_unix`` (seconds as a float).

    >>> render({"path": "/contacts/{{ id }}", "limit": "{{ n }}"}, {"id": "c1", "n": 5})
    {'path': '/contacts/c1', 'limit': 5}
"""

from __future__ import annotations

import functools
import re
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from ._exceptions import OperationError

__all__ = ["MISSING", "has_placeholder", "placeholders", "render", "render_path", "syntax_problems"]

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)(\?)?\s*\}\}")


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()

_BUILTINS = {
    "unique": lambda: secrets.token_hex(6),
    "now": lambda: datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    "now_unix": time.time,
}


def placeholders(template: Any) -> set[tuple[str, bool]]:
    """Every ``(name, optional)`` a template refers to (for checking profiles up front)."""
    found: set[tuple[str, bool]] = set()
    if isinstance(template, str):
        found.update((m.group(1), bool(m.group(2))) for m in _PLACEHOLDER.finditer(template))
    elif isinstance(template, Mapping):
        for value in template.values():
            found |= placeholders(value)
    elif isinstance(template, list):
        for value in template:
            found |= placeholders(value)
    return found


def has_placeholder(text: str) -> bool:
    return "{{" in text


Located = list[tuple[tuple[str | int, ...], str]]


def syntax_problems(template: Any, path: tuple[str | int, ...] = ()) -> Located:
    """``(key path, message)`` for every string in a template tree with a malformed placeholder.

    ``"{{ id"``, ``"{{ first-name }}"`` and ``"{{}}"`` would otherwise be sent as literal
    text; they are refused when the file is loaded.
    """
    found: Located = []
    if isinstance(template, str):
        if "{{" in _PLACEHOLDER.sub("", template):
            shown = template if len(template) <= 80 else template[:77] + "..."
            found.append((path, 'expected placeholders like "{{ name }}" or "{{ name? }}" '
                          f'(letters, digits, "_" and "." inside), got "{shown}"'))
    elif isinstance(template, Mapping):
        for key, value in template.items():
            found += syntax_problems(value, (*path, str(key)))
    elif isinstance(template, list):
        for i, value in enumerate(template):
            found += syntax_problems(value, (*path, i))
    return found


def render(template: Any, variables: Mapping[str, Any]) -> Any:
    """Render a template tree; raise OperationError naming a missing required variable."""
    if isinstance(template, str):
        return _render_str(template, variables)
    if isinstance(template, Mapping):
        out = {}
        for key, value in template.items():
            rendered = render(value, variables)
            if rendered is not MISSING:
                out[key] = rendered
        return out
    if isinstance(template, list):
        return [v for v in (render(t, variables) for t in template) if v is not MISSING]
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


@functools.lru_cache(maxsize=4096)
def _parse(template: str) -> tuple[tuple[str, str, bool], ...] | tuple[str, bool] | None:
    """Split a template once: None (no placeholder), (name, optional) for a whole-string
    placeholder, or a tuple of (literal, name, optional) parts."""
    if "{{" not in template:
        return None
    whole = _PLACEHOLDER.fullmatch(template.strip())
    if whole:
        return (whole.group(1), bool(whole.group(2)))
    parts, pos = [], 0
    for match in _PLACEHOLDER.finditer(template):
        parts.append((template[pos:match.start()], match.group(1), bool(match.group(2))))
        pos = match.end()
    parts.append((template[pos:], "", False))
    return tuple(parts)


def _render_str(template: str, variables: Mapping[str, Any],
                transform: Callable[[Any], Any] | None = None) -> Any:
    parsed = _parse(template)
    if parsed is None:
        return template
    if isinstance(parsed[0], str):  # the whole string is one placeholder
        name, optional = parsed
        value = _lookup(name, optional, variables)
        return value if transform is None or value is MISSING else transform(value)
    out = []
    for literal, name, optional in parsed:
        out.append(literal)
        if name:
            value = _lookup(name, optional, variables)
            if value is not MISSING:
                out.append(str(transform(value) if transform else value))
    return "".join(out)


def render_path(template: str, variables: Mapping[str, Any]) -> str:
    """Render a URL path: every interpolated value is URL-quoted (``a/b`` -> ``a%2Fb``)."""
    return str(_render_str(template, variables, _quote))


def _quote(value: Any) -> Any:
    return quote(value, safe="") if isinstance(value, str) else value

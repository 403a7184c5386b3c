"""Reusable annotated field types for every crmpulse YAML model.

Units are written the way people write them (``30s``, ``99.9``, ``1MiB``); each type
validates and converts once, so the models downstream hold plain floats and ints.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import re
from typing import Annotated
from urllib.parse import urlsplit

from jsonpath_ng import JSONPath
from jsonpath_ng.ext import parse as _jsonpath_parse
from pydantic import AfterValidator, BeforeValidator, SecretStr, ValidationInfo

from ._yamlfile import SecretValue
from .units import parse_bytes, parse_duration, parse_percent

__all__ = [
    "URL", "Bytes", "Duration", "JSONPathStr", "Listen", "ListenOrOff", "Name", "OriginURL", "Percent",
    "PositiveDuration", "Ratio", "Regex", "Secret",
    "compile_jsonpath",
    "first_match",
    "simple_steps",
]


@functools.lru_cache(maxsize=1024)
def compile_jsonpath(expression: str) -> JSONPath:
    """Parse a JSONPath once; raise ValueError with a readable message when invalid."""
    try:
        return _jsonpath_parse(expression)
    except Exception as exc:  # jsonpath-ng raises assorted exception types on bad input
        raise ValueError(f'expected a JSONPath like "$.data[0].id", got "{expression}"') from exc


_SIMPLE = re.compile(r"\$((?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])*)")
_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")


@functools.lru_cache(maxsize=1024)
def _simple_steps(expression: str) -> tuple[str | int, ...] | None:
    """``$.data[0].id`` -> ("data", 0, "id"); None when the path needs the full engine."""
    match = _SIMPLE.fullmatch(expression)
    if match is None:
        return None
    return tuple(name if name else int(index) for name, index in _STEP.findall(match.group(1)))


def simple_steps(expression: str) -> tuple[str | int, ...] | None:
    """The steps of a plain path (``$.data[0].id`` -> ("data", 0, "id")), which callers may
    walk as :func:`first_match` does; None when it needs the JSONPath engine."""
    return _simple_steps(expression)


def first_match(expression: str, document: object) -> object:
    """The first value ``expression`` selects in ``document``, or templates.MISSING.

    Plain paths (``$.a.b[0].c``) are walked directly: they are almost all of what
    profiles use, and jsonpath-ng's engine costs tens of microseconds per lookup on
    the load-test hot path. Anything else (filters, wildcards, slices) goes to it.
    """
    from .templates import MISSING

    steps = _simple_steps(expression)
    if steps is None:
        matches = compile_jsonpath(expression).find(document)
        return matches[0].value if matches else MISSING
    node = document
    for step in steps:
        if isinstance(step, int):
            if not isinstance(node, list) or step >= len(node):
                return MISSING
        elif not isinstance(node, dict) or step not in node:
            return MISSING
        node = node[step]  # type: ignore[index]
    return node


def _check_jsonpath(value: str) -> str:
    compile_jsonpath(value)
    return value


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"expected a regular expression, got {value!r} ({exc.msg})") from None
    return value


def _ratio(value: object) -> float:
    """A percentage where 0 and 100 are allowed (error ratios, abort limits)."""
    text = value.strip().removesuffix("%").strip() if isinstance(value, str) else value
    if not isinstance(text, bool) and text in (0, 100, "0", "100"):
        return float(text)
    return parse_percent(value)


_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")


def _check_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(
            f'expected a name of lowercase letters, digits and "_" starting with a letter '
            f'(it becomes a metric label and a PromQL selector), got "{value}"')
    return value


def _require_reference(value: object) -> object:
    if isinstance(value, SecretValue) or value is None:
        return value
    raise ValueError(
        "expected a reference like ${env:NAME} or ${file:PATH}: secrets are never written "
        "in the file, which ends up in git and in tickets")


def _check_url(value: str) -> str:
    expected = f'expected an http(s) URL like "https://crm.example.com", got "{value}"'
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:  # "http://[::1", port 99999
        detail = "its port must be 1-65535" if "port" in str(exc).lower() else str(exc)
        raise ValueError(f"{expected} ({detail})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(expected)
    if port == 0:
        raise ValueError(f"{expected} (its port must be 1-65535)")
    if parts.username is not None or parts.password is not None:
        raise ValueError("expected a URL without user:password@; give credentials in auth")
    return value.rstrip("/")


def _check_origin(value: str) -> str:
    from .origins import format_origin, origin_of

    expected = ('expected an origin like "https://crm-eu.example.com" or "http://10.0.0.5:8080" '
                f'(credentials go to an exact scheme, host and port), got "{value}"')
    try:
        parts = urlsplit(value)
        origin = origin_of(value)
    except ValueError:
        raise ValueError(expected) from None
    if parts.path not in ("", "/") or parts.query or parts.fragment or \
            parts.username is not None or parts.password is not None:
        raise ValueError(expected)
    return format_origin(origin)


#: No duration crmpulse takes is longer than a year; past that a value is a typo or an attack
#: (400 nines parse as infinity, and asyncio cannot sleep that long).
MAX_DURATION = 365 * 86400.0
MAX_BYTES = 1024**3


def _shown(value: object) -> str:
    text = str(value)
    return f'"{text if len(text) <= 40 else text[:37] + "..."}"' if isinstance(value, str) else text


def _duration(value: object, info: ValidationInfo) -> float:
    # From Python, a number is seconds; in a YAML file a bare number is ambiguous
    # (seconds? milliseconds?) and refused, so a unit is always written.
    if isinstance(value, int | float) and not isinstance(value, bool) and not (
            info.context and info.context.get("source") == "yaml"):
        seconds = float(value)
    else:
        seconds = parse_duration(value)
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_DURATION:
        raise ValueError(f"expected a duration up to 365d, got {_shown(value)}")
    return seconds


def _positive_duration(value: object, info: ValidationInfo) -> float:
    seconds = _duration(value, info)
    if seconds <= 0:
        raise ValueError(f"expected a duration above 0, got {_shown(value)}")
    return seconds


def _bytes(value: object) -> int:
    size = parse_bytes(value)
    if size > MAX_BYTES:
        raise ValueError(f"expected a size up to 1GiB, got {_shown(value)}")
    return size


_HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")


def _check_listen(value: str) -> str:
    """``127.0.0.1:9687``, ``[::1]:9687``, ``:9687``, ``localhost:9687``."""
    expected = f'expected host:port like "127.0.0.1:9687", got {_shown(value)}'
    host, sep, port = value.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ValueError(expected)
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(expected) from None
    elif host and not _HOSTNAME.fullmatch(host):
        raise ValueError(expected)
    return value


def _header_fields(value: dict[str, str]) -> dict[str, str]:
    for name in value:
        if name.lower() in ("transfer-encoding", "content-length"):
            raise ValueError(f"{name} is not a header to set: crmpulse frames each body itself "
                             "(a second framing would make the request invalid); remove it")
    return value


#: request header fields a config or profile sets (never the framing ones)
HeaderFields = Annotated[dict[str, str], AfterValidator(_header_fields)]
Duration = Annotated[float, BeforeValidator(_duration)]
PositiveDuration = Annotated[float, BeforeValidator(_positive_duration)]
Listen = Annotated[str, AfterValidator(_check_listen)]
ListenOrOff = Annotated[str, AfterValidator(
    lambda value: value if value in ("off", "") else _check_listen(value))]
Percent = Annotated[float, BeforeValidator(parse_percent)]
Ratio = Annotated[float, BeforeValidator(_ratio)]
Bytes = Annotated[int, BeforeValidator(_bytes)]
Regex = Annotated[str, AfterValidator(_check_regex)]
JSONPathStr = Annotated[str, AfterValidator(_check_jsonpath)]
Name = Annotated[str, AfterValidator(_check_name)]
Secret = Annotated[SecretStr, BeforeValidator(_require_reference)]
URL = Annotated[str, AfterValidator(_check_url)]
OriginURL = Annotated[str, AfterValidator(_check_origin)]

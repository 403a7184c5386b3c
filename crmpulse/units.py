"""Durations, percentages and byte sizes as people write them in crmpulse.yaml.

    >>> parse_duration("1m30s")
    90.0
    >>> parse_percent("99.9%")
    99.9
"""

from __future__ import annotations

import re

__all__ = ["format_duration", "parse_bytes", "parse_duration", "parse_percent"]

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_BYTES_UNITS = {"": 1, "b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2,
                "gb": 1000**3, "gib": 1024**3}


def parse_duration(value: object) -> float:
    """Return seconds for ``250ms``, ``30s``, ``5m``, ``1h30m``, ``30d``.

    Bare numbers are refused on purpose: ``timeout: 5`` could mean seconds or
    milliseconds, and guessing wrong silently is worse than asking for a unit.
    """
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f'expected a duration like "30s", got {_show(value)}')
    text = value.strip()
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f'expected a duration like "30s", got {_show(value)}')
    return total


def format_duration(seconds: float) -> str:
    """Inverse of :func:`parse_duration` for display: 90.0 -> "1m30s", 0.25 -> "250ms"."""
    if seconds < 1 and seconds != 0:
        return f"{round(seconds * 1000)}ms"
    out: list[str] = []
    rest = seconds
    for unit in ("d", "h", "m", "s"):
        size = _DURATION_UNITS[unit]
        if rest >= size or (unit == "s" and not out):
            n = int(rest // size) if unit != "s" else rest
            rest -= n * size
            out.append(f"{n:g}{unit}")
    return "".join(out)


def parse_percent(value: object) -> float:
    """Return a percentage for ``99.9``, ``"99.9"`` or ``"99.9%"``; must be in (0, 100)."""
    if isinstance(value, bool):
        raise ValueError(f'expected a percentage like 99.9, got {_show(value)}')
    number: float
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip().removesuffix("%"))
        except ValueError:
            raise ValueError(f'expected a percentage like 99.9, got {_show(value)}') from None
    else:
        raise ValueError(f'expected a percentage like 99.9, got {_show(value)}')
    if not 0 < number < 100:
        raise ValueError(f"expected a percentage above 0 and below 100, got {number:g}")
    return number


def parse_bytes(value: object) -> int:
    """Return bytes for ``512``, ``64KiB``, ``10MB``."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", value)
        if match and match.group(2).lower() in _BYTES_UNITS:
            return int(match.group(1)) * _BYTES_UNITS[match.group(2).lower()]
    raise ValueError(f'expected a size like "1MiB", got {_show(value)}')


def _show(value: object) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if value is None:
        return "nothing"
    return f"{value!r} ({type(value).__name__})"

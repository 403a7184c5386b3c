"""Files a config names, checked when it loads: they exist, are what they claim, and load.

A CA bundle that does not exist, a certificate and key swapped, a traffic CSV that is
binary: each would otherwise surface at run time, mid-reload or mid-run. Each check
returns a message fit for a Problem, or None.
"""

from __future__ import annotations

import csv
import re
import ssl
from pathlib import Path

from ._yamlfile import read_limited

__all__ = ["MAX_CSV_BYTES", "ca_problem", "cert_pair_problem", "resolve", "traffic_csv_problems"]

MAX_CSV_BYTES = 1024 * 1024


def resolve(name: str, base_dir: Path) -> Path:
    """A path as written in a config: relative to the config's folder."""
    path = Path(name).expanduser()
    return path if path.is_absolute() else base_dir / path


def _no_password() -> str:
    raise ValueError("the key is encrypted")


def _missing(path: Path, name: str) -> str | None:
    if not path.is_file():
        return f"file {name} not found" if not path.exists() else f"{name} is not a file"
    return None


def ca_problem(path: Path, name: str) -> str | None:
    """None when ``path`` holds PEM certificates a TLS client can trust."""
    if missing := _missing(path, name):
        return missing
    try:
        ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, ValueError, OSError) as exc:
        return f"expected PEM certificates in {name}, which does not load ({_why(exc)})"
    return None


def cert_pair_problem(cert: Path, key: Path | None, cert_name: str, key_name: str | None) -> str | None:
    """None when the certificate (and its key) load together for a TLS endpoint."""
    for path, name in ((cert, cert_name), (key, key_name)):
        if path is not None and name is not None and (missing := _missing(path, name)):
            return missing
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_cert_chain(str(cert), str(key) if key else None, password=_no_password)
    except ValueError:
        return f"the key in {key_name or cert_name} is encrypted; crmpulse needs it unencrypted"
    except (ssl.SSLError, OSError) as exc:
        return (f"expected a PEM certificate in {cert_name} and its private key in "
                f"{key_name or cert_name}; they do not load together ({_why(exc)}: swapped, "
                "or not a pair?)")
    return None


def _why(exc: BaseException) -> str:
    """``[SSL] PEM lib (_ssl.c:3905)`` -> ``pem lib``: what went wrong, not where in OpenSSL."""
    reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc.__class__.__name__
    text = re.sub(r"^\[\w+\]\s*|\s*\(_ssl\.c:\d+\)$", "", str(reason))
    return text.lower().replace("_", " ")


def traffic_csv_problems(path: Path, name: str) -> tuple[list[tuple[int, str]], list[float]]:
    """``([(line, message)], hourly values)`` for a traffic CSV of ``hour,requests`` rows.

    Line 0 means the file as a whole. The rules are those of loadtests/shapes.py: rows
    whose first cell is ``hour`` or starts with ``#`` are skipped, the last cell is a count.
    """
    try:
        text = read_limited(path, MAX_CSV_BYTES, "CSV file")
    except FileNotFoundError:
        return [(0, f"file {name} not found")], []
    except ValueError as exc:
        return [(0, f"{name}: {exc}")], []
    except OSError as exc:
        return [(0, f"cannot read {name}: {exc.strerror or exc.__class__.__name__}")], []
    values: list[float] = []
    for number, row in enumerate(csv.reader(text.splitlines()), 1):
        if not row or row[0].strip().lower() in ("hour", "#") or row[0].startswith("#"):
            continue
        try:
            value = float(row[-1])
        except ValueError:
            value = float("nan")
        if not 0 <= value < float("inf"):
            shown = ",".join(row)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            return [(number, f"expected hour,requests rows with a count of 0 or more, got {shown!r}")], []
        values.append(value)
    if not values or max(values) <= 0:
        return [(0, f"expected traffic counts in {name}, found none above 0")], []
    return [], values

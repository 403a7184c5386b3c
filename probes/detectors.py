"""Personal-data detectors: how many values of each kind a response holds, and where.

    scan = Scanner(("email", "card_number"), {"ssn": r"\\b9\\d\\d-\\d\\d-\\d{4}\\b"})
    found = scan.document({"data": [{"email": "a@b.example", "card": "4000 0000 0000 0002"}]})
    # {("email", "$.data[*].email"): 1, ("card_number", "$.data[*].card"): 1}

Only counts and paths come out: a value is matched, counted and forgotten, never stored,
returned, logged or exported (the exposure check reports "2 card numbers at
$.data[*].card", never the numbers). Paths are normalized (every list index is ``[*]``)
so that a page of 200 records is one path, not 200.

The built-in detectors, each precise enough to run over whole records:

- ``email``: ``local@domain.tld``;
- ``phone``: a number with a ``+`` country code, or grouped with spaces, dots, dashes or
  brackets, of 7 to 15 digits (E.164's maximum); ISO dates and times, UUIDs and numbers
  glued to letters are not phones. Ten bare digits (``5551234567``) are not detected:
  too many ids and timestamps look the same;
- ``card_number``: 13 to 19 digits, optionally grouped in fours, that pass the Luhn check;
- ``iban``: a country code, two check digits and up to 30 letters or digits, optionally
  grouped in fours, whose ISO 13616 mod-97 check holds;
- ``national_id``: a US social security or taxpayer number in its dashed form
  (``123-45-6789``, area not 000), a UK National Insurance number (``QQ 12 34 56 C``),
  a Spanish DNI whose control letter is right (``12345678Z``).

Detectors run in that order of precision (cards, IBANs, national ids, emails, custom
patterns, then phones), and a span one of them matched is not matched again, so a
tax id is one national id, not also a phone number.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

__all__ = ["BUILTIN", "Scanner", "child_path", "iban_ok", "luhn_ok", "normalize_path",
           "path_allowed", "plain_key"]

#: The built-in detectors, in the order they claim spans.
BUILTIN = ("card_number", "iban", "national_id", "email", "phone")

# spans that are never personal data but look like numbers a phone pattern would take
_NOT_PII = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"  # ISO dates
    r"|\b\d{1,2}:\d{2}(?::\d{2})?\b"                                                     # times
    r"|\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"  # UUIDs
    r"|\b\d{1,2}[./]\d{1,2}[./]\d{2,4}\b"                                                 # 29.11.2026
    r"|\b\d{1,3}(?:\.\d{1,3}){3}\b")                                                     # IPv4
_CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}"
                   r"(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,4})?)(?![A-Za-z0-9])")
_SSN = re.compile(r"(?<![\w-])(?!000)\d{3}-\d{2}-\d{4}(?![\w-])")
_NINO = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![A-Za-z0-9])")
_DNI = re.compile(r"(?<![A-Za-z0-9])(\d{8})-?([A-Z])(?![A-Za-z0-9])")
_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*"
                    r"\.[A-Za-z]{2,24}(?![\w-])")
_PHONE = re.compile(r"(?<![\w+-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]\d{1,4}){1,5}"
                    r"(?![\w-])|(?<![\w+-])\+\d{7,15}(?![\w-])")
_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
#: A string longer than this is scanned only in its first part (a CRM may send megabytes).
MAX_TEXT = 64 * 1024


def luhn_ok(digits: str) -> bool:
    """Whether a string of digits passes the Luhn check (payment card numbers)."""
    if not digits.isdigit() or len(digits) < 2:
        return False
    total = 0
    for i, char in enumerate(reversed(digits)):
        value = int(char) * (2 if i % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def iban_ok(text: str) -> bool:
    """Whether ``text`` (spaces allowed) is an IBAN whose ISO 13616 mod-97 check holds."""
    compact = text.replace(" ", "").upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", compact):
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def _card(match: re.Match[str]) -> bool:
    text = match.group()
    digits = _digits(text)
    if not 13 <= len(digits) <= 19 or not luhn_ok(digits):
        return False
    # a grouped number is grouped in fours (4-6-5 for 15-digit cards): not "1-2-3-..."
    groups = re.split(r"[ -]", text)
    return len(groups) == 1 or all(2 <= len(g) <= 6 for g in groups)


def _iban(text: str) -> bool:
    # a grouped IBAN may have swallowed a word in capitals after it: try without it
    groups = text.split(" ")
    return any(iban_ok(" ".join(groups[:n])) for n in range(len(groups), 0, -1))


def _dni(match: re.Match[str]) -> bool:
    return _DNI_LETTERS[int(match.group(1)) % 23] == match.group(2)


def _phone(match: re.Match[str]) -> bool:
    text = match.group()
    digits = _digits(text)
    if not 7 <= len(digits) <= 15:
        return False
    # grouped numbers need a country code, brackets, or at least two separators: "12-34" and
    # "1.5" are not phones, nor is a decimal like "1234.56"
    return text.startswith("+") or "(" in text or len(re.findall(r"[ .-]", text)) >= 2


_BUILTIN_RULES: dict[str, list[tuple[re.Pattern[str], Any]]] = {
    "card_number": [(_CARD, _card)],
    "iban": [(_IBAN, lambda m: _iban(m.group()))],
    "national_id": [(_SSN, None), (_NINO, None), (_DNI, _dni)],
    "email": [(_EMAIL, None)],
    "phone": [(_PHONE, _phone)],
}


class Scanner:
    """Counts personal-data values by (detector, normalized path); never keeps one."""

    def __init__(self, detectors: Iterable[str] = BUILTIN,
                 patterns: Mapping[str, str] | None = None) -> None:
        wanted = set(detectors)
        unknown = wanted - set(BUILTIN)
        if unknown:
            raise ValueError(f"unknown detectors: {', '.join(sorted(unknown))}")
        rules: list[tuple[str, re.Pattern[str], Any]] = []
        for name in BUILTIN[:4]:
            if name in wanted:
                rules += [(name, pattern, accept) for pattern, accept in _BUILTIN_RULES[name]]
        for name, pattern in (patterns or {}).items():
            rules.append((name, re.compile(pattern), None))
        if "phone" in wanted:
            rules += [("phone", pattern, accept) for pattern, accept in _BUILTIN_RULES["phone"]]
        self.rules = rules
        self.names = tuple(dict.fromkeys(name for name, _, _ in rules))

    def text(self, text: str) -> Counter[str]:
        """Values found in one string, by detector."""
        found: Counter[str] = Counter()
        if not text:
            return found
        text = text[:MAX_TEXT]
        taken: list[tuple[int, int]] = [m.span() for m in _NOT_PII.finditer(text)]
        for name, pattern, accept in self.rules:
            for match in pattern.finditer(text):
                start, end = match.span()
                if start == end or any(start < b and a < end for a, b in taken):
                    continue
                if accept is not None and not accept(match):
                    continue
                taken.append((start, end))
                found[name] += 1
        return found

    def safe_key(self, key: str) -> str:
        """``key`` as a path segment, unless it could hold a value: ``[?]`` then (a CRM that
        keys records by email must not get an email into a path)."""
        return key if _KEY.match(key) and not self.text(key) else "[?]"

    def document(self, document: Any, root: str = "$") -> Counter[tuple[str, str]]:
        """Values found in a parsed JSON document, by (detector, normalized path)."""
        found: Counter[tuple[str, str]] = Counter()
        for path, value in _leaves(document, root, self.safe_key):
            for name, count in self.text(value).items():
                found[(name, path)] += count
        return found

    def csv(self, text: str) -> Counter[tuple[str, str]]:
        """Values found in a CSV document, by (detector, ``csv.<column>``)."""
        found: Counter[tuple[str, str]] = Counter()
        rows = csv.reader(io.StringIO(text[:MAX_TEXT * 16]))
        header = next(rows, [])
        columns = [_column(name, i) if not self.text(name) else f"csv.column{i + 1}"
                   for i, name in enumerate(header)]
        for row in rows:
            for i, cell in enumerate(row):
                column = columns[i] if i < len(columns) else f"csv.column{i + 1}"
                for name, count in self.text(cell).items():
                    found[(name, column)] += count
        return found


def _column(name: str, index: int) -> str:
    clean = re.sub(r"[^A-Za-z0-9_]", "_", name.strip())[:64]
    return f"csv.{clean}" if clean else f"csv.column{index + 1}"


_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def plain_key(key: str) -> str:
    """``key`` as a path segment when it is a plain name, else ``[?]`` (it could hold a value)."""
    return key if _KEY.match(key) else "[?]"


def child_path(path: str, segment: str) -> str:
    return f"{path}{segment}" if segment == "[?]" else f"{path}.{segment}"


def _leaves(value: Any, path: str, safe: Any = plain_key, depth: int = 0) -> Iterator[tuple[str, str]]:
    """(normalized path, text) of every string and number under ``value``."""
    if depth > 32:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, child_path(path, safe(str(key))), safe, depth + 1)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item, f"{path}[*]", safe, depth + 1)
    elif isinstance(value, str):
        yield path, value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield path, str(value) if isinstance(value, int) else ""


def normalize_path(path: str) -> str:
    """A path as the scanner writes it: every list index ``[n]`` becomes ``[*]``."""
    return re.sub(r"\[\d+\]", "[*]", path)


def path_allowed(path: str, patterns: Iterable[str]) -> bool:
    """Whether ``path`` matches one of ``patterns``: a normalized path (``$.data[*].email``),
    or ``$..name`` for a key at any depth."""
    for pattern in patterns:
        pattern = normalize_path(pattern)
        if pattern == path:
            return True
        if pattern.startswith("$..") and (path.endswith("." + pattern[3:])
                                          or path.endswith("]." + pattern[3:])):
            return True
    return False

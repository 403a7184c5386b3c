"""Vendor record ids, computed from the sandbox's own: every dialect shows the same records.

The store's ids are ``<prefix>_<16 hex digits>`` (a 64-bit number). Each codec here maps
that number to a vendor's id form and back, with no table of its own, so a record made
through one dialect has a stable id in every other:

    Salesforce  18 characters: a 3-character key prefix (003 Contact, ...), 12 base-62
                digits, and the 3-character case-safe suffix (the community-documented
                checksum; research/salesforce.md section 4); 15-character ids are accepted
    HubSpot     the number in decimal, as a string ("512")
    Dataverse   a GUID whose first 16 hex digits are the number; the rest marks the table.
                A GUID the sandbox did not make (a client's upsert) is kept whole.
"""

from __future__ import annotations

import re

__all__ = ["guid", "hubspot_id", "native_from_guid", "native_from_hubspot", "native_from_salesforce",
           "salesforce_id", "salesforce_to18"]

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_NATIVE = re.compile(r"([a-z]+)_([0-9a-f]{16}|[0-9a-f]{32})")


def _number(native_id: str) -> tuple[str, str] | None:
    match = _NATIVE.fullmatch(native_id)
    return (match[1], match[2]) if match else None


# -- Salesforce -------------------------------------------------------------------------------

def salesforce_to18(id15: str) -> str:
    """The case-safe 18-character form of a 15-character id."""
    return id15 + "".join(
        _SUFFIX[sum(1 << j for j, c in enumerate(id15[k:k + 5]) if "A" <= c <= "Z")] for k in (0, 5, 10))


def salesforce_id(native_id: str, key_prefix: str) -> str:
    parts = _number(native_id)
    if parts is None or len(parts[1]) != 16:  # not made by the sandbox: a stable stand-in
        number = int.from_bytes(native_id.encode()[-8:].rjust(8, b"\0"), "big")
    else:
        number = int(parts[1], 16)
    digits = ""
    while number:
        number, rest = divmod(number, 62)
        digits = _B62[rest] + digits
    return salesforce_to18(key_prefix + digits.rjust(12, "0"))


def native_from_salesforce(sf_id: str, key_prefix: str, table_prefix: str) -> str | None:
    """The store id of a Salesforce id of this key prefix; None when it cannot be one."""
    if len(sf_id) not in (15, 18) or not sf_id.isascii() or not sf_id.isalnum():
        return None
    if not sf_id.startswith(key_prefix) or (len(sf_id) == 18 and salesforce_to18(sf_id[:15]) != sf_id):
        return None
    number = 0
    for char in sf_id[3:15]:
        number = number * 62 + _B62.index(char)
    return f"{table_prefix}_{number:016x}" if number < 2**64 else None


# -- HubSpot ----------------------------------------------------------------------------------

def hubspot_id(native_id: str) -> str:
    parts = _number(native_id)
    return str(int(parts[1], 16)) if parts else "0"


def native_from_hubspot(hs_id: str, table_prefix: str) -> str | None:
    if not (0 < len(hs_id) <= 20 and hs_id.isascii() and hs_id.isdigit()):
        return None
    number = int(hs_id)
    return f"{table_prefix}_{number:016x}" if number < 2**64 else None


# -- Dataverse --------------------------------------------------------------------------------

_GUID = re.compile(r"\{?([0-9a-fA-F]{8})-([0-9a-fA-F]{4})-([0-9a-fA-F]{4})-([0-9a-fA-F]{4})-"
                   r"([0-9a-fA-F]{12})\}?")


def guid(native_id: str, code: int) -> str:
    """A lowercase GUID for a store id; ``code`` (0-255) marks the table."""
    parts = _number(native_id)
    if parts is None:
        return "00000000-0000-0000-0000-000000000000"
    h = parts[1]
    if len(h) == 32:
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-80{code:02x}-000d3a5a0000"


def native_from_guid(value: str, code: int, table_prefix: str) -> str | None:
    """The store id of a GUID (any case, with or without braces); None when it is no GUID."""
    match = _GUID.fullmatch(value)
    if match is None:
        return None
    g = [part.lower() for part in match.groups()]
    if g[3] == f"80{code:02x}" and g[4] == "000d3a5a0000":
        return f"{table_prefix}_{g[0]}{g[1]}{g[2]}"
    return f"{table_prefix}_{''.join(g)}"

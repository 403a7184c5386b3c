"""Split checks and sync pairs between exporter replicas: each runs and exports its share.

    shard_of("api_read", 3)            # -> 0, 1 or 2, the same on every replica
    parse_shard("crmpulse-probe-2/3")  # -> (2, 3): a StatefulSet pod name works as the index

Assignment is Lamping and Veach's jump consistent hash of the name's SHA-256: every
replica computes it alone (no coordination), names spread evenly, and going from N to
N+1 replicas moves only a 1/(N+1) share of the checks, so most series stay on the
exporter that already had them. A check's series then come from exactly one replica;
Prometheus adds ``instance``, and dashboards and alerts aggregate by ``target`` and
``check`` (docs/probes.md, "Sizing and sharding").
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["parse_shard", "shard_of"]

_MASK = (1 << 64) - 1


def shard_of(name: str, count: int) -> int:
    """The shard (0 .. count-1) that owns ``name``."""
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")
    bucket, jump = -1, 0
    while jump < count:
        bucket = jump
        key = (key * 2862933555777941757 + 1) & _MASK
        jump = int((bucket + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return bucket


def parse_shard(text: str) -> tuple[int, int]:
    """``"INDEX/COUNT"`` -> (index, count); INDEX may be a pod name ending in ``-<ordinal>``.

    Raises ValueError with a message fit for the command line.
    """
    index, sep, count = text.strip().rpartition("/")
    ordinal = re.fullmatch(r"(?:.+-)?(\d+)", index)
    if not sep or not count.isdigit() or ordinal is None:
        raise ValueError(f'expected INDEX/COUNT like "2/5" (INDEX may be a StatefulSet pod '
                         f'name like "crmpulse-probe-2"), got "{text}"')
    shard, total = int(ordinal.group(1)), int(count)
    if not 1 <= total <= 1024 or shard >= total:
        raise ValueError(f"expected 0 <= INDEX < COUNT <= 1024, got {shard}/{total}")
    return shard, total

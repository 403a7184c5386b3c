"""Give memory back after a burst: large buffers outside the heap, and a trim when idle.

A flood of ``/probe`` requests whose answers are large (or decompress to large) leaves
glibc's heap holding the peak: freed memory stays mapped, and glibc's *dynamic* mmap
threshold grows with every large free, so later large buffers land on the heap too.
:func:`tune_allocator` pins the threshold (buffers of 128 KiB and more are mapped and
unmapped on their own), and :func:`trim` returns free heap pages to the system; the
exporter calls it when the last running probe ends after many bytes were read
(bench/probe_flood.py measures RSS during and after a flood). Elsewhere than Linux with
glibc both do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import time

__all__ = ["trim", "tune_allocator"]

_M_MMAP_THRESHOLD = -3
_libc: ctypes.CDLL | None = None
_last_trim = 0.0


def _glibc() -> ctypes.CDLL | None:
    global _libc
    if _libc is None and sys.platform == "linux":
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt"):
                _libc = libc
        except OSError:
            return None
    return _libc


def tune_allocator(mmap_threshold: int = 128 * 1024) -> bool:
    """Pin glibc's mmap threshold; True when it was set."""
    libc = _glibc()
    return bool(libc and libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold))


def trim(min_interval: float = 1.0) -> bool:
    """Return free heap memory to the system, at most once per ``min_interval`` seconds."""
    global _last_trim
    libc = _glibc()
    now = time.monotonic()
    if libc is None or now - _last_trim < min_interval:
        return False
    _last_trim = now
    libc.malloc_trim(0)
    return True

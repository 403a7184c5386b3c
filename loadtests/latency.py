"""Exact, mergeable latency: one HDR histogram per operation and journey.

Every response time is recorded in microseconds in an HDR histogram (the
``hdrhistogram`` package) that keeps **3 significant digits** from 1 µs to one hour:
any recorded value is known to within 0.1 % (a 812.3 ms response lands in a bucket no
wider than 0.8 ms). Histograms add exactly, so a master that adds its workers'
histograms, from processes on this machine or others, holds the same counts a single
process would have recorded: percentiles of a distributed run are as exact as those of
one process. Gates, the report, the JSON and the live metrics all read these.

Workers send what they recorded since their last report (:meth:`LatencyBook.take`),
encoded, with Locust's periodic stats message; the master adds it (:meth:`merge`).
"""

from __future__ import annotations

import itertools
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

__all__ = ["PRECISION_NOTE", "Entry", "LatencyBook", "new_histogram"]

LOWEST_US, HIGHEST_US, DIGITS = 1, 3_600_000_000, 3
PRECISION_NOTE = (
    "Percentiles come from HDR histograms (3 significant digits, 1 µs to 1 h): every "
    "recorded response time is kept to within 0.1 %, and a distributed run's histograms "
    "are added exactly, so its percentiles are as exact as one process's. Journey rows "
    "time a whole journey iteration.")


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


# HdrHistogram.record_value's index arithmetic, for LatencyBook.record to do inline: every
# histogram here has the same bounds and precision, so its constants are computed once.
# (Its _clz(v) is 64 - v.bit_length(); tests check the counts match record_value's.)
_SHAPE = new_histogram()
_MASK, _UNIT = _SHAPE.sub_bucket_mask, _SHAPE.unit_magnitude
_HALF_MAGNITUDE, _HALF = _SHAPE.sub_bucket_half_count_magnitude, _SHAPE.sub_bucket_half_count
_BUCKET_SHIFT = _UNIT + _HALF_MAGNITUDE + 1
_COUNTS_LEN = _SHAPE.counts_len
del _SHAPE


@dataclass
class Entry:
    """One operation's (or journey's) record: a histogram, failures, and the total time."""

    histogram: HdrHistogram = field(default_factory=new_histogram)
    failures: int = 0
    total_us: int = 0
    #: the histogram's running totals while its total count is what it was (percentile_ms)
    cumulative: tuple[int, list[int]] | None = field(default=None, init=False, repr=False,
                                                     compare=False)

    @property
    def requests(self) -> int:
        return int(self.histogram.get_total_count())

    def record(self, micros: int, ok: bool) -> None:
        micros = min(max(micros, LOWEST_US), HIGHEST_US)
        self.histogram.record_value(micros)
        self.total_us += micros
        if not ok:
            self.failures += 1

    def add(self, other: Entry) -> None:
        self.histogram.add(other.histogram)
        self.failures += other.failures
        self.total_us += other.total_us

    def percentile_ms(self, q: float) -> float:
        """The q-th percentile (0-100) in milliseconds; 0 when nothing was recorded."""
        if not self.requests:
            return 0.0
        histogram = self.histogram
        if self.cumulative is None or self.cumulative[0] != histogram.total_count:
            self.cumulative = (histogram.total_count, _cumulative(histogram))
        return float(_value_at(histogram, self.cumulative[1], q)) / 1000.0

    @property
    def error_ratio(self) -> float:
        return 100.0 * self.failures / self.requests if self.requests else 0.0

    @property
    def mean_ms(self) -> float:
        return self.total_us / self.requests / 1000.0 if self.requests else 0.0

    def encode(self) -> dict[str, Any]:
        return {"h": self.histogram.encode().decode("ascii"), "f": self.failures, "t": self.total_us}

    @classmethod
    def decode(cls, data: dict[str, Any]) -> Entry:
        entry = cls()
        entry.histogram.add(HdrHistogram.decode(data["h"].encode("ascii")))
        entry.failures, entry.total_us = int(data["f"]), int(data["t"])
        return entry


# histogram.get_value_at_percentile(q), with its walk over the counts done in C: hdrh walks
# them one Python call at a time, up to tens of thousands of steps per percentile, and the
# live monitor asks a dozen every few seconds while the users run in the same process.
# Here the running totals are summed once per entry and count (itertools.accumulate) and
# searched (bisect); the value chosen is the same (tests compare them).

def _cumulative(histogram: HdrHistogram) -> list[int]:
    # hdrh reads a count past its payload's (a truncated decoded array) as 0, and so does
    # a running total that ends early; nothing is counted above the highest value
    end = min(histogram.counts_len, histogram.encoder.payload.counts_len,
              histogram._counts_index_for(histogram.max_value) + 1)
    return list(itertools.accumulate(histogram.counts[:max(end, 0)]))


def _value_at(histogram: HdrHistogram, cumulative: list[int], q: float) -> int:
    index = bisect_left(cumulative, histogram.get_target_count_at_percentile(q))
    if index >= len(cumulative):
        return 0
    value = histogram.get_value_from_index(index)
    if q:
        return int(histogram.get_highest_equivalent_value(value))
    return int(histogram.get_lowest_equivalent_value(value))


class LatencyBook:
    """Entries by (kind, name), kind ``operation`` or ``journey``."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], Entry] = {}

    def entry(self, kind: str, name: str) -> Entry:
        key = (kind, name)
        found = self.entries.get(key)
        if found is None:
            found = self.entries[key] = Entry()
        return found

    def record(self, kind: str, name: str, seconds: float, ok: bool) -> None:
        # on every request: Entry.record inlined (bench/loadtest_overhead.py prices it)
        entry = self.entries.get((kind, name)) or self.entry(kind, name)
        micros = int(seconds * 1_000_000)
        if micros < LOWEST_US:
            micros = LOWEST_US
        elif micros > HIGHEST_US:
            micros = HIGHEST_US
        histogram = entry.histogram  # histogram.record_value(micros), inlined:
        bucket = (micros | _MASK).bit_length() - _BUCKET_SHIFT
        index = ((bucket + 1) << _HALF_MAGNITUDE) + (micros >> (bucket + _UNIT)) - _HALF
        if index < _COUNTS_LEN:
            histogram.counts[index] += 1
            histogram.total_count += 1
            if micros < histogram.min_value:
                histogram.min_value = micros
            if micros > histogram.max_value:
                histogram.max_value = micros
        entry.total_us += micros
        if not ok:
            entry.failures += 1

    def add(self, other: LatencyBook) -> None:
        for (kind, name), entry in other.entries.items():
            self.entry(kind, name).add(entry)

    def take(self) -> LatencyBook:
        """What was recorded since the last take; this book starts empty again."""
        taken = LatencyBook()
        taken.entries, self.entries = self.entries, {}
        return taken

    def encode(self) -> list[list[Any]]:
        return [[kind, name, entry.encode()] for (kind, name), entry in self.entries.items()]

    @classmethod
    def decode(cls, data: Iterable[list[Any]]) -> LatencyBook:
        book = cls()
        for kind, name, encoded in data:
            book.entry(str(kind), str(name)).add(Entry.decode(encoded))
        return book

    def of_kind(self, kind: str) -> dict[str, Entry]:
        return {name: e for (k, name), e in self.entries.items() if k == kind}

    def total(self, kind: str = "operation") -> Entry:
        total = Entry()
        for entry in self.of_kind(kind).values():
            total.add(entry)
        return total

    def copy(self) -> LatencyBook:
        book = LatencyBook()
        book.add(self)
        return book

"""The capacity knob's queue: slots 1/N apart, first come first served, on a virtual clock."""

from __future__ import annotations

import asyncio
from itertools import pairwise

import pytest

from crmpulse.sandbox.faults import CapacityQueue


def arrivals(rate: float, seconds: float, start: float = 1000.0) -> list[float]:
    return [start + i / rate for i in range(int(rate * seconds))]


def test_below_capacity_no_request_waits() -> None:
    queue = CapacityQueue()
    waits = [queue.reserve(t, rate=150) for t in arrivals(120, 5)]
    assert waits == [0.0] * 600


def test_above_capacity_the_wait_grows_with_the_overload() -> None:
    queue = CapacityQueue()
    times = arrivals(200, 5)
    waits = [queue.reserve(t, rate=150) for t in times]
    assert all(b > a for a, b in pairwise(waits))  # it only grows
    # request k starts in slot k, k/150 s after the first; it arrived k/200 s after it
    assert waits[-1] == pytest.approx((len(times) - 1) * (1 / 150 - 1 / 200))
    starts = [t + w for t, w in zip(times, waits, strict=True)]
    assert all(b - a == pytest.approx(1 / 150) for a, b in pairwise(starts))


@pytest.mark.parametrize("capacity", [150.0, 400.0])
def test_the_served_rate_is_the_capacity_exactly(capacity: float) -> None:
    queue = CapacityQueue()
    times = arrivals(capacity * 1.5, 10)
    starts = [t + (queue.reserve(t, rate=capacity) or 0) for t in times]
    assert (len(starts) - 1) / (starts[-1] - starts[0]) == pytest.approx(capacity)


def test_a_full_queue_refuses_and_a_drained_one_accepts_again() -> None:
    queue = CapacityQueue()
    burst = [queue.reserve(0.0, rate=10, max_queue=3) for _ in range(6)]
    assert burst[:4] == pytest.approx([0.0, 0.1, 0.2, 0.3])  # one served at once, three waiting
    assert burst[4:] == [None, None]
    assert queue.waiting(0.0) == 3 and queue.refused == 2
    assert queue.waiting(0.25) == 1
    assert queue.reserve(0.25, rate=10, max_queue=3) == pytest.approx(0.15)


def test_a_new_rate_starts_afresh() -> None:
    queue = CapacityQueue()
    for _ in range(50):
        queue.reserve(0.0, rate=10)
    assert queue.reserve(0.0, rate=20) == 0.0


def test_release_lets_every_waiter_through() -> None:
    async def scenario() -> float:
        queue = CapacityQueue()
        loop = asyncio.get_running_loop()
        started = loop.time()
        waiters = [asyncio.create_task(queue.admit(rate=0.5)) for _ in range(4)]  # slots 2 s apart
        await asyncio.sleep(0.05)
        assert queue.waiting() == 3
        queue.release()
        assert all(await asyncio.gather(*waiters))
        return loop.time() - started

    assert asyncio.run(scenario()) < 1.0  # not the 6 s the last slot was due at

"""The capacity knob: below N requests per second latency stays at its base, above N it grows."""

from __future__ import annotations

import asyncio
import statistics
import time

import httpx

from tests.helpers import SandboxProcess

KEY = {"X-API-Key": "sandbox-api-key"}


async def open_loop(url: str, rate: float, count: int) -> list[tuple[float, float, int]]:
    """Send ``count`` requests at ``rate`` per second whether or not earlier ones were answered.

    Returns (latency, completion time, status) per request, in the order they were sent.
    """
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(headers=KEY, timeout=30, limits=limits) as client:
        start = time.perf_counter()

        async def one(i: int) -> tuple[float, float, int]:
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            sent = time.perf_counter()
            status = (await client.get(url)).status_code
            done = time.perf_counter()
            return done - sent, done - start, status

        return await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(count))), timeout=60)


def test_latency_stays_at_its_base_below_capacity_and_grows_above_it(crm: SandboxProcess) -> None:
    capacity = 40
    crm.faults(capacity_rps=capacity)
    url = crm.url + "/api/v1/me"
    below = asyncio.run(open_loop(url, rate=capacity / 2, count=40))  # 2 s at half the capacity
    above = asyncio.run(open_loop(url, rate=capacity * 2, count=120))  # 1.5 s at twice the capacity
    assert {status for *_, status in below + above} == {200}

    base = statistics.median(latency for latency, *_ in below)
    fifth = len(above) // 5
    early = statistics.median(latency for latency, *_ in above[:fifth])
    late = statistics.median(latency for latency, *_ in above[-fifth:])
    assert late > 4 * early  # the queue, and the wait, grow while arrivals outpace capacity
    assert late > 10 * base  # far beyond anything seen below capacity
    assert statistics.median(latency for latency, *_ in below[-10:]) < late / 10  # below: no growth
    served = sorted(done for _, done, _ in above)
    assert served[-1] - served[0] >= 0.95 * (len(served) - 1) / capacity  # never faster than N/s
    assert crm.stats()["capacity"]["waiting"] == 0


def test_a_bounded_queue_answers_503_beyond_its_depth(crm: SandboxProcess) -> None:
    crm.faults(capacity_rps=2, capacity_queue=2)  # slots 0.5 s apart, two may wait
    before = crm.stats()["overloaded"]

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=crm.url, headers=KEY, timeout=30) as client:
            return await asyncio.gather(*(client.get("/api/v1/me") for _ in range(10)))

    responses = asyncio.run(burst())
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 3 + [503] * 7  # one served at once, two waiting, the rest refused
    refused = next(r for r in responses if r.status_code == 503)
    assert refused.json() == {"error": "overloaded", "message": "the CRM is at capacity and its queue is full"}
    assert refused.headers["Retry-After"] == "1"
    assert crm.stats()["overloaded"] - before == 7


def test_capacity_respects_the_path_prefix(crm: SandboxProcess) -> None:
    crm.faults(capacity_rps=1, capacity_queue=1, path_prefix="/api/v1/search")

    async def burst(path: str) -> list[int]:
        async with httpx.AsyncClient(base_url=crm.url, headers=KEY, timeout=30) as client:
            return [r.status_code for r in await asyncio.gather(*(client.get(path) for _ in range(6)))]

    assert asyncio.run(burst("/api/v1/me")) == [200] * 6
    assert sorted(asyncio.run(burst("/api/v1/search/contacts?q=a"))) == [200, 200] + [503] * 4

"""Dataverse's service protection limits, per user, over a sliding five-minute window.

Three measures (research/dynamics.md section 6; sources limits, parallel, ps): the number
of requests (6,000 per 300 s), their combined execution time (1,200 s per 300 s) and
the requests in flight at once (52). Past one, the answer is 429 with ``Retry-After``
(whole seconds until the window lets requests in again) and the error code and message
of that measure. Every answer carries ``x-ms-ratelimit-burst-remaining-xrm-requests``
(requests left in the window), ``x-ms-ratelimit-time-remaining-xrm-requests`` (seconds
of execution time left, written ``1,200.00``) and ``x-ms-dop-hint``. Execution time is
the time from the request's arrival to its answer, so added latency or a wait for
capacity (the fault knobs) spends it as a slow server would.

Differences, on purpose: Dataverse enforces the count and time limits lazily (a burst
may overshoot before it is refused); the sandbox refuses the first request past them.
One web server is modelled (Dataverse counts per user per web server). The window,
like the limits, can be changed through ``PUT /admin/quota`` so a test can see it end.
"""

from __future__ import annotations

import math
import uuid

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response

from ...middleware import Meter, Metered
from ...quota import Meters, SlidingWindow

__all__ = ["DataverseLimits", "DataverseMeter"]


class DataverseLimits(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    requests: int = Field(6000, ge=0, le=10_000_000, description="requests per user per window")
    execution_seconds: float = Field(1200.0, ge=0, le=10_000_000, description="execution time per window")
    concurrent: int = Field(52, ge=0, le=100_000, description="requests of a user in flight at once")
    window_s: float = Field(300.0, ge=1, le=86400, description="the sliding window")
    dop_hint: int = Field(48, ge=1, le=1000, description="x-ms-dop-hint: recommended parallelism")


def _seconds(value: float) -> str:
    return f"{value:,.2f}"


class DataverseMeter(Meter):
    def __init__(self, meters: Meters) -> None:
        self.meters = meters

    @property
    def limits(self) -> DataverseLimits:
        limits: DataverseLimits = self.meters.limits
        return limits

    def window(self, name: str, user: str) -> SlidingWindow:
        window: SlidingWindow = self.meters.counter(name, user, lambda: SlidingWindow(self.limits.window_s,
                                                                                      300))
        if window.window != self.limits.window_s:  # the window changed: start counting afresh
            window = self.meters.counters[(name, user)] = SlidingWindow(self.limits.window_s, 300)
        return window

    def remaining(self, user: str) -> tuple[int, float]:
        limits = self.limits
        return (max(0, limits.requests - int(self.window("requests", user).total())),
                max(0.0, limits.execution_seconds - self.window("execution_seconds", user).total()))

    def admit(self, request: Metered) -> Response | None:
        user, limits = request.principal.user.id, self.limits
        busy = self.meters.in_flight.get(user, 0)
        if busy >= limits.concurrent:
            return self.refuse(request, "0x80072326",
                               f"Number of concurrent requests exceeded the limit of {limits.concurrent}.", 1)
        count = self.window("requests", user)
        if count.total() >= limits.requests:
            return self.refuse(request, "0x80072322",
                               f"Number of requests exceeded the limit of {limits.requests} "
                               f"over time window of {limits.window_s:g} seconds.",
                               count.seconds_until_below(limits.requests))
        spent = self.window("execution_seconds", user)
        if spent.total() >= limits.execution_seconds:
            millis = f"{int(limits.execution_seconds * 1000):,}"
            return self.refuse(request, "0x80072321",
                               f"Combined execution time of incoming requests exceeded "
                               f"limit of {millis}  milliseconds over time window of {limits.window_s:g} "
                               f"seconds. "
                               "Decrease number of concurrent requests or reduce the duration of requests "
                               "and try "
                               "again later.", spent.seconds_until_below(limits.execution_seconds))
        self.meters.in_flight[user] = busy + 1
        return None

    def refuse(self, request: Metered, code: str, message: str, wait: float) -> Response:
        requests, seconds = self.remaining(request.principal.user.id)
        return JSONResponse({"error": {"code": code, "message": message}}, status_code=429, headers={
            "Retry-After": str(max(1, math.ceil(wait))), "OData-Version": "4.0",
            "x-ms-ratelimit-burst-remaining-xrm-requests": str(requests),
            "x-ms-ratelimit-time-remaining-xrm-requests": _seconds(seconds),
            "x-ms-service-request-id": str(uuid.uuid4())})

    def headers(self, request: Metered, elapsed: float) -> list[tuple[str, str]]:
        user = request.principal.user.id
        self.window("requests", user).add()
        self.window("execution_seconds", user).add(elapsed)
        requests, seconds = self.remaining(user)
        return [("x-ms-ratelimit-burst-remaining-xrm-requests", str(requests)),
                ("x-ms-ratelimit-time-remaining-xrm-requests", _seconds(seconds)),
                ("x-ms-dop-hint", str(self.limits.dop_hint))]

    def finish(self, request: Metered) -> None:
        user = request.principal.user.id
        busy = self.meters.in_flight.get(user, 0) - 1
        if busy > 0:
            self.meters.in_flight[user] = busy
        else:
            self.meters.in_flight.pop(user, None)

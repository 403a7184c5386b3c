"""HubSpot's rate limits: a daily count per account, a rolling ten seconds per app, and the
search endpoints' own per-second limit (research/hubspot.md sections 4 and 6; source USAGE).

Every non-search CRM response carries ``X-HubSpot-RateLimit-Interval-Milliseconds``,
``-Max`` and ``-Remaining`` (the app's ten-second window) and, for private-app tokens
only, ``-Daily`` and ``-Daily-Remaining``; search responses carry none of them. Past a
limit the answer is 429 with a body naming the policy: ``DAILY`` ("You have reached your
daily limit."), ``TEN_SECONDLY_ROLLING`` or, for search, ``SECONDLY``. The daily count
resets at midnight in the account's time zone (the sandbox's accounts keep UTC). No
``Retry-After`` by default (HubSpot's CRM endpoints do not document one); a limit can
turn it on. Defaults are the Professional tier: 190 per ten seconds, 625,000 a day, and
five searches a second.
"""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response

from ...middleware import Meter, Metered
from ...quota import DailyWindow, Meters, SlidingWindow
from .objects import portal_id

__all__ = ["HubSpotLimits", "HubSpotMeter", "is_search"]


class HubSpotLimits(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    daily: int = Field(625_000, ge=0, le=1_000_000_000, description="API calls per account per day")
    ten_secondly: int = Field(190, ge=0, le=1_000_000, description="API calls per app per rolling 10 s")
    search_per_second: int = Field(5, ge=0, le=1_000_000, description="search calls per account per second")
    retry_after_s: int = Field(0, ge=0, le=86400, description="Retry-After on a 429; 0 sends none")


def is_search(request: Metered) -> bool:
    return request.method == "POST" and request.path.startswith("/crm/v3/objects/") and \
        request.path.rstrip("/").endswith("/search")


def app_of(request: Metered) -> str:
    return str(request.principal.extra.get("app", request.principal.sub))


class HubSpotMeter(Meter):
    def __init__(self, meters: Meters) -> None:
        self.meters = meters

    @property
    def limits(self) -> HubSpotLimits:
        limits: HubSpotLimits = self.meters.limits
        return limits

    def daily(self, tenant: str) -> DailyWindow:
        window: DailyWindow = self.meters.counter("daily", tenant, DailyWindow)
        return window

    def burst(self, app: str) -> SlidingWindow:
        window: SlidingWindow = self.meters.counter("ten_secondly", app, lambda: SlidingWindow(10.0, 100))
        return window

    def searches(self, tenant: str) -> SlidingWindow:
        window: SlidingWindow = self.meters.counter("search_per_second", tenant, lambda: SlidingWindow(1.0,
                                                                                                       20))
        return window

    def refuse(self, policy: str, message: str, headers: dict[str, str]) -> Response:
        correlation = str(uuid.uuid4())
        if self.limits.retry_after_s:
            headers["Retry-After"] = str(self.limits.retry_after_s)
        body = {"status": "error", "message": message, "errorType": "RATE_LIMIT",
                "correlationId": correlation,
                "policyName": policy}
        return JSONResponse(body, status_code=429, media_type="application/json;charset=utf-8",
                            headers={**headers, "X-HubSpot-Correlation-Id": correlation})

    def admit(self, request: Metered) -> Response | None:
        tenant = request.principal.user.tenant
        if self.daily(tenant).total() >= self.limits.daily:
            headers = {} if is_search(request) else self.rate_headers(request)
            return self.refuse("DAILY", "You have reached your daily limit.", headers)
        if is_search(request):
            if self.searches(tenant).total() >= self.limits.search_per_second:
                return self.refuse("SECONDLY", "You have reached your secondly limit.", {})
        elif self.burst(app_of(request)).total() >= self.limits.ten_secondly:
            return self.refuse("TEN_SECONDLY_ROLLING", "You have reached your ten_secondly_rolling limit.",
                               self.rate_headers(request))
        return None

    def headers(self, request: Metered, elapsed: float) -> list[tuple[str, str]]:
        tenant = request.principal.user.tenant
        self.daily(tenant).add()
        if is_search(request):
            self.searches(tenant).add()
            return []  # "Responses from the search API endpoints will not include any of the rate
            #              limit headers" (USAGE)
        self.burst(app_of(request)).add()
        return list(self.rate_headers(request).items())

    def rate_headers(self, request: Metered) -> dict[str, str]:
        limits = self.limits
        headers = {"X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
                   "X-HubSpot-RateLimit-Max": str(limits.ten_secondly),
                   "X-HubSpot-RateLimit-Remaining": str(max(0, limits.ten_secondly -
                                                            int(self.burst(app_of(request)).total())))}
        if request.principal.via != "oauth":  # OAuth responses carry no daily headers
            used = int(self.daily(request.principal.user.tenant).total())
            headers["X-HubSpot-RateLimit-Daily"] = str(limits.daily)
            headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(max(0, limits.daily - used))
        return headers

    def usage(self, tenant: str) -> tuple[int, int]:
        return int(self.daily(tenant).total()), self.limits.daily

    @staticmethod
    def portal(tenant: str) -> int:
        return portal_id(tenant)

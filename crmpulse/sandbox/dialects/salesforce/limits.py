"""Salesforce's API request allocation: a rolling 24-hour count per org.

Every counted REST response carries ``Sforce-Limit-Info: api-usage=USED/LIMIT``; past
the limit, every call of the org is refused with ``403 REQUEST_LIMIT_EXCEEDED``
("TotalRequests Limit exceeded.") until the count of the preceding 24 hours falls under
it; ``GET .../limits`` reports ``DailyApiRequests {Max, Remaining}``. Salesforce never
answers 429 nor sends Retry-After (research/salesforce.md section 7; sources limit-hdr,
limits-res, api-usage, rest-errors). The versions list (``/services/data/``) is not
counted, nor are the OAuth endpoints. A composite request counts once.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response

from ...middleware import Meter, Metered
from ...quota import Meters, SlidingWindow

__all__ = ["SalesforceLimits", "SalesforceMeter"]

DAY = 86400.0


class SalesforceLimits(BaseModel):
    """The org's allocation (100,000 is a production org's base; Developer Edition has 15,000)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    daily_api_requests: int = Field(100_000, ge=0, le=1_000_000_000,
                                    description="API requests per org per rolling 24 hours")


class SalesforceMeter(Meter):
    def __init__(self, meters: Meters) -> None:
        self.meters = meters

    def window(self, tenant: str) -> SlidingWindow:
        window: SlidingWindow = self.meters.counter("DailyApiRequests", tenant,
                                                    lambda: SlidingWindow(DAY, buckets=1440))
        return window

    def usage(self, tenant: str) -> tuple[int, int]:
        limits: SalesforceLimits = self.meters.limits
        return int(self.window(tenant).total()), limits.daily_api_requests

    def admit(self, request: Metered) -> Response | None:
        used, limit = self.usage(request.principal.user.tenant)
        if used < limit:
            return None
        return JSONResponse([{"message": "TotalRequests Limit exceeded.",
                              "errorCode": "REQUEST_LIMIT_EXCEEDED"}], status_code=403,
                            headers={"Sforce-Limit-Info": f"api-usage={used}/{limit}"},
                            media_type="application/json;charset=UTF-8")

    def headers(self, request: Metered, elapsed: float) -> list[tuple[str, str]]:
        tenant = request.principal.user.tenant
        self.window(tenant).add()
        used, limit = self.usage(tenant)
        return [("Sforce-Limit-Info", f"api-usage={used}/{limit}")]

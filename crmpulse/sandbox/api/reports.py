"""Aggregate reports: the pipeline by stage, activities by kind."""

from __future__ import annotations

from starlette.responses import JSONResponse, Response

from ..engine import Sandbox
from .common import Endpoint, Inputs

__all__ = ["endpoints"]


def endpoints(sb: Sandbox) -> list[Endpoint]:
    async def pipeline(inputs: Inputs) -> Response:
        return JSONResponse({"data": sb.store.pipeline()})

    async def activities(inputs: Inputs) -> Response:
        return JSONResponse({"data": sb.store.activity_summary()})

    return [
        Endpoint("GET", "/api/v1/reports/pipeline", pipeline, "Deals, amount and average by stage",
                 responses={200: "one row per stage"}, operation_id="pipeline_report"),
        Endpoint("GET", "/api/v1/reports/activities", activities,
                 "Activities and distinct contacts by kind", responses={200: "one row per kind"},
                 operation_id="activity_report"),
    ]

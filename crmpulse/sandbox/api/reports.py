"""Aggregate reports (the pipeline by stage, activities by kind) and CSV exports.

Both are the "export/report" read path of the access rules: they cover what the
reader's tenant and role may read, unless the ``unfiltered_reads`` knob names
``export``.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Literal

from starlette.responses import JSONResponse, Response

from ..access import SENSITIVE_FIELDS
from ..engine import Sandbox
from .common import Endpoint, Inputs
from .models import Query

__all__ = ["EXPORT_COLUMNS", "endpoints"]

EXPORT_COLUMNS = {
    "contacts": ["id", "first_name", "last_name", "email", "phone", "title", "account_id", "tags",
                 "created_at", "updated_at"],
    "accounts": ["id", "name", "industry", "website", "country", "created_at", "updated_at"],
    "deals": ["id", "name", "amount", "currency", "stage", "account_id", "contact_id", "close_date",
              "created_at", "updated_at"],
    "leads": ["id", "first_name", "last_name", "email", "company", "status", "source", "created_at",
              "updated_at"],
    "activities": ["id", "kind", "subject", "contact_id", "deal_id", "occurred_at", "created_at"],
}
MAX_EXPORT = 100_000


class ExportQuery(Query):
    """No parameters: an export is every record the reader may read."""


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    text = str(value)
    # a cell a spreadsheet would run as a formula is quoted as text (CSV injection)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def endpoints(sb: Sandbox) -> list[Endpoint]:
    async def pipeline(inputs: Inputs) -> Response:
        return JSONResponse({"data": sb.store.pipeline(sb.access.scope(inputs.principal, "export"))})

    async def activities(inputs: Inputs) -> Response:
        scope = sb.access.scope(inputs.principal, "export")
        return JSONResponse({"data": sb.store.activity_summary(scope)})

    def exporter(table: Literal["contacts", "accounts", "deals", "leads", "activities"]) -> Endpoint:
        async def export(inputs: Inputs) -> Response:
            who = inputs.principal
            scope = sb.access.scope(who, "export")
            where = " AND ".join(f"{k} = ?" for k in scope)
            rows = sb.store.find(table, where, list(scope.values()), limit=MAX_EXPORT)
            columns = [c for c in EXPORT_COLUMNS[table] if c not in sb.access.hidden(who, table)]
            if table == "contacts":  # what an exposure knob reveals leaks through exports too
                columns += [f for f in SENSITIVE_FIELDS if f in sb.access.exposed()]
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\r\n")
            writer.writerow(columns)
            for record in rows:
                writer.writerow([_cell(record.get(c)) for c in columns])
            return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{table}.csv"'})
        return Endpoint("GET", f"/api/v1/export/{table}", export,
                        f"Every {table[:-1] if table != 'activities' else 'activity'} the reader may "
                        "read, as CSV", query=ExportQuery,
                        responses={200: "text/csv, a header row then one row per record"},
                        operation_id=f"export_{table}")

    return [
        Endpoint("GET", "/api/v1/reports/pipeline", pipeline, "Deals, amount and average by stage",
                 responses={200: "one row per stage"}, operation_id="pipeline_report"),
        Endpoint("GET", "/api/v1/reports/activities", activities,
                 "Activities and distinct contacts by kind", responses={200: "one row per kind"},
                 operation_id="activity_report"),
        *(exporter(t) for t in ("contacts", "accounts", "deals", "leads", "activities")),
    ]

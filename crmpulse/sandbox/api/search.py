"""Contact search, served from the search index (fed asynchronously: see search.py)."""

from __future__ import annotations

from starlette.responses import JSONResponse, Response

from ..engine import Sandbox
from .common import ApiError, Endpoint, Inputs, invalid
from .models import SearchQuery

__all__ = ["endpoints"]


def endpoints(sb: Sandbox) -> list[Endpoint]:
    async def search(inputs: Inputs) -> Response:
        q: SearchQuery = inputs.query
        if not (q.q or q.tag or q.email):
            raise ApiError(invalid([{"loc": ["query", "q"], "msg": "give q, tag or email"}]))
        who = inputs.principal
        hits, total = sb.index.search(q.q, q.tag, q.email, q.limit, sb.access.scope(who, "search"))
        return JSONResponse({"data": [sb.public("contacts", hit, who) for hit in hits], "total": total})

    return [Endpoint("GET", "/api/v1/search/contacts", search,
                     "Search contacts by words, tag or email (what the sync worker has indexed)",
                     query=SearchQuery, responses={200: "matching contacts and their total"},
                     operation_id="search_contacts")]

"""Activities: calls, emails, meetings, notes and tasks, logged once and never edited."""

from __future__ import annotations

from ..engine import Sandbox
from .common import Endpoint, Resource, record_endpoints
from .models import ActivityCreate, ActivityFilters

__all__ = ["ACTIVITIES", "endpoints"]

ACTIVITIES = Resource("activities", ActivityCreate, None, ActivityFilters,
                      references={"contact_id": "contacts", "deal_id": "deals"})


def endpoints(sb: Sandbox) -> list[Endpoint]:
    return record_endpoints(sb, ACTIVITIES)

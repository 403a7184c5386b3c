"""Leads: prospects not yet qualified, with a status (new, working, qualified, disqualified)."""

from __future__ import annotations

from ..engine import Sandbox
from .common import Endpoint, Resource, record_endpoints
from .models import LeadCreate, LeadFilters, LeadPatch

__all__ = ["LEADS", "endpoints"]

LEADS = Resource("leads", LeadCreate, LeadPatch, LeadFilters)


def endpoints(sb: Sandbox) -> list[Endpoint]:
    return record_endpoints(sb, LEADS)

"""Deals: opportunities with a stage and an amount, for an account and a contact."""

from __future__ import annotations

from ..engine import Sandbox
from .common import Endpoint, Resource, record_endpoints
from .models import DealCreate, DealFilters, DealPatch

__all__ = ["DEALS", "endpoints"]

DEALS = Resource("deals", DealCreate, DealPatch, DealFilters,
                 references={"account_id": "accounts", "contact_id": "contacts"})


def endpoints(sb: Sandbox) -> list[Endpoint]:
    return record_endpoints(sb, DEALS)

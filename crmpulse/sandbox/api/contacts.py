"""Contacts: the people the CRM is about. Every change also feeds the search index."""

from __future__ import annotations

from ..engine import Sandbox
from .common import Endpoint, Resource, record_endpoints
from .models import ContactCreate, ContactFilters, ContactPatch

__all__ = ["CONTACTS", "endpoints"]

CONTACTS = Resource("contacts", ContactCreate, ContactPatch, ContactFilters,
                    references={"account_id": "accounts"})


def endpoints(sb: Sandbox) -> list[Endpoint]:
    return record_endpoints(sb, CONTACTS)

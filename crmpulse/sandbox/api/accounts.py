"""Accounts: the companies contacts and deals belong to; listed by page number."""

from __future__ import annotations

from ..engine import Sandbox
from .common import Endpoint, Resource, record_endpoints
from .models import AccountCreate, AccountPage, AccountPatch

__all__ = ["ACCOUNTS", "endpoints"]

ACCOUNTS = Resource("accounts", AccountCreate, AccountPatch, AccountPage, paging="page")


def endpoints(sb: Sandbox) -> list[Endpoint]:
    return record_endpoints(sb, ACCOUNTS)

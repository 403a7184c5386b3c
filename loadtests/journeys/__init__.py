"""One journey per module; each defines a CRMUser subclass named in JOURNEYS."""

from __future__ import annotations

from .integration_sync import IntegrationSync
from .manager_reporting import ManagerReporting
from .marketing_import import MarketingImport
from .sales_rep import SalesRep
from .support_agent import SupportAgent

#: config name (loadtest.journeys keys) -> User class
JOURNEYS = {
    "sales_rep": SalesRep,
    "support_agent": SupportAgent,
    "marketing_import": MarketingImport,
    "integration_sync": IntegrationSync,
    "manager_reporting": ManagerReporting,
}

__all__ = ["JOURNEYS"]

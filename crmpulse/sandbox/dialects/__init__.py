"""The vendor dialects: the same sandbox behind Salesforce's, HubSpot's and Dataverse's APIs.

    salesforce/   REST API v31.0-v62.0: OAuth2 token and revoke, sObjects, SOQL, SOSL,
                  composite, limits, outbound messages
    hubspot/      CRM v3 objects, search, owners, pipelines, account usage, OAuth v1,
                  private-app tokens, signed webhooks
    dynamics/     Dataverse Web API v9.2: Entra ID tokens, OData CRUD and queries, WhoAmI,
                  service-protection limits, webhooks
    fields.py     vendor objects as views of the store's tables
    query.py      filters as data, compiled to SQL or evaluated on the search index
    ids.py        vendor record ids computed from the store's
    common.py     what every vendor dialect shares: /healthz, the admin API, origins, bodies

``surface(sandbox)`` builds the routes and the ``Policy`` of the sandbox's dialect; the
native dialect is ``api/``. Each vendor dialect is written from its vendor's public
reference (research/*.md, cited in docs/sandbox.md).
"""

from __future__ import annotations

from importlib import import_module

from .common import Surface

__all__ = ["Surface", "surface"]


def surface(sb: object) -> Surface:
    """Routes and policy of ``sb.settings.dialect`` (native, salesforce, hubspot, dynamics)."""
    from ..engine import Sandbox

    assert isinstance(sb, Sandbox)
    name = sb.settings.dialect
    if name == "native":
        from .. import api

        return Surface(api.routes(sb), api.policy(sb))
    module = import_module(f".{name}", __name__)
    built: Surface = module.surface(sb)
    return built

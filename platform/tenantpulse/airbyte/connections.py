"""Which Airbyte connection belongs to which tenant, read from Airbyte itself: a tenant's
connections write to namespace `user_<tenant>` with stream prefix `<source>_` (shared/SOURCES.md)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tenantpulse.sources.contracts import SOURCES
from tenantpulse.tenants.ids import TenantIdError, validate_tenant_id

NAMESPACE_PREFIX = "user_"
ACTIVE = "active"


@dataclass(frozen=True)
class TenantConnection:
    tenant_id: str
    source: str
    connection_id: str
    name: str


def tenant_connection(connection: Mapping[str, Any]) -> TenantConnection | None:
    """The tenant and source of one connection of the REST API's `GET /connections` list, or None
    when it is inactive or is not one of ours (another namespace or prefix)."""
    if connection.get("status", ACTIVE) != ACTIVE:
        return None
    # The REST API spells it `custom_format`, the configuration API `customformat`.
    if str(connection.get("namespaceDefinition", "")).replace("_", "") != "customformat":
        return None
    namespace = connection.get("namespaceFormat") or ""
    if not namespace.startswith(NAMESPACE_PREFIX):
        return None
    try:
        tenant_id = validate_tenant_id(namespace[len(NAMESPACE_PREFIX) :])
    except TenantIdError:
        return None
    source = (connection.get("prefix") or "").removesuffix("_")
    if source not in SOURCES or connection.get("prefix") != f"{source}_":
        return None
    return TenantConnection(
        tenant_id, source, str(connection["connectionId"]), connection.get("name", "")
    )


def connections_by_tenant(
    connections: Iterable[Mapping[str, Any]],
) -> dict[str, list[TenantConnection]]:
    """Tenant id -> its active connections, sorted by source."""
    by_tenant: dict[str, list[TenantConnection]] = {}
    for raw in connections:
        found = tenant_connection(raw)
        if found is not None:
            by_tenant.setdefault(found.tenant_id, []).append(found)
    return {t: sorted(c, key=lambda c: (c.source, c.connection_id)) for t, c in by_tenant.items()}

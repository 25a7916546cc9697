"""Which tenant has connected which source through Airbyte: `ops.tenant_connections`.

A row holds the tenant, the source, the Airbyte workspace group and the source's non-secret
settings; never the credential (that lives only in the secrets file, see tenants/tfvars.py).
Connecting a source also adds it to the tenant's `sources` in `ops.tenants` (what the platform
observes and lands); disconnecting stops the syncs but keeps the source there, like removing a
tenant keeps its data (see terraform/README.md).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from tenantpulse.tenants.ids import validate_tenant_id
from tenantpulse.tenants.registry import ACTIVE, ensure_registry, get_tenant, set_sources
from tenantpulse.tenants.source_settings import parse_settings, validate_source
from tenantpulse.warehouse import Connection

CONNECTED = "connected"
DISCONNECTED = "disconnected"
DEFAULT_WORKSPACE = "default"
_WORKSPACE = re.compile(r"[a-z0-9][a-z0-9_-]{0,47}")


@dataclass(frozen=True)
class TenantConnection:
    tenant_id: str
    source: str
    workspace: str
    settings: dict[str, str | list[str]] = field(hash=False)
    status: str
    connected_at: dt.datetime
    disconnected_at: dt.datetime | None

    @property
    def key(self) -> str:
        """`<tenant>/<source>`: the key of this connection in the Terraform `connections` map."""
        return connection_key(self.tenant_id, self.source)


def connection_key(tenant_id: str, source: str) -> str:
    return f"{tenant_id}/{source}"


def ensure_connections_table(conn: Connection) -> None:
    ensure_registry(conn)
    conn.execute(
        "create table if not exists ops.tenant_connections ("
        " tenant_id varchar not null,"
        " source varchar not null,"
        " workspace varchar not null,"
        " settings varchar not null,"  # JSON object of the non-secret connector settings
        " status varchar not null,"
        " connected_at timestamptz not null,"
        " disconnected_at timestamptz,"
        " primary key (tenant_id, source))"
    )


def validate_workspace(workspace: object) -> str:
    if not isinstance(workspace, str) or not _WORKSPACE.fullmatch(workspace):
        raise ValueError(
            f"invalid workspace name {workspace!r}: use 1-48 lowercase letters, digits, '_' or '-' "
            "(a key of the Terraform `workspaces` map)"
        )
    return workspace


def connect_source(
    conn: Connection,
    tenant_id: str,
    source: str,
    settings: Mapping[str, str],
    *,
    workspace: str = DEFAULT_WORKSPACE,
    replace: bool = False,
) -> TenantConnection:
    """Record that an active tenant connected a source (or, with replace, change its settings)."""
    tenant_id = validate_tenant_id(tenant_id)
    source = validate_source(source)
    workspace = validate_workspace(workspace)
    parsed = parse_settings(source, settings)
    ensure_connections_table(conn)
    tenant = get_tenant(conn, tenant_id)
    if tenant is None:
        raise LookupError(
            f"tenant {tenant_id!r} is not registered; register it first with "
            f"`tenantpulse tenants add {tenant_id} --sources {source}`"
        )
    if tenant.status != ACTIVE:
        raise LookupError(
            f"tenant {tenant_id!r} is {tenant.status}; add it again with `tenantpulse tenants add`"
        )
    existing = get_connection(conn, tenant_id, source)
    if existing is not None and existing.status == CONNECTED and not replace:
        raise ValueError(
            f"{existing.key} is already connected (since {existing.connected_at:%Y-%m-%d %H:%M}); "
            "pass --replace to change its credential or settings"
        )
    now = dt.datetime.now(dt.UTC)
    values = (workspace, json.dumps(parsed, sort_keys=True), CONNECTED)
    if existing is None:
        conn.execute(
            "insert into ops.tenant_connections (workspace, settings, status, tenant_id, source,"
            " connected_at) values (%s, %s, %s, %s, %s, %s)",
            (*values, tenant_id, source, now),
        )
    else:
        # A replaced connection keeps its first connected_at: it is the same Airbyte connection.
        connected_at = existing.connected_at if existing.status == CONNECTED else now
        conn.execute(
            "update ops.tenant_connections set workspace = %s, settings = %s, status = %s,"
            " connected_at = %s, disconnected_at = null where tenant_id = %s and source = %s",
            (*values, connected_at, tenant_id, source),
        )
    if source not in tenant.sources:
        set_sources(conn, tenant_id, (*tenant.sources, source))
    connection = get_connection(conn, tenant_id, source)
    assert connection is not None
    return connection


def disconnect_source(conn: Connection, tenant_id: str, source: str) -> TenantConnection:
    """Mark a connection disconnected; the row stays as a record of when it was connected."""
    tenant_id = validate_tenant_id(tenant_id)
    source = validate_source(source)
    ensure_connections_table(conn)
    existing = get_connection(conn, tenant_id, source)
    if existing is None or existing.status != CONNECTED:
        raise LookupError(f"{connection_key(tenant_id, source)} is not connected")
    conn.execute(
        "update ops.tenant_connections set status = %s, disconnected_at = %s"
        " where tenant_id = %s and source = %s",
        (DISCONNECTED, dt.datetime.now(dt.UTC), tenant_id, source),
    )
    connection = get_connection(conn, tenant_id, source)
    assert connection is not None
    return connection


def get_connection(conn: Connection, tenant_id: str, source: str) -> TenantConnection | None:
    rows = conn.fetch_all(
        f"select {_COLUMNS} from ops.tenant_connections where tenant_id = %s and source = %s",
        (tenant_id, source),
    )
    return _connection(rows[0]) if rows else None


def list_connections(
    conn: Connection, include_disconnected: bool = False
) -> list[TenantConnection]:
    ensure_connections_table(conn)
    rows = conn.fetch_all(
        f"select {_COLUMNS} from ops.tenant_connections where status = %s or %s"
        " order by tenant_id, source",
        (CONNECTED, include_disconnected),
    )
    return [_connection(r) for r in rows]


def terraform_connections(conn: Connection) -> list[TenantConnection]:
    """The connections Terraform should have: connected sources of active tenants."""
    ensure_connections_table(conn)
    rows = conn.fetch_all(
        f"select {', '.join('c.' + c for c in _COLUMNS.split(', '))}"
        " from ops.tenant_connections c join ops.tenants t on t.tenant_id = c.tenant_id"
        " where c.status = %s and t.status = %s order by c.tenant_id, c.source",
        (CONNECTED, ACTIVE),
    )
    return [_connection(r) for r in rows]


_COLUMNS = "tenant_id, source, workspace, settings, status, connected_at, disconnected_at"


def _connection(row: tuple) -> TenantConnection:
    tenant_id, source, workspace, settings, status, connected_at, disconnected_at = row
    return TenantConnection(
        tenant_id, source, workspace, json.loads(settings), status, connected_at, disconnected_at
    )

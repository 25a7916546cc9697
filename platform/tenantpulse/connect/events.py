"""`ops.connection_events`: an append-only log of what happened to each connection (connected,
refreshed, refresh failed, reconnect required, recovered, disconnected, token pushed to Airbyte,
Airbyte source and connection provisioned, provisioning failed, removed from Airbyte, revoked at
the provider, revocation failed or abandoned).

Rows are only ever inserted. A detail is a short text for an operator and never holds a token.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from dataclasses import dataclass

from tenantpulse.warehouse import Connection

CONNECTED = "connected"
REFRESHED = "refreshed"
REFRESH_FAILED = "refresh_failed"  # transient: retried after a backoff
RECONNECT_REQUIRED = "reconnect_required"  # the provider refused the grant: the tenant must act
RECOVERED = "recovered"  # refreshed after failures, or reconnected after reconnect_required
DISCONNECTED = "disconnected"
PUSHED_TO_AIRBYTE = "pushed_to_airbyte"
PROVISIONED = "provisioned"  # its Airbyte source and connection exist, the first sync started
PROVISION_FAILED = "provision_failed"  # retried after a backoff
REMOVED_FROM_AIRBYTE = "removed_from_airbyte"  # after a disconnect: its Airbyte source deleted
REVOKED = "revoked"  # after a disconnect: the provider confirmed the token is revoked
REVOKE_FAILED = "revoke_failed"  # retried after a backoff
REVOKE_ABANDONED = "revoke_abandoned"  # the retries ran out; the token is deleted here anyway


@dataclass(frozen=True)
class ConnectionEvent:
    event_id: str
    tenant_id: str
    provider: str
    event: str
    detail: str | None
    at: dt.datetime


def ensure_events(conn: Connection) -> None:
    conn.ensure_schema("ops")
    conn.execute(
        "create table if not exists ops.connection_events ("
        " event_id varchar primary key,"
        " tenant_id varchar not null,"
        " provider varchar not null,"
        " event varchar not null,"
        " detail varchar,"
        " occurred_at timestamptz not null)"
    )


def record_event(
    conn: Connection,
    tenant_id: str,
    provider: str,
    event: str,
    at: dt.datetime,
    detail: str | None = None,
) -> None:
    ensure_events(conn)
    conn.execute(
        "insert into ops.connection_events (event_id, tenant_id, provider, event, detail, occurred_at)"
        " values (%s, %s, %s, %s, %s, %s)",
        (_event_id(), tenant_id, provider, event, detail, at),
    )


def events_of(
    conn: Connection, tenant_id: str, provider: str | None = None
) -> list[ConnectionEvent]:
    """A tenant's events (of one provider, or all), oldest first."""
    ensure_events(conn)
    rows = conn.fetch_all(
        "select event_id, tenant_id, provider, event, detail, occurred_at from ops.connection_events"
        " where tenant_id = %s and (provider = %s or %s) order by occurred_at, event_id",
        (tenant_id, provider, provider is None),
    )
    return [ConnectionEvent(*r) for r in rows]


def _event_id() -> str:
    """Unique, and in writing order among events of the same moment (clock nanoseconds first)."""
    return f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}"

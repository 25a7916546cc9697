"""What the Connect page tells a tenant about one of its connections: a single phase, read from the
vault, the OAuth flows started, the Airbyte provisioning row and the sync history.

- connecting: a flow was started and not completed (its state is still unexpired);
- provisioning: connected, its Airbyte source and connection are being made;
- first sync running: provisioned, no sync finished since;
- synced <time>: the newest finished sync succeeded;
- reconnect needed: the provider refused the grant (the refresher's invalid_grant);
- failed: <reason>: provisioning failed (retried) or the newest sync failed;
- waiting for the first sync: connected in local mode (no Airbyte), or without provisioning (a
  source registered with `tenantpulse tenants connect`), and nothing synced yet;
- not connected, or disconnected (with where revoking the token at the provider stands).

Reasons are the operator's short details (never a token: see connect/events.py).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from tenantpulse.connect.oauth import ensure_states
from tenantpulse.connect.provision import PROVISIONING, get_provisioning
from tenantpulse.connect.revocation import pending_revocation
from tenantpulse.connect.vault import DISCONNECTED, RECONNECT_REQUIRED, get_state
from tenantpulse.sources.sync_history import SUCCEEDED, ensure_sync_history
from tenantpulse.warehouse import Connection

NOT_CONNECTED, CONNECTING = "not_connected", "connecting"
PROVISIONING_PHASE, FIRST_SYNC_RUNNING = "provisioning", "first_sync_running"
SYNCED, WAITING_FOR_SYNC = "synced", "waiting_for_sync"
RECONNECT_NEEDED, FAILED, DISCONNECTED_PHASE = "reconnect_needed", "failed", "disconnected"
REASON_CHARACTERS = 200


@dataclass(frozen=True)
class Phase:
    kind: str
    text: str  # what the page says, e.g. "synced 2026-12-03 20:30 UTC"
    reason: str | None = None
    in_progress: bool = False  # it changes by itself: worth checking again


def connection_phase(
    conn: Connection, tenant_id: str, provider: str, now: dt.datetime, airbyte: bool
) -> Phase:
    """`airbyte`: Airbyte mode, where airbyte_provision_sensor provisions connections (in local
    mode the provisioning rows just wait, and the simulator's syncs are what counts)."""
    state = get_state(conn, tenant_id, provider)
    if state is None or state.status == DISCONNECTED:
        if _flow_started(conn, tenant_id, provider, now):
            return Phase(CONNECTING, "connecting: waiting for the provider's consent", None, True)
        if state is None:
            return Phase(NOT_CONNECTED, "not connected")
        revocation = pending_revocation(conn, tenant_id, provider)
        return Phase(
            DISCONNECTED_PHASE,
            f"disconnected; {revocation.text}",
            revocation.reason,
            revocation.pending,
        )
    if state.status == RECONNECT_REQUIRED:
        return Phase(RECONNECT_NEEDED, "reconnect needed", _short(state.last_error))
    provisioning = get_provisioning(conn, tenant_id, provider) if airbyte else None
    if provisioning is not None and provisioning.status == PROVISIONING:
        if provisioning.failures:
            reason = _short((provisioning.last_error or "").split(";")[0])
            return Phase(FAILED, f"failed: {reason} (retried automatically)", reason)
        return Phase(PROVISIONING_PHASE, "provisioning", None, True)
    since = provisioning.provisioned_at if provisioning is not None else None
    newest = _newest_sync(conn, tenant_id, provider, since)
    if newest is None:
        if provisioning is not None:
            return Phase(FIRST_SYNC_RUNNING, "first sync running", None, True)
        return Phase(WAITING_FOR_SYNC, "connected; waiting for the first sync")
    finished_at, status, error = newest
    if status == SUCCEEDED:
        return Phase(SYNCED, f"synced {finished_at.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC")
    reason = _short(error) or "the sync failed"
    return Phase(FAILED, f"failed: {reason}", reason)


def _flow_started(conn: Connection, tenant_id: str, provider: str, now: dt.datetime) -> bool:
    ensure_states(conn)
    return bool(
        conn.fetch_value(
            "select count(*) from ops.oauth_states where tenant_id = %s and provider = %s"
            " and expires_at > %s",
            (tenant_id, provider, now),
        )
    )


def _newest_sync(
    conn: Connection, tenant_id: str, provider: str, since: dt.datetime | None
) -> tuple | None:
    """(finished_at, status, error) of the newest sync finished after `since` (all if None)."""
    ensure_sync_history(conn)
    return conn.fetch_one(
        "select finished_at, status, error from ops.airbyte_sync_history"
        " where tenant_id = %s and source = %s and finished_at is not null"
        " and (finished_at >= %s or %s) order by finished_at desc limit 1",
        (tenant_id, provider, since, since is None),
    )


def _short(text: str | None) -> str | None:
    if not text:
        return None
    return text if len(text) <= REASON_CHARACTERS else text[: REASON_CHARACTERS - 1] + "…"

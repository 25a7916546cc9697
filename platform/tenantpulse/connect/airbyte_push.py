"""Before a sync step starts its Airbyte syncs: hold back the connections whose tenant must
reconnect, and push the fresh access token into the Airbyte source of each connection that
tenantpulse refreshes (Shopify: the connector cannot refresh its own token)."""

from __future__ import annotations

import datetime as dt

from dagster_airbyte.resources import AirbyteClient

from tenantpulse.airbyte.connections import TenantConnection
from tenantpulse.config import ConnectSettings
from tenantpulse.connect import events
from tenantpulse.connect.providers import TENANTPULSE, provider
from tenantpulse.connect.provision import credential_configuration
from tenantpulse.connect.vault import (
    RECONNECT_REQUIRED,
    Vault,
    VaultError,
    list_states,
    read_tokens,
)
from tenantpulse.tenants.connections import get_connection
from tenantpulse.warehouse import Connection


def prepare_syncs(
    conn: Connection,
    settings: ConnectSettings,
    client: AirbyteClient,
    connections: list[TenantConnection],
    now: dt.datetime,
) -> tuple[list[TenantConnection], dict[str, str], dict[str, str]]:
    """(connections to sync, paused: tenant -> why, failed: tenant -> why). A connection the
    vault does not hold (set up with Terraform and a key) is synced as before."""
    states = {(s.tenant_id, s.provider): s for s in list_states(conn)}
    ready: list[TenantConnection] = []
    paused: dict[str, str] = {}
    failed: dict[str, str] = {}
    for connection in connections:
        state = states.get((connection.tenant_id, connection.source))
        tenant, source = connection.tenant_id, connection.source
        if state is None:
            ready.append(connection)
        elif state.status == RECONNECT_REQUIRED:
            paused[tenant] = f"{source} paused: the tenant must reconnect it"
        elif provider(source).refreshed_by != TENANTPULSE:
            ready.append(connection)
        else:
            try:
                _push(conn, settings, client, connection, now)
            except (VaultError, ValueError) as error:
                failed[tenant] = f"{source}: {error}"
                continue
            ready.append(connection)
    return ready, paused, failed


def _push(
    conn: Connection,
    settings: ConnectSettings,
    client: AirbyteClient,
    connection: TenantConnection,
    now: dt.datetime,
) -> None:
    tenant, source = connection.tenant_id, connection.source
    tokens = read_tokens(conn, Vault(settings.vault_keys), tenant, source)
    if tokens.expires_at is not None and tokens.expires_at <= now:
        raise ValueError(
            "its access token has expired and the refresher has not renewed it (see "
            "ops.connection_events); not synced"
        )
    registered = get_connection(conn, tenant, source)
    configuration = dict(registered.settings) if registered else {}
    configuration.update(credential_configuration(source, tokens, settings))
    try:
        source_id = client.get_connection_details(connection.connection_id)["sourceId"]
        client._single_request(  # noqa: SLF001 - the client has no call to update a source
            method="PATCH",
            url=f"{client.rest_api_base_url}/sources/{source_id}",
            data={"configuration": {"sourceType": source, **configuration}},
        )
    except Exception as error:  # noqa: BLE001 - the client's Failure names only the URL
        raise ValueError(
            f"could not update the Airbyte source with the fresh token ({type(error).__name__})"
        ) from None
    until = f"{tokens.expires_at:%Y-%m-%d %H:%M:%S}Z" if tokens.expires_at else "no expiry"
    events.record_event(
        conn,
        tenant,
        source,
        events.PUSHED_TO_AIRBYTE,
        now,
        f"source {source_id}; valid until {until}",
    )

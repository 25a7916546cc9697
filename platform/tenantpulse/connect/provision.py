"""From a completed connect to a first sync: create (or update) the tenant's Airbyte source and
connection through Airbyte's REST API, then start the first sync.

A completed connect (connect/oauth.py) marks the connection `provisioning` in
`ops.airbyte_provisioning`. `provision_due` (run by a Dagster sensor) takes the due ones one at a
time, each in its own transaction (Postgres: `FOR UPDATE SKIP LOCKED`, as the refresher claims):

1. the source: `POST /sources` with the workspace, the connector's definition id and its
   configuration (the tenant's non-secret settings and the credential from the vault), or
   `PATCH /sources/<id>` when the connection already has one (a reconnect: the new credential);
2. the connection: `POST /connections` to the operator's destination, with what the Terraform
   module sets (namespace `user_<tenant>`, prefix `<source>_`, the contracts' streams, the cron);
   a connection already in Airbyte for that tenant and source (made by Terraform) is adopted;
3. the first sync: `POST /jobs`. The jobs sensor records it when it ends and new_syncs_sensor
   lands it, as for any sync.

A disconnect marks the connection `removing`: `DELETE /sources/<id>` then deletes the source
(Airbyte deletes its connections with it), so Airbyte neither keeps the credential nor syncs.

The credential is only ever in the JSON body of the source request. A failure is retried after
the refresher's backoff and recorded in `ops.connection_events` (`provision_failed`); the ids
Airbyte gave before the failure are kept, so a retry does not create a second source.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import requests
from dagster import Failure
from dagster_airbyte.resources import AirbyteClient

from tenantpulse.airbyte.connections import connections_by_tenant
from tenantpulse.config import AirbyteSettings, ConnectSettings, SettingsError
from tenantpulse.connect import events
from tenantpulse.connect.refresher import backoff
from tenantpulse.connect.vault import CONNECTED, Tokens, Vault, VaultError, read_tokens
from tenantpulse.sources.contracts import SOURCES, streams_for
from tenantpulse.tenants.connections import ensure_connections_table, get_connection
from tenantpulse.tenants.ids import validate_tenant_id
from tenantpulse.tenants.source_settings import validate_source
from tenantpulse.warehouse import Connection, Warehouse

PROVISIONING, PROVISIONED = "provisioning", "provisioned"
REMOVING, REMOVED = "removing", "removed"  # after a disconnect: the Airbyte source is deleted
DESTINATION_ID = "TENANTPULSE_AIRBYTE_DESTINATION_ID"
DEFINITION_PREFIX = "TENANTPULSE_AIRBYTE_SOURCE_DEFINITION_"
# The Terraform module's (terraform/modules/tenant_connections/main.tf).
SOURCE_DEFINITION_IDS = {
    "stripe": "e094cb9a-26de-4645-8761-65c0c425d1de",
    "github": "ef69ef6e-aa7f-4af1-a01d-ef775033524e",
    "shopify": "9da77001-af33-4bcd-be46-6252bf9342b9",
    "google_analytics": "3cc2eafd-84aa-4dca-93af-322d9dfeec1a",
}
CRON_EXPRESSION = "0 0 2 * * ?"  # the module's default: every day at 02:00
NAME_PREFIX = "tenantpulse"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True)
class Target:
    """Where the sources and connections are created (the operator's settings)."""

    workspace_id: str
    destination_id: str
    definition_ids: Mapping[str, str] = field(default_factory=lambda: SOURCE_DEFINITION_IDS)


def load_target(airbyte: AirbyteSettings, environ: Mapping[str, str] | None = None) -> Target:
    """The workspace (TENANTPULSE_AIRBYTE_WORKSPACE_ID), the destination every connection writes
    to, and the source definition ids (the module's, or TENANTPULSE_AIRBYTE_SOURCE_DEFINITION_<SOURCE>)."""
    env = os.environ if environ is None else environ
    values = {DESTINATION_ID: env.get(DESTINATION_ID, "").strip()}
    definitions = dict(SOURCE_DEFINITION_IDS)
    for source in SOURCES:
        name = DEFINITION_PREFIX + source.upper()
        if env.get(name, "").strip():
            values[name] = definitions[source] = env[name].strip().lower()
    for name, value in values.items():
        if not _UUID.fullmatch(value.lower()):
            raise SettingsError(
                f"{name} is {'not set' if not value else 'not a UUID'}; allowed: an Airbyte id "
                "such as 25c5221d-dce2-4163-ade9-739ef790f503 (docs/connect.md)"
            )
    return Target(airbyte.workspace_id, values[DESTINATION_ID], definitions)


@dataclass(frozen=True)
class Outcome:
    tenant_id: str
    provider: str
    result: str  # PROVISIONED, REMOVED, or FAILED (retried later)
    detail: str  # for logs: ids and reasons, never a credential


FAILED = "failed"


def ensure_provisioning(conn: Connection) -> None:
    conn.ensure_schema("ops")
    conn.execute(
        "create table if not exists ops.airbyte_provisioning ("
        " tenant_id varchar not null,"
        " provider varchar not null,"
        " status varchar not null,"  # provisioning | provisioned | removing | removed
        " source_id varchar,"
        " connection_id varchar,"
        " first_job_id varchar,"
        " failures integer not null,"
        " next_attempt_at timestamptz,"
        " last_error varchar,"
        " requested_at timestamptz not null,"
        " provisioned_at timestamptz,"
        " primary key (tenant_id, provider))"
    )


def request_provisioning(conn: Connection, tenant_id: str, provider: str, now: dt.datetime) -> None:
    """A connect completed: provision (or, if Airbyte has the source, update) it next."""
    tenant_id, provider = validate_tenant_id(tenant_id), validate_source(provider)
    ensure_provisioning(conn)
    conn.execute(
        "insert into ops.airbyte_provisioning (tenant_id, provider, status, failures,"
        " requested_at) values (%s, %s, %s, 0, %s)"
        " on conflict (tenant_id, provider) do update set status = excluded.status,"
        " failures = 0, next_attempt_at = null, last_error = null,"
        " requested_at = excluded.requested_at, provisioned_at = null",
        (tenant_id, provider, PROVISIONING, now),
    )


def request_removal(conn: Connection, tenant_id: str, provider: str, now: dt.datetime) -> None:
    """A disconnect: delete the connection's Airbyte source next, if it has one."""
    ensure_provisioning(conn)
    conn.execute(
        "update ops.airbyte_provisioning set status = case when source_id is null"
        " and connection_id is null then %s else %s end, failures = 0,"
        " next_attempt_at = null, last_error = null, requested_at = %s"
        " where tenant_id = %s and provider = %s",
        (REMOVED, REMOVING, now, tenant_id, provider),
    )


@dataclass(frozen=True)
class Provisioning:
    tenant_id: str
    provider: str
    status: str
    source_id: str | None
    connection_id: str | None
    first_job_id: str | None
    failures: int
    next_attempt_at: dt.datetime | None
    last_error: str | None
    requested_at: dt.datetime
    provisioned_at: dt.datetime | None


def get_provisioning(conn: Connection, tenant_id: str, provider: str) -> Provisioning | None:
    ensure_provisioning(conn)
    row = conn.fetch_one(
        "select tenant_id, provider, status, source_id, connection_id, first_job_id, failures,"
        " next_attempt_at, last_error, requested_at, provisioned_at"
        " from ops.airbyte_provisioning where tenant_id = %s and provider = %s",
        (tenant_id, provider),
    )
    return Provisioning(*row) if row else None


def credential_configuration(
    source: str, tokens: Tokens, settings: ConnectSettings
) -> dict[str, object]:
    """Where each connector's spec takes the credential tenantpulse holds for it."""
    if source == "stripe":
        return {"client_secret": tokens.access_token}
    if source == "github":
        return {
            "credentials": {
                "option_title": "OAuth Credentials",
                "access_token": tokens.access_token,
            }
        }
    if source == "shopify":
        return {"credentials": {"auth_method": "api_password", "api_password": tokens.access_token}}
    # google_analytics: the connector refreshes its access token with our OAuth client.
    if source not in settings.clients or not tokens.refresh_token:
        raise ValueError(
            "the connector needs tenantpulse's Google OAuth client and a refresh token; set "
            "TENANTPULSE_CONNECT_GOOGLE_ANALYTICS_CLIENT_ID and _CLIENT_SECRET and reconnect"
        )
    client_id, client_secret = settings.clients[source]
    return {
        "credentials": {
            "auth_type": "Client",
            "client_id": client_id,
            "client_secret": client_secret,
            "refresh_token": tokens.refresh_token,
        }
    }


def connection_request(target: Target, tenant_id: str, source: str, source_id: str) -> dict:
    """`POST /connections`: the settings terraform/modules/tenant_connections gives a connection."""
    return {
        "name": f"{NAME_PREFIX}-{tenant_id}-{source}",
        "sourceId": source_id,
        "destinationId": target.destination_id,
        "namespaceDefinition": "custom_format",
        "namespaceFormat": f"user_{tenant_id}",
        "prefix": f"{source}_",
        "nonBreakingSchemaUpdatesBehavior": "propagate_columns",
        "status": "active",
        "schedule": {"scheduleType": "cron", "cronExpression": CRON_EXPRESSION},
        "configurations": {
            "streams": [
                {
                    "name": s.stream,
                    "syncMode": s.sync_mode,
                    "cursorField": [s.cursor],
                    "primaryKey": [[key] for key in s.primary_key],
                }
                for s in streams_for(source)
            ]
        },
    }


def provision_due(
    warehouse: Warehouse,
    vault: Vault,
    settings: ConnectSettings,
    client: AirbyteClient,
    target: Target,
    limit: int = 1000,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    seconds: float | None = None,
) -> list[Outcome]:
    """Provision due connections one at a time until none is due, `limit` were tried or
    `seconds` have passed; Airbyte's connections are listed once for the batch."""
    with warehouse.connect() as conn:
        ensure_provisioning(conn)
        ensure_connections_table(conn)
        if not conn.fetch_value(
            "select count(*) from ops.airbyte_provisioning where status in (%s, %s)",
            (PROVISIONING, REMOVING),
        ):
            return []
    existing: dict[tuple[str, str], str] | None = None
    outcomes: list[Outcome] = []
    tried: set[tuple[str, str]] = set()
    stop = time.monotonic() + seconds if seconds is not None else None
    while len(outcomes) < limit and (stop is None or time.monotonic() < stop):
        if existing is None:
            try:
                existing = {
                    (c.tenant_id, c.source): c.connection_id
                    for cs in connections_by_tenant(client.get_connections()).values()
                    for c in cs
                }
            except Exception as error:  # noqa: BLE001 - Airbyte unreachable: next tick
                raise ProvisionError(f"could not list Airbyte's connections: {error}") from None
        with warehouse.connect() as conn:
            outcome = _provision_one(conn, vault, settings, client, target, existing, tried, now)
        if outcome is None:
            break
        outcomes.append(outcome)
    return outcomes


class ProvisionError(RuntimeError):
    """Airbyte could not be asked at all; nothing was changed."""


def _provision_one(
    conn: Connection,
    vault: Vault,
    settings: ConnectSettings,
    client: AirbyteClient,
    target: Target,
    existing: dict[tuple[str, str], str],
    tried: set[tuple[str, str]],
    now: Callable[[], dt.datetime],
) -> Outcome | None:
    claimed = _claim(conn, now(), tried)
    if claimed is None:
        return None
    tenant_id, name, status, source_id, connection_id, failures = claimed
    tried.add((tenant_id, name))
    if status == REMOVING:
        existing.pop((tenant_id, name), None)
        return _remove(conn, client, tenant_id, name, source_id, connection_id, failures, now)
    connection_id = connection_id or existing.get((tenant_id, name))
    step = "reading the credential from the vault"
    job_id = None
    try:
        registered = get_connection(conn, tenant_id, name)
        tokens = read_tokens(conn, vault, tenant_id, name)
        if tokens.expires_at is not None and tokens.expires_at <= now():
            raise ValueError("its access token has expired; the refresher renews it first")
        configuration = {
            **(registered.settings if registered else {}),
            **credential_configuration(name, tokens, settings),
        }
        if connection_id and not source_id:
            step = "reading the existing Airbyte connection"
            source_id = client.get_connection_details(connection_id)["sourceId"]
        if source_id:
            step = f"updating Airbyte source {source_id}"
            client._single_request(  # noqa: SLF001 - the client has no call for sources
                method="PATCH",
                url=f"{client.rest_api_base_url}/sources/{source_id}",
                data={"configuration": configuration},
            )
        else:
            step = "creating the Airbyte source"
            source_id = client._single_request(  # noqa: SLF001
                method="POST",
                url=f"{client.rest_api_base_url}/sources",
                data={
                    "name": f"{NAME_PREFIX}-{tenant_id}-{name}",
                    "workspaceId": target.workspace_id,
                    "definitionId": target.definition_ids[name],
                    "configuration": configuration,
                },
            )["sourceId"]
        if not connection_id:
            step = "creating the Airbyte connection"
            connection_id = client._single_request(  # noqa: SLF001
                method="POST",
                url=f"{client.rest_api_base_url}/connections",
                data=connection_request(target, tenant_id, name, source_id),
            )["connectionId"]
            existing[(tenant_id, name)] = connection_id
        step = "starting the first sync"
        job_id = str(client.start_sync_job(connection_id)["jobId"])
    except (Failure, VaultError, ValueError, KeyError, TypeError) as error:
        # The client's Failure names the URL, never the body; a KeyError the missing field.
        reason = _describe(error)
        return _failed(
            conn, tenant_id, name, source_id, connection_id, failures, now(), step, reason
        )
    at = now()
    conn.execute(
        "update ops.airbyte_provisioning set status = %s, source_id = %s, connection_id = %s,"
        " first_job_id = %s, failures = 0, next_attempt_at = null, last_error = null,"
        " provisioned_at = %s where tenant_id = %s and provider = %s",
        (PROVISIONED, source_id, connection_id, job_id, at, tenant_id, name),
    )
    detail = f"source {source_id}, connection {connection_id}; first sync: Airbyte job {job_id}"
    events.record_event(conn, tenant_id, name, events.PROVISIONED, at, detail)
    if failures:
        events.record_event(
            conn,
            tenant_id,
            name,
            events.RECOVERED,
            at,
            f"provisioned after {failures} failed attempt(s)",
        )
    return Outcome(tenant_id, name, PROVISIONED, detail)


def _remove(
    conn: Connection,
    client: AirbyteClient,
    tenant_id: str,
    name: str,
    source_id: str | None,
    connection_id: str | None,
    failures: int,
    now: Callable[[], dt.datetime],
) -> Outcome:
    step = "reading the existing Airbyte connection"
    try:
        if not source_id:
            source_id = client.get_connection_details(connection_id)["sourceId"]
        step = f"deleting Airbyte source {source_id}"
        # Not _single_request: Airbyte answers 204 without a body, which it cannot parse.
        session = client._get_session(include_additional_request_headers=True)  # noqa: SLF001
        response = session.delete(
            f"{client.rest_api_base_url}/sources/{source_id}", timeout=client.request_timeout
        )
        if response.status_code != 404:  # already deleted: done
            response.raise_for_status()
    except (Failure, KeyError, requests.RequestException) as error:
        reason = (
            f"HTTP {error.response.status_code}"
            if isinstance(error, requests.HTTPError) and error.response is not None
            else _describe(error)
        )
        return _failed(
            conn, tenant_id, name, source_id, connection_id, failures, now(), step, reason
        )
    at = now()
    # The ids go: a later reconnect creates a new source and connection.
    conn.execute(
        "update ops.airbyte_provisioning set status = %s, source_id = null, connection_id = null,"
        " failures = 0, next_attempt_at = null, last_error = null"
        " where tenant_id = %s and provider = %s",
        (REMOVED, tenant_id, name),
    )
    detail = f"source {source_id} and its connection {connection_id} deleted from Airbyte"
    events.record_event(conn, tenant_id, name, events.REMOVED_FROM_AIRBYTE, at, detail)
    return Outcome(tenant_id, name, REMOVED, detail)


def _claim(conn: Connection, now: dt.datetime, tried: set[tuple[str, str]]) -> tuple | None:
    """The oldest due request (to provision: its token connected; or to remove), locked on
    Postgres until this transaction ends; rows another provisioner holds, and those tried in
    this batch, skipped."""
    lock = " for update of p skip locked" if conn.dialect == "postgres" else ""
    rows = conn.fetch_all(
        "select p.tenant_id, p.provider, p.status, p.source_id, p.connection_id, p.failures"
        " from ops.airbyte_provisioning p left join ops.connection_tokens t"
        " on t.tenant_id = p.tenant_id and t.provider = p.provider"
        " left join ops.tenant_connections c"
        " on c.tenant_id = p.tenant_id and c.source = p.provider"
        " where ((p.status = %s and t.status = %s and c.status = %s) or p.status = %s)"
        " and (p.next_attempt_at is null or p.next_attempt_at <= %s)"
        f" order by p.requested_at, p.tenant_id, p.provider limit %s{lock}",
        (PROVISIONING, CONNECTED, CONNECTED, REMOVING, now, len(tried) + 1),
    )
    return next((tuple(r) for r in rows if (r[0], r[1]) not in tried), None)


def _failed(
    conn: Connection,
    tenant_id: str,
    name: str,
    source_id: str | None,
    connection_id: str | None,
    failures: int,
    at: dt.datetime,
    step: str,
    reason: str,
) -> Outcome:
    failures += 1
    retry = at + backoff(failures)
    detail = f"{step} failed: {reason}; attempt {failures}, next at {retry:%Y-%m-%d %H:%M:%S}Z"
    # The ids Airbyte already gave are kept: the retry updates them instead of creating more.
    conn.execute(
        "update ops.airbyte_provisioning set source_id = %s, connection_id = %s, failures = %s,"
        " next_attempt_at = %s, last_error = %s where tenant_id = %s and provider = %s",
        (source_id, connection_id, failures, retry, detail, tenant_id, name),
    )
    events.record_event(conn, tenant_id, name, events.PROVISION_FAILED, at, detail)
    return Outcome(tenant_id, name, FAILED, detail)


def _describe(error: Exception) -> str:
    if isinstance(error, Failure):
        return error.description or "Airbyte refused the request"
    if isinstance(error, KeyError):
        return f"Airbyte's answer has no {error}"
    return f"{type(error).__name__}: {error}"[:300]

"""The refresher: keeps the access tokens tenantpulse is responsible for (Shopify's) alive.

It claims one due connection at a time inside a transaction (Postgres: `FOR UPDATE SKIP LOCKED`,
so refreshers racing on the same warehouse each take a different row and never present the same
refresh token twice; DuckDB: one process holds the file, so there is a single writer), asks the
provider's token endpoint for new tokens and saves them, rotated refresh token included, in the
same transaction. A transient failure (429, 5xx, timeout, connection refused) is retried after an
exponential backoff; `invalid_grant` (revoked, expired or already used) marks the connection
`reconnect_required`, which pauses its syncs until the tenant connects it again.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests
from authlib.integrations.base_client.errors import OAuthError

from tenantpulse.config import ConnectSettings
from tenantpulse.connect import events
from tenantpulse.connect.providers import (
    endpoint,
    next_refresh_at,
    oauth_session,
    provider,
    tokens_from_response,
)
from tenantpulse.connect.vault import (
    CONNECTED,
    RECONNECT_REQUIRED,
    Vault,
    VaultError,
    ensure_vault,
    set_status,
    store_tokens,
)
from tenantpulse.tenants.connections import ensure_connections_table
from tenantpulse.warehouse import Connection, Warehouse

REFRESHED, FAILED = "refreshed", "failed"
BACKOFF_FIRST = dt.timedelta(seconds=30)
BACKOFF_MAX = dt.timedelta(hours=1)


@dataclass(frozen=True)
class Outcome:
    tenant_id: str
    provider: str
    result: str  # REFRESHED, FAILED (retried later) or RECONNECT_REQUIRED
    detail: str  # what happened, for logs: never a token


def backoff(failures: int) -> dt.timedelta:
    """The wait after the n-th transient failure in a row: 30 s, 1 min, 2 min, ... up to 1 h."""
    return min(BACKOFF_FIRST * 2 ** (failures - 1), BACKOFF_MAX)


def refresh_next(
    warehouse: Warehouse,
    vault: Vault,
    settings: ConnectSettings,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> Outcome | None:
    """Claim and refresh one due connection; None when none is due (or all are claimed)."""
    _ensure_tables(warehouse)
    return _refresh_one(warehouse, vault, settings, now)


def _refresh_one(
    warehouse: Warehouse,
    vault: Vault,
    settings: ConnectSettings,
    now: Callable[[], dt.datetime],
) -> Outcome | None:
    with warehouse.connect() as conn:
        claimed = _claim(conn, now())
        if claimed is None:
            return None
        tenant_id, name, ciphertext, failures, shop = claimed
        which = provider(name)
        try:
            previous = vault.open(tenant_id, name, ciphertext)
            session = oauth_session(settings, which)
            token = session.refresh_token(
                endpoint(settings, which, "token", shop),
                refresh_token=previous.refresh_token,
                timeout=settings.timeout_seconds,
            )
            at = now()
            tokens = tokens_from_response(token, at, previous)
        except OAuthError as error:
            if error.error == "invalid_grant":
                return _reconnect_required(conn, tenant_id, name, failures, now())
            return _failed(conn, tenant_id, name, failures, now(), f"{error.error}")
        except requests.HTTPError as error:
            code = error.response.status_code if error.response is not None else "?"
            return _failed(conn, tenant_id, name, failures, now(), f"HTTP {code}")
        except (requests.RequestException, ValueError, VaultError) as error:
            return _failed(conn, tenant_id, name, failures, now(), _describe(error))
        store_tokens(conn, vault, tenant_id, name, tokens, next_refresh_at(which, tokens, at), at)
        detail = f"access token valid until {tokens.expires_at:%Y-%m-%d %H:%M:%S}Z"
        events.record_event(conn, tenant_id, name, events.REFRESHED, at, detail)
        if failures:
            events.record_event(
                conn, tenant_id, name, events.RECOVERED, at, f"after {failures} failed attempt(s)"
            )
        return Outcome(tenant_id, name, REFRESHED, detail)


def refresh_due(
    warehouse: Warehouse,
    vault: Vault,
    settings: ConnectSettings,
    limit: int = 1000,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    seconds: float | None = None,
) -> list[Outcome]:
    """Refresh due connections one at a time until none is due, `limit` were tried or
    `seconds` have passed (a sensor tick's budget: the rest are due on the next tick)."""
    outcomes: list[Outcome] = []
    stop = time.monotonic() + seconds if seconds is not None else None
    _ensure_tables(warehouse)
    while len(outcomes) < limit and (stop is None or time.monotonic() < stop):
        outcome = _refresh_one(warehouse, vault, settings, now)
        if outcome is None:
            break
        outcomes.append(outcome)
    return outcomes


def _ensure_tables(warehouse: Warehouse) -> None:
    with warehouse.connect() as conn:
        ensure_vault(conn)
        ensure_connections_table(conn)


def _claim(conn: Connection, now: dt.datetime) -> tuple | None:
    """(tenant, provider, ciphertext, failures, shop) of the most overdue connection, locked
    on Postgres until this transaction ends; rows other refreshers hold are skipped."""
    lock = " for update of t skip locked" if conn.dialect == "postgres" else ""
    row = conn.fetch_one(
        "select t.tenant_id, t.provider, t.ciphertext, t.failures, c.settings"
        " from ops.connection_tokens t left join ops.tenant_connections c"
        " on c.tenant_id = t.tenant_id and c.source = t.provider"
        " where t.status = %s and t.next_refresh_at <= %s"
        " and (t.next_attempt_at is null or t.next_attempt_at <= %s)"
        f" order by t.next_refresh_at limit 1{lock}",
        (CONNECTED, now, now),
    )
    if row is None:
        return None
    # The shop (in Shopify's token URL) is a non-secret setting of the tenant's connection.
    shop = json.loads(row[4]).get("shop") if row[4] else None
    return (*row[:4], shop)


def _failed(
    conn: Connection, tenant_id: str, name: str, failures: int, at: dt.datetime, reason: str
) -> Outcome:
    failures += 1
    retry = at + backoff(failures)
    detail = f"{reason}; attempt {failures}, next at {retry:%Y-%m-%d %H:%M:%S}Z"
    set_status(
        conn, tenant_id, name, CONNECTED, at, error=reason, failures=failures, next_attempt_at=retry
    )
    events.record_event(conn, tenant_id, name, events.REFRESH_FAILED, at, detail)
    return Outcome(tenant_id, name, FAILED, detail)


def _reconnect_required(
    conn: Connection,
    tenant_id: str,
    name: str,
    failures: int,
    at: dt.datetime,
) -> Outcome:
    # Not the provider's description: it is free text and could quote the token.
    detail = "the provider refused the refresh token (invalid_grant): the tenant must reconnect"
    set_status(conn, tenant_id, name, RECONNECT_REQUIRED, at, error=detail, failures=failures)
    events.record_event(conn, tenant_id, name, events.RECONNECT_REQUIRED, at, detail)
    return Outcome(tenant_id, name, RECONNECT_REQUIRED, detail)


def _describe(error: Exception) -> str:
    if isinstance(error, requests.Timeout):
        return "timed out"
    if isinstance(error, requests.ConnectionError):
        return "connection failed"
    return f"{type(error).__name__}: {error}"[:300]

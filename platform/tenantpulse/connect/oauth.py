"""Connecting a source: the OAuth 2.0 authorization-code flow with PKCE (authlib's client), or a
pasted key (Stripe), then the registration that makes the next sync and the flow follow.

`start` checks the source's non-secret settings, makes a PKCE verifier and a single-use `state`,
and remembers them in `ops.oauth_states` for ten minutes, bound to the signed-in tenant and user
(the state's SHA-256 is stored, the verifier sealed by the vault). `finish` takes the provider's
redirect: the state must be known, unused, unexpired and started by the same tenant and user; it
is deleted whatever happens next, so it works once. The code is exchanged with the verifier, the
tokens go into the vault, and `tenants.connections.connect_source` registers the source and
asks for its Airbyte source and connection (connect/provision.py), after which the first sync and
the flow follow.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError

from tenantpulse.config import ConnectSettings
from tenantpulse.connect import events
from tenantpulse.connect.providers import (
    OAUTH,
    PASTED_KEY,
    endpoint,
    next_refresh_at,
    oauth_session,
    provider,
    tokens_from_response,
)
from tenantpulse.connect.provision import request_provisioning, request_removal
from tenantpulse.connect.revocation import request_revocation
from tenantpulse.connect.vault import (
    CONNECTED,
    RECONNECT_REQUIRED,
    Tokens,
    Vault,
    destroy_tokens,
    ensure_vault,
    get_state,
    store_tokens,
)
from tenantpulse.tenants.connections import connect_source, disconnect_source, get_connection
from tenantpulse.tenants.ids import validate_tenant_id
from tenantpulse.tenants.source_settings import check_credential, parse_settings
from tenantpulse.warehouse import Connection

STATE_LIFETIME = dt.timedelta(minutes=10)


class ConnectError(RuntimeError):
    """The flow stopped; `kind` picks the page the tenant sees, the message says what to do."""

    kind = "failed"


class Denied(ConnectError):
    kind = "denied"


class StateExpired(ConnectError):
    kind = "expired"


class StateRefused(ConnectError):
    kind = "refused"


class AlreadyConnected(ConnectError):
    kind = "already_connected"


@dataclass(frozen=True)
class Connected:
    tenant_id: str
    provider: str
    recovered: bool  # it was reconnect_required
    warning: str | None


def ensure_states(conn: Connection) -> None:
    conn.ensure_schema("ops")
    conn.execute(
        "create table if not exists ops.oauth_states ("
        " state_hash varchar primary key,"
        " tenant_id varchar not null,"
        " user_name varchar not null,"
        " provider varchar not null,"
        " verifier varchar not null,"  # sealed by the vault
        " redirect_uri varchar not null,"
        " settings varchar not null,"  # JSON of the source's non-secret settings
        " expires_at timestamptz not null)"
    )


def start(
    conn: Connection,
    settings: ConnectSettings,
    vault: Vault,
    tenant_id: str,
    user: str,
    provider_name: str,
    redirect_uri: str,
    source_settings: Mapping[str, str],
    now: dt.datetime,
    reconnect: bool = False,
) -> str:
    """The provider's authorization URL to send the tenant's browser to."""
    tenant_id = validate_tenant_id(tenant_id)
    which = provider(provider_name)
    if which.auth != OAUTH:
        raise ConnectError(f"{which.name} is connected with a pasted key, not OAuth")
    parsed = parse_settings(which.name, source_settings)
    _check_not_connected(conn, tenant_id, which.name, reconnect)
    verifier, state = generate_token(64), generate_token(32)
    session = oauth_session(
        settings, which, redirect_uri=redirect_uri, code_challenge_method="S256"
    )
    url, _ = session.create_authorization_url(
        endpoint(settings, which, "authorize", str(parsed.get("shop") or "")),
        state=state,
        code_verifier=verifier,
        **which.authorize_params,
    )
    ensure_states(conn)
    conn.execute("delete from ops.oauth_states where expires_at < %s", (now,))
    conn.execute(
        "insert into ops.oauth_states (state_hash, tenant_id, user_name, provider, verifier,"
        " redirect_uri, settings, expires_at) values (%s, %s, %s, %s, %s, %s, %s, %s)",
        (
            _hash(state),
            tenant_id,
            user,
            which.name,
            vault.seal(tenant_id, which.name, Tokens(verifier)),  # not a token: the verifier
            redirect_uri,
            json.dumps(source_settings, sort_keys=True),
            now + STATE_LIFETIME,
        ),
    )
    return url


def finish(
    conn: Connection,
    settings: ConnectSettings,
    vault: Vault,
    tenant_id: str,
    user: str,
    provider_name: str,
    query: Mapping[str, str],
    now: dt.datetime,
) -> Connected:
    """Complete the flow from `provider_name`'s redirect (its query parameters)."""
    ensure_states(conn)
    state = query.get("state") or ""
    row = conn.fetch_one(
        "select tenant_id, user_name, provider, verifier, redirect_uri, settings, expires_at"
        " from ops.oauth_states where state_hash = %s",
        (_hash(state),),
    )
    if row is None:
        raise StateRefused(
            "This connect link was already used or is not one this app started: start again "
            "from the Connect page."
        )
    # Single use: deleted and committed before anything else can fail (and roll back).
    conn.execute("delete from ops.oauth_states where state_hash = %s", (_hash(state),))
    conn.commit()
    started_by, started_user, name, sealed, redirect_uri, saved, expires_at = row
    if name != provider_name:
        raise StateRefused(
            f"This connect link was for {name}, not {provider_name}: start again from the "
            "Connect page."
        )
    if (started_by, started_user) != (tenant_id, user):
        raise StateRefused(
            "This connect link was started in another session: start again from the Connect "
            "page while signed in."
        )
    if expires_at <= now:
        raise StateExpired(
            f"The {name} connect link expired (after {STATE_LIFETIME.seconds // 60} minutes): "
            "start again."
        )
    if query.get("error"):
        raise Denied(
            f"{name} was not connected: access was denied at the provider "
            f"({query['error'] if query['error'] == 'access_denied' else 'error'})."
        )
    which = provider(name)
    source_settings = json.loads(saved)
    verifier = vault.open(tenant_id, name, sealed).access_token
    session = oauth_session(settings, which, redirect_uri=redirect_uri)
    try:
        token = session.fetch_token(
            endpoint(settings, which, "token", source_settings.get("shop")),
            code=query.get("code") or "",
            code_verifier=verifier,
            timeout=settings.timeout_seconds,
            **which.token_params,
        )
        tokens = tokens_from_response(token, now)
    except OAuthError as error:
        raise ConnectError(f"{name} refused the connection ({error.error}): try again.") from None
    except (requests.RequestException, ValueError):
        raise ConnectError(f"{name} did not answer as expected: try again later.") from None
    return _register(conn, vault, tenant_id, name, tokens, source_settings, now, "OAuth")


def connect_pasted_key(
    conn: Connection,
    vault: Vault,
    tenant_id: str,
    provider_name: str,
    key: str,
    source_settings: Mapping[str, str],
    now: dt.datetime,
    reconnect: bool = False,
) -> Connected:
    """Stripe: a restricted key from tenantpulse's Stripe App, pasted by the tenant."""
    tenant_id = validate_tenant_id(tenant_id)
    which = provider(provider_name)
    if which.auth != PASTED_KEY:
        raise ConnectError(f"{which.name} is connected through OAuth, not a pasted key")
    parse_settings(which.name, source_settings)
    _check_not_connected(conn, tenant_id, which.name, reconnect)
    tokens = Tokens(check_credential(which.name, key))
    return _register(conn, vault, tenant_id, which.name, tokens, source_settings, now, "key")


def disconnect(
    conn: Connection,
    settings: ConnectSettings,
    tenant_id: str,
    provider_name: str,
    now: dt.datetime,
) -> bool:
    """Destroy the token and stop the source's syncs (its data is kept); its Airbyte source,
    holding a copy of the credential, is deleted next (connect/provision.py), and the token is
    revoked at the provider where it can be (connect/revocation.py: `revoke_due` after this
    transaction commits). Returns whether a revocation was queued."""
    which = provider(provider_name)
    ensure_vault(conn)
    ciphertext = conn.fetch_value(
        "select ciphertext from ops.connection_tokens where tenant_id = %s and provider = %s",
        (tenant_id, which.name),
    )
    connection = get_connection(conn, tenant_id, which.name)
    shop = connection.settings.get("shop") if connection is not None else None
    queued = request_revocation(conn, settings, tenant_id, which.name, ciphertext, shop, now)
    destroy_tokens(conn, tenant_id, which.name, now)
    if connection is not None and connection.status == CONNECTED:
        disconnect_source(conn, tenant_id, which.name)
    request_removal(conn, tenant_id, which.name, now)
    events.record_event(conn, tenant_id, which.name, events.DISCONNECTED, now)
    return queued


def _check_not_connected(conn: Connection, tenant_id: str, name: str, reconnect: bool) -> None:
    ensure_vault(conn)
    state = get_state(conn, tenant_id, name)
    if state is not None and state.status == CONNECTED and not reconnect:
        raise AlreadyConnected(
            f"{name} is already connected for {tenant_id}; disconnect it first to connect "
            "another account."
        )


def _register(
    conn: Connection,
    vault: Vault,
    tenant_id: str,
    name: str,
    tokens: Tokens,
    source_settings: Mapping[str, str],
    now: dt.datetime,
    how: str,
) -> Connected:
    which = provider(name)
    before = get_state(conn, tenant_id, name)
    store_tokens(conn, vault, tenant_id, name, tokens, next_refresh_at(which, tokens, now), now)
    connect_source(conn, tenant_id, name, source_settings, replace=True)
    request_provisioning(conn, tenant_id, name, now)
    events.record_event(conn, tenant_id, name, events.CONNECTED, now, f"connected with {how}")
    recovered = before is not None and before.status == RECONNECT_REQUIRED
    if recovered:
        events.record_event(conn, tenant_id, name, events.RECOVERED, now, "reconnected")
    return Connected(tenant_id, name, recovered, which.warning)


def _hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()

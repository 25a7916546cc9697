"""Revoking a disconnected connection's token at the provider.

A disconnect never waits for the provider: in its transaction the sealed tokens move from the
vault row (whose ciphertext becomes null) into `ops.token_revocations`, a queue only this module
reads. `revoke_due` (right after the disconnect for that connection, then the refresher's sensor
every minute) sends the revocation, and on success deletes the queued ciphertext: after that no
copy of the token exists anywhere. A failure (timeout, 429, 5xx) is retried after the
refresher's backoff and recorded; after MAX_ATTEMPTS the ciphertext is deleted anyway and the
page tells the tenant to revoke it at the provider by hand.

How each provider revokes (providers.py): Google's RFC 7009 endpoint with the refresh token;
GitHub's `DELETE /applications/<client id>/token` (basic auth with the OAuth app, the token in the
JSON body); Shopify's `DELETE /admin/api_permissions/current.json` with the access token, which
uninstalls the app (the refresher keeps that token alive until the disconnect; one expired since
cannot uninstall). Stripe restricted keys are deleted by the tenant. Under the stand-in
(TENANTPULSE_CONNECT_PROVIDER_URL) every provider's revocation is RFC 7009 at `<url>/<provider>/revoke`.
Tokens travel in request bodies or headers to their own provider only, never in a URL or log.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import requests

from tenantpulse.config import ConnectSettings
from tenantpulse.connect import events
from tenantpulse.connect.providers import (
    GITHUB_APP_TOKEN,
    RFC7009,
    SHOPIFY_UNINSTALL,
    endpoint,
    provider,
    revocation_kind,
)
from tenantpulse.connect.refresher import backoff
from tenantpulse.connect.vault import Tokens, Vault, VaultError, ensure_vault
from tenantpulse.warehouse import Connection, Warehouse

MAX_ATTEMPTS = 8  # 30 s doubling: the last one about an hour after the disconnect
REVOKED, FAILED, ABANDONED = "revoked", "failed", "abandoned"


class RevocationFailed(RuntimeError):
    """The provider did not confirm; the message is the reason (never a token)."""


@dataclass(frozen=True)
class Outcome:
    tenant_id: str
    provider: str
    result: str  # REVOKED, FAILED (retried) or ABANDONED
    detail: str


@dataclass(frozen=True)
class PendingRevocation:
    text: str  # for the Connect page
    reason: str | None
    pending: bool = False  # queued: it is being sent or retried


def request_revocation(
    conn: Connection,
    settings: ConnectSettings,
    tenant_id: str,
    provider_name: str,
    ciphertext: str | None,
    shop: str | None,
    now: dt.datetime,
) -> bool:
    """Queue the sealed tokens of a connection being disconnected; False when there is nothing
    tenantpulse can revoke (no token, or a provider whose tokens the tenant deletes)."""
    which = provider(provider_name)
    if ciphertext is None or revocation_kind(settings, which) is None:
        return False
    ensure_vault(conn)
    try:
        url = endpoint(settings, which, "revoke", shop)
    except ValueError as error:  # no shop setting: nowhere to send it; never stops a disconnect
        events.record_event(conn, tenant_id, which.name, events.REVOKE_ABANDONED, now, str(error))
        return False
    conn.execute(
        "insert into ops.token_revocations (revocation_id, tenant_id, provider, ciphertext, url,"
        " failures, next_attempt_at, last_error, requested_at)"
        " values (%s, %s, %s, %s, %s, 0, %s, null, %s)",
        (
            uuid.uuid4().hex,
            tenant_id,
            which.name,
            ciphertext,
            url,
            now,
            now,
        ),
    )
    return True


def revoke_due(
    warehouse: Warehouse,
    vault: Vault,
    settings: ConnectSettings,
    only: tuple[str, str] | None = None,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    seconds: float | None = None,
) -> list[Outcome]:
    """Send the due revocations one at a time (of one (tenant, provider) when `only` is given)."""
    with warehouse.connect() as conn:
        ensure_vault(conn)
    outcomes: list[Outcome] = []
    tried: set[str] = set()
    stop = time.monotonic() + seconds if seconds is not None else None
    while stop is None or time.monotonic() < stop:
        with warehouse.connect() as conn:
            outcome = _revoke_one(conn, vault, settings, only, tried, now)
        if outcome is None:
            break
        outcomes.append(outcome)
    return outcomes


def pending_revocation(conn: Connection, tenant_id: str, provider_name: str) -> PendingRevocation:
    """Where revoking its token at the provider stands for a disconnected connection."""
    which = provider(provider_name)
    if which.revocation is None:
        return PendingRevocation(which.revoke_by_hand or "revoke its access at the provider", None)
    ensure_vault(conn)
    queued = conn.fetch_one(
        "select failures, last_error from ops.token_revocations where tenant_id = %s"
        " and provider = %s order by requested_at desc limit 1",
        (tenant_id, which.name),
    )
    if queued is not None:
        failures, error = queued
        if failures:
            return PendingRevocation(
                f"revoking its token at {which.name} failed {failures} time(s) and is retried",
                error,
                pending=True,
            )
        return PendingRevocation(f"revoking its token at {which.name}", None, pending=True)
    last = conn.fetch_one(
        "select event, detail from ops.connection_events where tenant_id = %s and provider = %s"
        " and event in (%s, %s, %s) order by occurred_at desc, event_id desc limit 1",
        (tenant_id, which.name, events.REVOKED, events.REVOKE_ABANDONED, events.DISCONNECTED),
    )
    if last is not None and last[0] == events.REVOKED:
        return PendingRevocation(f"its token is revoked at {which.name}", None)
    return PendingRevocation(
        f"its token was not revoked at {which.name}: remove tenantpulse's access in your "
        f"{which.name} account",
        last[1] if last is not None and last[0] == events.REVOKE_ABANDONED else None,
    )


def send_revocation(kind: str, settings: ConnectSettings, name: str, url: str, tokens: Tokens):
    """One revocation request; raises RevocationFailed unless the provider confirms (or says
    the token is already invalid)."""
    timeout = settings.timeout_seconds
    client_id, client_secret = settings.clients.get(name, ("", ""))
    try:
        if kind == RFC7009:
            token, hint = (
                (tokens.refresh_token, "refresh_token")
                if tokens.refresh_token
                else (tokens.access_token, "access_token")
            )
            form = {"token": token, "token_type_hint": hint}
            if client_id:
                form |= {"client_id": client_id, "client_secret": client_secret}
            response = requests.post(url, data=form, timeout=timeout)
            # RFC 7009 answers 200 for an invalid token too; Google says invalid_token.
            gone = response.status_code == 400 and _oauth_error(response) == "invalid_token"
        elif kind == GITHUB_APP_TOKEN:
            response = requests.delete(
                url,
                auth=(client_id, client_secret),
                json={"access_token": tokens.access_token},
                headers={"Accept": "application/vnd.github+json"},
                timeout=timeout,
            )
            gone = response.status_code == 404  # no such token: already revoked
        elif kind == SHOPIFY_UNINSTALL:
            if tokens.expires_at is not None and tokens.expires_at <= dt.datetime.now(dt.UTC):
                raise RevocationFailed("the access token expired before it could uninstall")
            response = requests.delete(
                url, headers={"X-Shopify-Access-Token": tokens.access_token}, timeout=timeout
            )
            gone = response.status_code == 401  # a valid token was refused: already uninstalled
        else:
            raise ValueError(f"unknown revocation {kind!r}")
    except requests.Timeout:
        raise RevocationFailed("timed out") from None
    except requests.ConnectionError:
        raise RevocationFailed("connection failed") from None
    if not (response.ok or gone):
        raise RevocationFailed(f"HTTP {response.status_code}")


def _revoke_one(
    conn: Connection,
    vault: Vault,
    settings: ConnectSettings,
    only: tuple[str, str] | None,
    tried: set[str],
    now: Callable[[], dt.datetime],
) -> Outcome | None:
    lock = " for update skip locked" if conn.dialect == "postgres" else ""
    rows = conn.fetch_all(
        "select revocation_id, tenant_id, provider, ciphertext, url, failures"
        " from ops.token_revocations where next_attempt_at <= %s"
        " and ((tenant_id = %s and provider = %s) or %s)"
        f" order by next_attempt_at limit %s{lock}",
        (now(), *(only or ("", "")), only is None, len(tried) + 1),
    )
    claimed = next((r for r in rows if r[0] not in tried), None)
    if claimed is None:
        return None
    revocation_id, tenant_id, name, ciphertext, url, failures = claimed
    tried.add(revocation_id)
    which = provider(name)
    try:
        tokens = vault.open(tenant_id, name, ciphertext)
        send_revocation(revocation_kind(settings, which) or RFC7009, settings, name, url, tokens)
    except (RevocationFailed, VaultError) as error:
        failures += 1
        at = now()
        if failures >= MAX_ATTEMPTS:
            _shred(conn, revocation_id)
            detail = f"{error}; gave up after {failures} attempts: the token is deleted here"
            events.record_event(conn, tenant_id, name, events.REVOKE_ABANDONED, at, detail)
            return Outcome(tenant_id, name, ABANDONED, detail)
        retry = at + backoff(failures)
        detail = f"{error}; attempt {failures}, next at {retry:%Y-%m-%d %H:%M:%S}Z"
        conn.execute(
            "update ops.token_revocations set failures = %s, next_attempt_at = %s,"
            " last_error = %s where revocation_id = %s",
            (failures, retry, str(error), revocation_id),
        )
        events.record_event(conn, tenant_id, name, events.REVOKE_FAILED, at, detail)
        return Outcome(tenant_id, name, FAILED, detail)
    _shred(conn, revocation_id)
    detail = f"revoked at {name}" + (f" after {failures} failed attempt(s)" if failures else "")
    events.record_event(conn, tenant_id, name, events.REVOKED, now(), detail)
    return Outcome(tenant_id, name, REVOKED, detail)


def _shred(conn: Connection, revocation_id: str) -> None:
    conn.execute("delete from ops.token_revocations where revocation_id = %s", (revocation_id,))


def _oauth_error(response: requests.Response) -> str | None:
    try:
        return response.json().get("error")
    except ValueError:
        return None

"""The token vault: each connection's OAuth tokens (or pasted key), encrypted at rest in
`ops.connection_tokens`.

Encryption is cryptography's MultiFernet over the keys in TENANTPULSE_VAULT_KEYS (newest first:
new ciphertexts use the first key, any key decrypts, `rotate_keys` re-encrypts every row with the
first). The plaintext names its tenant and provider and is checked on decrypt, so a ciphertext
copied into another connection's row fails instead of handing one tenant another's token.

Tokens live only in the ciphertext column: never in another table, a log line, an exception
message, Dagster's event log or a command's argv. `Tokens.__repr__` hides them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from tenantpulse.config import VAULT_KEYS
from tenantpulse.connect.events import ensure_events
from tenantpulse.tenants.ids import validate_tenant_id
from tenantpulse.tenants.source_settings import validate_source
from tenantpulse.warehouse import Connection

CONNECTED = "connected"
RECONNECT_REQUIRED = "reconnect_required"
DISCONNECTED = "disconnected"


class VaultError(RuntimeError):
    """A token could not be stored or read; the message names the connection, never a token."""


@dataclass(frozen=True)
class Tokens:
    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: dt.datetime | None = None  # of the access token; None: it does not expire
    scope: str | None = None

    def to_json(self) -> dict:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "scope": self.scope,
        }

    @classmethod
    def from_json(cls, data: dict) -> Tokens:
        expires = data.get("expires_at")
        return cls(
            data["access_token"],
            data.get("refresh_token"),
            dt.datetime.fromisoformat(expires) if expires else None,
            data.get("scope"),
        )


class Vault:
    """Seals and opens tokens; holds the keys, shows none of them."""

    def __init__(self, keys: Sequence[str]):
        if not keys:
            raise VaultError(
                f"{VAULT_KEYS} is not set: the token vault needs at least one key "
                "(`tenantpulse connect new-key` prints one)"
            )
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    def __repr__(self) -> str:
        return "Vault(<keys hidden>)"

    def seal(self, tenant_id: str, provider: str, tokens: Tokens) -> str:
        plaintext = {"tenant_id": tenant_id, "provider": provider, "tokens": tokens.to_json()}
        return self._fernet.encrypt(json.dumps(plaintext).encode()).decode()

    def open(self, tenant_id: str, provider: str, ciphertext: str) -> Tokens:
        where = f"the {provider} connection of tenant {tenant_id!r}"
        try:
            plaintext = json.loads(self._fernet.decrypt(ciphertext.encode()))
        except InvalidToken:
            raise VaultError(
                f"cannot decrypt {where}: none of the keys in {VAULT_KEYS} opens it (a key "
                "removed before `tenantpulse connect rotate-keys` ran?)"
            ) from None
        if (plaintext.get("tenant_id"), plaintext.get("provider")) != (tenant_id, provider):
            raise VaultError(
                f"the ciphertext stored for {where} belongs to another connection: refused "
                "(the row was copied or swapped)"
            )
        return Tokens.from_json(plaintext["tokens"])

    def rotate(self, ciphertext: str) -> str:
        """The same plaintext under the newest key."""
        try:
            return self._fernet.rotate(ciphertext.encode()).decode()
        except InvalidToken:
            raise VaultError(f"a ciphertext none of the keys in {VAULT_KEYS} opens") from None


@dataclass(frozen=True)
class ConnectionState:
    """A vault row without its ciphertext: what the refresher and the pages look at."""

    tenant_id: str
    provider: str
    status: str
    next_refresh_at: dt.datetime | None  # None: nothing for tenantpulse to refresh
    next_attempt_at: dt.datetime | None  # after a transient failure: not before this
    failures: int  # transient refresh failures in a row
    last_error: str | None
    version: int  # bumped on every write of the ciphertext
    updated_at: dt.datetime


def ensure_vault(conn: Connection) -> None:
    """The vault's tables (the tokens, and the sealed tokens of disconnected connections waiting
    to be revoked at their provider: connect/revocation.py) and the event log beside them
    (created together, so refreshers racing later never race to create them)."""
    ensure_events(conn)
    conn.execute(
        "create table if not exists ops.token_revocations ("
        " revocation_id varchar primary key,"
        " tenant_id varchar not null,"
        " provider varchar not null,"
        " ciphertext varchar not null,"  # the vault row's, moved here; deleted once done
        " url varchar not null,"  # the provider's revocation endpoint, resolved at disconnect
        " failures integer not null,"
        " next_attempt_at timestamptz not null,"
        " last_error varchar,"
        " requested_at timestamptz not null)"
    )
    conn.execute(
        "create table if not exists ops.connection_tokens ("
        " tenant_id varchar not null,"
        " provider varchar not null,"
        " status varchar not null,"
        " ciphertext varchar,"  # null once disconnected: the token is destroyed
        " next_refresh_at timestamptz,"
        " next_attempt_at timestamptz,"
        " failures integer not null,"
        " last_error varchar,"
        " version integer not null,"
        " updated_at timestamptz not null,"
        " primary key (tenant_id, provider))"
    )


def store_tokens(
    conn: Connection,
    vault: Vault,
    tenant_id: str,
    provider: str,
    tokens: Tokens,
    next_refresh_at: dt.datetime | None,
    now: dt.datetime,
) -> None:
    """Save a connection's tokens (new, reconnected or refreshed) as connected and healthy."""
    tenant_id, provider = validate_tenant_id(tenant_id), validate_source(provider)
    ensure_vault(conn)
    conn.execute(
        "insert into ops.connection_tokens (tenant_id, provider, status, ciphertext,"
        " next_refresh_at, next_attempt_at, failures, last_error, version, updated_at)"
        " values (%s, %s, %s, %s, %s, null, 0, null, 1, %s)"
        " on conflict (tenant_id, provider) do update set status = excluded.status,"
        " ciphertext = excluded.ciphertext, next_refresh_at = excluded.next_refresh_at,"
        " next_attempt_at = null, failures = 0, last_error = null,"
        " version = ops.connection_tokens.version + 1, updated_at = excluded.updated_at",
        (
            tenant_id,
            provider,
            CONNECTED,
            vault.seal(tenant_id, provider, tokens),
            next_refresh_at,
            now,
        ),
    )


def read_tokens(conn: Connection, vault: Vault, tenant_id: str, provider: str) -> Tokens:
    ensure_vault(conn)
    ciphertext = conn.fetch_value(
        "select ciphertext from ops.connection_tokens where tenant_id = %s and provider = %s",
        (tenant_id, provider),
    )
    if ciphertext is None:
        raise VaultError(f"tenant {tenant_id!r} has no {provider} token in the vault")
    return vault.open(tenant_id, provider, ciphertext)


_STATE_COLUMNS = (
    "tenant_id, provider, status, next_refresh_at, next_attempt_at, failures, last_error,"
    " version, updated_at"
)


def get_state(conn: Connection, tenant_id: str, provider: str) -> ConnectionState | None:
    ensure_vault(conn)
    row = conn.fetch_one(
        f"select {_STATE_COLUMNS} from ops.connection_tokens where tenant_id = %s"
        " and provider = %s",
        (tenant_id, provider),
    )
    return ConnectionState(*row) if row else None


def list_states(conn: Connection, tenant_id: str | None = None) -> list[ConnectionState]:
    ensure_vault(conn)
    rows = conn.fetch_all(
        f"select {_STATE_COLUMNS} from ops.connection_tokens where tenant_id = %s or %s"
        " order by tenant_id, provider",
        (tenant_id, tenant_id is None),
    )
    return [ConnectionState(*r) for r in rows]


def set_status(
    conn: Connection,
    tenant_id: str,
    provider: str,
    status: str,
    now: dt.datetime,
    *,
    error: str | None = None,
    failures: int = 0,
    next_attempt_at: dt.datetime | None = None,
) -> None:
    """Change a connection's status and failure record; the ciphertext stays (a disconnect
    destroys it: `destroy_tokens`)."""
    conn.execute(
        "update ops.connection_tokens set status = %s, last_error = %s, failures = %s,"
        " next_attempt_at = %s, updated_at = %s where tenant_id = %s and provider = %s",
        (status, error, failures, next_attempt_at, now, tenant_id, provider),
    )


def destroy_tokens(conn: Connection, tenant_id: str, provider: str, now: dt.datetime) -> None:
    conn.execute(
        "update ops.connection_tokens set status = %s, ciphertext = null, next_refresh_at = null,"
        " next_attempt_at = null, version = version + 1, updated_at = %s"
        " where tenant_id = %s and provider = %s",
        (DISCONNECTED, now, tenant_id, provider),
    )


def rotate_keys(conn: Connection, vault: Vault) -> int:
    """Re-encrypt every stored token (those waiting to be revoked too) under the newest key;
    returns the number of rows. After it, the older keys can be removed from
    TENANTPULSE_VAULT_KEYS."""
    ensure_vault(conn)
    lock = " for update" if conn.dialect == "postgres" else ""
    tokens = conn.fetch_all(
        "select tenant_id, provider, ciphertext from ops.connection_tokens"
        f" where ciphertext is not null{lock}"
    )
    queued = conn.fetch_all(
        f"select revocation_id, tenant_id, provider, ciphertext from ops.token_revocations{lock}"
    )
    for tenant_id, provider, ciphertext in tokens:
        conn.execute(
            "update ops.connection_tokens set ciphertext = %s where tenant_id = %s"
            " and provider = %s",
            (_rotated(vault, tenant_id, provider, ciphertext), tenant_id, provider),
        )
    for revocation_id, tenant_id, provider, ciphertext in queued:
        conn.execute(
            "update ops.token_revocations set ciphertext = %s where revocation_id = %s",
            (_rotated(vault, tenant_id, provider, ciphertext), revocation_id),
        )
    return len(tokens) + len(queued)


def _rotated(vault: Vault, tenant_id: str, provider: str, ciphertext: str) -> str:
    try:
        return vault.rotate(ciphertext)
    except VaultError:
        raise VaultError(
            f"cannot re-encrypt the {provider} connection of tenant {tenant_id!r}: none of "
            f"the keys in {VAULT_KEYS} opens it; nothing was changed"
        ) from None

"""API tokens, each scoped to one tenant: `web.api_tokens` keeps only their SHA-256 hashes (a
token is 32 random bytes, so a plain hash is enough), never the token itself."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from tenantpulse.tenants.ids import validate_tenant_id
from tenantpulse.tenants.registry import get_tenant
from tenantpulse.warehouse import Connection

PREFIX = "tp_"


def ensure_api_tokens(conn: Connection) -> None:
    conn.ensure_schema("web")
    conn.execute(
        "create table if not exists web.api_tokens ("
        " token_hash varchar primary key,"
        " tenant_id varchar not null,"
        " created_at timestamptz not null)"
    )


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_api_token(conn: Connection, tenant_id: str) -> str:
    """A new token for `tenant_id` (a registered tenant); shown once, stored as its hash."""
    validate_tenant_id(tenant_id)
    if get_tenant(conn, tenant_id) is None:
        raise LookupError(f"no tenant {tenant_id} registered (see `tenantpulse tenants list`)")
    ensure_api_tokens(conn)
    token = PREFIX + secrets.token_urlsafe(32)
    conn.execute(
        "insert into web.api_tokens (token_hash, tenant_id, created_at) values (%s, %s, %s)",
        (token_hash(token), tenant_id, dt.datetime.now(dt.UTC)),
    )
    return token


def tenant_of_token(conn: Connection, token: str) -> str | None:
    if not token.startswith(PREFIX) or not conn.table_exists("web", "api_tokens"):
        return None
    return conn.fetch_value(
        "select tenant_id from web.api_tokens where token_hash = %s", (token_hash(token),)
    )

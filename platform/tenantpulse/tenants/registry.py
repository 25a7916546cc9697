"""The tenant registry, `ops.tenants`: which tenants exist and which sources each has connected."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from tenantpulse.sources.contracts import SOURCES
from tenantpulse.tenants.ids import validate_tenant_id
from tenantpulse.warehouse import Connection

ACTIVE = "active"
REMOVED = "removed"
MAX_TENANT_NAME_LENGTH = 200
_MARKUP = "<>"  # a name shown in a page must not open a tag


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    name: str
    sources: tuple[str, ...]
    status: str
    created_at: dt.datetime


def ensure_registry(conn: Connection) -> None:
    conn.ensure_schema("ops")
    conn.execute(
        "create table if not exists ops.tenants ("
        " tenant_id varchar primary key,"
        " name varchar not null,"
        " sources varchar not null,"  # comma-separated, sorted
        " status varchar not null,"
        " created_at timestamptz not null)"
    )


def validate_sources(sources: object) -> tuple[str, ...]:
    if isinstance(sources, str):
        sources = [s.strip() for s in sources.split(",") if s.strip()]
    chosen = tuple(sorted(set(sources)))  # type: ignore[arg-type]
    unknown = [s for s in chosen if s not in SOURCES]
    if unknown or not chosen:
        raise ValueError(
            f"unknown or missing sources {unknown or list(chosen)}: choose one or more of "
            f"{', '.join(SOURCES)}"
        )
    return chosen


def validate_tenant_name(tenant_id: str, name: str) -> str:
    """The display name, stripped: 1-200 printable characters (no line breaks, tabs or terminal
    escapes), without < or >. The message names the tenant and the first bad character's
    position, never the name itself (it may be long, or hold escapes)."""
    name = name.strip()
    if not 1 <= len(name) <= MAX_TENANT_NAME_LENGTH:
        raise ValueError(
            f"the name of tenant {tenant_id!r} has {len(name):,} characters; allowed: "
            f"1-{MAX_TENANT_NAME_LENGTH}"
        )
    for position, character in enumerate(name, start=1):
        if not character.isprintable() or character in _MARKUP:
            raise ValueError(
                f"the name of tenant {tenant_id!r} holds {_describe(character)} at character "
                f"{position}; allowed: printable characters other than < and > (no line breaks, "
                "tabs or control codes)"
            )
    return name


def _describe(character: str) -> str:
    return repr(character) if character in _MARKUP else f"U+{ord(character):04X}"


def add_tenant(conn: Connection, tenant_id: str, name: str, sources: object) -> Tenant:
    """Register a tenant (or re-activate a removed one, with the given name and sources)."""
    [tenant_id] = add_tenants(conn, [(tenant_id, name, sources)])
    tenant = get_tenant(conn, tenant_id)
    assert tenant is not None
    return tenant


# Tenants a statement registers: a bench's 10,000 tenants in ten round trips, not 30,000.
TENANTS_PER_STATEMENT = 1000


def add_tenants(conn: Connection, tenants: list[tuple[str, str, object]]) -> list[str]:
    """Register (tenant id, name, sources) triples as `add_tenant` does each, all validated
    before any is written; their validated ids."""
    rows = []
    for tenant_id, name, sources in tenants:
        tenant_id = validate_tenant_id(tenant_id)
        chosen = ",".join(validate_sources(sources))
        rows.append(
            (tenant_id, validate_tenant_name(tenant_id, (name or "").strip() or tenant_id), chosen)
        )
    ensure_registry(conn)
    now = dt.datetime.now(dt.UTC)
    for first in range(0, len(rows), TENANTS_PER_STATEMENT):
        chunk = {row[0]: row for row in rows[first : first + TENANTS_PER_STATEMENT]}
        placeholders = ", ".join(["%s"] * len(chunk))
        existing = {
            row[0]
            for row in conn.fetch_all(
                f"select tenant_id from ops.tenants where tenant_id in ({placeholders})",
                list(chunk),
            )
        }
        for tenant_id in existing:
            _, name, sources = chunk.pop(tenant_id)
            conn.execute(
                "update ops.tenants set name = %s, sources = %s, status = %s where tenant_id = %s",
                (name, sources, ACTIVE, tenant_id),
            )
        if chunk:
            conn.execute(
                "insert into ops.tenants (tenant_id, name, sources, status, created_at) values "
                + ", ".join(["(%s, %s, %s, %s, %s)"] * len(chunk)),
                [v for row in chunk.values() for v in (*row, ACTIVE, now)],
            )
    return [row[0] for row in rows]


def remove_tenant(conn: Connection, tenant_id: str) -> Tenant:
    """Mark a tenant removed: its partition goes, its data stays (drop `user_<id>` to delete it)."""
    tenant_id = validate_tenant_id(tenant_id)
    ensure_registry(conn)
    if get_tenant(conn, tenant_id) is None:
        raise LookupError(f"tenant {tenant_id!r} is not registered")
    conn.execute("update ops.tenants set status = %s where tenant_id = %s", (REMOVED, tenant_id))
    tenant = get_tenant(conn, tenant_id)
    assert tenant is not None
    return tenant


def set_sources(conn: Connection, tenant_id: str, sources: object) -> Tenant:
    """Replace a registered tenant's sources (connecting a source adds it here)."""
    tenant_id = validate_tenant_id(tenant_id)
    chosen = validate_sources(sources)
    ensure_registry(conn)
    if get_tenant(conn, tenant_id) is None:
        raise LookupError(f"tenant {tenant_id!r} is not registered")
    conn.execute(
        "update ops.tenants set sources = %s where tenant_id = %s", (",".join(chosen), tenant_id)
    )
    tenant = get_tenant(conn, tenant_id)
    assert tenant is not None
    return tenant


def get_tenant(conn: Connection, tenant_id: str) -> Tenant | None:
    rows = conn.fetch_all(
        "select tenant_id, name, sources, status, created_at from ops.tenants where tenant_id = %s",
        (validate_tenant_id(tenant_id),),
    )
    return _tenant(rows[0]) if rows else None


def list_tenants(conn: Connection, include_removed: bool = False) -> list[Tenant]:
    ensure_registry(conn)
    rows = conn.fetch_all(
        "select tenant_id, name, sources, status, created_at from ops.tenants "
        "where status = %s or %s order by created_at, tenant_id",
        (ACTIVE, include_removed),
    )
    return [_tenant(r) for r in rows]


def removed_tenant_ids(conn: Connection) -> set[str]:
    """The tenants removed from the registry: no stage after landing reads their rows any more,
    and nothing of theirs is sent out (an LLM, a webhook)."""
    ensure_registry(conn)
    rows = conn.fetch_all("select tenant_id from ops.tenants where status = %s", (REMOVED,))
    return {tenant_id for (tenant_id,) in rows}


def _tenant(row: tuple) -> Tenant:
    tenant_id, name, sources, status, created_at = row
    return Tenant(tenant_id, name, tuple(sources.split(",")), status, created_at)

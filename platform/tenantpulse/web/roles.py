"""Postgres isolation for the web app: its role, and row-level security on every table it reads.

`setup_roles(conn)` (run by `tenantpulse web setup-roles` as the warehouse's owner) creates the
login role WEB_ROLE (no superuser, no BYPASSRLS, owns nothing) and the function
`web.protect_table(regclass)`, then protects every table with a `tenant_id` column in
PROTECTED_SCHEMAS, and OPS_TABLES: an index on tenant_id (unless one leads with it), RLS enabled, one policy letting WEB_ROLE read the rows whose tenant_id is the
transaction's `tenantpulse.tenant_id` setting (none when it is unset), and SELECT granted to it.
A view gets `security_invoker`, so the policies of its tables apply to the reader.

dbt drops a table's policies and grants when it rebuilds it: every mart's post-hook
(dbt_project/macros/web_protect_table.sql) calls `web.protect_table` again, when it exists.
The flow's own role is the tables' owner and is not subject to the policies.
"""

from __future__ import annotations

from tenantpulse.warehouse import Connection, quote_ident
from tenantpulse.web.db import TENANT_SETTING
from tenantpulse.web.settings import WEB_ROLE

# Every table with a tenant_id column in these schemas is read through the policy...
PROTECTED_SCHEMAS = ("analytics", "analysis")
# ...and these ops tables only (not the action log, the quarantine or the token vault).
OPS_TABLES = ("tenants", "tenant_connections", "airbyte_sync_history")
READ_SCHEMAS = (*PROTECTED_SCHEMAS, "ops")
WEB_SCHEMA = "web"

_PROTECT_FUNCTION = f"""
create or replace function web.protect_table(target regclass) returns void
language plpgsql as $fn$
begin
    if not exists (select 1 from pg_roles where rolname = '{WEB_ROLE}') then
        return;
    end if;
    if not exists (
        select 1 from pg_attribute
        where attrelid = target and attname = 'tenant_id' and not attisdropped
    ) then
        return;
    end if;
    if (select relkind from pg_class where oid = target) = 'v' then
        execute format('alter view %s set (security_invoker = true)', target);
    else
        -- Each request reads one tenant's rows: an index on tenant_id when none leads with it.
        if not exists (
            select 1 from pg_index i join pg_attribute a
                on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
            where i.indrelid = target and a.attname = 'tenant_id'
        ) then
            execute format('create index on %s (tenant_id)', target);
        end if;
        execute format('alter table %s enable row level security', target);
        execute format('drop policy if exists tenant_isolation on %s', target);
        execute format(
            'create policy tenant_isolation on %s for select to {WEB_ROLE} '
            'using (tenant_id = current_setting(%L, true))',
            target, '{TENANT_SETTING}'
        );
    end if;
    execute format('grant select on %s to {WEB_ROLE}', target);
end
$fn$
"""


def setup_roles(conn: Connection) -> list[str]:
    """Create the role and the function, protect every table; return the tables protected."""
    if conn.dialect != "postgres":
        raise ValueError(
            "setup-roles is for Postgres: on DuckDB there are no roles (see docs/web.md)"
        )
    from tenantpulse.web.api_tokens import ensure_api_tokens

    ensure_api_tokens(conn)
    # Roles belong to the whole server: another database's setup may create it at the same time.
    conn.execute(
        "do $role$ begin "
        f"create role {quote_ident(WEB_ROLE)} login nosuperuser nobypassrls "
        "nocreatedb nocreaterole noinherit; "
        "exception when duplicate_object or unique_violation then null; end $role$"
    )
    conn.execute(
        f"alter role {quote_ident(WEB_ROLE)} login nosuperuser nobypassrls nocreatedb "
        "nocreaterole noinherit"
    )
    database = conn.fetch_value("select current_database()")
    conn.execute(f"grant connect on database {quote_ident(database)} to {quote_ident(WEB_ROLE)}")
    conn.execute(_PROTECT_FUNCTION)
    for schema in (*READ_SCHEMAS, WEB_SCHEMA):
        conn.ensure_schema(schema)
        conn.execute(f"grant usage on schema {quote_ident(schema)} to {quote_ident(WEB_ROLE)}")
    # Hashes of API tokens only: read to find a token's tenant, before any tenant is known.
    conn.execute(f"grant select on web.api_tokens to {quote_ident(WEB_ROLE)}")
    tables = conn.fetch_all(
        "select c.oid::regclass::text from pg_class c "
        "join pg_namespace n on n.oid = c.relnamespace "
        "join pg_attribute a on a.attrelid = c.oid and a.attname = 'tenant_id' "
        "and not a.attisdropped "
        "where c.relkind in ('r', 'p', 'v') "
        "and (n.nspname = any(%s) or (n.nspname = 'ops' and c.relname = any(%s))) order by 1",
        (list(PROTECTED_SCHEMAS), list(OPS_TABLES)),
    )
    for (table,) in tables:
        conn.execute("select web.protect_table(%s::regclass)", (table,))
    return [t for (t,) in tables]

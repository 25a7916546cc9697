"""The app's reads, always on behalf of one tenant.

Postgres: a pool of connections logged in as the web role (no table ownership, no BYPASSRLS: the
app refuses to start otherwise). Each read is one read-only transaction that first runs
`set_config('tenantpulse.tenant_id', <tenant>, true)`: the setting ends with the transaction, so a
pooled connection never carries it to the next request. The row-level-security policies of
web/roles.py show a transaction only its tenant's rows, whatever the query asks.

DuckDB (one local operator): the file is opened read-only per request; no role or policy exists,
and isolation rests on every query's `tenant_id = %s` (docs/web.md says what that means).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tenantpulse.config import Settings
from tenantpulse.tenants.ids import validate_tenant_id
from tenantpulse.warehouse import Connection, WarehouseError
from tenantpulse.web.settings import WebSettings

TENANT_SETTING = "tenantpulse.tenant_id"


class TenantDatabase:
    def __init__(self, settings: Settings, web: WebSettings, pool_size: int = 4):
        self.dialect = settings.warehouse.dialect
        self.duckdb_path: Path | None = settings.warehouse.duckdb_path
        self.raw_path: Path | None = settings.warehouse.raw_path
        self.database_url = web.database_url
        self.pool_size = pool_size
        self.pool = None

    def open(self) -> None:
        if self.dialect != "postgres":
            return
        import psycopg
        from psycopg_pool import ConnectionPool, PoolTimeout

        def configure(raw: psycopg.Connection) -> None:
            from psycopg.types.json import set_json_loads
            from psycopg.types.numeric import FloatLoader

            set_json_loads(lambda text: text if isinstance(text, str) else text.decode(), raw)
            raw.adapters.register_loader("numeric", FloatLoader)

        self.pool = ConnectionPool(
            self.database_url,
            min_size=1,
            max_size=self.pool_size,
            kwargs={
                "options": "-c TimeZone=UTC -c default_transaction_read_only=on",
                "connect_timeout": 10,
            },
            configure=configure,
            open=False,
        )
        try:
            self.pool.open(wait=True, timeout=15)
        except (psycopg.Error, PoolTimeout) as error:
            raise WarehouseError(
                f"cannot connect as the web role ({self.database_url}): {error}"
            ) from error
        with self.pool.connection() as raw:
            check_web_role(raw)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None

    def tenant(self, tenant_id: str):
        """One transaction that can read only `tenant_id`'s rows (on Postgres)."""
        return self._transaction(validate_tenant_id(tenant_id))

    def unscoped(self):
        """One transaction with no tenant set: every policy hides every row (on Postgres). For
        what is read before a tenant is known: an API token's hash."""
        return self._transaction(None)

    @contextmanager
    def _transaction(self, tenant_id: str | None) -> Iterator[Connection]:
        if self.dialect == "postgres":
            from tenantpulse.warehouse.postgres_warehouse import PostgresConnection

            assert self.pool is not None, "TenantDatabase.open() first"
            with self.pool.connection() as raw:
                if tenant_id is not None:
                    raw.execute("select set_config(%s, %s, true)", (TENANT_SETTING, tenant_id))
                yield PostgresConnection(raw)
            return
        import duckdb

        from tenantpulse.warehouse.duckdb_warehouse import DuckDBConnection

        try:
            raw = duckdb.connect(str(self.duckdb_path), read_only=True)
        except duckdb.Error as error:
            raise WarehouseError(
                f"cannot open DuckDB file {self.duckdb_path} read-only (while the flow writes "
                f"it, DuckDB lets no other process in): {error}"
            ) from error
        try:
            raw.execute("set TimeZone = 'UTC'")
            yield DuckDBConnection(raw, self.raw_path)
        finally:
            raw.close()


def check_web_role(raw) -> None:
    """Refuse a login role that row-level security would not hold: a superuser, a role with
    BYPASSRLS, or the owner of any table the app reads."""
    from tenantpulse.web.roles import READ_SCHEMAS

    user, superuser, bypass = raw.execute(
        "select rolname, rolsuper, rolbypassrls from pg_roles where rolname = current_user"
    ).fetchone()
    owned = raw.execute(
        "select count(*) from pg_tables where tableowner = current_user and schemaname = any(%s)",
        (list(READ_SCHEMAS),),
    ).fetchone()[0]
    raw.rollback()
    if superuser or bypass or owned:
        raise WarehouseError(
            f"the web app logs in as {user!r}, which "
            + (
                "is a superuser"
                if superuser
                else "has BYPASSRLS"
                if bypass
                else f"owns {owned} tables"
            )
            + ": row-level security would not hold. Run `tenantpulse web setup-roles` and log in "
            "as its role (TENANTPULSE_WEB_DATABASE_URL)"
        )

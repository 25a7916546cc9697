"""Read one stream's raw tables of many tenants in a few statements.

Each tenant's stream is a table of its own (`user_<tenant>.<source>_<stream>`). A statement per
tenant costs a round trip and, on DuckDB, a catalog lookup, which at thousands of tenants is most
of the work; so the tables are found with one catalog query per stream and read with one UNION ALL
per chunk of tenants whose tables have the same columns and types. Each chunk is its own
transaction: a transaction holds a lock on every table it reads until it ends, and Postgres's lock
table (max_locks_per_transaction x max_connections: 6,400 by default) runs out ("out of shared
memory") at a few thousand tables.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterator

import pandas as pd

from tenantpulse.sources.contracts import StreamContract, raw_schema
from tenantpulse.warehouse import Connection, qualified, quote_ident

# Tenants per UNION ALL: Postgres plans a union recursively and fails near 10,000 branches
# ("stack depth limit exceeded"); a few hundred keeps each statement small on both warehouses.
TENANTS_PER_STATEMENT = 200
# Raw column types read as they are. Any other is read as text and parsed by landing's validation:
# a timestamp or date can be out of pandas' or Python's range ('infinity', year 294276), and a
# float or numeric NaN would otherwise read as NULL.
_READ_AS_IS = {
    "bigint",
    "integer",
    "smallint",
    "varchar",
    "character varying",
    "text",
    "boolean",
    "json",
    "jsonb",
}


def raw_table_columns(
    conn: Connection, contract: StreamContract, tenant_ids: list[str]
) -> dict[str, dict[str, str]]:
    """Tenant id -> {column: data type} of its raw table of `contract` (absent: no table)."""
    tenant_of_schema = {raw_schema(t): t for t in tenant_ids}
    rows = conn.fetch_all(
        "select table_schema, column_name, lower(data_type) from information_schema.columns "
        "where table_name = %s order by table_schema, ordinal_position",
        (contract.raw_table,),
    )
    columns: dict[str, dict[str, str]] = {}
    for schema, column, data_type in rows:
        if schema in tenant_of_schema:
            columns.setdefault(tenant_of_schema[schema], {})[column] = data_type
    return columns


def same_shape_chunks(
    columns: dict[str, dict[str, str]],
) -> Iterator[tuple[dict[str, str], list[str]]]:
    """(columns, tenant ids) chunks of at most TENANTS_PER_STATEMENT tenants whose tables have the
    same columns and types, so each chunk can be read with one UNION ALL."""
    by_shape: dict[tuple, list[str]] = defaultdict(list)
    for tenant_id, tenant_columns in columns.items():
        by_shape[tuple(tenant_columns.items())].append(tenant_id)
    for shape, tenant_ids in by_shape.items():
        for start in range(0, len(tenant_ids), TENANTS_PER_STATEMENT):
            yield dict(shape), tenant_ids[start : start + TENANTS_PER_STATEMENT]


def read_new_rows(
    conn: Connection,
    contract: StreamContract,
    tenant_ids: list[str],
    columns: dict[str, str],
    watermarks: dict[str, dt.datetime],
) -> pd.DataFrame:
    """`columns` (name -> data type) and `tenant_id` of each tenant's raw rows extracted after its
    watermark (every row for a tenant without one)."""
    selected = ", ".join(
        quote_ident(name)
        if data_type in _READ_AS_IS
        else f"cast({quote_ident(name)} as varchar) as {quote_ident(name)}"
        for name, data_type in columns.items()
    )
    parts, params = [], []
    for tenant_id in tenant_ids:
        part = (
            f"select cast(%s as varchar) as tenant_id, {selected} "
            f"from {qualified(raw_schema(tenant_id), contract.raw_table)}"
        )
        params.append(tenant_id)
        if tenant_id in watermarks:
            part += " where _airbyte_extracted_at > %s"
            params.append(watermarks[tenant_id])
        parts.append(part)
    return conn.read_frame(" union all ".join(parts), params)


def raw_versions(
    conn: Connection, contract: StreamContract, tenant_ids: list[str]
) -> dict[str, str]:
    """Tenant id -> "<rows> rows, newest <_airbyte_extracted_at>" for each tenant with the table."""
    columns = raw_table_columns(conn, contract, tenant_ids)
    with_table = [t for t in tenant_ids if t in columns]
    versions = {}
    for start in range(0, len(with_table), TENANTS_PER_STATEMENT):
        parts, params = [], []
        for tenant_id in with_table[start : start + TENANTS_PER_STATEMENT]:
            newest = (
                "max(_airbyte_extracted_at)"
                if "_airbyte_extracted_at" in columns[tenant_id]
                else "null"
            )
            parts.append(
                f"select cast(%s as varchar), count(*), cast({newest} as varchar) "
                f"from {qualified(raw_schema(tenant_id), contract.raw_table)}"
            )
            params.append(tenant_id)
        for tenant_id, rows, newest in conn.fetch_all(" union all ".join(parts), params):
            versions[tenant_id] = f"{rows} rows, newest {newest or 'none'}"
        conn.commit()
    return versions

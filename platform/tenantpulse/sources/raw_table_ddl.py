"""Raw tables as Airbyte creates them in a tenant's schema: contract columns, typed, plus any
column a sync brings that the table lacks (Airbyte's `propagate_columns`)."""

from __future__ import annotations

import pandas as pd

from tenantpulse.sources.contracts import StreamContract, raw_schema
from tenantpulse.warehouse import Connection, qualified, quote_ident


def write_raw_frame(
    conn: Connection, tenant_id: str, contract: StreamContract, frame: pd.DataFrame
) -> int:
    """Append one sync's rows of `contract` to the tenant's raw layer, as Airbyte's destination
    does; the rows written. Every writer of raw data (the simulator, embedded Airbyte) calls this."""
    schema = raw_schema(tenant_id)
    conn.ensure_schema(schema)
    ensure_raw_table(conn, schema, contract, frame)
    return conn.write_frame(schema, contract.raw_table, frame)


def ensure_raw_table(
    conn: Connection, schema: str, contract: StreamContract, frame: pd.DataFrame
) -> None:
    """Create the raw table as Airbyte would; add columns that appear later (propagate_columns)."""
    types = {c.name: c.type for c in contract.all_columns}
    for extra in frame.columns:
        if extra not in types:
            types[extra] = logical_type_of(frame[extra])
    table = contract.raw_table
    if not conn.table_exists(schema, table):
        columns = ", ".join(f"{quote_ident(n)} {conn.sql_type(t)}" for n, t in types.items())
        conn.execute(f"create table {qualified(schema, table)} ({columns})")
    else:
        conn.add_missing_columns(schema, table, {n: types[n] for n in frame.columns})


def logical_type_of(series: pd.Series) -> str:
    """The contract type a frame column maps to (unknown kinds are text)."""
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_integer_dtype(series):
        return "bigint"
    if pd.api.types.is_float_dtype(series):
        return "decimal"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "timestamptz"
    return "varchar"

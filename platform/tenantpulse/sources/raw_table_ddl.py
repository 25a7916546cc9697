"""The raw layer's writer, shaped as Airbyte's destinations write it: on Postgres a table per
tenant and stream (`user_<tenant>.<source>_<stream>`, destination-postgres), on DuckDB a Parquet
file per sync in the S3 destination's layout (sources.raw_files). Contract columns typed, plus
any column a sync brings beyond them (Airbyte's `propagate_columns`)."""

from __future__ import annotations

import pandas as pd

from tenantpulse.sources.contracts import StreamContract, raw_schema
from tenantpulse.sources.raw_files import write_frame_file
from tenantpulse.warehouse import Connection, qualified, quote_ident


def write_raw_frame(
    conn: Connection, tenant_id: str, contract: StreamContract, frame: pd.DataFrame
) -> int:
    """Append one sync's rows of `contract` to the tenant's raw layer, as Airbyte's destination
    does; the rows written. Every writer of raw data (the simulator, embedded Airbyte) calls this.
    On DuckDB the file appears when `conn` commits; a sync without rows writes no file."""
    types = raw_column_types(contract, frame)
    if conn.dialect == "duckdb":
        return write_frame_file(conn, tenant_id, contract, frame, types) if len(frame) else 0
    schema = raw_schema(tenant_id)
    conn.ensure_schema(schema)
    ensure_raw_table(conn, schema, contract.raw_table, types, list(frame.columns))
    written = conn.write_frame(schema, contract.raw_table, frame)
    # Landing finds changed tables by their write counters (landing.changed_units), which a
    # backend publishes at most once a second: ours are published as soon as it is idle.
    conn.execute("select pg_stat_force_next_flush()")
    return written


def raw_column_types(contract: StreamContract, frame: pd.DataFrame) -> dict[str, str]:
    """Column -> logical type of the stream's raw rows: the contract's, then the frame's others."""
    types = {c.name: c.type for c in contract.all_columns}
    for extra in frame.columns:
        if extra not in types:
            types[extra] = logical_type_of(frame[extra])
    return types


def ensure_raw_table(
    conn: Connection, schema: str, table: str, types: dict[str, str], present: list[str]
) -> None:
    """Create the raw table as Airbyte would; add the `present` columns it lacks
    (propagate_columns)."""
    if not conn.table_exists(schema, table):
        columns = ", ".join(f"{quote_ident(n)} {conn.sql_type(t)}" for n, t in types.items())
        conn.execute(f"create table {qualified(schema, table)} ({columns})")
    else:
        conn.add_missing_columns(schema, table, {n: types[n] for n in present})


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

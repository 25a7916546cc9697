"""Where the analysis is kept: one table per output in schema `analysis`, one row set per day
(`as_of`), replaced whole when a day is analysed again; and `ops.ai_workflow_analysis`."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from tenantpulse.sources.raw_table_ddl import logical_type_of
from tenantpulse.warehouse import Connection, qualified, quote_ident

ANALYSIS_SCHEMA = "analysis"


def replace_days(
    conn: Connection, schema: str, table: str, frame: pd.DataFrame, days: list[dt.date]
) -> int:
    """Make `schema.table` hold exactly `frame`'s rows for `days` (column `as_of`)."""
    types = {name: logical_type_of(frame[name]) for name in frame.columns}
    types["as_of"] = "date"
    conn.ensure_schema(schema)
    if not conn.table_exists(schema, table):
        columns = ", ".join(f"{quote_ident(n)} {conn.sql_type(t)}" for n, t in types.items())
        conn.execute(f"create table {qualified(schema, table)} ({columns})")
    else:
        conn.add_missing_columns(schema, table, types)
    placeholders = ", ".join(["%s"] * len(days))
    conn.execute(f"delete from {qualified(schema, table)} where as_of in ({placeholders})", days)
    return conn.write_frame(schema, table, frame)


def read_days(
    conn: Connection, table: str, tenant_id: str | None, as_of: dt.date | None
) -> pd.DataFrame:
    """Rows of `analysis.<table>` for one tenant (or all) on one day (or the newest analysed)."""
    target = qualified(ANALYSIS_SCHEMA, table)
    if not conn.table_exists(ANALYSIS_SCHEMA, table):
        return pd.DataFrame()
    if as_of is None:
        as_of = conn.fetch_value(f"select max(as_of) from {target}")
    if tenant_id is None:
        return conn.read_frame(f"select * from {target} where as_of = %s", (as_of,))
    return conn.read_frame(
        f"select * from {target} where as_of = %s and tenant_id = %s", (as_of, tenant_id)
    )

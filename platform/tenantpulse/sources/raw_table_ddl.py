"""The raw layer's writer, shaped as Airbyte's destinations write it: on Postgres a table per
tenant and stream (`user_<tenant>.<source>_<stream>`, destination-postgres), on DuckDB a Parquet
file per sync in the S3 destination's layout (sources.raw_files). Contract columns typed, plus
any column a sync brings beyond them (Airbyte's `propagate_columns`).

One sync's frame can also be written under many tenants, a few text columns rewritten for each
(the simulator's bulk templates): `stage_raw_frame` types it once (DuckDB: an Arrow table;
Postgres: a temporary table), `write_staged_frame` writes each tenant's copy (a file from the
Arrow table with the columns replaced; an `insert ... select` from the temporary table).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import partial

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tenantpulse.sources.contracts import StreamContract, raw_schema
from tenantpulse.sources.raw_files import (
    ParallelFiles,
    typed_table,
    write_frame_file,
    write_table_file,
)
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
    publish_write_counts(conn)
    return written


def publish_write_counts(conn: Connection) -> None:
    """Landing finds changed Postgres tables by their write counters (landing.changed_units),
    which a backend publishes at most once a second: ours are published as soon as it is idle."""
    if conn.dialect == "postgres":
        conn.execute("select pg_stat_force_next_flush()")


@dataclass(frozen=True)
class Rewrite:
    """How one tenant's copy of a staged frame differs from it: in each of `columns` (text or
    JSON) every (old, new) of `pairs` replaced, in order; each of `constants` (column -> text)
    set whole. The empty Rewrite writes the frame as it is."""

    columns: tuple[str, ...] = ()
    pairs: tuple[tuple[str, str], ...] = ()
    constants: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StagedFrame:
    """One sync's rows of a stream, typed once to be written under many tenants."""

    contract: StreamContract
    types: dict[str, str]  # as write_raw_frame types them
    present: list[str]  # the frame's columns
    rows: int
    table: pa.Table | None = None  # DuckDB: the typed rows
    stage: str | None = None  # Postgres: the temporary table holding them


def stage_raw_frame(conn: Connection, contract: StreamContract, frame: pd.DataFrame) -> StagedFrame:
    """`frame` typed for writing under many tenants; on Postgres in a temporary table that lasts
    until `drop_staged` (commit before writing, so that a rollback keeps it)."""
    types = raw_column_types(contract, frame)
    staged = StagedFrame(contract, types, list(frame.columns), len(frame))
    if conn.dialect == "duckdb":
        return replace(staged, table=typed_table(conn, frame, types))
    stage = f"raw_stage_{uuid.uuid4().hex}"
    columns = ", ".join(f"{quote_ident(n)} {conn.sql_type(types[n])}" for n in staged.present)
    conn.execute(f"create temp table {stage} ({columns})")
    conn.write_frame(conn.temp_schema, stage, frame)
    return replace(staged, stage=stage)


def write_staged_frame(
    conn: Connection,
    tenant_id: str,
    staged: StagedFrame,
    rewrite: Rewrite = Rewrite(),
    files: ParallelFiles | None = None,
) -> int:
    """Append the staged rows, rewritten by `rewrite`, to the tenant's raw layer as
    write_raw_frame would the rewritten frame; the rows written. DuckDB: with `files`, the file
    is written in the background (`files.wait()` before the commit). Postgres: the write
    counters are not published (call publish_write_counts before the commit)."""
    contract = staged.contract
    if conn.dialect == "duckdb":
        if staged.rows:
            assert staged.table is not None
            make = partial(_rewritten_table, staged.table, rewrite)
            if files is None:
                write_table_file(conn, tenant_id, contract.raw_table, make())
            else:
                files.write(conn, tenant_id, contract.raw_table, make)
        return staged.rows
    schema = raw_schema(tenant_id)
    conn.ensure_schema(schema)
    ensure_raw_table(conn, schema, contract.raw_table, staged.types, staged.present)
    if not staged.rows:
        return 0
    selected, params = [], []
    for name in staged.present:
        column = quote_ident(name)
        sql_type = conn.sql_type(staged.types[name])
        if name in rewrite.constants:
            selected.append(f"cast(%s as {sql_type})")
            params.append(rewrite.constants[name])
        elif name in rewrite.columns:
            text = f"cast({column} as text)"
            for old, new in rewrite.pairs:
                text = f"replace({text}, %s, %s)"
                params += [old, new]
            selected.append(f"cast({text} as {sql_type})")
        else:
            selected.append(column)
    conn.execute(
        f"insert into {qualified(schema, contract.raw_table)} "
        f"({', '.join(map(quote_ident, staged.present))}) "
        f"select {', '.join(selected)} from {qualified(conn.temp_schema, staged.stage)}",
        params,
    )
    return staged.rows


def drop_staged(conn: Connection, staged: StagedFrame) -> None:
    if staged.stage is not None:
        conn.execute(f"drop table if exists {qualified(conn.temp_schema, staged.stage)}")


def _rewritten_table(table: pa.Table, rewrite: Rewrite) -> pa.Table:
    for name in rewrite.columns:
        position = table.schema.get_field_index(name)
        column = table.column(position)
        extension = isinstance(column.type, pa.BaseExtensionType)  # JSON: rewrite its text
        chunks = []
        for chunk in column.chunks:
            text = chunk.storage if extension else chunk
            for old, new in rewrite.pairs:
                text = pc.replace_substring(text, old, new)
            chunks.append(pa.ExtensionArray.from_storage(column.type, text) if extension else text)
        table = table.set_column(
            position, table.field(position), pa.chunked_array(chunks, column.type)
        )
    for name, value in rewrite.constants.items():
        position = table.schema.get_field_index(name)
        field_ = table.field(position)
        table = table.set_column(
            position, field_, pa.array([value] * table.num_rows, type=field_.type)
        )
    return table


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
    """Create the Postgres raw table as Airbyte would; add the `present` columns it lacks
    (propagate_columns). Its columns are read from pg_attribute (an index lookup), not from
    information_schema (a view over every table: about 75 ms a lookup with 4,000 of them)."""
    existing = {
        name
        for (name,) in conn.fetch_all(
            "select attname from pg_attribute where attrelid = to_regclass(%s) "
            "and attnum > 0 and not attisdropped",
            (qualified(schema, table),),
        )
    }
    if not existing:
        columns = ", ".join(f"{quote_ident(n)} {conn.sql_type(t)}" for n, t in types.items())
        conn.execute(f"create table {qualified(schema, table)} ({columns})")
        return
    for name in present:
        if name not in existing:
            conn.execute(
                f"alter table {qualified(schema, table)} "
                f"add column {quote_ident(name)} {conn.sql_type(types[name])}"
            )


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

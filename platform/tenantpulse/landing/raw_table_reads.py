"""Read one stream's new raw rows of many tenants in a few statements.

On Postgres each tenant's stream is a table of its own (`user_<tenant>.<source>_<stream>`); on
DuckDB it is a folder of Parquet files (sources.raw_files), of which only the files not landed yet
are read (raw_file_reads). Either way, what landing reads of one tenant is one `RawUnit`, and the
units of tenants with the same columns and types are read together, TENANTS_PER_STATEMENT at a
time: a statement per tenant costs a round trip and a catalog or footer lookup, which at
thousands of tenants is most of the work.

Tables are found with one catalog query per stream and read with one UNION ALL per chunk; each
chunk is its own transaction: a transaction holds a lock on every table it reads until it ends,
and Postgres's lock table (max_locks_per_transaction x max_connections: 6,400 by default) runs
out ("out of shared memory") at a few thousand tables. Files are read with one `read_parquet` over
the chunk's files, by position when they all have the same columns, by name otherwise.
"""

from __future__ import annotations

import datetime as dt
import os
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from tenantpulse.landing.raw_file_reads import FolderScan, new_file_columns
from tenantpulse.sources.contracts import StreamContract, raw_schema
from tenantpulse.sources.raw_files import (
    file_reader,
    plain_booleans,
    stream_folder,
    stream_label,
)
from tenantpulse.warehouse import Connection, qualified, quote_ident

# Tenants per statement: Postgres plans a union recursively and fails near 10,000 branches
# ("stack depth limit exceeded"); a few hundred keeps each statement small on both warehouses.
TENANTS_PER_STATEMENT = 200
# A statement's rows are in memory at once, several times over while validated: 200 tenants'
# first syncs of shopify__orders are 93 MB of files (docs/decisions.md, landing's memory). A
# day's files are kilobytes, so a day's statements still take 200 tenants.
FILE_BYTES_PER_STATEMENT = 32 * 2**20
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


RAW_FILE = "raw_file"  # the column naming each row's file, in what is read of raw files


@dataclass(frozen=True)
class RawUnit:
    """What landing reads of one tenant's stream: its raw table, or its files not landed yet."""

    tenant_id: str
    label: str  # how messages name it: "raw table user_<t>.<table>" / "raw files user_<t>/<table>"
    columns: dict[str, str]  # name -> data type (lower case); over several files, every column
    files: tuple[Path, ...] = ()  # DuckDB: the files, oldest first
    by_name: bool = False  # files whose columns differ: read by name
    # A file's own problem that the columns over all files hide (a file without the key).
    file_problems: dict[str, list[str]] = field(default_factory=dict)
    file_bytes: int = 0  # DuckDB: the files' size on disk


def table_label(tenant_id: str, contract: StreamContract) -> str:
    return f"raw table {raw_schema(tenant_id)}.{contract.raw_table}"


def raw_label(conn: Connection, tenant_id: str, contract: StreamContract) -> str:
    """How messages name the tenant's raw stream on this warehouse."""
    if conn.dialect == "duckdb":
        return stream_label(tenant_id, contract.raw_table)
    return table_label(tenant_id, contract)


def raw_table_columns(
    conn: Connection, contract: StreamContract, tenant_ids: list[str]
) -> dict[str, dict[str, str]]:
    """Tenant id -> {column: data type} of its raw table of `contract` (absent: no table), on
    Postgres: information_schema.columns's data_type, looked up in pg_catalog by the tables' names
    (information_schema.columns finds every schema's table of that name: 2-5 s a stream at 10,000
    tenants, whatever the tenants asked for)."""
    if not tenant_ids:
        return {}
    tenant_of_schema = {raw_schema(t): t for t in tenant_ids}
    relations = [qualified(schema, contract.raw_table) for schema in tenant_of_schema]
    columns: dict[str, dict[str, str]] = {}
    for schema, column, data_type in conn.fetch_all(_COLUMNS_OF_RELATIONS, (relations,)):
        columns.setdefault(tenant_of_schema[schema], {})[column] = data_type
    return columns


# information_schema.columns's data_type (PostgreSQL 12-17): a domain's base type, ARRAY, a
# pg_catalog type's name, USER-DEFINED otherwise; over the relations that view lists. Each
# relation is found by its name (to_regclass: one index lookup), so the plan cannot start from
# every relation of that name (as it did, by the catalog's statistics, with a join on names).
_COLUMNS_OF_RELATIONS = """
select n.nspname, a.attname, lower(case
    when t.typtype = 'd' then case
        when b.typelem <> 0 and b.typlen = -1 then 'ARRAY'
        when b.typnamespace = 'pg_catalog'::regnamespace then format_type(t.typbasetype, null)
        else 'USER-DEFINED' end
    when t.typelem <> 0 and t.typlen = -1 then 'ARRAY'
    when t.typnamespace = 'pg_catalog'::regnamespace then format_type(a.atttypid, null)
    else 'USER-DEFINED' end)
from unnest(%s::text[]) as r (relation)
join pg_class c on c.oid = to_regclass(r.relation) and c.relkind in ('r', 'v', 'f', 'p')
join pg_namespace n on n.oid = c.relnamespace
join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
join pg_type t on t.oid = a.atttypid
left join pg_type b on b.oid = t.typbasetype
order by n.nspname, a.attnum
"""


def table_units(
    conn: Connection, contract: StreamContract, tenant_ids: list[str]
) -> dict[str, RawUnit]:
    """Tenant -> its raw table, for each tenant that has one."""
    return {
        tenant_id: RawUnit(tenant_id, table_label(tenant_id, contract), columns)
        for tenant_id, columns in raw_table_columns(conn, contract, tenant_ids).items()
    }


def file_units(
    conn: Connection, contract: StreamContract, scans: list[FolderScan]
) -> tuple[dict[str, RawUnit], dict[str, str]]:
    """(tenant -> its files not landed yet, tenant -> why they cannot be read) for the scans
    with new files."""
    with_new = [s for s in scans if s.new_files]
    columns_of, failures = new_file_columns(conn, with_new)
    units = {}
    for scan in with_new:
        if scan.tenant_id in failures:
            continue
        shapes = [columns_of[f.path] for f in scan.new_files]
        union: dict[str, str] = {}
        for shape in shapes:
            for name, data_type in shape.items():
                # A column typed differently in two files is read as text.
                union[name] = data_type if union.get(name, data_type) == data_type else "varchar"
        problems = {
            f.name: [c for c in contract.required_columns if c not in columns_of[f.path]]
            for f in scan.new_files
        }
        units[scan.tenant_id] = RawUnit(
            scan.tenant_id,
            stream_label(scan.tenant_id, contract.raw_table),
            union,
            tuple(f.path for f in scan.new_files),
            by_name=any(list(s.items()) != list(union.items()) for s in shapes),
            file_problems={name: lacking for name, lacking in problems.items() if lacking},
            file_bytes=sum(_size(f.path) for f in scan.new_files),
        )
    return units, failures


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # gone since listed: reading it fails the tenant by name
        return 0


def same_shape_chunks(units: list[RawUnit]) -> Iterator[tuple[dict[str, str], list[RawUnit]]]:
    """(columns, units) chunks of units of the same columns and types (and way of reading), so
    each chunk can be read with one statement: at most TENANTS_PER_STATEMENT units, and files of
    at most FILE_BYTES_PER_STATEMENT together (a unit larger than that is a chunk of its own)."""
    by_shape: dict[tuple, list[RawUnit]] = defaultdict(list)
    for unit in units:
        by_shape[(tuple(unit.columns.items()), unit.by_name)].append(unit)
    for (shape, _), shaped in by_shape.items():
        chunk: list[RawUnit] = []
        chunk_bytes = 0
        for unit in shaped:
            too_big = chunk_bytes + unit.file_bytes > FILE_BYTES_PER_STATEMENT
            if chunk and (len(chunk) == TENANTS_PER_STATEMENT or too_big):
                yield dict(shape), chunk
                chunk, chunk_bytes = [], 0
            chunk.append(unit)
            chunk_bytes += unit.file_bytes
        if chunk:
            yield dict(shape), chunk


def selected_columns(columns: dict[str, str]) -> str:
    """The select list of `columns`: types not read as they are, as text."""
    return ", ".join(
        quote_ident(name)
        if data_type in _READ_AS_IS
        else f"cast({quote_ident(name)} as varchar) as {quote_ident(name)}"
        for name, data_type in columns.items()
    )


def read_new_rows(
    conn: Connection,
    contract: StreamContract,
    units: list[RawUnit],
    columns: dict[str, str],
    watermarks: dict[str, dt.datetime],
) -> pd.DataFrame:
    """`columns` (name -> data type) and `tenant_id` of each unit's new raw rows: every row of
    its files (and RAW_FILE, the file's name), or its table's rows extracted after the tenant's
    watermark (every row without one)."""
    if conn.dialect == "duckdb":
        return _read_files(conn, units, columns)
    parts, params = [], []
    for unit in units:
        part = (
            f"select cast(%s as varchar) as tenant_id, {selected_columns(columns)} "
            f"from {qualified(raw_schema(unit.tenant_id), contract.raw_table)}"
        )
        params.append(unit.tenant_id)
        if unit.tenant_id in watermarks:
            part += " where _airbyte_extracted_at > %s"
            params.append(watermarks[unit.tenant_id])
        parts.append(part)
    return conn.read_frame(" union all ".join(parts), params)


def _nullable_type(arrow_type: pa.DataType):
    if pa.types.is_integer(arrow_type):
        return pd.Int64Dtype()
    if pa.types.is_boolean(arrow_type):
        return pd.BooleanDtype()
    return None  # pyarrow's default


def _read_files(conn: Connection, units: list[RawUnit], columns: dict[str, str]) -> pd.DataFrame:
    tenant_of = {str(path): unit.tenant_id for unit in units for path in unit.files}
    by_name = any(unit.by_name for unit in units)
    with file_reader(conn) as reader:
        rows = reader.sql(
            f"select {selected_columns(columns)}, filename from read_parquet(?, "
            f"union_by_name = {str(by_name).lower()}, filename = true)",
            params=[list(tenant_of)],
        ).to_arrow_table()
    # Through Arrow: DuckDB's pandas output makes a Python object of every text value, which
    # pandas then turns back into Arrow-backed strings (13% of a 10,000-tenant first load's land
    # run, profiled). Integers and booleans keep pandas' nullable types, as DuckDB's pandas
    # output gives them beside NULLs (pyarrow's default makes integers float64 and loses digits).
    frame = plain_booleans(rows).to_pandas(types_mapper=_nullable_type)
    # Each file's tenant and name worked out once a file, not once a row (a Path a row was a
    # quarter of a 10,000-tenant first load's landing, profiled).
    codes, paths = pd.factorize(frame.pop("filename"))
    frame.insert(0, "tenant_id", np.array([tenant_of[p] for p in paths], dtype=object)[codes])
    frame[RAW_FILE] = np.array([Path(p).name for p in paths], dtype=object)[codes]
    return frame


def raw_versions(
    conn: Connection, contract: StreamContract, tenant_ids: list[str]
) -> dict[str, str]:
    """Tenant id -> a version of its raw stream, for each tenant that has it: on Postgres
    "<rows> rows, newest <_airbyte_extracted_at>" of its table; on DuckDB its folder's
    modification time (one `stat`, no file opened: a new file changes it)."""
    if conn.dialect == "duckdb":
        versions = {}
        for tenant_id in tenant_ids:
            try:
                stat = os.stat(stream_folder(conn.raw_path, tenant_id, contract.raw_table))
            except (FileNotFoundError, NotADirectoryError):
                continue
            versions[tenant_id] = f"folder modified {stat.st_mtime_ns}"
        return versions
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

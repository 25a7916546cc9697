"""Small hand-made raw rows in Airbyte's shape, for landing tests, and reads of the raw layer on
either warehouse (tables on Postgres, Parquet files on DuckDB)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
import uuid

import pandas as pd

from tenantpulse.sources.contracts import STREAMS_BY_NAME, raw_schema
from tenantpulse.sources.raw_files import list_files, stream_folder, write_query_file
from tenantpulse.sources.raw_table_ddl import write_raw_frame
from tenantpulse.warehouse import qualified, quote_ident


def sync_time(day: int) -> dt.datetime:
    return dt.datetime(2026, 11, day, tzinfo=dt.UTC)


def raw_frame(stream: str, records: list[dict], extracted_at: dt.datetime, sync_id: int = 1):
    """Rows with every contract column (unset ones NULL) plus Airbyte's metadata columns."""
    contract = STREAMS_BY_NAME[stream]
    rows = []
    for record in records:
        row = {name: record.get(name) for name in contract.column_names}
        row.update({k: v for k, v in record.items() if k not in row})  # drifted columns
        row["_airbyte_raw_id"] = str(uuid.uuid4())
        row["_airbyte_extracted_at"] = extracted_at
        row["_airbyte_meta"] = json.dumps({"changes": [], "sync_id": sync_id})
        row["_airbyte_generation_id"] = 0
        rows.append(row)
    frame = pd.DataFrame(rows)
    for column in contract.all_columns:  # keep integers integers when some rows leave them NULL
        if (
            column.type == "bigint"
            and column.name in frame
            and frame[column.name].dtype.kind in "fiO"
        ):
            frame[column.name] = pd.array(frame[column.name].tolist(), dtype="Int64")
    return frame


def write_raw(conn, tenant_id: str, stream: str, records: list[dict], extracted_at, sync_id=1):
    frame = raw_frame(stream, records, extracted_at, sync_id)
    write_raw_frame(conn, tenant_id, STREAMS_BY_NAME[stream], frame)


def write_raw_rows(conn, tenant_id: str, table: str, columns: str, rows: list[tuple]) -> None:
    """Rows typed by `columns` (SQL column definitions, deliberately wrong types included), as a
    destination writes one sync of them: on Postgres into the table `user_<tenant>.<table>`
    (created by the first call), on DuckDB as the next Parquet file of the tenant's stream."""
    with raw_sync(conn, tenant_id, table, columns) as target:
        for row in rows:
            conn.execute(f"insert into {target} values ({', '.join(['%s'] * len(row))})", row)


@contextlib.contextmanager
def raw_sync(conn, tenant_id: str, table: str, columns: str):
    """The relation to insert one sync's raw rows of a tenant's stream into, `columns` its SQL
    column definitions: the raw table on Postgres (created if missing), on DuckDB a temporary
    table written as the stream's next Parquet file when the block ends."""
    if conn.dialect == "postgres":
        conn.ensure_schema(raw_schema(tenant_id))
        target = qualified(raw_schema(tenant_id), table)
        conn.execute(f"create table if not exists {target} ({columns})")
        yield target
        return
    target = f"raw_rows_{uuid.uuid4().hex}"
    conn.execute(f"create temp table {target} ({columns})")
    yield target
    write_query_file(conn, tenant_id, table, f"select * from {target}")
    conn.execute(f"drop table {target}")


def drop_raw(conn, tenant_id: str) -> None:
    """Delete everything of the tenant's raw layer: its schema, or its folder of files."""
    if conn.dialect == "postgres":
        conn.execute(f"drop schema {quote_ident(raw_schema(tenant_id))} cascade")
    else:
        shutil.rmtree(conn.raw_path / raw_schema(tenant_id))


def raw_relation(conn, tenant_id: str, table: str) -> str:
    """SQL for every raw row of a tenant's stream: its table, or all its files."""
    if conn.dialect == "postgres":
        return qualified(raw_schema(tenant_id), table)
    folder = stream_folder(conn.raw_path, tenant_id, table)
    return f"read_parquet('{folder}/*.parquet', union_by_name = true)"


def raw_columns(conn, tenant_id: str, table: str) -> dict[str, str]:
    """Column -> data type (lower case, as information_schema has it) of a tenant's raw stream
    (over all its files on DuckDB); empty when it has none."""
    if conn.dialect == "postgres":
        return conn.table_columns(raw_schema(tenant_id), table)
    if not has_raw(conn, tenant_id, table):
        return {}
    described = conn.fetch_all(f"describe select * from {raw_relation(conn, tenant_id, table)}")
    return {name: kind.lower() for name, kind, *_ in described}


def has_raw(conn, tenant_id: str, table: str) -> bool:
    """Whether the tenant's stream has a raw table, or a file."""
    if conn.dialect == "postgres":
        return conn.table_exists(raw_schema(tenant_id), table)
    return bool(list_files(stream_folder(conn.raw_path, tenant_id, table)))


def raw_name(conn, tenant_id: str, table: str) -> str:
    """How landing's messages name a tenant's raw stream on this warehouse."""
    if conn.dialect == "postgres":
        return f"raw table {raw_schema(tenant_id)}.{table}"
    return f"raw files {raw_schema(tenant_id)}/{table}"

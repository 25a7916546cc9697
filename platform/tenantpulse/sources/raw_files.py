"""The raw layer on DuckDB: Parquet files in the layout of Airbyte's S3 destination.

A tenant's stream is a folder, `<raw path>/user_<tenant>/<source>_<stream>/` (the connection's
namespace, then its prefix and the stream: destination-s3's default `s3_path_format`
`${NAMESPACE}/${STREAM_NAME}/${YEAR}_${MONTH}_${DAY}_${EPOCH}_`), holding one file per sync,
`<YYYY>_<MM>_<DD>_<epoch milliseconds>_<part>.parquet`, with the contract's columns typed as the
raw tables are and Airbyte's `_airbyte_*` columns. One table per tenant and stream costs DuckDB a
catalog entry in memory and a storage block on disk; a file costs neither (docs/decisions.md).

A file's (epoch, part) orders it after every file written before it in its folder: landing keeps
the newest file it landed per tenant and stream, and reads only the files after it.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tenantpulse.sources.contracts import StreamContract, raw_schema
from tenantpulse.warehouse import quote_ident

_FILE_NAME = re.compile(r"(\d{4})_(\d{2})_(\d{2})_(\d+)_(\d+)\.parquet")
TEMPORARY_PREFIX = "."  # a file being written: hidden, and not a name readers take


@dataclass(frozen=True)
class RawFile:
    """One published file of a tenant's stream."""

    path: Path
    epoch_ms: int
    part: int

    @property
    def key(self) -> tuple[int, int]:
        """Its place in the folder's order (Airbyte's epoch, then the part number)."""
        return (self.epoch_ms, self.part)

    @property
    def name(self) -> str:
        return self.path.name


def file_key(name: str) -> tuple[int, int] | None:
    """(epoch ms, part) of an Airbyte file name; None for any other name."""
    match = _FILE_NAME.fullmatch(name)
    return (int(match.group(4)), int(match.group(5))) if match else None


def file_name(epoch_ms: int, part: int = 0) -> str:
    day = dt.datetime.fromtimestamp(epoch_ms / 1000, dt.UTC)
    return f"{day:%Y_%m_%d}_{epoch_ms}_{part}.parquet"


def stream_folder(raw_path: Path, tenant_id: str, raw_table: str) -> Path:
    """The folder of a tenant's stream (`raw_table`: `<source>_<stream>`)."""
    return raw_path / raw_schema(tenant_id) / raw_table


def stream_label(tenant_id: str, raw_table: str) -> str:
    """How messages name a tenant's stream on DuckDB."""
    return f"raw files {raw_schema(tenant_id)}/{raw_table}"


def list_files(folder: Path, after: tuple[int, int] | None = None) -> list[RawFile]:
    """The folder's published files in order, those after `after` only; [] without the folder."""
    found = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    for entry in entries:
        key = file_key(entry.name)
        if key is not None and (after is None or key > after):
            found.append(RawFile(Path(entry.path), *key))
    return sorted(found, key=lambda f: f.key)


def write_frame_file(
    conn, tenant_id: str, contract: StreamContract, frame: pd.DataFrame, types: dict[str, str]
) -> int:
    """Write `frame` as the next file of the tenant's stream, its columns `types` (name -> logical
    type; absent from the frame: NULL), published when `conn` commits; the rows written."""
    try:
        table = typed_table(conn, frame, types)
    except duckdb.Error as error:
        raise ValueError(
            f"cannot write {stream_label(tenant_id, contract.raw_table)}: {error}"
        ) from error
    write_table_file(conn, tenant_id, contract.raw_table, table)
    return len(frame)


def typed_table(conn, frame: pd.DataFrame, types: dict[str, str]) -> pa.Table:
    """`frame` as an Arrow table with the columns `types` (name -> logical type; absent from the
    frame: NULL) cast by DuckDB as a raw file holds them (JSON stays JSON: `arrow.json`)."""
    selected = ", ".join(
        f"cast({quote_ident(n) if n in frame.columns else 'null'} as {conn.sql_type(t)}) "
        f"as {quote_ident(n)}"
        for n, t in types.items()
    )
    with file_reader(conn) as reader:
        reader.execute("set arrow_lossless_conversion = true")
        reader.register("frame", frame)
        table = reader.sql(f"select {selected} from frame").to_arrow_table()
    return plain_booleans(table)


def plain_booleans(table: pa.Table) -> pa.Table:
    """`table` with its `arrow.bool8` columns as plain booleans. DuckDB's Arrow output gives
    booleans as bool8 (int8 in Parquet) while `arrow_lossless_conversion` is set, a setting of
    the whole database, which `typed_table` sets."""
    for index, field in enumerate(table.schema):
        if (
            isinstance(field.type, pa.BaseExtensionType)
            and field.type.extension_name == "arrow.bool8"
        ):
            column = pa.chunked_array(
                [chunk.storage.cast(pa.bool_()) for chunk in table.column(index).chunks],
                pa.bool_(),
            )
            table = table.set_column(index, field.with_type(pa.bool_()), column)
    return table


def write_table_file(conn, tenant_id: str, raw_table: str, table: pa.Table) -> Path:
    """Write the Arrow `table` as the next file of the tenant's stream, published when `conn`
    commits; the name it will have."""
    folder = stream_folder(conn.raw_path, tenant_id, raw_table)
    written, published = _temporary_file(conn, folder)
    write_parquet(table, written, stream_label(tenant_id, raw_table))
    conn.publish_on_commit(written, published)
    return published


def write_parquet(table: pa.Table, path: Path, label: str) -> None:
    """Write `table` to `path` (`label`: what the file is, for the error)."""
    try:
        pq.write_table(table, path)
    except (pa.ArrowException, OSError) as error:
        path.unlink(missing_ok=True)
        raise ValueError(f"cannot write {label}: {error}") from error


class ParallelFiles:
    """Raw files written by `threads` threads (pyarrow encodes Parquet and replaces text without
    holding the GIL): each file's name is taken at once, in the connection's order, and it is
    written in the background. `wait` for them before the commit; roll back if it raises."""

    def __init__(self, threads: int):
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="raw-files")
        self._pending: list[Future] = []

    def write(self, conn, tenant_id: str, raw_table: str, make: Callable[[], pa.Table]) -> None:
        """Write the table `make` returns as the next file of the tenant's stream, published
        when `conn` commits (deleted if it rolls back)."""
        written, published = _temporary_file(
            conn, stream_folder(conn.raw_path, tenant_id, raw_table)
        )
        conn.publish_on_commit(written, published)
        label = stream_label(tenant_id, raw_table)
        self._pending.append(self._pool.submit(lambda: write_parquet(make(), written, label)))

    def wait(self) -> None:
        """Wait for every file; then raise the first error, if any."""
        pending, self._pending = self._pending, []
        wait(pending)
        for future in pending:
            future.result()

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def write_query_file(conn, tenant_id: str, raw_table: str, query: str) -> Path:
    """Write the rows of `query` (on the warehouse's DuckDB connection `conn`) as the next file of
    the tenant's stream, published when `conn` commits; the name it will have."""
    folder = stream_folder(conn.raw_path, tenant_id, raw_table)
    written, published = _temporary_file(conn, folder)
    try:
        conn.raw.execute(f"copy ({query}) to '{_literal(written)}' (format parquet)")
    except duckdb.Error as error:
        written.unlink(missing_ok=True)
        raise ValueError(f"cannot write {stream_label(tenant_id, raw_table)}: {error}") from error
    conn.publish_on_commit(written, published)
    return published


def _temporary_file(conn, folder: Path) -> tuple[Path, Path]:
    """(where to write the folder's next file, the name it is published under on commit)."""
    folder.mkdir(parents=True, exist_ok=True)
    name = _next_name(folder, conn.unpublished())
    return folder / f"{TEMPORARY_PREFIX}{name}.{uuid.uuid4().hex}.tmp", folder / name


def _next_name(folder: Path, unpublished: Iterable[Path]) -> str:
    """Now's file name, its epoch after every file's in the folder (written or waiting for the
    commit), so that the folder's order is the order files were written in."""
    keys = [f.key for f in list_files(folder)]
    keys += [k for p in unpublished if p.parent == folder and (k := file_key(p.name))]
    now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    return file_name(max([now_ms, *(epoch + 1 for epoch, _ in keys)]))


@contextmanager
def file_reader(conn) -> Iterator[duckdb.DuckDBPyConnection]:
    """A cursor of the warehouse's DuckDB connection `conn` for reading raw files: a transaction
    of its own, so a file that fails to read does not abort the warehouse's (and a cursor costs a
    fraction of a millisecond, a new in-memory database about 20 ms)."""
    reader = conn.raw.cursor()
    try:
        reader.execute("set TimeZone = 'UTC'")
        yield reader
    finally:
        reader.close()


def file_columns(
    reader: duckdb.DuckDBPyConnection, files: list[Path]
) -> dict[Path, dict[str, str]]:
    """File -> {column: DuckDB type, lower case} of its top-level columns, from the files'
    footers alone (one statement for all of them)."""
    rows = reader.execute(
        "select file_name, name, lower(duckdb_type), num_children from parquet_schema(?)",
        [[str(f) for f in files]],
    ).fetchall()
    columns: dict[Path, dict[str, str]] = {}
    # Each file's schema is its root (num_children top-level columns) and then each column
    # depth first, nested ones followed by their children: skip those.
    by_file: dict[str, list[tuple]] = {}
    for file, name, kind, children in rows:
        by_file.setdefault(file, []).append((name, kind, children or 0))
    for file, schema in by_file.items():
        top: dict[str, str] = {}
        skip = 0
        for name, kind, children in schema[1:]:
            if skip:
                skip += children - 1
                continue
            top[name] = kind
            skip = children
        columns[Path(file)] = top
    return columns


def _literal(path: Path) -> str:
    return str(path).replace("'", "''")

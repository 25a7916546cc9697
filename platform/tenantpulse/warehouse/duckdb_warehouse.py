"""DuckDB: one file, one process at a time (the local default), and the raw layer as Parquet
files in a folder beside it (sources.raw_files)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd

from tenantpulse.config import default_raw_path
from tenantpulse.warehouse.base import (
    Connection,
    Params,
    Warehouse,
    WarehouseBusyError,
    WarehouseError,
    to_qmark,
)
from tenantpulse.warehouse.identifiers import qualified, quote_ident

# The memory DuckDB's buffer manager may hold in the platform's connections, as in dbt's profile
# (dbt_project/profiles.yml): with DuckDB's default, 80% of the machine's memory, a 10,000-tenant
# first load's land run grew past 8 GB.
MEMORY_LIMIT = "4GB"


class DuckDBConnection(Connection):
    dialect = "duckdb"
    temp_schema = "temp"
    sql_types = {
        "bigint": "bigint",
        "decimal": "decimal(38, 9)",
        "varchar": "varchar",
        "timestamptz": "timestamptz",
        "date": "date",
        "boolean": "boolean",
        "json": "json",
        "double": "double",
    }

    def __init__(self, raw: duckdb.DuckDBPyConnection, raw_path: Path):
        self.raw = raw
        self.raw_path = raw_path  # the raw layer's root folder
        self._unpublished: list[tuple[Path, Path]] = []  # (written file, its published name)

    def publish_on_commit(self, written: Path, published: Path) -> None:
        """Rename `written` to `published` when the transaction commits, delete it if it rolls
        back: raw files appear with the rest of the transaction's work, whole, or not at all."""
        self._unpublished.append((written, published))

    def unpublished(self) -> list[Path]:
        """The names the files waiting for this transaction's commit will have."""
        return [published for _, published in self._unpublished]

    def _publish(self) -> None:
        while self._unpublished:
            written, published = self._unpublished.pop(0)
            # link refuses an existing name (rename would replace it): a published file is
            # never overwritten.
            os.link(written, published)
            written.unlink()

    def _discard(self) -> None:
        for written, _ in self._unpublished:
            written.unlink(missing_ok=True)
        self._unpublished.clear()

    def execute(self, sql: str, params: Params = ()) -> None:
        self.raw.execute(to_qmark(sql), list(params))

    def fetch_all(self, sql: str, params: Params = ()) -> list[tuple]:
        return self.raw.execute(to_qmark(sql), list(params)).fetchall()

    def read_frame(self, sql: str, params: Params = ()) -> pd.DataFrame:
        return self.raw.execute(to_qmark(sql), list(params)).df()

    def write_frame(self, schema: str, table: str, frame: pd.DataFrame) -> int:
        if frame.empty:
            return 0
        columns = ", ".join(quote_ident(c) for c in frame.columns)
        view = f"frame_{uuid.uuid4().hex}"
        self.raw.register(view, frame)
        try:
            self.raw.execute(
                f"insert into {qualified(schema, table)} ({columns}) select {columns} from {view}"
            )
        except duckdb.Error as error:
            # The transaction is aborted: DuckDB refuses even `unregister` until the rollback the
            # caller must do, which drops the view too.
            raise WarehouseError(
                f"cannot write {len(frame)} rows into {schema}.{table}: {error}"
            ) from error
        self.raw.unregister(view)
        return len(frame)

    def commit(self) -> None:
        self._publish()  # before the warehouse's commit, as Airbyte records a sync after its files
        self.raw.execute("commit")
        self.raw.execute("begin transaction")

    def rollback(self) -> None:
        self._discard()
        self.raw.execute("rollback")
        self.raw.execute("begin transaction")


class DuckDBWarehouse(Warehouse):
    dialect = "duckdb"

    def __init__(self, path: Path, lock_wait_seconds: float = 15.0, raw_path: Path | None = None):
        self.path = path
        self.lock_wait_seconds = lock_wait_seconds
        self.raw_path = raw_path or default_raw_path(path)

    def describe(self) -> str:
        return f"DuckDB file {self.path}"

    @contextmanager
    def connect(self) -> Iterator[DuckDBConnection]:
        raw = self._open()
        conn = DuckDBConnection(raw, self.raw_path)
        try:
            raw.execute("set TimeZone = 'UTC'")
            raw.execute(f"set memory_limit = '{MEMORY_LIMIT}'")
            raw.execute("begin transaction")
            yield conn
            conn._publish()
            raw.execute("commit")
        except BaseException:
            conn._discard()
            raw.execute("rollback")
            raise
        finally:
            raw.close()

    def _open(self) -> duckdb.DuckDBPyConnection:
        """Open the file, waiting up to `lock_wait_seconds` while another process holds it (the
        sensor's short reads under `dagster dev`, say) before saying who has it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_wait_seconds
        pause = 0.05
        while True:
            try:
                return duckdb.connect(str(self.path))
            except duckdb.IOException as error:
                if "lock" not in str(error).lower():
                    raise WarehouseError(f"cannot open {self.describe()}: {error}") from error
                if time.monotonic() >= deadline:
                    raise WarehouseBusyError(
                        f"{self.describe()} is open in another process, and DuckDB allows one "
                        "process per file: stop the other tenantpulse or dagster process, or use "
                        f"Postgres (TENANTPULSE_WAREHOUSE_URL=postgresql://...). DuckDB said: {error}"
                    ) from error
                time.sleep(pause)
                pause = min(pause * 2, 1.0)

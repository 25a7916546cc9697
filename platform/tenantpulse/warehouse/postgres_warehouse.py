"""Postgres: the warehouse when one machine is not enough (psycopg 3, COPY for bulk writes)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
import psycopg
from psycopg.types.json import set_json_loads
from psycopg.types.numeric import FloatLoader

from tenantpulse.warehouse.base import Connection, Params, Warehouse, WarehouseError
from tenantpulse.warehouse.identifiers import qualified, quote_ident

_NULL = r"\N"
_INTEGER_OIDS = {20, 21, 23}  # bigint, smallint, integer


class PostgresConnection(Connection):
    dialect = "postgres"
    temp_schema = "pg_temp"
    sql_types = {
        "bigint": "bigint",
        "decimal": "decimal(38, 9)",
        "varchar": "varchar",
        "timestamptz": "timestamptz",
        "date": "date",
        "boolean": "boolean",
        "json": "jsonb",
        "double": "double precision",
    }

    def __init__(self, raw: psycopg.Connection):
        self.raw = raw

    def execute(self, sql: str, params: Params = ()) -> None:
        self.raw.execute(sql, tuple(params) or None)

    def fetch_all(self, sql: str, params: Params = ()) -> list[tuple]:
        return self.raw.execute(sql, tuple(params) or None).fetchall()

    def read_frame(self, sql: str, params: Params = ()) -> pd.DataFrame:
        cursor = self.raw.execute(sql, tuple(params) or None)
        described = cursor.description or ()
        rows = cursor.fetchall()
        frame = pd.DataFrame.from_records(rows, columns=[d.name for d in described])
        for position, column in enumerate(described):
            # pandas reads integers beside NULLs as float64 (2**63 - 1 becomes 2**63); DuckDB
            # gives a nullable Int64 column: so do we.
            if column.type_code in _INTEGER_OIDS and frame.dtypes.iloc[position].kind == "f":
                values = [row[position] for row in rows]
                data = np.array([0 if v is None else v for v in values], dtype=np.int64)
                mask = np.array([v is None for v in values])
                frame.isetitem(position, pd.arrays.IntegerArray(data, mask))
        return frame

    def write_frame(self, schema: str, table: str, frame: pd.DataFrame) -> int:
        """COPY in CSV: NULL is an unquoted \\N, every other text value is quoted."""
        if frame.empty:
            return 0
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False, header=False, na_rep=_NULL, quoting=csv.QUOTE_NONNUMERIC)
        # QUOTE_NONNUMERIC quotes the NULL marker in text columns too: unquote exactly that field.
        text = buffer.getvalue().replace(f'"{_NULL}"', _NULL)
        columns = ", ".join(quote_ident(c) for c in frame.columns)
        copy_sql = (
            f"copy {qualified(schema, table)} ({columns}) from stdin (format csv, null '{_NULL}')"
        )
        try:
            with self.raw.cursor() as cursor, cursor.copy(copy_sql) as copy:
                copy.write(text)
        except psycopg.Error as error:
            raise WarehouseError(
                f"cannot write {len(frame)} rows into {schema}.{table}: {error}"
            ) from error
        return len(frame)

    def commit(self) -> None:
        self.raw.commit()

    def rollback(self) -> None:
        self.raw.rollback()


class PostgresWarehouse(Warehouse):
    dialect = "postgres"

    def __init__(self, dsn: str, display: str):
        self.dsn = dsn
        self.display = display

    def describe(self) -> str:
        return f"Postgres {self.display}"

    @contextmanager
    def connect(self) -> Iterator[PostgresConnection]:
        try:
            raw = psycopg.connect(self.dsn, options="-c TimeZone=UTC", connect_timeout=10)
        except psycopg.OperationalError as error:
            raise WarehouseError(f"cannot connect to {self.describe()}: {error}") from error
        # Same Python types as DuckDB gives: JSON as text, numeric as float.
        set_json_loads(lambda text: text if isinstance(text, str) else text.decode(), raw)
        raw.adapters.register_loader("numeric", FloatLoader)
        try:
            yield PostgresConnection(raw)
            raw.commit()
        finally:
            raw.close()  # without the commit, the server rolls the transaction back

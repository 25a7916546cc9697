"""The warehouse interface both dialects implement."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import pandas as pd

from tenantpulse.warehouse.identifiers import qualified, quote_ident

Params = Sequence[Any]


class WarehouseError(RuntimeError):
    """The warehouse could not do what was asked; the message says what and where."""


class WarehouseBusyError(WarehouseError):
    """The DuckDB file is held by another process (DuckDB allows one process per file)."""


class Connection(ABC):
    """One open connection inside one transaction. SQL uses `%s` placeholders on both dialects."""

    dialect: ClassVar[str]
    temp_schema: ClassVar[str]  # where `create temp table` puts a table on this dialect
    # Logical column types (sources.contracts) to this dialect's type names.
    sql_types: ClassVar[dict[str, str]]

    @abstractmethod
    def execute(self, sql: str, params: Params = ()) -> None: ...

    @abstractmethod
    def fetch_all(self, sql: str, params: Params = ()) -> list[tuple]: ...

    @abstractmethod
    def read_frame(self, sql: str, params: Params = ()) -> pd.DataFrame: ...

    @abstractmethod
    def write_frame(self, schema: str, table: str, frame: pd.DataFrame) -> int:
        """Append the frame's rows to an existing table, columns matched by name; return the count."""

    @abstractmethod
    def commit(self) -> None:
        """Commit the work so far; what follows runs in a new transaction."""

    @abstractmethod
    def rollback(self) -> None:
        """Undo the work since the last commit; what follows runs in a new transaction."""

    def fetch_one(self, sql: str, params: Params = ()) -> tuple | None:
        rows = self.fetch_all(sql, params)
        return rows[0] if rows else None

    def fetch_value(self, sql: str, params: Params = ()) -> Any:
        row = self.fetch_one(sql, params)
        return row[0] if row else None

    def sql_type(self, logical_type: str) -> str:
        try:
            return self.sql_types[logical_type]
        except KeyError:
            raise WarehouseError(
                f"no {self.dialect} type for logical type {logical_type!r}"
            ) from None

    def ensure_schema(self, schema: str) -> None:
        self.execute(f"create schema if not exists {quote_ident(schema)}")

    def table_columns(self, schema: str, table: str) -> dict[str, str]:
        """Column name -> data type (lower case) of a table, in table order; empty if it is missing."""
        rows = self.fetch_all(
            "select column_name, lower(data_type) from information_schema.columns "
            "where table_schema = %s and table_name = %s order by ordinal_position",
            (schema, table),
        )
        return {name: data_type for name, data_type in rows}

    def table_exists(self, schema: str, table: str) -> bool:
        return bool(self.table_columns(schema, table))

    def add_missing_columns(self, schema: str, table: str, columns: dict[str, str]) -> list[str]:
        """Add each (name -> logical type) column the table lacks; return the names added."""
        existing = self.table_columns(schema, table)
        added = [name for name in columns if name not in existing]
        for name in added:
            self.execute(
                f"alter table {qualified(schema, table)} "
                f"add column {quote_ident(name)} {self.sql_type(columns[name])}"
            )
        return added


class Warehouse(ABC):
    dialect: ClassVar[str]

    @abstractmethod
    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection in a transaction: committed if the block succeeds, rolled back if it raises."""

    @abstractmethod
    def describe(self) -> str:
        """Where the warehouse is, for messages (never a password)."""


_PLACEHOLDER = re.compile(r"%(s|%)")


def to_qmark(sql: str) -> str:
    """Rewrite psycopg-style `%s` placeholders (and `%%` escapes) for DuckDB's `?` style."""
    return _PLACEHOLDER.sub(lambda m: "?" if m.group(1) == "s" else "%", sql)

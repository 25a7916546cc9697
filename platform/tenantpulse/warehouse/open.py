"""Open the warehouse the settings name."""

from __future__ import annotations

from tenantpulse.config import WarehouseUrl
from tenantpulse.warehouse.base import Warehouse


def open_warehouse(url: WarehouseUrl) -> Warehouse:
    if url.dialect == "duckdb":
        from tenantpulse.warehouse.duckdb_warehouse import DuckDBWarehouse

        assert url.duckdb_path is not None
        return DuckDBWarehouse(url.duckdb_path, raw_path=url.raw_path)
    from tenantpulse.warehouse.postgres_warehouse import PostgresWarehouse

    assert url.postgres_dsn is not None
    return PostgresWarehouse(url.postgres_dsn, display=str(url))

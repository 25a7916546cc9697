"""The warehouse as a Dagster resource."""

from dagster import ConfigurableResource

from tenantpulse.config import parse_warehouse_url
from tenantpulse.warehouse import Warehouse, open_warehouse


class WarehouseResource(ConfigurableResource):
    """Opens the warehouse at `url` (a duckdb:/// or postgresql:// URL, see config.py); on DuckDB
    its raw files under `raw_path` (TENANTPULSE_RAW_PATH; default: beside the file)."""

    url: str
    raw_path: str | None = None

    def open(self) -> Warehouse:
        return open_warehouse(parse_warehouse_url(self.url, self.raw_path))

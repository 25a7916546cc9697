"""The warehouse as a Dagster resource."""

from dagster import ConfigurableResource

from tenantpulse.config import parse_warehouse_url
from tenantpulse.warehouse import Warehouse, open_warehouse


class WarehouseResource(ConfigurableResource):
    """Opens the warehouse at `url` (a duckdb:/// or postgresql:// URL, see config.py)."""

    url: str

    def open(self) -> Warehouse:
        return open_warehouse(parse_warehouse_url(self.url))

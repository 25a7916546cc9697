"""The code location: Definitions assembled from defs/, one module per stage of the flow."""

from __future__ import annotations

import dagster as dg

from tenantpulse.config import Settings, load_settings
from tenantpulse.defs.jobs import jobs
from tenantpulse.defs.landing import landing_assets
from tenantpulse.defs.raw import raw_assets
from tenantpulse.defs.resources import WarehouseResource
from tenantpulse.defs.tenants import tenant_partitions_sensor


def build_definitions(settings: Settings) -> dg.Definitions:
    # DuckDB allows one writing process per file: run every step in the run's own process.
    executor = (
        dg.in_process_executor
        if settings.warehouse.dialect == "duckdb"
        else dg.multiprocess_executor
    )
    return dg.Definitions(
        assets=[*raw_assets, *landing_assets],
        jobs=jobs,
        sensors=[tenant_partitions_sensor],
        resources={"warehouse": WarehouseResource(url=settings.warehouse.url)},
        executor=executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(load_settings())

"""The raw layer: one observable source asset per stream, partitioned by tenant.

An observation records, for every tenant whose raw table exists, its row count and newest
`_airbyte_extracted_at` as the data version, so a new sync shows as a new version of that partition.
"""

from dagster import AssetKey, DataVersionsByPartition, observable_source_asset

from tenantpulse.defs.partitions import tenant_partitions
from tenantpulse.defs.resources import WarehouseResource
from tenantpulse.sources.contracts import STREAMS, StreamContract, raw_schema
from tenantpulse.tenants.registry import list_tenants
from tenantpulse.warehouse import qualified


def raw_asset_key(contract: StreamContract) -> AssetKey:
    return AssetKey(["raw", contract.source, contract.stream])


def raw_data_versions(conn, contract: StreamContract) -> dict[str, str]:
    """Tenant id -> "<rows> rows, newest <extracted_at>" for every active tenant with the table."""
    versions = {}
    for tenant in list_tenants(conn):
        if contract.source not in tenant.sources:
            continue
        version = tenant_raw_version(conn, tenant.tenant_id, contract)
        if version is not None:
            versions[tenant.tenant_id] = version
    return versions


def tenant_raw_version(conn, tenant_id: str, contract: StreamContract) -> str | None:
    """One tenant's data version of the stream; None when its raw table does not exist."""
    schema = raw_schema(tenant_id)
    if not conn.table_exists(schema, contract.raw_table):
        return None
    rows, newest = conn.fetch_one(
        f"select count(*), max(_airbyte_extracted_at) from {qualified(schema, contract.raw_table)}"
    )
    return f"{rows} rows, newest {newest.isoformat() if newest else 'none'}"


def build_raw_asset(contract: StreamContract):
    @observable_source_asset(
        key=raw_asset_key(contract),
        partitions_def=tenant_partitions,
        group_name="raw",
        description=f"Airbyte's {contract.source} `{contract.stream}` stream in each tenant's "
        f"schema: `user_<tenant>.{contract.raw_table}`.",
        metadata={
            "table": f"user_<tenant>.{contract.raw_table}",
            "primary_key": list(contract.primary_key),
        },
    )
    def _observe(warehouse: WarehouseResource) -> DataVersionsByPartition:
        with warehouse.open().connect() as conn:
            return DataVersionsByPartition(raw_data_versions(conn, contract))

    return _observe


raw_assets = [build_raw_asset(contract) for contract in STREAMS]

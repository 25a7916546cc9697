"""The raw layer: one observable source asset per stream, over every tenant's table (Postgres)
or folder of Parquet files (DuckDB) of it.

An observation reads, for every active tenant with the stream, a version of it (on Postgres its
table's row count and newest `_airbyte_extracted_at`, a few statements for all tenants; on DuckDB
its folder's modification time, one `stat`, no file opened), and records a digest of them as the
data version: a new sync of any tenant shows as a new version. The asset is not partitioned by
tenant: Dagster records an event per partition, which at thousands of tenants costs more than the
work (docs/decisions.md).
"""

import hashlib

from dagster import (
    AssetKey,
    AssetObservation,
    AssetSpec,
    DataVersion,
    ObserveResult,
    multi_observable_source_asset,
)

from tenantpulse.defs.resources import WarehouseResource
from tenantpulse.defs.schemas import column_schema, contract_schema
from tenantpulse.landing.raw_table_reads import raw_versions
from tenantpulse.sources.contracts import STREAMS, StreamContract, streams_for
from tenantpulse.tenants.registry import list_tenants
from tenantpulse.warehouse import Connection

DATA_VERSION_TAG = "dagster/data_version"


def raw_asset_key(contract: StreamContract) -> AssetKey:
    return AssetKey(["raw", contract.source, contract.stream])


def observe_stream(conn: Connection, contract: StreamContract) -> ObserveResult:
    """The stream's data version over every active tenant that has the source, and counts."""
    tenant_ids = [t.tenant_id for t in list_tenants(conn) if contract.source in t.sources]
    versions = raw_versions(conn, contract, tenant_ids)
    digest = hashlib.sha256(
        "\n".join(f"{t}: {v}" for t, v in sorted(versions.items())).encode()
    ).hexdigest()[:16]
    return ObserveResult(
        data_version=DataVersion(digest),
        metadata={
            "tenants_with_table": len(versions),
            "tenants_without_table": len(tenant_ids) - len(versions),
        },
    )


def raw_observations(conn: Connection, sources: set[str]) -> list[AssetObservation]:
    """The new data version of every stream of `sources`, as observations to log after a sync
    (an observation run would record the same)."""
    observations = []
    for contract in (c for source in sorted(sources) for c in streams_for(source)):
        observed = observe_stream(conn, contract)
        observations.append(
            AssetObservation(
                asset_key=raw_asset_key(contract),
                tags={DATA_VERSION_TAG: observed.data_version.value},
                metadata=observed.metadata,
            )
        )
    return observations


@multi_observable_source_asset(
    name="observe_raw_streams",
    specs=[
        AssetSpec(
            raw_asset_key(contract),
            group_name="raw",
            description=f"Airbyte's {contract.source} `{contract.stream}` stream in each tenant's "
            f"namespace: the table `user_<tenant>.{contract.raw_table}` (Postgres) or the Parquet "
            f"files `user_<tenant>/{contract.raw_table}/*.parquet` under the raw path (DuckDB), "
            "written by Airbyte, or locally by the source simulator. Observed, not materialized: "
            "its data version is a digest of every active tenant's version of it (row count and "
            "newest `_airbyte_extracted_at`; on DuckDB the folder's modification time).",
            # The warehouse's kind (duckdb, postgres) is added by definitions.py.
            kinds={"airbyte"},
            metadata={
                "table": f"user_<tenant>.{contract.raw_table}",
                "files": f"user_<tenant>/{contract.raw_table}/<YYYY>_<MM>_<DD>_<epoch ms>_<part>.parquet",
                "primary_key": list(contract.primary_key),
            }
            | column_schema(contract_schema(contract, landing=False)),
        )
        for contract in STREAMS
    ],
)
def observe_raw_streams(warehouse: WarehouseResource):
    """Every stream in one op: one warehouse connection (on DuckDB, opening the file reads a
    catalog that grows with every tenant's tables)."""
    with warehouse.open().connect() as conn:
        for contract in STREAMS:
            observed = observe_stream(conn, contract)
            yield ObserveResult(
                asset_key=raw_asset_key(contract),
                data_version=observed.data_version,
                metadata=observed.metadata,
            )

"""Jobs: what the demo and schedules launch."""

from dagster import AssetSelection, define_asset_job

from tenantpulse.defs.partitions import tenant_partitions

# Observe every raw stream (all tenants in one observation per stream).
observe_raw_job = define_asset_job("observe_raw", selection=AssetSelection.groups("raw"))

# Land every stream for the selected tenant partitions, many tenants in one run.
ingest_job = define_asset_job(
    "ingest", selection=AssetSelection.groups("landing"), partitions_def=tenant_partitions
)

jobs = [observe_raw_job, ingest_job]

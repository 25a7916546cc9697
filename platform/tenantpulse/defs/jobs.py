"""Jobs: what the demo, the CLI and schedules launch."""

from dagster import AssetSelection, define_asset_job

# Observe every raw stream (one observation per stream covers all tenants).
observe_raw_job = define_asset_job(
    "observe_raw", selection=AssetSelection.groups("raw", include_sources=True)
)

# Land every stream for a range of tenant partitions: many tenants in one run.
ingest_job = define_asset_job("ingest", selection=AssetSelection.groups("landing"))

jobs = [observe_raw_job, ingest_job]

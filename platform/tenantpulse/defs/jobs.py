"""Jobs: what the pipeline, the CLI and schedules launch, one per stage of the flow."""

from dagster import AssetSelection, define_asset_job


def build_jobs(dbt_assets: list, analysis, insights, action_log) -> list:
    dbt_views, dbt_daily, dbt_tables = dbt_assets
    return [
        # Observe every raw stream (one observation per stream covers all tenants).
        define_asset_job(
            "observe_raw", selection=AssetSelection.groups("raw", include_sources=True)
        ),
        # Land every stream for every active tenant (or those the run config names).
        define_asset_job("ingest", selection=AssetSelection.groups("landing")),
        # dbt: the views, the daily marts over a range of days, then the mart tables.
        define_asset_job("transform_views", selection=AssetSelection.assets(dbt_views)),
        define_asset_job("transform_daily", selection=AssetSelection.assets(dbt_daily)),
        define_asset_job("transform_tables", selection=AssetSelection.assets(dbt_tables)),
        # Patterns, health, churn risk and recommendations over a range of days, all tenants.
        define_asset_job("analyse", selection=AssetSelection.assets(analysis)),
        # Strengths, improvements and recommendation wording, grounded in each tenant's facts.
        define_asset_job("write_insights", selection=AssetSelection.assets(insights)),
        # The playbooks over one analysed day: what fires, sent once (the actions sensor's job).
        define_asset_job("act", selection=AssetSelection.assets(action_log)),
    ]

"""The code location: Definitions assembled from defs/, one module per stage of the flow."""

import datetime as dt

import dagster as dg
from dagster_dbt import DbtProject

from tenantpulse.actions.playbooks import with_checked_playbooks
from tenantpulse.config import Settings, load_settings
from tenantpulse.defs.actions import build_actions_defs
from tenantpulse.defs.analysis import build_analysis_assets, build_churn_model_defs
from tenantpulse.defs.connect import build_connect_sensors
from tenantpulse.defs.dbt import (
    TenantpulseDbtCliResource,
    build_dbt_assets,
    daily_dbt_asset_keys,
)
from tenantpulse.defs.flow import build_flow_jobs, build_flow_sensors
from tenantpulse.defs.insights import build_insights_asset
from tenantpulse.defs.landing import land
from tenantpulse.defs.raw import observe_raw_streams
from tenantpulse.defs.resources import WarehouseResource
from tenantpulse.defs.schemas import with_warehouse_kind
from tenantpulse.defs.tenants import tenant_partitions_sensor
from tenantpulse.transform.dbt_cli import (
    DBT_PROJECT_DIR,
    dbt_executable,
    prepare_manifest,
    target_path,
)


def daily_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    # end_offset=1: today's partition exists, so the newest data is built the day it lands.
    # end_date (exclusive) stops the partitions at TENANTPULSE_DAILY_PARTITIONS_END when set.
    end = settings.daily_partitions_end
    return dg.DailyPartitionsDefinition(
        start_date=settings.daily_partitions_start.isoformat(),
        end_date=(end + dt.timedelta(days=1)).isoformat() if end else None,
        end_offset=1,
    )


def build_definitions(settings: Settings) -> dg.Definitions:
    prepare_manifest(settings)  # `dbt parse` when the project is newer than its manifest
    dbt_project = DbtProject(
        project_dir=DBT_PROJECT_DIR,
        profiles_dir=DBT_PROJECT_DIR,
        target=settings.warehouse.dialect,
        target_path=target_path(settings.warehouse),
    )
    days = daily_partitions(settings)
    dbt_assets = build_dbt_assets(dbt_project, days, settings)
    analysis = build_analysis_assets(days)
    churn_model, churn_model_job, churn_model_schedule = build_churn_model_defs()
    insights = build_insights_asset(days, settings.llm)
    action_log, action_sensors = build_actions_defs(settings, days)
    jobs = build_flow_jobs(dbt_assets, analysis, insights, action_log)
    flow_sensors, flow_schedules = build_flow_sensors(
        settings, jobs, daily_dbt_asset_keys(dbt_assets), days
    )
    airbyte = _airbyte_defs(settings)
    return dg.Definitions(
        assets=[
            # dagster-dbt gives the dbt assets their adapter's kind; these get the same.
            *with_warehouse_kind(
                [observe_raw_streams, land, churn_model, analysis, insights, action_log],
                settings.warehouse.dialect,
            ),
            *dbt_assets,
            *airbyte["assets"],
        ],
        jobs=[*jobs, churn_model_job, *airbyte["jobs"]],
        sensors=[
            *flow_sensors,
            tenant_partitions_sensor,
            *action_sensors,
            *build_connect_sensors(settings),
            *airbyte["sensors"],
        ],
        schedules=[*flow_schedules, churn_model_schedule],
        resources={
            "warehouse": WarehouseResource(
                url=settings.warehouse.url,
                raw_path=str(settings.warehouse.raw_path) if settings.warehouse.raw_path else None,
            ),
            "dbt": TenantpulseDbtCliResource(
                project_dir=dbt_project, dbt_executable=dbt_executable()
            ),
        }
        | _llm_resources(settings)
        | airbyte["resources"],
        # Every step in the run's own process, on both warehouses. DuckDB allows one writing process
        # per file; and each job of the flow is a chain of dependent steps, so a process per step
        # (the multiprocess executor) ran nothing in parallel and cost a process start per run, which
        # imports the code location before any work: about 3 s a run (docs/decisions.md, 2026-12-07).
        executor=dg.in_process_executor,
    )


def _airbyte_defs(settings: Settings) -> dict:
    """Airbyte mode's sync step, job, sensor and resource; nothing in local (simulator) mode."""
    if settings.airbyte is None:
        return {"assets": [], "jobs": [], "sensors": [], "resources": {}}
    from tenantpulse.defs.airbyte import build_airbyte_defs

    return build_airbyte_defs(settings.airbyte)


def _llm_resources(settings: Settings) -> dict:
    if not settings.llm.enabled:
        return {}
    # Imported only here: the openai package takes about 0.5 s to import, in every process that
    # loads the code location (code server, each run), and most deployments write with templates.
    from dagster_openai import OpenAIResource

    # EnvVar: the key is read when a run starts and never shown in the UI's resource config.
    return {
        "openai": OpenAIResource(
            api_key=dg.EnvVar("OPENAI_API_KEY"), base_url=settings.llm.base_url
        )
    }


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(with_checked_playbooks(load_settings()))

"""Running one of the flow's jobs in the test's process, for tests about what a stage does rather
than how the instance chains the stages (tests/test_demo.py and
tests/test_deployment_processes.py follow real flows through a daemon)."""

from __future__ import annotations

import datetime as dt
import decimal

import dagster as dg
import pandas as pd

from tenantpulse.definitions import build_definitions
from tenantpulse.warehouse import qualified


def run_job(
    settings,
    instance: dg.DagsterInstance,
    job_name: str,
    run_config: dict | None = None,
    tags: dict | None = None,
    partition_key: str | None = None,
) -> dg.ExecuteInProcessResult:
    job = build_definitions(settings).resolve_job_def(job_name)
    return job.execute_in_process(
        instance=instance,
        run_config=run_config or {},
        tags=tags,
        partition_key=partition_key,
        raise_on_error=False,
    )


def memory_instance() -> dg.DagsterInstance:
    """A Dagster instance held in memory, for runs in the test's process whose instance nothing
    else reads (no daemon, no second process): the same event log and run storage as the
    instance under DAGSTER_HOME, without writing each event to its SQLite files (6.5 ms of CPU an
    event; an in-process flow of three tenants writes about 1,600, a third of its time)."""
    return dg.DagsterInstance.ephemeral()


def land(settings, instance, tenant_ids: list[str] | None = None) -> dg.ExecuteInProcessResult:
    from tenantpulse.defs.landing import landing_run_config

    return run_job(settings, instance, "land_job", landing_run_config(tenant_ids))


def step_errors(result: dg.ExecuteInProcessResult) -> str:
    return "; ".join(
        f"{e.step_key}: {e.step_failure_data.error.message}"
        for e in result.all_events
        if e.is_step_failure and e.step_failure_data.error
    )


def run_flow_in_process(settings, instance, until: str | None = None) -> list:
    """A flow's runs one after the other in the test's process, each chosen by the same function
    `flow_sensor` uses (its window, config and tags): for tests about what the stages compute,
    without a daemon's start-up. Returns each run's result; stops at a failure."""
    from tenantpulse import flow
    from tenantpulse.defs.flow import flow_tags, next_request

    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    daily = [
        k
        for k in defs.resolve_job_def("dbt_job").asset_layer.selected_asset_keys
        if graph.get(k).partitions_def is not None
    ]
    days = defs.resolve_job_def("analyse_job").partitions_def
    recommendations = dg.AssetKey(["analysis", "recommendations"])
    job_name, run_config, partition_key = flow.LAND.job, {}, None
    tags = flow_tags("in-process", "cli", flow.DEFAULT_LOOKBACK_DAYS, until)
    results = []
    while True:
        result = defs.resolve_job_def(job_name).execute_in_process(
            instance=instance,
            run_config=run_config,
            tags=tags,
            partition_key=partition_key,
            raise_on_error=False,
        )
        results.append(result)
        if not result.success:
            return results
        request = next_request(
            instance, instance.get_run_by_id(result.run_id), daily, days, recommendations
        )
        if isinstance(request, str):
            return results
        job_name, run_config = request.job_name, request.run_config
        tags, partition_key = dict(request.tags), request.partition_key


# Columns that say when a row was written, not what the flow computed (the simulator records
# its syncs at the wall clock's time: last_synced_at).
WRITTEN_AT = {
    "created_at",
    "updated_at",
    "sent_at",
    "claimed_at",
    "claimed_by",
    "generated_at",
    "last_synced_at",
}


def _plain(value):
    if pd.isna(value):  # NULL read as None, NaN or NaT
        return None
    if isinstance(value, (float, decimal.Decimal)):
        return round(float(value), 6)
    if isinstance(value, dt.datetime) and value.tzinfo:
        return value.astimezone(dt.UTC)
    return value


def tenant_rows(conn, tenant_id: str) -> dict[str, list[tuple]]:
    """The tenant's rows in every mart, every analysis table and the action log, sorted, without
    the columns saying when a row was written."""
    tables = conn.fetch_all(
        "select table_schema, table_name from information_schema.columns"
        " where table_schema in ('analytics', 'analysis') and column_name = 'tenant_id'"
        " order by 1, 2"
    )
    rows = {}
    for schema, table in [*tables, ("ops", "action_log")]:
        frame = conn.read_frame(
            f"select * from {qualified(schema, table)} where tenant_id = %s", (tenant_id,)
        )
        frame = frame.drop(columns=[c for c in frame.columns if c in WRITTEN_AT])
        rows[f"{schema}.{table}"] = sorted(
            (tuple(_plain(v) for v in row) for row in frame.itertuples(index=False)), key=repr
        )
    return rows


def failed_checks(settings, instance) -> dict[dg.AssetCheckKey, dg.AssetCheckEvaluation]:
    keys = list(build_definitions(settings).resolve_asset_graph().asset_check_keys)
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    evaluations = {
        key: record.event.dagster_event.event_specific_data
        for key, record in latest.items()
        if record.event and record.event.dagster_event
    }
    return {key: e for key, e in evaluations.items() if not e.passed}

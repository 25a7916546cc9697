"""How the Dagster instance runs the flow by itself: the jobs of the stages, the sensor that lands
new syncs, the run-status sensor that launches each next stage with its window, and the daily
schedule that rolls the partitions forward on a day without syncs. The decisions are in
tenantpulse.flow; this module reads the instance's state for them."""

from __future__ import annotations

import datetime as dt
import hashlib

import dagster as dg

from tenantpulse import flow
from tenantpulse.actions.execute import day_to_act_on
from tenantpulse.config import FLOW_DAILY, Settings
from tenantpulse.defs.dbt import dbt_run_config
from tenantpulse.defs.landing import landing_run_config, landing_run_tenants
from tenantpulse.landing.merge import LANDING_SCHEMA
from tenantpulse.sources.sync_history import syncs_recorded_since
from tenantpulse.warehouse import WarehouseBusyError, open_warehouse

NEW_SYNCS_FIRST_LOOKBACK = dt.timedelta(days=1)  # how far back a new sensor looks for syncs
# A sync committed late can carry a recorded_at older than the newest one seen: look back this far
# again each tick; syncs a land run has covered since are not landed twice.
NEW_SYNCS_OVERLAP = dt.timedelta(minutes=10)
IN_PROGRESS = [
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def build_flow_jobs(dbt_assets: list, analysis, insights, action_log) -> list:
    return [
        dg.define_asset_job(
            "observe_raw_job",
            selection=dg.AssetSelection.groups("raw", include_sources=True),
            description="Observe every raw stream: each tenant's row count and newest sync, as "
            "the stream's data version. Not part of the flow; run it to refresh the raw assets.",
        ),
        dg.define_asset_job(
            flow.LAND.job,
            selection=dg.AssetSelection.groups("landing"),
            description="Land every active tenant's new raw rows (or the tenants the run config "
            "names) into the landing tables. Starts a flow.",
        ),
        dg.define_asset_job(
            flow.DBT.job,
            selection=dg.AssetSelection.assets(*dbt_assets),
            description="dbt: the staging views and intermediate tables with their tests, the daily "
            "incremental marts over a range of days, then the mart tables, in one run.",
        ),
        dg.define_asset_job(
            flow.ANALYSE.job,
            selection=dg.AssetSelection.assets(analysis, insights),
            description="Patterns, health, churn risk and recommendations over a range of days, "
            "all tenants at once, then the grounded insights written from them.",
        ),
        dg.define_asset_job(
            flow.ACT.job,
            selection=dg.AssetSelection.assets(action_log),
            description="The playbooks over one analysed day: what fires, sent once.",
        ),
    ]


def warehouse_in_use(dialect: str, instance: dg.DagsterInstance) -> bool:
    """On DuckDB a run holds the file while it runs: a sensor opening it then would wait, or
    make the run's dbt step fail to open it."""
    return dialect == "duckdb" and bool(
        instance.get_run_ids(dg.RunsFilter(statuses=IN_PROGRESS), limit=1)
    )


def flow_tags(flow_id: str, trigger: str, lookback_days: int, until: str | None = None) -> dict:
    tags = {
        flow.FLOW_TAG: flow_id,
        flow.TRIGGER_TAG: trigger,
        flow.LOOKBACK_TAG: str(lookback_days),
    }
    return tags | ({flow.UNTIL_TAG: until} if until else {})


def land_request(
    tenant_ids: list[str] | None, tags: dict, run_key: str | None = None
) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=run_key,
        job_name=flow.LAND.job,
        run_config=landing_run_config(tenant_ids),
        tags=tags,
    )


def covered_by_land_runs(instance: dg.DagsterInstance, syncs: list) -> set[tuple[str, str]]:
    """(connection_id, job_id) of the syncs a land run created after them covers: one landing
    every tenant, or naming theirs."""
    if not syncs:
        return set()
    runs = instance.get_run_records(
        dg.RunsFilter(
            job_name=flow.LAND.job,
            created_after=min(s.recorded_at for s in syncs),
            statuses=[s for s in dg.DagsterRunStatus if s != dg.DagsterRunStatus.CANCELED],
        )
    )
    covered = set()
    for sync in syncs:
        for record in runs:
            chosen = landing_run_tenants(record.dagster_run.run_config)
            if record.create_timestamp > sync.recorded_at and (
                not chosen or sync.tenant_id in chosen
            ):
                covered.add((sync.connection_id, sync.job_id))
                break
    return covered


def build_flow_sensors(
    settings: Settings,
    jobs: list,
    daily_asset_keys: list[dg.AssetKey],
    days: dg.DailyPartitionsDefinition,
) -> tuple[list, list]:
    """(sensors, schedules) of the flow."""
    recommendations = dg.AssetKey(["analysis", "recommendations"])
    stage_jobs = [job for job in jobs if job.name in flow.STAGE_BY_JOB]

    @dg.sensor(
        name="new_syncs_sensor",
        job_name=flow.LAND.job,
        minimum_interval_seconds=15,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Starts a flow for each batch of successful syncs recorded in "
        "ops.airbyte_sync_history (the simulator's, or Airbyte's through the jobs sensor and "
        "the sync step): a land run for their tenants, followed by the rest of the flow unless "
        "TENANTPULSE_FLOW_AFTER_SYNCS=daily (then the daily schedule runs it).",
    )
    def new_syncs_sensor(context: dg.SensorEvaluationContext):
        if warehouse_in_use(settings.warehouse.dialect, context.instance):
            return dg.SkipReason("a run is using the DuckDB warehouse; will look after it")
        now = dt.datetime.now(dt.UTC)
        seen = dt.datetime.fromisoformat(context.cursor) if context.cursor else None
        since = seen - NEW_SYNCS_OVERLAP if seen else now - NEW_SYNCS_FIRST_LOOKBACK
        try:
            with open_warehouse(settings.warehouse).connect() as conn:
                syncs = syncs_recorded_since(conn, since)
        except WarehouseBusyError as busy:
            return dg.SkipReason(f"warehouse busy, will retry: {busy}")
        cursor = max([s.recorded_at for s in syncs], default=seen or since).isoformat()
        covered = covered_by_land_runs(context.instance, syncs)
        pending = [s for s in syncs if (s.connection_id, s.job_id) not in covered]
        if not pending:
            return dg.SensorResult(skip_reason="no new syncs to land", cursor=cursor)
        digest = hashlib.sha256(
            "\n".join(f"{s.connection_id}/{s.job_id}" for s in pending).encode()
        ).hexdigest()[:16]
        tenants = sorted({s.tenant_id for s in pending})
        context.log.info(f"{len(pending)} new syncs of {len(tenants)} tenants: landing them")
        until = flow.LAND.name if settings.flow_after_syncs == FLOW_DAILY else None
        request = land_request(
            tenants,
            flow_tags(f"syncs-{digest}", "new_syncs", flow.DEFAULT_LOOKBACK_DAYS, until),
            run_key=f"syncs-{digest}",
        )
        return dg.SensorResult(run_requests=[request], cursor=cursor)

    @dg.run_status_sensor(
        name="flow_sensor",
        run_status=dg.DagsterRunStatus.SUCCESS,
        monitored_jobs=stage_jobs,
        request_jobs=stage_jobs,
        # The sensor daemon's loop comes round every 5 s; an interval of 5 s made the sensor skip
        # every other loop (the tick started a moment after the loop), up to 10 s between stages.
        minimum_interval_seconds=1,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Launches the next stage of a flow when a stage's run succeeds, with the "
        "window of days it covers; tags the finished run with what it launched "
        f"({flow.NEXT_TAG}).",
    )
    def flow_sensor(context: dg.RunStatusSensorContext):
        run = context.dagster_run
        if flow.FLOW_TAG not in run.tags:
            return dg.SkipReason(f"run {run.run_id} is not part of a flow (no {flow.FLOW_TAG})")
        request = next_request(context.instance, run, daily_asset_keys, days, recommendations)
        decided = request.job_name if isinstance(request, dg.RunRequest) else flow.END + request
        context.instance.add_run_tags(run.run_id, {flow.NEXT_TAG: decided})
        if isinstance(request, str):
            return dg.SkipReason(f"flow {run.tags[flow.FLOW_TAG]} ends: {request}")
        return request

    @dg.schedule(
        name="daily_flow_schedule",
        cron_schedule="30 0 * * *",
        execution_timezone="UTC",
        job_name=flow.LAND.job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Each day at 00:30 UTC, a flow over every tenant, so the new day's "
        "partitions are built even when no sync arrives.",
    )
    def daily_flow_schedule(context: dg.ScheduleEvaluationContext):
        day = context.scheduled_execution_time.date().isoformat()
        return land_request(
            None, flow_tags(f"daily-{day}", "schedule", flow.DEFAULT_LOOKBACK_DAYS), run_key=day
        )

    return [new_syncs_sensor, flow_sensor], [daily_flow_schedule]


def next_request(
    instance: dg.DagsterInstance,
    run: dg.DagsterRun,
    daily_asset_keys: list[dg.AssetKey],
    days: dg.DailyPartitionsDefinition,
    recommendations: dg.AssetKey,
) -> dg.RunRequest | str:
    """The run that follows `run` in its flow, or why the flow ends there."""
    tags = run.tags
    finished = flow.STAGE_BY_JOB[run.job_name]
    if tags.get(flow.UNTIL_TAG) == finished.name:
        return f"stopped after {finished.name} as asked"
    stage = flow.next_stage(run.job_name)
    if stage is None:
        return "the flow is complete"
    if (
        finished is flow.LAND
        and tags.get(flow.TRIGGER_TAG) == "new_syncs"
        and tags.get(flow.ROWS_LANDED_TAG) == "0"
    ):
        return "nothing new was landed"
    lookback = flow.lookback_days(tags)
    newest = flow.parse_day(tags.get(flow.NEWEST_LANDED_TAG))
    carried = {k: tags[k] for k in flow.PROPAGATED_TAGS if k in tags}
    run_key = f"{tags[flow.FLOW_TAG]}:{run.run_id}:{stage.job}"
    run_config: dict = {}
    if stage in (flow.DBT, flow.ANALYSE):
        # The daily marts are built whole the first time, and over every day for the tenants
        # whose history was just landed; the analysis only needs the recent days (each day reads
        # the whole history up to it).
        first_build = stage is flow.DBT and not any(
            instance.get_materialized_partitions(key) for key in daily_asset_keys
        )
        history = flow.history_tenants(tags) if stage is flow.DBT else ()
        window = flow.daily_window(
            days.get_partition_keys(), first_build, newest, lookback, history
        )
        carried |= {flow.PARTITION_RANGE_START: window.first, flow.PARTITION_RANGE_END: window.last}
    if stage is flow.DBT:
        since = flow.tests_since(landed_since_tests_passed(instance), newest)
        # After a land of some tenants (a batch of syncs), only the tenants landed since their
        # last build are rebuilt; after a land of every tenant, or on the first build, all.
        changed_only = not first_build and bool(landing_run_tenants(run.run_config))
        run_config = dbt_run_config(since, window.history_tenants, window.recent_from, changed_only)
    if stage is flow.ACT:
        # Actions are for the present: the newest analysed day with data. The act run itself
        # decides what fires and what is done already (ops.action_log).
        day = day_to_act_on(list(instance.get_materialized_partitions(recommendations)), newest)
        if day is None:
            return "no analysed day to act on"
        return dg.RunRequest(
            run_key=run_key, job_name=stage.job, partition_key=day.isoformat(), tags=carried
        )
    return dg.RunRequest(run_key=run_key, job_name=stage.job, run_config=run_config, tags=carried)


# Run times come from the clocks of the machines that ran them: a land run that ended this close
# before a dbt_job run started counts as after it.
CLOCK_MARGIN_SECONDS = 1.0
FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


def landed_since_tests_passed(instance: dg.DagsterInstance) -> list[str | None] | None:
    """What the land runs that ended after the latest finished dbt_job run started say they
    merged (flow.tests_since); None when that run did not succeed, or there is none. Rows a land
    run merged before then were there for that run's tests. A land run still going is left to
    the next dbt_job run, which starts after it ends; a dbt_job run queued or going (another
    flow's) is not one whose tests passed yet."""
    latest = instance.get_run_records(
        dg.RunsFilter(job_name=flow.DBT.job, statuses=FINISHED), limit=1
    )
    if not latest or latest[0].dagster_run.status != dg.DagsterRunStatus.SUCCESS:
        return None
    tested_from = (latest[0].start_time or 0.0) - CLOCK_MARGIN_SECONDS
    finished = instance.get_run_records(
        dg.RunsFilter(
            statuses=FINISHED,
            # Kept to the second in the run storage; the end time below is exact.
            updated_after=dt.datetime.fromtimestamp(tested_from - 60, dt.UTC),
        )
    )
    return [
        r.dagster_run.tags.get(flow.OLDEST_SYNC_LANDED_TAG)
        for r in finished
        if _lands(r.dagster_run) and (r.end_time is None or r.end_time > tested_from)
    ]


def _lands(run: dg.DagsterRun) -> bool:
    """A run of land_job, or of landing assets picked in the UI."""
    selected = run.asset_selection or ()
    return run.job_name == flow.LAND.job or any(key.path[0] == LANDING_SCHEMA for key in selected)

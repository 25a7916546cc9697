"""Time the simulation and each stage of the flow, through the product's own code paths.

The simulation is `run_simulation` (what `tenantpulse simulate` runs). The flow is `run_flow` (what
`tenantpulse run` and the demo run): the land run launched into the Dagster instance's queue, and
each next stage's run launched by the daemon's flow_sensor, over all tenants; the UI shows the
same runs. For every stage we keep the wall clock of its run and the time spent inside its Dagster
steps (from the run's event log), so Dagster's fixed cost per run is the difference, and the rows
the stage processed.
"""

from __future__ import annotations

import resource
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import dagster as dg

from bench.memory import TreePeak
from tenantpulse import flow
from tenantpulse.config import Settings
from tenantpulse.flow_runs import (
    TERMINAL,
    StageRun,
    dagster_instance,
    launch_job,
    run_failure,
    run_flow,
    running_daemon,
)
from tenantpulse.simulator.bulk import run_bulk_simulation
from tenantpulse.simulator.run import ensure_simulator_tables, run_simulation
from tenantpulse.sources.sync_history import ensure_sync_history
from tenantpulse.tenants.registry import list_tenants
from tenantpulse.warehouse import Connection, open_warehouse

DAILY_MARTS = (
    "revenue_daily",
    "developer_activity",
    "website_analytics",
    "website_traffic",
    "tenant_daily_metrics",
)
MART_TABLES = (
    "revenue_analytics",
    "unified_customers",
    "developer_activity_monthly",
    "user_dashboard_summary",
)
STEP_EVENTS = {
    dg.DagsterEventType.STEP_START,
    dg.DagsterEventType.STEP_SUCCESS,
    dg.DagsterEventType.STEP_FAILURE,
}


# DuckDB takes one writing process: simulated here, 100 tenants per `run_simulation` call so
# that a progress line is printed between calls.
DUCKDB_TENANTS_PER_CALL = 100


def simulate(
    settings: Settings,
    workers: int,
    tenant_ids: list[str] | None = None,
    bulk_templates: int | None = None,
) -> dict:
    """One sync of each registered tenant's sources (of `tenant_ids`, default all) through
    `run_simulation`: DuckDB in this process (one writing process per file), Postgres split over
    `workers` processes. With `bulk_templates`, the simulator's bulk mode instead, in one call
    (each template's sync generated once for all its tenants; docs/simulator.md)."""
    with open_warehouse(settings.warehouse).connect() as conn:
        tenants = list_tenants(conn)
        if tenant_ids is not None:
            chosen = set(tenant_ids)
            tenants = [t for t in tenants if t.tenant_id in chosen]
        # Made here, not by each worker's first sync: concurrent `create table if not exists` of
        # the same table fails in Postgres (a unique violation on pg_type).
        ensure_simulator_tables(conn)
        ensure_sync_history(conn)
    started = time.perf_counter()
    if bulk_templates:
        workers = 1 if settings.warehouse.dialect == "duckdb" else workers
        syncs = run_bulk_simulation(
            open_warehouse(settings.warehouse),
            tenants,
            settings.simulator,
            workers=workers,
            templates_per_profile=bulk_templates,
            show_progress=False,
        )
        counts = [(sum(s.records for s in syncs), sum(1 for s in syncs if s.error))]
        method = f"run_bulk_simulation, {bulk_templates} templates a profile, {workers} process(es)"
    elif settings.warehouse.dialect == "duckdb":
        counts = [_simulate_in_batches(settings, tenants)]
        workers = 1
        method = f"run_simulation, {DUCKDB_TENANTS_PER_CALL} tenants per call"
    elif workers <= 1:
        counts = [_simulate_tenants(settings, tenants)]
        method = "run_simulation"
    else:
        shares = [tenants[i::workers] for i in range(workers)]
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            counts = list(pool.map(_simulate_tenants, [settings] * workers, shares))
        method = f"run_simulation in {workers} processes"
    seconds = time.perf_counter() - started
    rows = sum(c[0] for c in counts)
    failed = sum(c[1] for c in counts)
    return {
        "seconds": seconds,
        "rows": rows,
        "unit": "raw rows written",
        "workers": workers,
        "method": method,
        "syncs_failed": failed,
        "success": failed == 0,
        **peak_memory(),
    }


def _simulate_in_batches(settings: Settings, tenants: list) -> tuple[int, int]:
    rows = failed = 0
    for first in range(0, len(tenants), DUCKDB_TENANTS_PER_CALL):
        batch_rows, batch_failed = _simulate_tenants(
            settings, tenants[first : first + DUCKDB_TENANTS_PER_CALL]
        )
        rows, failed = rows + batch_rows, failed + batch_failed
        done = min(first + DUCKDB_TENANTS_PER_CALL, len(tenants))
        print(f"  simulate: {done}/{len(tenants)} tenants, {rows:,} raw rows", flush=True)
    return rows, failed


def _simulate_tenants(settings: Settings, tenants: list) -> tuple[int, int]:
    syncs = run_simulation(
        open_warehouse(settings.warehouse), tenants, settings.simulator, show_progress=False
    )
    return sum(s.records for s in syncs), sum(1 for s in syncs if s.error)


# A sync at 00:00 of day D carries the events of day D-1: one day of lookback rebuilds that day
# (and D, empty until the next sync). `tenantpulse run` defaults to 3, for late refunds and GA.
LOOKBACK_DAYS = 1


def time_flow(settings: Settings, phase: str, on_stage) -> list[dict]:
    """`run_flow` over every tenant, one day of lookback (the first build of the daily marts
    covers every day); `on_stage(record)` is called with each stage's record, which has the peak
    memory of the bench's process tree over the whole flow (`bench.memory.TreePeak`)."""
    with TreePeak() as peak:
        return follow_flow(
            settings,
            phase,
            lambda record: on_stage(record | peak.record()),
            lookback_days=LOOKBACK_DAYS,
        )


STEADY_STATE = "steady state"


def time_steady_state(settings: Settings, on_stage) -> list[dict]:
    """`run_flow` up to dbt with no lookback: the staging tests check only the rows of the newest
    sync day (a dbt run passed today), what a day costs once the lookback days have passed since
    the first build (the day after it, the tests' window still holds the whole first sync)."""
    return follow_flow(settings, STEADY_STATE, on_stage, lookback_days=0, until=flow.DBT.name)


# A stage at 10,000 tenants, or on a loaded machine, can take longer than the CLI's default wait.
STAGE_TIMEOUT_SECONDS = 3 * 3600.0


def follow_flow(settings: Settings, phase: str, on_stage, **run_flow_args) -> list[dict]:
    """`run_flow` through the settings' instance, then a record of each stage it ran, also when
    it stopped with an error. The records are made once the flow has ended: counting a stage's
    rows opens the warehouse, which on DuckDB the next stage's run may be holding."""
    instance = dagster_instance(settings)
    stages: list[StageRun] = []
    try:
        run_flow(
            settings,
            instance,
            echo=lambda line: print(f"  {phase}: {line}", flush=True),
            on_stage=stages.append,
            stage_timeout_seconds=STAGE_TIMEOUT_SECONDS,
            **run_flow_args,
        )
    finally:
        records = [stage_record(settings, instance, phase, stage) for stage in stages]
        for record in records:
            on_stage(record)
    return records


OBSERVE_JOB = "observe_raw_job"
BENCH_RUN_TAG = "tenantpulse/bench_run"
OBSERVE_TIMEOUT_SECONDS = 3600.0


def time_observe(settings: Settings, instance: dg.DagsterInstance) -> StageRun:
    """A run of observe_raw_job (not part of the flow) launched into the instance's queue, as from
    the UI, and waited for, with a daemon to dequeue it (the running one, else one started)."""
    tags = {BENCH_RUN_TAG: uuid.uuid4().hex[:12]}
    deadline = time.monotonic() + OBSERVE_TIMEOUT_SECONDS
    with running_daemon(settings, instance, echo=lambda line: None):
        launch_job(settings, OBSERVE_JOB, {}, tags)
        while not (runs := instance.get_runs(dg.RunsFilter(tags=tags))) or (
            runs[0].status not in TERMINAL
        ):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{OBSERVE_JOB} unfinished after {OBSERVE_TIMEOUT_SECONDS:.0f}s")
            time.sleep(0.5)
    run = runs[0]
    [record] = instance.get_run_records(dg.RunsFilter(run_ids=[run.run_id]))
    success = run.status == dg.DagsterRunStatus.SUCCESS
    return StageRun(
        "observe",
        (run.run_id,),
        success,
        None if success else run_failure(instance, run.run_id),
        (record.end_time or 0.0) - (record.start_time or 0.0),
        "all tenants",
    )


def stage_record(settings: Settings, instance, phase: str, stage: StageRun) -> dict:
    step_seconds = sum(_step_seconds(instance, run_id) for run_id in stage.run_ids)
    metadata = _materialization_metadata(instance, stage.run_ids)
    first_day = rebuilt = None
    if stage.run_ids:
        run = instance.get_run_by_id(stage.run_ids[0])
        first_day = run.tags.get(flow.PARTITION_RANGE_START) if run else None
        rebuilt = run.tags.get(flow.TENANTS_REBUILT_TAG) if run else None
    with open_warehouse(settings.warehouse).connect() as conn:
        rows, unit = stage_rows(conn, stage.stage, metadata, first_day)
    if rebuilt and rebuilt != flow.ALL_TENANTS:
        unit += f"; {rebuilt} tenants rebuilt"
    return {
        "phase": phase,
        "stage": stage.stage,
        "seconds": round(stage.seconds, 3),
        "step_seconds": round(step_seconds, 3),
        "dagster_overhead_seconds": round(max(stage.seconds - step_seconds, 0.0), 3),
        "partitions": stage.partitions,
        "runs": len(stage.run_ids),
        "rows": rows,
        "unit": unit,
        "rows_per_second": round(rows / stage.seconds) if rows and stage.seconds else None,
        "success": stage.success,
        "error": (stage.error or "")[:2000] or None,
        **peak_memory(),
    }


def peak_memory() -> dict:
    """Peak resident memory so far of this process and of its largest finished child (on the
    direct path: the work, and dbt; on the Dagster path the runs are the daemon's processes,
    counted only once the daemon is stopped, at the end of a flow)."""
    return {
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "peak_child_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024,
    }


def stage_rows(
    conn: Connection, stage: str, metadata: list[dict], first_day: str | None = None
) -> tuple[int, str]:
    """The rows a stage processed, in the unit that fits it; `metadata`: the stage's
    materializations' metadata (or, without Dagster, the same counts); `first_day`: the first day
    of the daily window the stage rebuilt (None: every day)."""

    def total(key: str) -> int:
        return int(sum(m.get(key, 0) or 0 for m in metadata))

    if stage == "observe":
        return count_rows(conn, "ops", "tenants"), "tenants observed (17 streams each)"
    if stage == flow.LAND.name:
        return total("rows_read"), "raw rows read"
    if stage == flow.DBT.name:
        where = f"date >= cast('{first_day}' as date)" if first_day else "true"
        daily = sum(count_rows(conn, "analytics", m, where) for m in DAILY_MARTS)
        tables = sum(count_rows(conn, "analytics", m) for m in MART_TABLES)
        return daily + tables, "mart rows built (daily marts in the window, mart tables)"
    if stage == flow.ANALYSE.name:
        # Each analysis table's materialization repeats the run's count.
        read = max((m.get("history_rows_read", 0) or 0 for m in metadata), default=0)
        return int(read), "daily metric rows read"
    if stage == flow.ACT.name:
        return total("tenants_evaluated"), "tenant documents evaluated"
    return 0, ""


def count_rows(conn: Connection, schema: str, table: str, where: str = "true") -> int:
    if not conn.table_exists(schema, table):
        return 0
    return int(conn.fetch_value(f"select count(*) from {schema}.{table} where {where}"))


def _step_seconds(instance, run_id: str) -> float:
    started: dict[str, float] = {}
    seconds = 0.0
    for entry in instance.all_logs(run_id, of_type=STEP_EVENTS):
        event = entry.dagster_event
        if event.event_type == dg.DagsterEventType.STEP_START:
            started[event.step_key] = entry.timestamp
        elif event.step_key in started:
            seconds += entry.timestamp - started.pop(event.step_key)
    return seconds


def _materialization_metadata(instance, run_ids: tuple[str, ...]) -> list[dict]:
    """The metadata of each asset materialized by these runs, once per asset and run (a run over
    many partitions records the same metadata once per partition)."""
    found = {}
    for run_id in run_ids:
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
            materialization = entry.dagster_event.event_specific_data.materialization
            metadata = {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
            found.setdefault((run_id, materialization.asset_key), metadata)
    return list(found.values())

"""Time the simulation and each stage of the flow, through the product's own code paths.

The simulation is `run_simulation` (what `tenantpulse simulate` runs). The flow is `run_flow` (what
`tenantpulse run` and the demo run): one Dagster run per stage over all tenants. For every stage we
keep the wall clock of its runs and the time spent inside their Dagster steps (from the run's
event log), so Dagster's fixed cost per run is the difference, and the rows the stage processed.
"""

from __future__ import annotations

import resource
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import dagster as dg

from tenantpulse.config import Settings
from tenantpulse.definitions import build_definitions
from tenantpulse.defs.dbt import views_run_config
from tenantpulse.landing.merge import newest_landed_day
from tenantpulse.pipeline import StageRun, dagster_instance, run_flow
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


def simulate(settings: Settings, workers: int) -> dict:
    """One sync of every registered tenant's sources through `run_simulation`: DuckDB in this
    process (one writing process per file), Postgres split over `workers` processes."""
    with open_warehouse(settings.warehouse).connect() as conn:
        tenants = list_tenants(conn)
        # Made here, not by each worker's first sync: concurrent `create table if not exists` of
        # the same table fails in Postgres (a unique violation on pg_type).
        ensure_simulator_tables(conn)
        ensure_sync_history(conn)
    started = time.perf_counter()
    if settings.warehouse.dialect == "duckdb":
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
    covers every day). `on_stage(record)` is called after each stage, so an interrupted run keeps
    its numbers."""
    instance = dagster_instance(settings)
    records: list[dict] = []

    def echo(line: str) -> None:
        print(f"  {phase}: {line}", flush=True)

    def keep(stage: StageRun) -> None:
        record = stage_record(settings, instance, phase, stage)
        records.append(record)
        on_stage(record)

    run_flow(settings, instance, echo=echo, lookback_days=LOOKBACK_DAYS, on_stage=keep)
    return records


STEADY_STATE = "steady state"


def time_views_tests_over_newest_sync(settings: Settings) -> dict:
    """The views step with its tests over the rows of the newest sync day only: what a day costs
    once `--lookback-days` days have passed since the first build (the day after it, the window
    still holds the first sync's whole history)."""
    instance = dagster_instance(settings)
    with open_warehouse(settings.warehouse).connect() as conn:
        newest = newest_landed_day(conn)
    job = build_definitions(settings).resolve_job_def("transform_views")
    started = time.monotonic()
    result = job.execute_in_process(
        run_config=views_run_config(newest), instance=instance, raise_on_error=False
    )
    stage = StageRun(
        "dbt views",
        (result.run_id,),
        result.success,
        None if result.success else "the views run failed (see its log in the UI)",
        time.monotonic() - started,
        f"tests: rows synced since {newest}",
    )
    return stage_record(settings, instance, STEADY_STATE, stage)


def stage_record(settings: Settings, instance, phase: str, stage: StageRun) -> dict:
    step_seconds = sum(_step_seconds(instance, run_id) for run_id in stage.run_ids)
    metadata = _materialization_metadata(instance, stage.run_ids)
    with open_warehouse(settings.warehouse).connect() as conn:
        rows, unit = stage_rows(conn, stage, metadata)
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
    """Peak resident memory so far of this process (Dagster runs in-process) and of the largest
    child (dbt): a stage that raises it is the one that needed it."""
    return {
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "peak_child_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024,
    }


def stage_rows(conn: Connection, stage: StageRun, metadata: list[dict]) -> tuple[int, str]:
    """The rows a stage processed, in the unit that fits it."""

    def total(key: str) -> int:
        return int(sum(m.get(key, 0) or 0 for m in metadata))

    first_day = stage.partitions.split("..")[0] if ".." in stage.partitions else None
    if stage.stage == "observe":
        return count_rows(conn, "ops", "tenants"), "tenants observed (17 streams each)"
    if stage.stage == "land":
        return total("rows_read"), "raw rows read"
    if stage.stage == "dbt views":
        return landing_rows(conn), "landing rows under the views (tests scan them)"
    if stage.stage == "dbt daily marts":
        where = f"date >= cast('{first_day}' as date)" if first_day else "true"
        return sum(
            count_rows(conn, "analytics", m, where) for m in DAILY_MARTS
        ), "mart rows rebuilt"
    if stage.stage == "dbt mart tables":
        return sum(count_rows(conn, "analytics", m) for m in MART_TABLES), "mart rows built"
    if stage.stage == "analyse":
        return count_rows(conn, "analytics", "tenant_daily_metrics"), "daily metric rows read"
    if stage.stage == "insights":
        return total("tenant_days"), "tenant-days written"
    if stage.stage == "act":
        return total("tenants_evaluated"), "tenant documents evaluated"
    return 0, ""


def count_rows(conn: Connection, schema: str, table: str, where: str = "true") -> int:
    if not conn.table_exists(schema, table):
        return 0
    return int(conn.fetch_value(f"select count(*) from {schema}.{table} where {where}"))


def landing_rows(conn: Connection) -> int:
    tables = conn.fetch_all(
        "select table_name from information_schema.tables where table_schema = 'landing' "
        "and table_name not in ('watermarks', 'quarantine')"
    )
    return sum(count_rows(conn, "landing", name) for (name,) in tables)


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

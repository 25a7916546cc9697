"""Run the local source simulator: one new sync per registered tenant and connected source.

`generator.generate_sync` is the pure generator; this module owns its state and the writes: the
sync window of each (tenant, source), the raw data through `write_raw_frame`, and a row in
`ops.airbyte_sync_history` for every sync, succeeded or failed.

A tenant's data is the world of its own id, or of a bulk template's (`ops.simulator_templates`,
simulator/bulk.py): syncs with the same world, profile, source and window are generated once and
given to each of those tenants with its own values (simulator/templates.py).
"""

from __future__ import annotations

import datetime as dt
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context

import pandas as pd
from tqdm import tqdm

from tenantpulse.config import SimulatorSettings
from tenantpulse.simulator.generator import SyncWindow, generate_sync
from tenantpulse.simulator.profiles import PROFILES, default_profile_for
from tenantpulse.simulator.templates import TemplateSync
from tenantpulse.sources.raw_files import ParallelFiles
from tenantpulse.sources.raw_table_ddl import publish_write_counts
from tenantpulse.sources.sync_history import (
    FAILED,
    SUCCEEDED,
    SyncRecord,
    ensure_sync_history,
    record_syncs,
)
from tenantpulse.tenants.ids import validate_tenant_id
from tenantpulse.tenants.registry import TENANTS_PER_STATEMENT, Tenant
from tenantpulse.warehouse import Connection, Warehouse


@dataclass(frozen=True)
class SimulatedSync:
    tenant_id: str
    source: str
    sync_number: int
    extracted_at: dt.datetime
    rows_by_stream: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    @property
    def records(self) -> int:
        return sum(self.rows_by_stream.values())


def ensure_simulator_tables(conn: Connection) -> None:
    conn.ensure_schema("ops")
    conn.execute(
        "create table if not exists ops.simulator_profiles ("
        " tenant_id varchar primary key, profile varchar not null)"
    )
    conn.execute(
        "create table if not exists ops.simulator_state ("
        " tenant_id varchar not null, source varchar not null,"
        " history_start date not null, sync_number bigint not null,"
        " extracted_at timestamptz not null, primary key (tenant_id, source))"
    )
    conn.execute(
        "create table if not exists ops.simulator_templates ("
        " tenant_id varchar primary key, world_id varchar not null)"
    )


def assign_profile(conn: Connection, tenant_id: str, profile: str) -> None:
    """Choose which simulated business a tenant is (default: a stable pick from its id)."""
    assign_profiles(conn, [(tenant_id, profile)])


def assign_profiles(conn: Connection, profiles: list[tuple[str, str]]) -> None:
    """`assign_profile` for each (tenant id, profile), all validated first, as many a statement
    as the registry writes."""
    for tenant_id, profile in profiles:
        validate_tenant_id(tenant_id)
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; known profiles: {', '.join(PROFILES)}")
    ensure_simulator_tables(conn)
    for first in range(0, len(profiles), TENANTS_PER_STATEMENT):
        chunk = dict(profiles[first : first + TENANTS_PER_STATEMENT])
        conn.execute(
            "delete from ops.simulator_profiles where tenant_id in "
            f"({', '.join(['%s'] * len(chunk))})",
            list(chunk),
        )
        conn.execute(
            "insert into ops.simulator_profiles (tenant_id, profile) values "
            + ", ".join(["(%s, %s)"] * len(chunk)),
            [v for pair in chunk.items() for v in pair],
        )


def profile_of(conn: Connection, tenant_id: str) -> str:
    ensure_simulator_tables(conn)
    profile = conn.fetch_value(
        "select profile from ops.simulator_profiles where tenant_id = %s", (tenant_id,)
    )
    return profile or default_profile_for(tenant_id)


@dataclass(frozen=True)
class SyncPlan:
    """The next sync of one (tenant, source), decided from the saved state."""

    tenant_id: str
    source: str
    world_id: str  # whose simulated world the data is: the tenant's own id or a bulk template's
    profile: str
    window: SyncWindow
    history_start: dt.date

    @property
    def generation(self) -> tuple:
        """Plans with the same generation get the same frames (but for the tenant's own values)."""
        return (self.world_id, self.profile, self.source, self.window, self.history_start)


def plan_syncs(
    conn: Connection,
    jobs: list[tuple[str, str]],
    settings: SimulatorSettings,
    now: dt.datetime,
) -> list[SyncPlan]:
    """The next sync of each (tenant, source) in `jobs`, in three queries whatever their number."""
    ensure_simulator_tables(conn)
    tenant_ids = {tenant_id for tenant_id, _ in jobs}
    where, params = ("where tenant_id = %s", (next(iter(tenant_ids)),))
    if len(tenant_ids) != 1:
        where, params = "", ()  # many tenants: one read of each table beats a query per tenant
    states = {
        (tenant_id, source): rest
        for tenant_id, source, *rest in conn.fetch_all(
            "select tenant_id, source, history_start, sync_number, extracted_at "
            f"from ops.simulator_state {where}",
            params,
        )
    }
    profiles = dict(
        conn.fetch_all(f"select tenant_id, profile from ops.simulator_profiles {where}", params)
    )
    worlds = dict(
        conn.fetch_all(f"select tenant_id, world_id from ops.simulator_templates {where}", params)
    )
    return [
        SyncPlan(
            tenant_id,
            source,
            worlds.get(tenant_id, tenant_id),
            profiles.get(tenant_id) or default_profile_for(tenant_id),
            *_next_window(states.get((tenant_id, source)), settings, now),
        )
        for tenant_id, source in jobs
    ]


def _next_window(
    state: list | None, settings: SimulatorSettings, now: dt.datetime
) -> tuple[SyncWindow, dt.date]:
    """The first sync is at 00:00 UTC of `end_date` and covers the `history_days` before it; each
    later one is one simulated day after the previous, or `now` when that day has not ended yet."""
    if state is None:
        first = dt.datetime.combine(settings.end_date, dt.time(), tzinfo=dt.UTC)
        history_start = settings.end_date - dt.timedelta(days=settings.history_days)
        return SyncWindow(1, first, None), history_start
    history_start, sync_number, previous = state
    previous = pd.Timestamp(previous).to_pydatetime().astimezone(dt.UTC)
    extracted_at = previous + dt.timedelta(days=1)
    if previous < now < extracted_at:
        # Never a sync stamped in the future (landing quarantines it, as it would Airbyte's):
        # later on the day of the previous sync, the next one covers the time since then.
        extracted_at = now
    window = SyncWindow(int(sync_number) + 1, extracted_at, previous)
    return window, _as_date(history_start)


def simulate_sync(
    conn: Connection, tenant_id: str, source: str, settings: SimulatorSettings
) -> SimulatedSync:
    """Generate and write one sync of one (tenant, source); the caller owns the transaction."""
    [plan] = plan_syncs(conn, [(tenant_id, source)], settings, dt.datetime.now(dt.UTC))
    template = TemplateSync.stage(conn, _generate(plan, settings), plan.world_id)
    try:
        rows_by_stream = template.write(conn, plan.tenant_id)
    finally:
        template.drop(conn)
    _save_states(conn, [plan])
    return _succeeded(plan, rows_by_stream)


def _generate(plan: SyncPlan, settings: SimulatorSettings) -> dict[str, pd.DataFrame]:
    return generate_sync(
        plan.world_id,
        plan.profile,
        [plan.source],
        plan.window,
        seed=settings.seed,
        history_start=plan.history_start,
        volume=settings.volume,
    )


def _succeeded(plan: SyncPlan, rows_by_stream: dict[str, int]) -> SimulatedSync:
    return SimulatedSync(
        plan.tenant_id,
        plan.source,
        plan.window.sync_number,
        plan.window.extracted_at,
        rows_by_stream,
    )


def _save_states(conn: Connection, plans: list[SyncPlan]) -> None:
    """Each plan's (tenant, source) state: the sync it has just written, in two statements."""
    pairs = " or ".join(["(tenant_id = %s and source = %s)"] * len(plans))
    conn.execute(
        f"delete from ops.simulator_state where {pairs}",
        [v for plan in plans for v in (plan.tenant_id, plan.source)],
    )
    conn.execute(
        "insert into ops.simulator_state (tenant_id, source, history_start, sync_number, "
        "extracted_at) values " + ", ".join(["(%s, %s, %s, %s, %s)"] * len(plans)),
        [
            v
            for plan in plans
            for v in (
                plan.tenant_id,
                plan.source,
                plan.history_start,
                plan.window.sync_number,
                plan.window.extracted_at,
            )
        ],
    )


# Syncs written in one transaction: a commit each made the bookkeeping cost as much as the data.
SYNCS_PER_COMMIT = 200
# DuckDB: threads writing raw files (pyarrow encodes Parquet without holding the GIL).
FILE_THREADS = min(4, os.cpu_count() or 1)


def run_simulation(
    warehouse: Warehouse,
    tenants: list[Tenant],
    settings: SimulatorSettings,
    show_progress: bool = True,
    workers: int = 1,
) -> list[SimulatedSync]:
    """One new sync for every tenant and connected source, committed SYNCS_PER_COMMIT at a time.
    A failing (tenant, source) is rolled back, recorded as a failed sync with its error, and does
    not stop the others (a batch that fails is written again one sync at a time). One connection
    per process: opening a DuckDB file reads its whole catalog, so a connection per sync made the
    simulation quadratic in tenants. On Postgres, `workers` processes share the syncs; DuckDB
    takes one writing process."""
    jobs = [(t.tenant_id, s) for t in tenants for s in t.sources]
    with warehouse.connect() as conn:
        # Made once here: concurrent `create table if not exists` of the same table fails in
        # Postgres (a unique violation on pg_type).
        ensure_simulator_tables(conn)
        ensure_sync_history(conn)
        plans = plan_syncs(conn, jobs, settings, dt.datetime.now(dt.UTC))
        conn.commit()
    # A generation's syncs together (else in the order given), so each is generated and staged
    # once and only one is held in memory. On Postgres each world goes whole to one worker: its
    # generations once, and each tenant's syncs in one process (two creating a tenant's schema at
    # once collide on pg_namespace).
    generations: dict[tuple, list[SyncPlan]] = {}
    for plan in plans:
        generations.setdefault(plan.generation, []).append(plan)
    worlds: dict[str, list[list[SyncPlan]]] = {}
    for group in generations.values():
        worlds.setdefault(group[0].world_id, []).append(group)
    workers = min(workers, len(worlds))
    if workers <= 1 or warehouse.dialect == "duckdb":
        groups = list(generations.values())
        return _simulate_generations(warehouse, groups, settings, "simulate", show_progress)
    shares: list[list[list[SyncPlan]]] = [[] for _ in range(workers)]
    for world in sorted(worlds.values(), key=lambda w: sum(map(len, w)), reverse=True):
        # the largest worlds first, each to the least loaded
        min(shares, key=lambda share: sum(map(len, share))).extend(world)
    labels = [f"simulate {i + 1}/{workers}" for i in range(workers)]
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        parts = pool.map(
            _simulate_generations,
            [warehouse] * workers,
            shares,
            [settings] * workers,
            labels,
            [show_progress] * workers,
        )
        return [sync for part in parts for sync in part]


def _simulate_generations(
    warehouse: Warehouse,
    generations: list[list[SyncPlan]],
    settings: SimulatorSettings,
    label: str,
    show_progress: bool,
) -> list[SimulatedSync]:
    results: list[SimulatedSync] = []
    total = sum(map(len, generations))
    with (
        warehouse.connect() as conn,
        tqdm(total=total, desc=label, unit="sync", disable=None if show_progress else True) as bar,
    ):
        files = ParallelFiles(FILE_THREADS) if conn.dialect == "duckdb" else None
        try:
            for plans in generations:
                results += _simulate_generation(conn, plans, settings, files)
                bar.update(len(plans))
        finally:
            if files is not None:
                files.close()
    return results


def _simulate_generation(
    conn: Connection,
    plans: list[SyncPlan],
    settings: SimulatorSettings,
    files: ParallelFiles | None = None,
) -> list[SimulatedSync]:
    """The syncs of one generation: generated and staged once, then written under each tenant."""
    started = dt.datetime.now(dt.UTC)
    try:
        template = TemplateSync.stage(conn, _generate(plans[0], settings), plans[0].world_id)
        conn.commit()
    except Exception as error:  # noqa: BLE001 - every sync of it fails, recorded, the run goes on
        conn.rollback()
        return _fail(conn, plans, started, error)
    results: list[SimulatedSync] = []
    try:
        for first in range(0, len(plans), SYNCS_PER_COMMIT):
            batch = plans[first : first + SYNCS_PER_COMMIT]
            try:
                results += _write_and_commit(conn, batch, template, files)
            except Exception:  # noqa: BLE001 - again one sync at a time, to fail only the culprit
                conn.rollback()
                for plan in batch:
                    started = dt.datetime.now(dt.UTC)
                    try:
                        results += _write_and_commit(conn, [plan], template, files)
                    except Exception as error:  # noqa: BLE001 - recorded, and the run goes on
                        conn.rollback()
                        results += _fail(conn, [plan], started, error)
    finally:
        template.drop(conn)
        conn.commit()
    return results


def _write_and_commit(
    conn: Connection, plans: list[SyncPlan], template: TemplateSync, files: ParallelFiles | None
) -> list[SimulatedSync]:
    records, results = [], []
    try:
        for plan in plans:
            started = dt.datetime.now(dt.UTC)
            result = _succeeded(plan, template.write(conn, plan.tenant_id, files))
            records.append(_record(result, started))
            results.append(result)
    finally:
        if files is not None:
            files.wait()  # every file written (or failed) before the commit or the rollback
    _save_states(conn, plans)
    record_syncs(conn, records)
    publish_write_counts(conn)
    conn.commit()
    return results


def _fail(
    conn: Connection, plans: list[SyncPlan], started: dt.datetime, error: Exception
) -> list[SimulatedSync]:
    """Record each plan's sync as failed with `error`, committed; the failed syncs."""
    results = [
        SimulatedSync(
            plan.tenant_id,
            plan.source,
            plan.window.sync_number,
            plan.window.extracted_at,
            error=f"{type(error).__name__}: {error}",
        )
        for plan in plans
    ]
    record_syncs(conn, [_record(result, started) for result in results])
    conn.commit()
    return results


def _record(result: SimulatedSync, started: dt.datetime) -> SyncRecord:
    """The sync's record in simulated time: it finished when its data was extracted, as an Airbyte
    job does (a catching-up sync recorded at the wall clock would claim days its data lacks)."""
    took = dt.datetime.now(dt.UTC) - started
    return SyncRecord(
        tenant_id=result.tenant_id,
        connection_id=f"sim:{result.tenant_id}:{result.source}",
        source=result.source,
        job_id=f"sim-{result.sync_number}" + ("-failed" if result.error else ""),
        started_at=result.extracted_at - took,
        finished_at=result.extracted_at,
        records=result.records,
        status=FAILED if result.error else SUCCEEDED,
        error=result.error,
    )


def _as_date(value) -> dt.date:
    return (
        value
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime)
        else pd.Timestamp(value).date()
    )

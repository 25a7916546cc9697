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
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context

import pandas as pd
from tqdm import tqdm

from tenantpulse.config import SimulatorSettings
from tenantpulse.simulator.generator import SyncWindow, generate_sync
from tenantpulse.simulator.profiles import PROFILES, default_profile_for
from tenantpulse.simulator.templates import TenantRewrite
from tenantpulse.sources.contracts import STREAMS_BY_NAME
from tenantpulse.sources.raw_table_ddl import write_raw_frame
from tenantpulse.sources.sync_history import (
    FAILED,
    SUCCEEDED,
    SyncRecord,
    ensure_sync_history,
    record_sync,
)
from tenantpulse.tenants.ids import validate_tenant_id
from tenantpulse.tenants.registry import Tenant
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
    validate_tenant_id(tenant_id)
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; known profiles: {', '.join(PROFILES)}")
    ensure_simulator_tables(conn)
    conn.execute("delete from ops.simulator_profiles where tenant_id = %s", (tenant_id,))
    conn.execute(
        "insert into ops.simulator_profiles (tenant_id, profile) values (%s, %s)",
        (tenant_id, profile),
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
    generated = _generate(plan, settings)
    return _write_sync(conn, plan, TenantRewrite(generated, plan.world_id).apply(plan.tenant_id))


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


def _write_sync(conn: Connection, plan: SyncPlan, frames: dict[str, pd.DataFrame]) -> SimulatedSync:
    rows_by_stream = {
        name: write_raw_frame(conn, plan.tenant_id, STREAMS_BY_NAME[name], frame)
        for name, frame in frames.items()
    }
    conn.execute(
        "delete from ops.simulator_state where tenant_id = %s and source = %s",
        (plan.tenant_id, plan.source),
    )
    conn.execute(
        "insert into ops.simulator_state (tenant_id, source, history_start, sync_number, "
        "extracted_at) values (%s, %s, %s, %s, %s)",
        (
            plan.tenant_id,
            plan.source,
            plan.history_start,
            plan.window.sync_number,
            plan.window.extracted_at,
        ),
    )
    return SimulatedSync(
        plan.tenant_id,
        plan.source,
        plan.window.sync_number,
        plan.window.extracted_at,
        rows_by_stream,
    )


def run_simulation(
    warehouse: Warehouse,
    tenants: list[Tenant],
    settings: SimulatorSettings,
    show_progress: bool = True,
    workers: int = 1,
) -> list[SimulatedSync]:
    """One new sync for every tenant and connected source, each committed on its own. A failing
    (tenant, source) is rolled back, recorded as a failed sync with its error, and does not stop
    the others. One connection per process: opening a DuckDB file reads its whole catalog, so a
    connection per sync made the simulation quadratic in tenants. On Postgres, `workers`
    processes share the syncs; DuckDB takes one writing process."""
    jobs = [(t.tenant_id, s) for t in tenants for s in t.sources]
    with warehouse.connect() as conn:
        # Made once here: concurrent `create table if not exists` of the same table fails in
        # Postgres (a unique violation on pg_type).
        ensure_simulator_tables(conn)
        ensure_sync_history(conn)
        plans = plan_syncs(conn, jobs, settings, dt.datetime.now(dt.UTC))
        conn.commit()
    # A generation's syncs one after the other (else in the order given), so each is generated
    # once and only one is held in memory. On Postgres each world goes whole to one worker: its
    # generations once, and each tenant's syncs in one process (two creating a tenant's schema at
    # once collide on pg_namespace).
    generations: dict[tuple, list[SyncPlan]] = {}
    for plan in plans:
        generations.setdefault(plan.generation, []).append(plan)
    worlds: dict[str, list[SyncPlan]] = {}
    for group in generations.values():
        worlds.setdefault(group[0].world_id, []).extend(group)
    workers = min(workers, len(worlds))
    if workers <= 1 or warehouse.dialect == "duckdb":
        ordered = [plan for group in generations.values() for plan in group]
        return _simulate_plans(warehouse, ordered, settings, "simulate", show_progress)
    shares: list[list[SyncPlan]] = [[] for _ in range(workers)]
    for world in sorted(worlds.values(), key=len, reverse=True):
        min(shares, key=len).extend(world)  # the largest worlds first, each to the least loaded
    labels = [f"simulate {i + 1}/{workers}" for i in range(workers)]
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        parts = pool.map(
            _simulate_plans,
            [warehouse] * workers,
            shares,
            [settings] * workers,
            labels,
            [show_progress] * workers,
        )
        return [sync for part in parts for sync in part]


def _simulate_plans(
    warehouse: Warehouse,
    plans: list[SyncPlan],
    settings: SimulatorSettings,
    label: str,
    show_progress: bool,
) -> list[SimulatedSync]:
    results: list[SimulatedSync] = []
    with warehouse.connect() as conn:
        generation, rewrite = None, None
        for plan in tqdm(plans, desc=label, unit="sync", disable=None if show_progress else True):
            started = dt.datetime.now(dt.UTC)
            try:
                if plan.generation != generation or rewrite is None:  # None: it failed before
                    generation, rewrite = plan.generation, None
                    rewrite = TenantRewrite(_generate(plan, settings), plan.world_id)
                result = _write_sync(conn, plan, rewrite.apply(plan.tenant_id))
                _record(conn, result, started)
            except Exception as error:  # noqa: BLE001 - recorded, reported, and the run goes on
                conn.rollback()
                result = SimulatedSync(
                    plan.tenant_id,
                    plan.source,
                    plan.window.sync_number,
                    plan.window.extracted_at,
                    error=f"{type(error).__name__}: {error}",
                )
                _record(conn, result, started)
            conn.commit()
            results.append(result)
    return results


def _record(conn: Connection, result: SimulatedSync, started: dt.datetime) -> None:
    record_sync(
        conn,
        SyncRecord(
            tenant_id=result.tenant_id,
            connection_id=f"sim:{result.tenant_id}:{result.source}",
            source=result.source,
            job_id=f"sim-{result.sync_number}" + ("-failed" if result.error else ""),
            started_at=started,
            finished_at=dt.datetime.now(dt.UTC),
            records=result.records,
            status=FAILED if result.error else SUCCEEDED,
            error=result.error,
        ),
    )


def _as_date(value) -> dt.date:
    return (
        value
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime)
        else pd.Timestamp(value).date()
    )

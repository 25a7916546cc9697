"""Run the local source simulator: one new sync per registered tenant and connected source.

`generator.generate_sync` is the pure generator; this module owns its state and the writes: the
sync window of each (tenant, source), the raw tables `user_<id>.<source>_<stream>`, and a row in
`ops.airbyte_sync_history` for every sync, succeeded or failed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pandas as pd
from tqdm import tqdm

from tenantpulse.config import SimulatorSettings
from tenantpulse.simulator.generator import SyncWindow, generate_sync
from tenantpulse.simulator.profiles import PROFILES, default_profile_for
from tenantpulse.sources.contracts import STREAMS_BY_NAME
from tenantpulse.sources.raw_table_ddl import write_raw_frame
from tenantpulse.sources.sync_history import FAILED, SUCCEEDED, SyncRecord, record_sync
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


def next_window(
    conn: Connection, tenant_id: str, source: str, settings: SimulatorSettings
) -> tuple[SyncWindow, dt.date]:
    """The next sync of (tenant, source): the first is at 00:00 UTC of `end_date` and covers the
    `history_days` before it; each later one is one simulated day after the previous, or now when
    that day has not ended yet."""
    ensure_simulator_tables(conn)
    row = conn.fetch_one(
        "select history_start, sync_number, extracted_at from ops.simulator_state "
        "where tenant_id = %s and source = %s",
        (tenant_id, source),
    )
    if row is None:
        first = dt.datetime.combine(settings.end_date, dt.time(), tzinfo=dt.UTC)
        history_start = settings.end_date - dt.timedelta(days=settings.history_days)
        return SyncWindow(1, first, None), history_start
    history_start, sync_number, previous = row
    previous = pd.Timestamp(previous).to_pydatetime().astimezone(dt.UTC)
    extracted_at = previous + dt.timedelta(days=1)
    now = dt.datetime.now(dt.UTC)
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
    window, history_start = next_window(conn, tenant_id, source, settings)
    frames = generate_sync(
        tenant_id,
        profile_of(conn, tenant_id),
        [source],
        window,
        seed=settings.seed,
        history_start=history_start,
        volume=settings.volume,
    )
    rows_by_stream = {
        name: write_raw_frame(conn, tenant_id, STREAMS_BY_NAME[name], frame)
        for name, frame in frames.items()
    }
    conn.execute(
        "delete from ops.simulator_state where tenant_id = %s and source = %s", (tenant_id, source)
    )
    conn.execute(
        "insert into ops.simulator_state (tenant_id, source, history_start, sync_number, "
        "extracted_at) values (%s, %s, %s, %s, %s)",
        (tenant_id, source, history_start, window.sync_number, window.extracted_at),
    )
    return SimulatedSync(tenant_id, source, window.sync_number, window.extracted_at, rows_by_stream)


def run_simulation(
    warehouse: Warehouse,
    tenants: list[Tenant],
    settings: SimulatorSettings,
    show_progress: bool = True,
) -> list[SimulatedSync]:
    """One new sync for every tenant and connected source, each committed on its own. A failing
    (tenant, source) is rolled back, recorded as a failed sync with its error, and does not stop
    the others. One connection for all: opening a DuckDB file reads its whole catalog, 17 raw
    tables a tenant, so a connection per sync made the simulation quadratic in tenants."""
    results: list[SimulatedSync] = []
    jobs = [(t.tenant_id, s) for t in tenants for s in t.sources]
    with warehouse.connect() as conn:
        for tenant_id, source in tqdm(
            jobs, desc="simulate", unit="sync", disable=None if show_progress else True
        ):
            started = dt.datetime.now(dt.UTC)
            try:
                result = simulate_sync(conn, tenant_id, source, settings)
                _record(conn, result, started)
            except Exception as error:  # noqa: BLE001 - recorded, reported, and the run goes on
                conn.rollback()
                window, _ = next_window(conn, tenant_id, source, settings)
                result = SimulatedSync(
                    tenant_id,
                    source,
                    window.sync_number,
                    window.extracted_at,
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

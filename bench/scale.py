"""A fresh warehouse and Dagster home for one benchmark scale, and its tenants.

Each scale gets its own DuckDB file under bench/work/ and its own Postgres database
(`tenantpulse_bench_<n>`), so nothing collides with the demo or with tests running beside it.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tenantpulse.config import Settings, load_settings
from tenantpulse.simulator.demo_tenants import DEMO_TENANTS
from tenantpulse.simulator.run import assign_profiles
from tenantpulse.tenants.registry import add_tenants
from tenantpulse.warehouse import open_warehouse

HISTORY_DAYS = 180
DUCKDB, POSTGRES = "duckdb", "postgres"


@dataclass(frozen=True)
class BenchTenant:
    tenant_id: str
    profile: str
    sources: tuple[str, ...]


def bench_tenants(count: int) -> list[BenchTenant]:
    """`count` tenants cycling through the demo's six (profile, sources) pairs: five profiles, all
    four sources for three of them, fewer for the others, as a real customer base would have."""
    return [
        BenchTenant(
            f"bench_{i:05d}",
            DEMO_TENANTS[i % len(DEMO_TENANTS)].profile,
            tuple(DEMO_TENANTS[i % len(DEMO_TENANTS)].sources),
        )
        for i in range(count)
    ]


def first_sync_day(today: dt.date) -> dt.date:
    """The first sync is yesterday (180 days of history before it); the incremental one, today:
    so the incremental day is the newest daily partition, as in production."""
    return today - dt.timedelta(days=1)


def bench_database_name(tenants: int, suffix: str = "") -> str:
    return f"tenantpulse_bench_{tenants}{suffix}"


def postgres_database_url(admin_url: str, database: str) -> str:
    return f"{admin_url.rsplit('/', 1)[0]}/{database}"


def recreate_postgres_database(admin_url: str, database: str) -> str:
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'drop database if exists "{database}" with (force)')
        admin.execute(f'create database "{database}"')
    return postgres_database_url(admin_url, database)


def bench_settings(
    kind: str, home: Path, warehouse_url: str, first_day: dt.date, history_days: int = HISTORY_DAYS
) -> Settings:
    """Settings for one warehouse of the benchmark: the simulator's default volume, 180 days of
    history, daily partitions from the data's first day, the deterministic insight writer."""
    return load_settings(
        {
            "TENANTPULSE_HOME": str(home),
            "TENANTPULSE_WAREHOUSE_URL": warehouse_url,
            "TENANTPULSE_SIM_END_DATE": first_day.isoformat(),
            "TENANTPULSE_SIM_HISTORY_DAYS": str(history_days),
            "TENANTPULSE_SIM_VOLUME": "1.0",
            # Each batch of syncs the sensor notices is only landed; the bench runs the flows.
            "TENANTPULSE_FLOW_AFTER_SYNCS": "daily",
            "TENANTPULSE_DAILY_PARTITIONS_START": (
                first_day - dt.timedelta(days=history_days)
            ).isoformat(),
        }
    )


def fresh_warehouse(
    kind: str, tenants: int, work_dir: Path, postgres_admin_url: str, first_day: dt.date
) -> Settings:
    """An empty warehouse and Dagster home for `kind` at this scale (the previous one is removed)."""
    home = work_dir / f"n{tenants}" / kind
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    if kind == DUCKDB:
        url = f"duckdb:///{home / 'warehouse.duckdb'}"
    else:
        url = recreate_postgres_database(postgres_admin_url, bench_database_name(tenants))
    return bench_settings(kind, home, url, first_day)


def register_tenants(settings: Settings, tenants: list[BenchTenant]) -> None:
    with open_warehouse(settings.warehouse).connect() as conn:
        add_tenants(conn, [(t.tenant_id, t.tenant_id, t.sources) for t in tenants])
        assign_profiles(conn, [(t.tenant_id, t.profile) for t in tenants])

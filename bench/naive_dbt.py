"""The naive transformation: one dbt invocation per tenant, each over that tenant's data alone.

A sample of tenants is copied, one at a time, into a warehouse of its own (its landing rows only,
as a schema-per-tenant design would present them to dbt); for each, the whole project is built
once (first build) and then for the newest day (daily), timed. The per-tenant mean times N is an
extrapolation, labelled as such in the results.
"""

from __future__ import annotations

import datetime as dt
import shutil
import statistics
import time
from pathlib import Path

import pandas as pd

from bench.scale import DUCKDB, bench_database_name, bench_settings, recreate_postgres_database
from tenantpulse.config import Settings
from tenantpulse.landing.merge import LANDING_SCHEMA, ensure_landing_tables
from tenantpulse.sources.contracts import STREAMS
from tenantpulse.transform.dbt_cli import run_dbt
from tenantpulse.transform.windows import daily_window, write_run_window
from tenantpulse.warehouse import open_warehouse, qualified


def per_tenant_dbt(
    settings: Settings,
    sample: list[str],
    tenants: int,
    day: dt.date,
    scratch_home: Path,
    postgres_admin_url: str,
) -> dict:
    kind = settings.warehouse.dialect
    first_builds, daily_builds, errors = [], [], []
    for tenant_id in sample:
        scratch = _scratch_settings(settings, kind, tenants, scratch_home, postgres_admin_url)
        _copy_landing(settings, scratch, tenant_id)
        with open_warehouse(scratch.warehouse).connect() as conn:
            write_run_window(
                conn, "naive-daily", daily_window(day, day + dt.timedelta(days=1), True)
            )
        for args, run_id, times in (
            (["build"], None, first_builds),
            (["build"], "naive-daily", daily_builds),
        ):
            started = time.perf_counter()
            done = run_dbt(scratch, args, capture=True, run_id=run_id)
            times.append(time.perf_counter() - started)
            if done.returncode != 0:
                errors.append(f"{tenant_id} dbt {' '.join(args[:1])}: {done.stdout[-500:]}")
        print(
            f"  per-tenant dbt {tenant_id}: first {first_builds[-1]:.1f}s, "
            f"daily {daily_builds[-1]:.1f}s",
            flush=True,
        )
    first_mean = statistics.fmean(first_builds)
    daily_mean = statistics.fmean(daily_builds)
    return {
        "sample_tenants": sample,
        "first_build_seconds": [round(s, 2) for s in first_builds],
        "daily_build_seconds": [round(s, 2) for s in daily_builds],
        "extrapolated": True,
        "first_build_all_tenants_seconds": round(first_mean * tenants),
        "daily_all_tenants_seconds": round(daily_mean * tenants),
        "errors": errors,
    }


def _scratch_settings(
    settings: Settings, kind: str, tenants: int, scratch_home: Path, postgres_admin_url: str
) -> Settings:
    if scratch_home.exists():
        shutil.rmtree(scratch_home)
    scratch_home.mkdir(parents=True)
    if kind == DUCKDB:
        url = f"duckdb:///{scratch_home / 'one_tenant.duckdb'}"
    else:
        url = recreate_postgres_database(
            postgres_admin_url, bench_database_name(tenants, "_one_tenant")
        )
    return bench_settings(kind, scratch_home, url, settings.simulator.end_date)


def _copy_landing(source: Settings, target: Settings, tenant_id: str) -> None:
    with (
        open_warehouse(source.warehouse).connect() as read,
        open_warehouse(target.warehouse).connect() as write,
    ):
        for contract in STREAMS:
            ensure_landing_tables(write, contract)
            if not read.table_exists(LANDING_SCHEMA, contract.name):
                continue
            rows = read.read_frame(
                f"select * from {qualified(LANDING_SCHEMA, contract.name)} where tenant_id = %s",
                (tenant_id,),
            )
            for column in contract.all_columns:  # NULLs made them float64 in the frame
                if column.type == "bigint" and column.name in rows:
                    rows[column.name] = pd.to_numeric(rows[column.name]).astype("Int64")
            write.write_frame(LANDING_SCHEMA, contract.name, rows)

"""How observe and land grow with the number of raw tables, at a scale the simulator cannot reach
in a session: N tenants whose 17 raw tables (Airbyte's one schema per tenant) are small copies.

    python -m bench.catalog_probe --tenants 10000 --warehouse postgres
    python -m bench.catalog_probe --tenants 1000 --warehouse postgres   # the simulated scale

DuckDB's raw layer is Parquet files now (bench/files_probe.py probes it); its results here,
catalog_probe_duckdb_n*.json, are the measurement of the tables layout that led to them.

Six template tenants (one per (profile, sources) pair of the mix) are simulated with 28 days of
history; every other tenant gets the first `--rows-per-table` rows of its template's tables, so the
raw data is small and the catalog is full size (17 tables for a tenant with all four sources).
Then, timed through the Dagster instance: land (`run_flow` up to land, what `tenantpulse run
--until land` runs) and observe (a run of observe_raw_job) for the first load; a "next sync" that
appends `--new-rows` updated rows to every raw table; land and observe again (incremental). The results are a stand-in for the catalog-bound part of the stages only: rows
per tenant are a fraction of the simulator's, whose cost is measured in the n<N>.md runs. While
copying it records the DuckDB file's size and this process's memory (`copy_growth`), and stops,
saying so in the results, when less than 3 GiB of memory is left.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import time
from pathlib import Path

from bench import flow
from bench.report import load_average, machine
from bench.run import BENCH_DIR
from bench.scale import (
    DUCKDB,
    bench_database_name,
    bench_settings,
    bench_tenants,
    first_sync_day,
    recreate_postgres_database,
    register_tenants,
)
from tenantpulse.flow import LAND
from tenantpulse.flow_runs import dagster_instance
from tenantpulse.simulator.run import ensure_simulator_tables, run_simulation
from tenantpulse.sources.contracts import raw_schema
from tenantpulse.sources.sync_history import ensure_sync_history
from tenantpulse.tenants.registry import list_tenants
from tenantpulse.warehouse import open_warehouse
from tenantpulse.warehouse.identifiers import qualified, quote_ident

TEMPLATE_HISTORY_DAYS = 28
TENANTS_PER_COMMIT = 100
# The copy stops (and says so) below this much available memory, before the machine runs out.
MIN_AVAILABLE_GIB = 3


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, required=True)
    parser.add_argument("--warehouse", choices=["duckdb", "postgres"], default="postgres")
    parser.add_argument("--rows-per-table", type=int, default=20)
    parser.add_argument(
        "--new-rows", type=int, default=2, help="rows per raw table in the next sync"
    )
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--work-dir", type=Path, default=BENCH_DIR / "work")
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    args = parser.parse_args(argv)
    if args.warehouse == DUCKDB:
        # catalog_probe_duckdb_n*.json stay as the measurement of the tables layout.
        parser.error(
            "DuckDB's raw layer is Parquet files, not tables (docs/decisions.md): "
            "python -m bench.files_probe --tenants N probes it"
        )

    first_day = first_sync_day(dt.datetime.now(dt.UTC).date())
    home = args.work_dir / f"catalog_n{args.tenants}" / args.warehouse
    home.mkdir(parents=True, exist_ok=True)
    if args.warehouse == DUCKDB:
        (home / "warehouse.duckdb").unlink(missing_ok=True)
        url = f"duckdb:///{home / 'warehouse.duckdb'}"
    else:
        url = recreate_postgres_database(
            args.postgres_url, bench_database_name(args.tenants, "_catalog")
        )
    settings = bench_settings(args.warehouse, home, url, first_day, TEMPLATE_HISTORY_DAYS)
    result = {
        "tenants": args.tenants,
        "warehouse": args.warehouse,
        "rows_per_table": args.rows_per_table,
        "new_rows_per_table": args.new_rows,
        "machine": machine(),
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "load_average_start": load_average(),
        "steps": [],
    }
    out = args.results_dir / f"catalog_probe_{args.warehouse}_n{args.tenants}.json"

    def keep(step: str, seconds: float, **facts) -> None:
        result["steps"].append({"step": step, "seconds": round(seconds, 1), **facts})
        result["load_average_end"] = load_average()
        out.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(f"  {step}: {seconds:.1f}s {facts}", flush=True)

    mix = bench_tenants(args.tenants)
    register_tenants(settings, mix)
    warehouse = open_warehouse(settings.warehouse)
    with warehouse.connect() as conn:
        ensure_simulator_tables(conn)
        ensure_sync_history(conn)
        tenants = list_tenants(conn)
    by_id = {t.tenant_id: t for t in tenants}
    templates = [by_id[t.tenant_id] for t in mix[:6]]
    started = time.perf_counter()
    run_simulation(warehouse, templates, settings.simulator, show_progress=False)
    keep("simulate 6 templates", time.perf_counter() - started)

    started = time.perf_counter()
    growth = result.setdefault("copy_growth", [])

    def grew(tenants: int, tables: int) -> bool:
        """Record the warehouse's size; False (stop) when the machine is nearly out of memory."""
        sample = {
            "tenants": tenants,
            "raw_tables": tables,
            "seconds": round(time.perf_counter() - started, 1),
            "duckdb_file_gib": _gib(home / "warehouse.duckdb"),
            "rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 1),
            "available_memory_gib": _available_memory_gib(),
        }
        growth.append(sample)
        out.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(f"  copy: {sample}", flush=True)
        return sample["available_memory_gib"] > MIN_AVAILABLE_GIB

    tables = _copy_templates(warehouse, mix, args.rows_per_table, grew)
    if tables is None:
        result["stopped"] = (
            f"copying stopped at {growth[-1]['tenants']:,} tenants ({growth[-1]['raw_tables']:,} "
            f"raw tables): less than {MIN_AVAILABLE_GIB} GiB of memory left"
        )
        keep("copy raw tables (stopped)", time.perf_counter() - started)
        return
    keep("copy raw tables", time.perf_counter() - started, raw_tables=tables)

    instance = dagster_instance(settings)
    _time_stages(settings, instance, "first load", keep)
    started = time.perf_counter()
    _next_sync(warehouse, mix, args.new_rows)
    keep("next sync (append rows to every raw table)", time.perf_counter() - started)
    _time_stages(settings, instance, "incremental", keep)


def _copy_templates(warehouse, mix, rows_per_table: int, grew) -> int | None:
    """Give each tenant the first rows of its template's raw tables; return the tables made, or
    None when `grew(tenants, tables)` says stop."""
    made = 0
    with warehouse.connect() as conn:
        tables = {
            raw_schema(t.tenant_id): _raw_tables(conn, raw_schema(t.tenant_id)) for t in mix[:6]
        }
        for first in range(6, len(mix), TENANTS_PER_COMMIT):
            for index in range(first, min(first + TENANTS_PER_COMMIT, len(mix))):
                template = raw_schema(mix[index % 6].tenant_id)
                schema = raw_schema(mix[index].tenant_id)
                conn.ensure_schema(schema)
                for (table,) in tables[template]:
                    conn.execute(
                        f"create table {qualified(schema, table)} as select * from "
                        f"{qualified(template, table)} order by {quote_ident('_airbyte_raw_id')} "
                        f"limit {int(rows_per_table)}"
                    )
                    made += 1
            conn.commit()
            if not grew(min(first + TENANTS_PER_COMMIT, len(mix)), made):
                return None
    return made


def _next_sync(warehouse, mix, new_rows: int) -> None:
    """Every raw table gets `new_rows` of its rows again, extracted a day later (updates)."""
    with warehouse.connect() as conn:
        # Every tenant has its template's tables and columns: one catalog read for the six.
        columns_of = {
            (index, table): list(conn.table_columns(raw_schema(mix[index].tenant_id), table))
            for index in range(6)
            for (table,) in _raw_tables(conn, raw_schema(mix[index].tenant_id))
        }
        for first in range(0, len(mix), TENANTS_PER_COMMIT):
            for index in range(first, min(first + TENANTS_PER_COMMIT, len(mix))):
                schema = raw_schema(mix[index].tenant_id)
                for (template, table), columns in columns_of.items():
                    if template != index % 6:
                        continue
                    name = qualified(schema, table)
                    listed = ", ".join(quote_ident(c) for c in columns)
                    shifted = ", ".join(
                        "_airbyte_extracted_at + interval '1 day'"
                        if c == "_airbyte_extracted_at"
                        else quote_ident(c)
                        for c in columns
                    )
                    conn.execute(
                        f"insert into {name} ({listed}) select {shifted} from {name} "
                        f"order by {quote_ident('_airbyte_raw_id')} limit {int(new_rows)}"
                    )
            conn.commit()
            print(
                f"  next sync: {min(first + TENANTS_PER_COMMIT, len(mix))}/{len(mix)} tenants",
                flush=True,
            )


def _gib(path: Path) -> float:
    return round(path.stat().st_size / 1024**3, 2) if path.exists() else 0.0


def _available_memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return round(int(line.split()[1]) / 1024**2, 1)
    return float("inf")


def _raw_tables(conn, schema: str) -> list[tuple]:
    return conn.fetch_all(
        "select table_name from information_schema.tables where table_schema = %s "
        "order by table_name",
        (schema,),
    )


def _time_stages(settings, instance, phase: str, keep) -> None:
    def on_stage(record: dict) -> None:
        keep(
            f"{phase}: {record['stage']}",
            record["seconds"],
            **{k: record[k] for k in ("step_seconds", "rows", "unit", "success", "error")},
        )

    flow.follow_flow(settings, phase, on_stage, until=LAND.name)
    # After the land run: a daemon started before it would see the templates' syncs as not yet
    # landed, and new_syncs_sensor would start a whole flow of its own.
    on_stage(flow.stage_record(settings, instance, phase, flow.time_observe(settings, instance)))


if __name__ == "__main__":
    main()

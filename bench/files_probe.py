"""The embedded default's raw layer as Parquet files (Airbyte's S3-destination layout) at N
tenants: disk and memory per tenant, the cost of reading a tenant-stream unit, of finding which
units changed, and of landing them; the sibling of catalog_probe.py (raw tables in DuckDB).

    python -m bench.files_probe --tenants 10000

Six template tenants (one per (profile, sources) pair of the mix) are simulated with 28 days of
history (one file per stream); every other tenant gets a file holding the first `--rows-per-file`
rows of its template's (as catalog_probe gives each tenant 20 rows per table). Then, directly (no
Dagster): change detection with no snapshot (every folder listed), the first load of every stream
(land_stream over all tenants), change detection again (a `stat` per folder), a next sync of a
twenty-fourth of the tenants (one new file per stream each), change detection and landing of it;
and the CPU time of reading a chunk of 200 units with and without `union_by_name`. Process CPU
and peak memory (ru_maxrss) are recorded with each step.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import time
from pathlib import Path

import duckdb

from bench.catalog_probe import TEMPLATE_HISTORY_DAYS
from bench.report import load_average, machine
from bench.run import BENCH_DIR
from bench.scale import DUCKDB, bench_settings, bench_tenants, first_sync_day, register_tenants
from tenantpulse.landing.merge import land_stream
from tenantpulse.landing.raw_file_reads import ensure_landed_files, tenants_with_new_files
from tenantpulse.simulator.run import ensure_simulator_tables, run_simulation
from tenantpulse.sources.contracts import STREAMS, streams_for
from tenantpulse.sources.raw_files import (
    file_name,
    list_files,
    stream_folder,
)
from tenantpulse.sources.sync_history import ensure_sync_history
from tenantpulse.tenants.registry import list_tenants
from tenantpulse.warehouse import open_warehouse

UNITS_PER_READ = 200  # as landing reads them (raw_table_reads.TENANTS_PER_STATEMENT)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, required=True)
    parser.add_argument("--rows-per-file", type=int, default=20)
    parser.add_argument("--work-dir", type=Path, default=BENCH_DIR / "work")
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    args = parser.parse_args(argv)

    home = args.work_dir / f"files_n{args.tenants}" / DUCKDB
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    settings = bench_settings(
        DUCKDB,
        home,
        f"duckdb:///{home / 'warehouse.duckdb'}",
        first_sync_day(dt.datetime.now(dt.UTC).date()),
        TEMPLATE_HISTORY_DAYS,
    )
    raw_path = settings.warehouse.raw_path
    result = {
        "tenants": args.tenants,
        "warehouse": "duckdb, raw layer as Parquet files",
        "rows_per_file": args.rows_per_file,
        "machine": machine(),
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "load_average_start": load_average(),
        "steps": [],
    }
    out = args.results_dir / f"files_probe_duckdb_n{args.tenants}.json"

    def keep(step: str, seconds: float, cpu: float, **facts) -> None:
        facts["cpu_seconds"] = round(cpu, 2)
        facts["peak_rss_gib"] = round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2
        )
        result["steps"].append({"step": step, "seconds": round(seconds, 2), **facts})
        result["load_average_end"] = load_average()
        out.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(f"  {step}: {seconds:.2f}s {facts}", flush=True)

    def timed(step: str, work, **facts):
        wall, cpu = time.perf_counter(), time.process_time()
        value = work()
        keep(step, time.perf_counter() - wall, time.process_time() - cpu, **facts)
        return value

    mix = bench_tenants(args.tenants)
    timed("register tenants", lambda: register_tenants(settings, mix))
    warehouse = open_warehouse(settings.warehouse)
    with warehouse.connect() as conn:
        ensure_simulator_tables(conn)
        ensure_sync_history(conn)
        by_id = {t.tenant_id: t for t in list_tenants(conn)}
    templates = [by_id[t.tenant_id] for t in mix[:6]]
    timed(
        "simulate 6 templates",
        lambda: run_simulation(warehouse, templates, settings.simulator, show_progress=False),
    )
    units = timed(
        "copy a file per tenant and stream",
        lambda: _copy_templates(raw_path, mix, mix, args.rows_per_file),
    )
    on_disk = _disk_use(raw_path)
    keep(
        "raw files on disk",
        0,
        0,
        units=units,
        apparent_mib=round(on_disk[0] / 1024**2, 1),
        allocated_mib=round(on_disk[1] / 1024**2, 1),
        allocated_kib_per_tenant=round(on_disk[1] / 1024 / args.tenants, 1),
        allocated_kib_per_unit=round(on_disk[1] / 1024 / units, 1),
    )

    with warehouse.connect() as conn:
        ensure_landed_files(conn)
    tenants_of = {c.name: [t.tenant_id for t in mix if c.source in t.sources] for c in STREAMS}

    def detect(phase: str) -> None:
        with warehouse.connect() as conn:
            changed = timed(
                f"{phase}: find the tenants with new files, every stream",
                lambda: sum(
                    len(tenants_with_new_files(conn, c, tenants_of[c.name])) for c in STREAMS
                ),
                units=sum(map(len, tenants_of.values())),
            )
        result["steps"][-1]["units_with_new_files"] = changed

    def land(phase: str) -> None:
        with warehouse.connect() as conn:
            outcomes = timed(
                f"{phase}: land every stream",
                lambda: [o for c in STREAMS for o in land_stream(conn, c, tenants_of[c.name])],
            )
        result["steps"][-1]["rows_read"] = sum(o.rows_read for o in outcomes)
        result["steps"][-1]["failed"] = sum(o.status == "failed" for o in outcomes)

    detect("first load, no snapshot")
    _read_cost(raw_path, mix, keep)
    land("first load")
    detect("after the first load")
    changed = mix[::24]
    timed(
        "next sync of a 24th of the tenants (a file per stream)",
        lambda: _copy_templates(raw_path, mix, changed, args.rows_per_file, offset_ms=86_400_000),
    )
    detect("next sync")
    land("next sync")
    with warehouse.connect() as conn:
        conn.execute("checkpoint")
    keep(
        "warehouse file after landing",
        0,
        0,
        duckdb_file_mib=round((home / "warehouse.duckdb").stat().st_size / 1024**2, 1),
    )


def _copy_templates(raw_path: Path, mix, tenants, rows: int, offset_ms: int = 0) -> int:
    """Give each of `tenants` a file with the first `rows` rows of its template's (the tenant of
    the mix's first six with its index mod 6) file of every stream, `offset_ms` after it; the
    files made. The templates themselves get one only with an offset (a next sync)."""
    template_of = {t.tenant_id: mix[index % 6] for index, t in enumerate(mix)}
    made = 0
    trimmed: dict[Path, Path] = {}
    with duckdb.connect() as reader:
        for tenant in tenants:
            template = template_of[tenant.tenant_id]
            if tenant.tenant_id == template.tenant_id and not offset_ms:
                continue
            for contract in (c for s in template.sources for c in streams_for(s)):
                source = stream_folder(raw_path, template.tenant_id, contract.raw_table)
                first = next(iter(list_files(source)), None)
                if first is None:
                    continue
                if first.path not in trimmed:
                    small = source.parent / f".{contract.raw_table}.first{rows}.parquet"
                    reader.execute(
                        f"copy (select * from read_parquet('{first.path}') limit {int(rows)}) "
                        f"to '{small}' (format parquet)"
                    )
                    trimmed[first.path] = small
                folder = stream_folder(raw_path, tenant.tenant_id, contract.raw_table)
                folder.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(trimmed[first.path], folder / file_name(first.epoch_ms + offset_ms))
                made += 1
    return made


def _read_cost(raw_path: Path, mix, keep) -> None:
    """CPU time of reading UNITS_PER_READ same-shape units (one file each) in one read_parquet,
    by position and by name (union_by_name), one thread."""
    contract = next(c for c in STREAMS if c.name == "stripe__charges")
    files = [
        f.path
        for t in mix
        if "stripe" in t.sources
        for f in list_files(stream_folder(raw_path, t.tenant_id, contract.raw_table))[:1]
    ][:UNITS_PER_READ]
    with duckdb.connect() as reader:
        reader.execute("set threads = 1")
        for by_name in (False, True, False, True):
            cpu, wall = time.process_time(), time.perf_counter()
            rows = reader.execute(
                f"select count(*) from (select * from read_parquet(?, union_by_name = "
                f"{str(by_name).lower()}, filename = true))",
                [[str(f) for f in files]],
            ).fetchone()[0]
            spent = time.process_time() - cpu
            keep(
                f"read {len(files)} stripe_charges units in one read_parquet, union_by_name "
                f"{by_name}",
                time.perf_counter() - wall,
                spent,
                rows=rows,
                cpu_ms_per_unit=round(spent * 1000 / len(files), 2),
            )


def _disk_use(root: Path) -> tuple[int, int]:
    """(apparent bytes, allocated bytes) of the files under `root`."""
    apparent = allocated = 0
    for folder, _, names in os.walk(root):
        for name in names:
            stat = os.stat(os.path.join(folder, name))
            apparent += stat.st_size
            allocated += stat.st_blocks * 512
    return apparent, allocated


if __name__ == "__main__":
    main()

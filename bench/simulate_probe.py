"""The simulator's bulk mode at N tenants: a first sync of every tenant, then a next day, timed.

    python -m bench.simulate_probe --warehouse duckdb --tenants 1000 --templates 8
    python -m bench.simulate_probe --warehouse postgres --tenants 1000 --workers 2

A fresh warehouse under --work-dir (DuckDB) or a fresh Postgres database (`--database`, dropped at
the end unless --keep); `register_bulk_tenants`, then `run_bulk_simulation` twice (the first sync,
180 days of history at volume 1.0, as `make bench` simulates; then the next day). Each step records
wall seconds, this process's CPU seconds with its workers', and on Postgres the CPU seconds of the
database's backends (sampled from /proc every half second: a backend's last half second may be
missed), the rows written, files or tables made, and the load average. `--profile FILE` writes a
cProfile of the first sync (DuckDB, or Postgres with one worker) to FILE.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import json
import os
import pstats
import resource
import shutil
import threading
import time
from pathlib import Path

import psycopg

from bench.report import load_average, machine
from bench.scale import (
    DUCKDB,
    POSTGRES,
    bench_settings,
    first_sync_day,
    recreate_postgres_database,
)
from tenantpulse.simulator.bulk import register_bulk_tenants, run_bulk_simulation
from tenantpulse.tenants.registry import ensure_registry
from tenantpulse.warehouse import open_warehouse

BENCH_DIR = Path(__file__).resolve().parent
TICKS = os.sysconf("SC_CLK_TCK")


def _process_cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class BackendCpu:
    """CPU seconds of the Postgres backends serving `database`, sampled from /proc (each set to
    this process's priority when seen)."""

    def __init__(self, database: str):
        self.marker = f" {database} "
        self.seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                if not cmdline.startswith(b"postgres:") or self.marker.encode() not in cmdline:
                    continue
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(pid) not in self.seen:
                # at this process's priority (nice 19 beside a benchmark), when it may
                with contextlib.suppress(OSError):
                    os.setpriority(os.PRIO_PROCESS, int(pid), os.getpriority(os.PRIO_PROCESS, 0))
            self.seen[int(pid)] = (int(fields[11]) + int(fields[12])) / TICKS

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self._sample()

    def __enter__(self) -> BackendCpu:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def seconds(self) -> float:
        return sum(self.seen.values())


def _disk_bytes(path: Path) -> tuple[int, int]:
    files = size = 0
    for root, _, names in os.walk(path):
        for name in names:
            files += 1
            size += os.stat(os.path.join(root, name)).st_size
    return files, size


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", choices=[DUCKDB, POSTGRES], required=True)
    parser.add_argument("--tenants", type=int, required=True)
    parser.add_argument("--templates", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--first-only", action="store_true", help="no next day")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/simulate_probe"))
    parser.add_argument(
        "--postgres-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--database", default="simulate_probe")
    parser.add_argument("--keep", action="store_true", help="keep the warehouse afterwards")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the first sync here")
    parser.add_argument("--label", default="", help="what this run measures (kept in the JSON)")
    parser.add_argument("--output", type=Path, help="append the result to this JSON list")
    args = parser.parse_args(argv)

    home = args.work_dir / f"n{args.tenants}_{args.warehouse}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    if args.warehouse == DUCKDB:
        url = f"duckdb:///{home / 'warehouse.duckdb'}"
    else:
        url = recreate_postgres_database(args.postgres_admin_url, args.database)
    settings = bench_settings(
        args.warehouse, home, url, first_sync_day(dt.datetime.now(dt.UTC).date())
    )
    warehouse = open_warehouse(settings.warehouse)
    result = {
        "label": args.label,
        "warehouse": args.warehouse,
        "tenants": args.tenants,
        "templates": args.templates,
        "workers": args.workers,
        "history_days": settings.simulator.history_days,
        "volume": settings.simulator.volume,
        "nice": os.nice(0),
        "machine": machine(),
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "steps": [],
    }

    def step(name: str, work, profile: Path | None = None) -> None:
        load = load_average()
        backends = BackendCpu(args.database) if args.warehouse == POSTGRES else None
        cpu, wall = _process_cpu(), time.perf_counter()
        profiler = cProfile.Profile() if profile else None
        if backends:
            backends.__enter__()
        try:
            if profiler:
                profiler.enable()
            facts = work()
            if profiler:
                profiler.disable()
        finally:
            if backends:
                backends.__exit__()
        record = {
            "step": name,
            "seconds": round(time.perf_counter() - wall, 1),
            "cpu_seconds": round(_process_cpu() - cpu, 1),
            **({"backend_cpu_seconds": round(backends.seconds, 1)} if backends else {}),
            "load_average_before": load,
            "load_average_after": load_average(),
            "peak_rss_gib": round(
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024, 2
            ),
            **facts,
        }
        if profiler:
            profiler.dump_stats(str(profile))
            with open(f"{profile}.txt", "w") as out:
                pstats.Stats(str(profile), stream=out).sort_stats("cumulative").print_stats(60)
                pstats.Stats(str(profile), stream=out).sort_stats("tottime").print_stats(40)
        result["steps"].append(record)
        print(json.dumps(record), flush=True)

    tenants = []

    def register() -> dict:
        with warehouse.connect() as conn:
            ensure_registry(conn)
            tenants.extend(register_bulk_tenants(conn, args.tenants))
        return {"registered": len(tenants)}

    def simulate() -> dict:
        syncs = run_bulk_simulation(
            warehouse,
            tenants,
            settings.simulator,
            workers=args.workers,
            templates_per_profile=args.templates,
            show_progress=False,
        )
        failed = [s for s in syncs if s.error]
        facts = {
            "syncs": len(syncs),
            "syncs_failed": len(failed),
            "rows": sum(s.records for s in syncs),
        }
        if failed:
            facts["first_error"] = failed[0].error
        if args.warehouse == DUCKDB:
            facts["raw_files"], raw_bytes = _disk_bytes(settings.warehouse.raw_path)
            facts["raw_gib"] = round(raw_bytes / 2**30, 2)
        else:
            with warehouse.connect() as conn:
                facts["raw_tables"] = conn.fetch_value(
                    "select count(*) from information_schema.tables "
                    "where table_schema like 'user\\_%%'"
                )
                facts["database_gib"] = round(
                    conn.fetch_value("select pg_database_size(current_database())") / 2**30, 2
                )
        return facts

    try:
        step("register tenants", register)
        step("first sync", simulate, args.profile)
        if not args.first_only:
            step("next day", simulate)
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
            if args.warehouse == POSTGRES:
                admin = args.postgres_admin_url
                with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f'drop database if exists "{args.database}" with (force)')
    result["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    if args.output:
        previous = json.loads(args.output.read_text()) if args.output.exists() else []
        args.output.write_text(json.dumps([*previous, result], indent=2) + "\n")


if __name__ == "__main__":
    main()

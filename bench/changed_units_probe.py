"""What finding the changed raw tables from Postgres's write counters saves a land run, at 10,000
tenants (about 130,000 raw tables) of which a 24th had a sync.

    python -m bench.changed_units_probe --tenants 10000

In a throwaway database (`tenantpulse_probe_changed`, dropped at the end): six template tenants are
simulated (28 days), every other tenant gets the first `--rows-per-table` rows of its template's
tables, and everything is landed once (the snapshot of the counters is
saved as it goes). Then every `--changed-every`-th tenant gets a sync (`--new-rows` rows more in
each of its raw tables), and the probe times: finding the changed tables among all tenants'
(`find_changed_units`, and whether it found exactly the tables written), a land run of that batch
reading every table of its tenants (`read_all`) and, after another sync of the batch, reading only
the changed ones; a land run over every tenant with the detection, and one reading every table.

What a batch's land run costs, phase by phase, on a database kept for it:

    python -m bench.changed_units_probe --tenants 10000 --database D --build-only
    python -m bench.changed_units_probe --tenants 10000 --database D --batch-only --label L

`--build-only` stops after the first land and keeps the database; each `--batch-only` run syncs
`--rounds` batches (every `--changed-every`-th tenant from `--offset`) and lands each with
`land_streams`, recording its wall time, this process's CPU time and its Postgres backend's, per
phase (`PHASES`), in `land_batch_postgres_n<N>.json` (appended to; `--profile` adds cProfile's top).
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import json
import os
import pstats
import time
from contextlib import contextmanager
from pathlib import Path

import psycopg

from bench.catalog_probe import TEMPLATE_HISTORY_DAYS, _raw_tables
from bench.report import load_average, machine
from bench.run import BENCH_DIR
from bench.scale import (
    POSTGRES,
    bench_settings,
    bench_tenants,
    first_sync_day,
    postgres_database_url,
    recreate_postgres_database,
    register_tenants,
)
from tenantpulse.landing import merge, run
from tenantpulse.landing.changed_units import find_changed_units
from tenantpulse.landing.run import land_streams, tenants_by_stream
from tenantpulse.simulator.run import ensure_simulator_tables, run_simulation
from tenantpulse.sources.contracts import STREAMS, raw_schema
from tenantpulse.sources.sync_history import ensure_sync_history
from tenantpulse.tenants.registry import list_tenants
from tenantpulse.warehouse import open_warehouse
from tenantpulse.warehouse.identifiers import qualified, quote_ident

DATABASE = "tenantpulse_probe_changed"
TENANTS_PER_STATEMENT = 50  # tenants whose raw tables one round trip (one commit) creates


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--changed-every", type=int, default=24)
    parser.add_argument("--rows-per-table", type=int, default=3)
    parser.add_argument("--new-rows", type=int, default=1)
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--work-dir", type=Path, default=BENCH_DIR / "work")
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    parser.add_argument("--database", default=DATABASE)
    parser.add_argument("--keep-database", action="store_true")
    parser.add_argument(
        "--build-only",
        action="store_true",
        help="simulate, copy and land every tenant once, then stop and keep the database",
    )
    parser.add_argument(
        "--batch-only",
        action="store_true",
        help="on a database a --build-only run kept: sync the batch and land it, phase by phase",
    )
    parser.add_argument("--rounds", type=int, default=2, help="--batch-only: batches landed")
    parser.add_argument("--label", default="", help="--batch-only: names the code measured")
    parser.add_argument("--offset", type=int, default=1, help="--batch-only: the first batch")
    parser.add_argument("--profile", action="store_true", help="--batch-only: with cProfile")
    args = parser.parse_args(argv)
    if args.batch_only:
        batch_probe(args)
        return

    home = args.work_dir / f"changed_units_n{args.tenants}"
    home.mkdir(parents=True, exist_ok=True)
    url = recreate_postgres_database(args.postgres_url, args.database)
    settings = bench_settings(
        POSTGRES, home, url, first_sync_day(dt.datetime.now(dt.UTC).date()), TEMPLATE_HISTORY_DAYS
    )
    out = args.results_dir / f"changed_units_postgres_n{args.tenants}.json"
    result = {
        "tenants": args.tenants,
        "warehouse": POSTGRES,
        "rows_per_table": args.rows_per_table,
        "new_rows_per_table": args.new_rows,
        "changed_every": args.changed_every,
        "machine": machine(),
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "steps": [],
    }

    def keep(step: str, seconds: float, **facts) -> None:
        result["steps"].append(
            {"step": step, "seconds": round(seconds, 2), "load_average": load_average(), **facts}
        )
        out.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(f"  {step}: {seconds:.2f}s {facts}", flush=True)

    try:
        _probe(settings, args, keep)
    finally:
        if not (args.keep_database or args.build_only):
            with psycopg.connect(args.postgres_url, autocommit=True) as admin:
                admin.execute(f'drop database if exists "{args.database}" with (force)')


def _probe(settings, args, keep) -> None:
    mix = bench_tenants(args.tenants)
    register_tenants(settings, mix)
    warehouse = open_warehouse(settings.warehouse)
    with warehouse.connect() as conn:
        ensure_simulator_tables(conn)
        ensure_sync_history(conn)
        by_id = {t.tenant_id: t for t in list_tenants(conn)}
    templates = [by_id[t.tenant_id] for t in mix[:6]]
    started = time.perf_counter()
    run_simulation(warehouse, templates, settings.simulator, show_progress=False)
    keep("simulate 6 templates", time.perf_counter() - started)
    started = time.perf_counter()
    with warehouse.connect() as conn:
        tables = _copy_templates(conn, mix, args.rows_per_table)
    keep("copy raw tables", time.perf_counter() - started, raw_tables=tables)

    batch = [t.tenant_id for i, t in enumerate(mix) if i % args.changed_every == 0]
    with warehouse.connect() as conn:
        keep_land(conn, "first land, every tenant (no snapshot: every table read)", keep)
        if args.build_only:
            return
        all_tenants = tenants_by_stream(
            {t.tenant_id: t.sources for t in list_tenants(conn)}, STREAMS
        )
        keep_find(conn, all_tenants, set(), "find changed tables, nothing written", keep)

        started = time.perf_counter()
        written = _sync(conn, mix, batch, args.new_rows)
        keep("sync the batch", time.perf_counter() - started, tenants=len(batch),
             tables_written=len(written))  # fmt: skip
        for attempt in (1, 2, 3):
            keep_find(conn, all_tenants, written, f"find changed tables ({attempt})", keep)
        keep_land(conn, "land the batch, every table of its tenants", keep, batch, read_all=True)

        _sync(conn, mix, batch, args.new_rows)
        keep_land(conn, "land the batch, changed tables only", keep, batch)

        _sync(conn, mix, batch, args.new_rows)
        keep_land(conn, "land every tenant, changed tables only", keep)
        keep_land(conn, "land every tenant, every table (nothing new)", keep, read_all=True)


# What a batch's land run spends its time on: (module, function, phase). The functions are wrapped
# where land_streams and land_stream look them up; a phase's time includes the phases it calls
# (the merge's include the rows' validation and the writes).
PHASES = (
    (run, "find_changed_units", "find changed tables"),
    (merge, "ensure_landing_tables", "ensure landing tables"),
    (merge, "_watermarks", "read watermarks"),
    (merge, "table_units", "list raw tables' columns"),
    (merge, "read_new_rows", "read raw rows"),
    (merge, "_merge_batch", "merge (all of it)"),
    (merge, "validate_rows", "merge: validate rows"),
    (merge, "_replace_rows", "merge: replace landing rows"),
    (merge, "_insert_quarantine", "merge: quarantine"),
    (merge, "_save_watermarks", "merge: save watermarks"),
    (run, "save_landed_units", "save counters snapshot"),
)
TOP_LEVEL = {
    "find changed tables",
    "ensure landing tables",
    "read watermarks",
    "list raw tables' columns",
    "read raw rows",
    "merge (all of it)",
    "save counters snapshot",
}


def batch_probe(args) -> None:
    """Land batches of a 24th of the tenants on a kept database, each phase's wall and CPU time
    (this process's and its Postgres backend's) recorded; appended to land_batch_postgres_n<N>.json."""
    settings = bench_settings(
        POSTGRES,
        args.work_dir / f"changed_units_n{args.tenants}",
        postgres_database_url(args.postgres_url, args.database),
        first_sync_day(dt.datetime.now(dt.UTC).date()),
        TEMPLATE_HISTORY_DAYS,
    )
    out = args.results_dir / f"land_batch_postgres_n{args.tenants}.json"
    result = (
        json.loads(out.read_text())
        if out.exists()
        else {
            "tenants": args.tenants,
            "warehouse": POSTGRES,
            "changed_every": args.changed_every,
            "new_rows_per_table": args.new_rows,
            "machine": machine(),
            "runs": [],
        }
    )
    mix = bench_tenants(args.tenants)
    warehouse = open_warehouse(settings.warehouse)
    with warehouse.connect() as conn:
        backend = conn.fetch_value("select pg_backend_pid()")
        conn.commit()
        raw_tables = conn.fetch_value(
            "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname like %s and c.relkind = 'r'",
            ("user\\_%",),
        )
        conn.commit()
        for round_ in range(args.rounds):
            offset = (args.offset + round_) % args.changed_every
            batch = [t.tenant_id for i, t in enumerate(mix) if i % args.changed_every == offset]
            written = _sync(conn, mix, batch, args.new_rows)
            time.sleep(1.5)  # the counters' flush
            record = _timed_land(conn, batch, backend, args.profile)
            record.update(
                label=args.label,
                at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                raw_tables=raw_tables,
                batch_offset=offset,
                batch_tenants=len(batch),
                tables_written=len(written),
            )
            result["runs"].append(record)
            out.write_text(json.dumps(result, indent=2, default=str) + "\n")
            print(json.dumps({k: v for k, v in record.items() if k != "profile"}, indent=1))


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process on this machine (Postgres's backend is one)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _timed_land(conn, batch: list[str], backend: int, profile: bool) -> dict:
    phases: dict[str, dict] = {}

    @contextmanager
    def timing(name: str):
        started, cpu, server = time.perf_counter(), time.process_time(), _cpu_seconds(backend)
        try:
            yield
        finally:
            phase = phases.setdefault(
                name, {"calls": 0, "seconds": 0.0, "cpu_seconds": 0.0, "server_cpu_seconds": 0.0}
            )
            phase["calls"] += 1
            phase["seconds"] += time.perf_counter() - started
            phase["cpu_seconds"] += time.process_time() - cpu
            phase["server_cpu_seconds"] += _cpu_seconds(backend) - server

    def wrapped(function, name):
        def call(*args, **kwargs):
            with timing(name):
                return function(*args, **kwargs)

        return call

    originals = [(module, attr, getattr(module, attr)) for module, attr, _ in PHASES]
    for (module, attr, name), (_, _, function) in zip(PHASES, originals, strict=True):
        setattr(module, attr, wrapped(function, name))
    profiler = cProfile.Profile() if profile else None
    try:
        with timing("total"):
            if profiler:
                profiler.enable()
            streams = list(land_streams(conn, list(STREAMS), batch))
            if profiler:
                profiler.disable()
    finally:
        for module, attr, function in originals:
            setattr(module, attr, function)
    total = phases.pop("total")
    other = {
        key: total[key] - sum(p[key] for name, p in phases.items() if name in TOP_LEVEL)
        for key in ("seconds", "cpu_seconds", "server_cpu_seconds")
    }
    outcomes = [o for s in streams for o in s.outcomes]
    record = {
        "seconds": round(total["seconds"], 2),
        "cpu_seconds": round(total["cpu_seconds"], 2),
        "server_cpu_seconds": round(total["server_cpu_seconds"], 2),
        "load_average": load_average(),
        "tenant_streams": len(outcomes),
        "tenant_streams_merged": sum(o.status == "merged" for o in outcomes),
        "tenant_streams_failed": sum(o.status == "failed" for o in outcomes),
        "rows_read": sum(s.rows_read for s in streams),
        "phases": {
            name: {k: round(v, 3) if isinstance(v, float) else v for k, v in p.items()}
            for name, p in {**phases, "other": other}.items()
        },
    }
    if profiler:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(30)
        record["profile"] = text.getvalue().splitlines()
    return record


def keep_land(conn, step, keep, tenant_ids=None, read_all=False) -> None:
    started = time.perf_counter()
    streams = list(land_streams(conn, list(STREAMS), tenant_ids, read_all=read_all))
    outcomes = [o for s in streams for o in s.outcomes]
    keep(
        step,
        time.perf_counter() - started,
        tenant_streams=len(outcomes),
        tenant_streams_merged=sum(o.status == "merged" for o in outcomes),
        tenant_streams_failed=sum(o.status == "failed" for o in outcomes),
        rows_read=sum(s.rows_read for s in streams),
    )


def keep_find(conn, candidates, written: set[tuple[str, str]], step, keep) -> None:
    started, cpu = time.perf_counter(), time.process_time()
    found = find_changed_units(conn, STREAMS, candidates)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    raw_table = {c.name: c.raw_table for c in STREAMS}
    read = {(raw_schema(t), raw_table[s]) for s, tenants in found.to_read.items() for t in tenants}
    keep(
        step,
        seconds,
        cpu_seconds_this_process=round(cpu, 2),
        candidate_tables=sum(map(len, candidates.values())),
        found=len(read),
        written=len(written),
        missed=len(written - read),
        extra=len(read - written),
        # Read without counters to compare: no table, or not a plain table.
        without_counters=len(read - set(found.counters)),
    )
    conn.commit()


def _copy_templates(conn, mix, rows_per_table: int) -> int:
    """Give each tenant the first rows of its template's raw tables, TENANTS_PER_STATEMENT tenants'
    tables per round trip; the tables made."""
    tables = {raw_schema(t.tenant_id): _raw_tables(conn, raw_schema(t.tenant_id)) for t in mix[:6]}
    made = 0
    for first in range(6, len(mix), TENANTS_PER_STATEMENT):
        statements = []
        for index in range(first, min(first + TENANTS_PER_STATEMENT, len(mix))):
            template = raw_schema(mix[index % 6].tenant_id)
            schema = raw_schema(mix[index].tenant_id)
            statements.append(f"create schema {quote_ident(schema)}")
            statements += [
                f"create table {qualified(schema, table)} as select * from "
                f"{qualified(template, table)} order by {quote_ident('_airbyte_raw_id')} "
                f"limit {int(rows_per_table)}"
                for (table,) in tables[template]
            ]
        conn.execute("; ".join(statements))  # no parameters: one simple-protocol round trip
        conn.commit()
        made += len(statements) - (min(first + TENANTS_PER_STATEMENT, len(mix)) - first)
        if (first // TENANTS_PER_STATEMENT) % 10 == 0:
            print(f"  copy: {made} tables", flush=True)
    return made


def _sync(conn, mix, batch, new_rows: int) -> set[tuple[str, str]]:
    """Each raw table of the batch's tenants gets `new_rows` of its rows again, extracted now
    (after every watermark); the (schema, table)s written. This backend's counts are published at
    once (pg_stat_force_next_flush), as a sync's connection publishes them when it ends."""
    template_of = {t.tenant_id: mix[i % 6].tenant_id for i, t in enumerate(mix)}
    columns_of = {  # every tenant's tables are copies of its template's
        template: {
            table: list(conn.table_columns(raw_schema(template), table))
            for (table,) in _raw_tables(conn, raw_schema(template))
        }
        for template in set(template_of.values())
    }
    written = set()
    for tenant_id in batch:
        schema = raw_schema(tenant_id)
        for table, columns in columns_of[template_of[tenant_id]].items():
            listed = ", ".join(quote_ident(c) for c in columns)
            shifted = ", ".join(
                "clock_timestamp()" if c == "_airbyte_extracted_at" else quote_ident(c)
                for c in columns
            )
            name = qualified(schema, table)
            conn.execute(
                f"insert into {name} ({listed}) select {shifted} from {name} "
                f"order by {quote_ident('_airbyte_raw_id')} limit {int(new_rows)}"
            )
            written.add((schema, table))
    conn.execute("select pg_stat_force_next_flush()")
    conn.commit()
    return written


if __name__ == "__main__":
    main()

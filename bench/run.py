"""`make bench N=1000`: simulate N tenants, time every stage of the flow on DuckDB and Postgres,
the dashboard query and the naive designs, and write bench/results/n<N>.{json,md}.

Usage: python -m bench.run --tenants 1000 [--warehouses duckdb,postgres] (see --help)
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
import traceback
from pathlib import Path

from bench import day, flow, queries
from bench.direct import time_direct
from bench.memory import disk_mib
from bench.naive_dbt import per_tenant_dbt
from bench.report import Results, load_average
from bench.scale import (
    DUCKDB,
    HISTORY_DAYS,
    POSTGRES,
    bench_database_name,
    bench_settings,
    bench_tenants,
    first_sync_day,
    fresh_warehouse,
    postgres_database_url,
    recreate_postgres_database,
    register_tenants,
)

BENCH_DIR = Path(__file__).resolve().parent
MIX = (
    "tenants cycle through the demo's six (profile, sources) pairs: steady_growth, churning and "
    "seasonal with all four sources; anomalous with stripe, shopify, google_analytics; "
    "slowing_team with stripe, github; steady_growth with stripe only"
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, required=True)
    parser.add_argument("--warehouses", default=f"{DUCKDB},{POSTGRES}")
    parser.add_argument(
        "--postgres-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="an admin connection; the bench creates its own databases",
    )
    parser.add_argument(
        "--sim-workers",
        type=int,
        default=2,
        help="processes simulating into Postgres (DuckDB takes one writer)",
    )
    parser.add_argument("--dashboard-runs", type=int, default=1000)
    parser.add_argument("--naive-runs", type=int, default=30)
    parser.add_argument("--naive-budget-seconds", type=float, default=120.0)
    parser.add_argument("--per-tenant-dbt-sample", type=int, default=3)
    parser.add_argument(
        "--union-probe",
        default="",
        help="comma-separated schema counts for the synthetic UNION ALL probe",
    )
    parser.add_argument(
        "--until",
        choices=["simulate", "first load", "incremental day", "normal day", "worst day"],
        help="stop after this phase (the queries and naive designs are skipped)",
    )
    parser.add_argument(
        "--replicate-from",
        type=int,
        help="measure only the dashboard query, over the marts of the existing run at this scale "
        "copied up to --tenants tenants (a labelled stand-in for a scale not simulated)",
    )
    parser.add_argument(
        "--note", default="", help="a remark kept with the results (say, what else ran)"
    )
    parser.add_argument(
        "--queries-only",
        action="store_true",
        help="rerun only the dashboard query and the naive designs on the warehouse an earlier "
        "run at this scale left (its stage timings are kept)",
    )
    parser.add_argument(
        "--measure",
        default="dashboard,naive-view,naive-dbt,probe",
        help="after the flow: which of dashboard, naive-view, naive-dbt, probe to run",
    )
    parser.add_argument(
        "--path",
        choices=["dagster", "direct"],
        default="dagster",
        help="dagster: run_flow, one run per stage in the Dagster instance (the runs the CLI, "
        "the daemon and the UI show); direct: the functions the assets call, without Dagster "
        "(bench/direct.py)",
    )
    parser.add_argument(
        "--reuse-simulation",
        action="store_true",
        help="start from the first sync an earlier run at this scale simulated (and landed "
        "nothing of): its results are kept and the first load and what follows are measured",
    )
    parser.add_argument(
        "--no-new-day",
        action="store_true",
        help="with --reuse-simulation on a first load that completed: measure the incremental "
        "day's stages with no new sync (the fixed cost of a day; labelled 'no new rows')",
    )
    parser.add_argument(
        "--days",
        action="store_true",
        help="after the first load, the worst day (every sync at once, then the whole flow) and "
        "a normal day (the tenants' syncs in 24 batches, each landed as it arrives, then the "
        "day's flow) instead of the incremental day (bench/day.py)",
    )
    parser.add_argument(
        "--bulk-templates",
        type=int,
        help="simulate with the simulator's bulk mode, this many template worlds a profile "
        "(tenants sharing a template have the same data under their own names)",
    )
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    parser.add_argument("--work-dir", type=Path, default=BENCH_DIR / "work")
    args = parser.parse_args(argv)

    # With --days, two days of syncs follow the first: neither may be stamped in the future.
    first_day = first_sync_day(dt.datetime.now(dt.UTC).date() - dt.timedelta(days=args.days))
    results = Results(
        args.results_dir,
        args.tenants,
        {}
        if args.queries_only or args.reuse_simulation
        else {
            "history_days": HISTORY_DAYS,
            "volume": 1.0,
            "mix": MIX,
            "first_sync_day": first_day.isoformat(),
        },
    )
    for kind in args.warehouses.split(","):
        print(f"== {kind}, {args.tenants} tenants", flush=True)
        if args.replicate_from:
            replicated_dashboard(kind, args, results)
        else:
            bench_warehouse(kind, args, first_day, results)
    print(f"results: {results.markdown_path}")


def warehouse_disk_mib(settings) -> float:
    """The embedded warehouse's disk use: everything under its home but Dagster's and the logs."""
    kept = {settings.dagster_home, settings.home / "logs"}
    return disk_mib(*(p for p in settings.home.iterdir() if p not in kept))


def existing_settings(kind: str, tenants: int, args, first_day: dt.date):
    """The settings of the warehouse an earlier run at this scale left behind."""
    home = args.work_dir / f"n{tenants}" / kind
    if kind == DUCKDB:
        url = f"duckdb:///{home / 'warehouse.duckdb'}"
    else:
        url = postgres_database_url(args.postgres_url, bench_database_name(tenants))
    return bench_settings(kind, home, url, first_day)


def replicated_dashboard(kind: str, args, results: Results) -> None:
    """The dashboard query at --tenants over copies of the marts of the run at --replicate-from."""
    source = Results(args.results_dir, args.replicate_from, {})
    measured = source.data["warehouses"][kind]
    first_day = dt.date.fromisoformat(source.data["settings"]["first_sync_day"])
    settings = existing_settings(kind, args.replicate_from, args, first_day)
    section = results.data["warehouses"].setdefault(kind, {"stages": []})
    results.measured_here.add(kind)
    section["note"] = (
        f"dashboard only: the marts of the {args.replicate_from:,}-tenant run copied "
        f"{args.tenants // args.replicate_from} times (nothing else was run at this scale)"
    )
    section["load_average_start"] = load_average()
    section.setdefault("started_at", dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    tenant_ids = [t.tenant_id for t in bench_tenants(measured["tenants"])]
    section["dashboard"] = queries.replicated_dashboard(
        settings,
        tenant_ids,
        args.tenants // args.replicate_from,
        first_day + dt.timedelta(days=1),
        args.dashboard_runs,
    )
    section["load_average_end"] = load_average()
    results.save()


def bench_warehouse(kind: str, args, first_day: dt.date, results: Results) -> None:
    if args.queries_only or args.reuse_simulation:
        section = results.data["warehouses"][kind]
        results.measured_here.add(kind)
        first_day = dt.date.fromisoformat(results.data["settings"]["first_sync_day"])
    else:
        section = results.start_warehouse(kind, tenants=args.tenants)
    if args.note:
        section["note"] = args.note

    def keep(record: dict) -> None:
        section["stages"].append(record)
        results.save()
        print(
            f"  {record['phase']} / {record['stage']}: {record['seconds']:.1f}s, "
            f"{record.get('rows')} {record.get('unit', '')}",
            flush=True,
        )

    def attempt(name: str, measure) -> bool:
        """Run one measurement; a failure is recorded under `name` and the run goes on."""
        try:
            measure()
            return True
        except Exception as error:  # noqa: BLE001 - the failure point is a result
            section.setdefault("failures", {})[name] = f"{type(error).__name__}: {error}"[:2000]
            results.save()
            traceback.print_exc()
            return False
        finally:
            section["load_average_end"] = load_average()
            results.save()

    tenants = bench_tenants(args.tenants)
    tenant_ids = [t.tenant_id for t in tenants]
    if args.queries_only or args.reuse_simulation:
        settings = existing_settings(kind, args.tenants, args, first_day)
    else:
        settings = fresh_warehouse(kind, args.tenants, args.work_dir, args.postgres_url, first_day)
        started = time.perf_counter()
        register_tenants(settings, tenants)
        section["register_seconds"] = round(time.perf_counter() - started, 2)

    def simulate(phase: str):
        def measure():
            record = flow.simulate(settings, args.sim_workers, bulk_templates=args.bulk_templates)
            keep({"phase": phase, "stage": "simulate", **record})

        return measure

    today = first_day + dt.timedelta(days=1)
    if args.path == "direct":
        first_load = lambda: time_direct(settings, "first load (direct)", True, keep)  # noqa: E731
        incremental = lambda: time_direct(settings, "incremental day (direct)", False, keep)  # noqa: E731
    else:
        first_load = lambda: flow.time_flow(settings, "first load", keep)  # noqa: E731
        incremental = lambda: flow.time_flow(settings, "incremental day", keep)  # noqa: E731
    phases = [
        ("simulate", simulate("first load")),
        ("first load", first_load),
        ("simulate incremental", simulate("incremental day")),
        ("incremental day", incremental),
    ]
    if args.days:

        def simulate_some(tenant_ids: list[str]) -> dict:
            return flow.simulate(settings, args.sim_workers, tenant_ids, args.bulk_templates)

        # The worst day first: the staging tests of the day after the first load check the rows
        # of both syncs (one day of lookback), so the normal day, a day later, is steady state.
        phases[2:] = [
            ("worst day", lambda: day.time_worst_day(settings, tenant_ids, simulate_some, keep)),
            ("normal day", lambda: day.time_normal_day(settings, tenant_ids, simulate_some, keep)),
        ]
    if args.reuse_simulation:
        phases = phases[1:]
    if args.no_new_day:
        label = "incremental day, no new rows" + (" (direct)" if args.path == "direct" else "")
        if args.path == "direct":
            phases = [("incremental day", lambda: time_direct(settings, label, False, keep))]
        else:
            phases = [("incremental day", lambda: flow.time_flow(settings, label, keep))]
    for name, measure in [] if args.queries_only else phases:
        if not attempt(name, measure) or args.until == name:
            return
        if kind == DUCKDB and name == "first load":
            section["disk_mib_per_tenant"] = round(warehouse_disk_mib(settings) / args.tenants, 3)

    def dashboard():
        section["dashboard"] = queries.dashboard_query(
            settings, tenant_ids, today, args.dashboard_runs
        )

    def naive_view():
        if kind == DUCKDB:
            section["naive_union_view"] = {"error": "no raw tables: DuckDB's raw layer is files"}
            return
        section["naive_union_view"] = queries.naive_union_view(
            settings, tenant_ids, today, args.naive_runs, args.naive_budget_seconds
        )

    def naive_dbt():
        step = max(1, len(tenant_ids) // max(1, args.per_tenant_dbt_sample))
        sample = tenant_ids[::step][: args.per_tenant_dbt_sample]
        section["naive_dbt_per_tenant"] = per_tenant_dbt(
            settings,
            sample,
            args.tenants,
            today,
            args.work_dir / f"n{args.tenants}" / f"{kind}_one_tenant",
            args.postgres_url,
        )

    def probe():
        counts = [int(c) for c in args.union_probe.split(",") if c.strip()]
        home = args.work_dir / "union_probe" / kind
        home.mkdir(parents=True, exist_ok=True)
        if kind == DUCKDB:
            (home / "probe.duckdb").unlink(missing_ok=True)
            url = f"duckdb:///{home / 'probe.duckdb'}"
        else:
            url = recreate_postgres_database(args.postgres_url, "tenantpulse_bench_union_probe")
        probe_settings = bench_settings(kind, home, url, first_day)
        section["union_view_probe"] = queries.union_view_probe(
            probe_settings, counts, args.naive_budget_seconds
        )

    measurements = {
        "dashboard": dashboard,
        "naive-view": naive_view,
        "naive-dbt": naive_dbt if args.per_tenant_dbt_sample else None,
        "probe": probe if args.union_probe else None,
    }
    for name in args.measure.split(","):
        if measurements.get(name) is not None:
            section.get("failures", {}).pop(name, None)
            attempt(name, measurements[name])


if __name__ == "__main__":
    main()

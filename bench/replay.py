"""Replay the incremental day of an earlier run on its DuckDB or Postgres warehouse, with the code
as it is now: the landing watermarks go back 12 hours, so the newest sync's rows are new again
(landing replaces them with themselves), and `run_flow` runs every stage as that day did, through
the Dagster instance of that run's home.

    python -m bench.replay --tenants 1000 --warehouse duckdb

The earlier incremental day's records are kept under the phase "incremental day, earlier code";
the replay's are recorded as "incremental day".
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from bench import flow
from bench.report import Results
from bench.run import BENCH_DIR, existing_settings
from tenantpulse.warehouse import open_warehouse

EARLIER = "incremental day, earlier code"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, required=True)
    parser.add_argument("--warehouse", choices=["duckdb", "postgres"], required=True)
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--work-dir", type=Path, default=BENCH_DIR / "work")
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    parser.add_argument(
        "--steady-state-tests",
        action="store_true",
        help="then time land and dbt once more with no lookback: the staging tests over the "
        "newest sync day's rows only",
    )
    args = parser.parse_args(argv)

    results = Results(args.results_dir, args.tenants, {})
    section = results.data["warehouses"][args.warehouse]
    results.measured_here.add(args.warehouse)
    for record in section["stages"]:
        if record["phase"] == "incremental day" and record["stage"] != "simulate":
            record["phase"] = EARLIER
    first_day = dt.date.fromisoformat(results.data["settings"]["first_sync_day"])
    settings = existing_settings(args.warehouse, args.tenants, args, first_day)
    with open_warehouse(settings.warehouse).connect() as conn:
        conn.execute("update landing.watermarks set watermark = watermark - interval '12 hours'")

    def keep(record: dict) -> None:
        section["stages"].append(record)
        results.save()
        print(f"  {record['stage']}: {record['seconds']:.1f}s, {record.get('rows')}", flush=True)

    flow.time_flow(settings, "incremental day", keep)
    if args.steady_state_tests:
        flow.time_steady_state(settings, keep)


if __name__ == "__main__":
    main()

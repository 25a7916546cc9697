"""dbt's time per model in each dbt_job run of a Dagster instance, from the `Execution Duration`
dagster-dbt keeps in each materialization's and each test's metadata (a successful run's own
target folder, with its run_results.json, is removed at its end).

    python -m bench.dbt_times --dagster-home <work-dir>/n10000/duckdb/dagster_home [--models 5]
        [--tests 0]

Prints, per run (oldest first): when it started, its dbt step's seconds, the slowest models, the
tests' seconds together and, with --tests, the slowest tests."""

from __future__ import annotations

import argparse
from pathlib import Path

import dagster as dg

from tenantpulse.defs.dbt import DBT_OP

DURATION = "Execution Duration"


def run_times(
    instance: dg.DagsterInstance, run_id: str
) -> tuple[dict[str, float], dict[str, float]]:
    """(model name -> seconds, test name -> seconds) of one dbt_job run."""
    records = instance.get_records_for_run(
        run_id,
        of_type={
            dg.DagsterEventType.ASSET_MATERIALIZATION,
            dg.DagsterEventType.ASSET_CHECK_EVALUATION,
        },
    ).records
    models: dict[str, float] = {}
    tests: dict[str, float] = {}
    for record in records:
        event = record.event_log_entry.dagster_event
        data = event.event_specific_data
        if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            metadata = data.materialization.metadata
            seconds = metadata.get(DURATION)
            if seconds is not None:
                models[data.materialization.asset_key.path[-1]] = float(seconds.value)
        elif (seconds := data.metadata.get(DURATION)) is not None:
            tests[f"{data.asset_key.path[-1]}: {data.check_name}"] = float(seconds.value)
    return models, tests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dagster-home", type=Path, required=True)
    parser.add_argument("--models", type=int, default=5, help="the slowest models to list")
    parser.add_argument("--tests", type=int, default=0, help="the slowest tests to list")
    args = parser.parse_args()
    if not (args.dagster_home / "dagster.yaml").exists():
        parser.error(f"no dagster.yaml in {args.dagster_home}")
    with dg.DagsterInstance.from_config(str(args.dagster_home)) as instance:
        records = sorted(
            instance.get_run_records(dg.RunsFilter(job_name="dbt_job")),
            key=lambda record: record.create_timestamp,
        )
        if not records:
            print(f"no dbt_job run in {args.dagster_home}")
        for record in records:
            run = record.dagster_run
            stats = {s.step_key: s for s in instance.get_run_step_stats(run.run_id)}
            step = stats.get(DBT_OP)
            step_seconds = (
                f"{step.end_time - step.start_time:.1f}"
                if step and step.end_time and step.start_time
                else "-"
            )
            models, tests = run_times(instance, run.run_id)
            print(
                f"{record.create_timestamp:%Y-%m-%d %H:%M} {run.run_id[:8]} {run.status.value}: "
                f"dbt step {step_seconds} s; "
                + _slowest(models, args.models)
                + f"; {len(tests)} tests {sum(tests.values()):.1f} s"
                + (f", the slowest: {_slowest(tests, args.tests)}" if args.tests else "")
            )


def _slowest(seconds_by_name: dict[str, float], count: int) -> str:
    slowest = sorted(seconds_by_name.items(), key=lambda item: -item[1])[:count]
    return ", ".join(f"{name} {seconds:.1f} s" for name, seconds in slowest)


if __name__ == "__main__":
    main()

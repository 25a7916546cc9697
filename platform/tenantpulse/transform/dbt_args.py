"""The dbt stage of a flow as one command line: `dbt build` of every model, in dbt's dependency
order (the views, the daily incremental marts, the mart tables), with their tests. What a run
rebuilds and tests is the run's window (transform/windows.py), read from the warehouse, not passed
here. The dbt asset (defs/dbt.py) hands the arguments to dagster-dbt, which adds the selection; a
run without Dagster (the bench's direct path) runs them as they are."""

from __future__ import annotations


def build_args() -> list[str]:
    return ["build"]

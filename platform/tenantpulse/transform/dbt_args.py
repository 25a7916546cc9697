"""The dbt stage of a flow as one command line: `dbt build` of every model, in dbt's dependency
order (the views, the daily incremental marts, the mart tables), with their data tests. What a run
rebuilds and tests is the run's window (transform/windows.py), read from the warehouse, not passed
here. The dbt asset (defs/dbt.py) hands the arguments to dagster-dbt, which adds the selection; a
run without Dagster (the bench's direct path) runs them as they are.

dbt's unit tests check the models' SQL on fixed inputs, not the data: as dbt recommends, the
flow's runs leave them out, and the test suite runs them (tests/test_dbt_unit_tests.py), as
`tenantpulse dbt test --select test_type:unit` does by hand."""

from __future__ import annotations


def build_args() -> list[str]:
    return ["build", "--exclude-resource-type", "unit_test"]

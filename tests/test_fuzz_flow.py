"""The fuzz through the whole flow (issue 15): the raw tables of tests/fuzz_raw.py (every stream's
contract, extreme and malformed values, extra columns, two tables that cannot be landed) for two
clean and two broken tenants, two syncs, each followed by a flow of the stage runs in the test's
process. Every run succeeds; every problem is named by a broken tenant; the clean tenants' marts,
analysis and actions are the ones a flow of the clean tenants alone gives (but the churn
probability: the model learns from every tenant).

DuckDB only: the flow runs four times here (tests/test_fuzz_landing.py lands the same tables on
both warehouses, tests/test_tenant_isolation.py runs a broken tenant's flow on both)."""

from __future__ import annotations

import dagster as dg

from conftest import make_settings
from flowkit import failed_checks, memory_instance, run_flow_in_process, step_errors, tenant_rows
from fuzz_raw import FAILING_TABLES, TENANTS, raw_tables, write_raw_tables
from tenantpulse import flow
from tenantpulse.sources.contracts import SOURCES
from tenantpulse.tenants.registry import add_tenant
from tenantpulse.warehouse import open_warehouse

CLEAN = sorted(t.tenant_id for t in TENANTS if not t.broken)
BROKEN = sorted(t.tenant_id for t in TENANTS if t.broken)
# Metadata of a failed check that names tenants, by the check's kind.
TENANTS_NAMED_BY = (
    "errors_by_tenant",
    "quarantined_rows_by_tenant",
    "offending_rows_by_tenant",
    "extra_columns_by_tenant",
)
# Every fuzzed tenant's tables carry an extra column (Airbyte's propagate_columns): drift, not
# breakage, so the drift check names the clean tenants too.
EVERY_TENANT_DRIFTS = "no_schema_drift"
# The churn model is trained on every tenant's history (docs/analysis.md), so another tenant's
# data moves a clean tenant's probability: the one output compared apart.
LEARNS_FROM_EVERY_TENANT = "analysis.churn_risk"


def _settings(home):
    # The fuzzed syncs are on Nov 1 and 2: a short range of daily partitions keeps four flows quick.
    return make_settings(
        home, f"duckdb:///{home}.duckdb", TENANTPULSE_DAILY_PARTITIONS_START="2026-10-25"
    )


def _flows(settings, tenants) -> tuple[list, dg.DagsterInstance]:
    warehouse = open_warehouse(settings.warehouse)
    instance = memory_instance()
    with warehouse.connect() as conn:
        for tenant in tenants:
            add_tenant(conn, tenant.tenant_id, tenant.tenant_id, ",".join(SOURCES))
    runs = []
    for sync in (1, 2):
        with warehouse.connect() as conn:
            for tenant in tenants:
                write_raw_tables(conn, tenant.tenant_id, raw_tables(tenant, sync))
        results = run_flow_in_process(settings, instance)
        assert all(r.success for r in results), [step_errors(r) for r in results]
        assert [r.job_def.name for r in results] == [s.job for s in flow.STAGES]
        runs += results
    return runs, instance


def test_fuzzed_tenants_through_the_whole_flow_twice_name_themselves_and_spare_the_others(
    tmp_path,
):
    settings = _settings(tmp_path / "all")
    runs, instance = _flows(settings, TENANTS)

    # The tables landing cannot take are named, on each land run, and the flow went on.
    not_landed = ", ".join(sorted(f"{t}/{s}" for t, s in FAILING_TABLES))
    for land in (r for r in runs if r.job_def.name == flow.LAND.job):
        assert land.dagster_run.tags[flow.LANDING_FAILED_TAG] == not_landed

    # Every failed check names tenants, and only broken ones; only landing's is an error.
    failed = failed_checks(settings, instance)
    assert failed, "the broken tenants' values must show up as failed checks"
    for key, evaluation in failed.items():
        named = [evaluation.metadata[m].value for m in TENANTS_NAMED_BY if m in evaluation.metadata]
        assert named, f"{key} names no tenant: {evaluation.metadata}"
        if key.name != EVERY_TENANT_DRIFTS:
            assert set().union(*named) <= set(BROKEN), (key, named)
        if evaluation.severity == dg.AssetCheckSeverity.ERROR:
            assert key.name == "tenants_landed", key

    with open_warehouse(settings.warehouse).connect() as conn:
        with_broken = {t: tenant_rows(conn, t) for t in CLEAN}
    alone = _settings(tmp_path / "alone")
    _flows(alone, [t for t in TENANTS if not t.broken])
    with open_warehouse(alone.warehouse).connect() as conn:
        without_broken = {t: tenant_rows(conn, t) for t in CLEAN}
    for tenant_id in CLEAN:
        assert with_broken[tenant_id]["analytics.tenant_daily_metrics"], tenant_id
        differing = [
            table
            for table, rows in without_broken[tenant_id].items()
            if with_broken[tenant_id].get(table) != rows and table != LEARNS_FROM_EVERY_TENANT
        ]
        assert differing == [], (tenant_id, differing)

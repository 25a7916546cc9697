"""The same simulated tenants through the whole flow on DuckDB and on Postgres give the same marts."""

import datetime as dt
import decimal

import pytest

from conftest import make_settings
from flowkit import run_flow_in_process, step_errors
from tenantpulse.flow_runs import dagster_instance
from tenantpulse.simulator.run import assign_profile, run_simulation
from tenantpulse.tenants.registry import add_tenant, list_tenants
from tenantpulse.warehouse import open_warehouse, qualified

TENANTS = [
    ("acme", "stripe,github,shopify,google_analytics", "steady_growth"),
    ("globex", "stripe,shopify", "churning"),
    ("initech", "stripe,google_analytics", "seasonal"),
]


def _plain(value):
    if isinstance(value, (float, decimal.Decimal)):
        return round(float(value), 4)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC)
    return value


def _flow(settings):
    warehouse = open_warehouse(settings.warehouse)
    with warehouse.connect() as conn:
        for tenant_id, sources, profile in TENANTS:
            add_tenant(conn, tenant_id, tenant_id, sources)
            assign_profile(conn, tenant_id, profile)
        tenants = list_tenants(conn)
    instance = dagster_instance(settings)
    for _ in range(2):  # a first build, then an incremental day
        run_simulation(warehouse, tenants, settings.simulator, show_progress=False)
        results = run_flow_in_process(settings, instance)
        assert all(r.success for r in results), [step_errors(r) for r in results]
        assert len(results) == 4  # land, dbt, analyse, act
    marts, tenants_by_mart = {}, {}
    with warehouse.connect() as conn:
        tables = [
            r[0]
            for r in conn.fetch_all(
                "select table_name from information_schema.tables where table_schema = 'analytics' order by 1"
            )
        ]
        for table in tables:
            rows = conn.fetch_all(f"select * from {qualified('analytics', table)}")
            marts[table] = sorted((tuple(_plain(v) for v in row) for row in rows), key=repr)
            tenants_by_mart[table] = {
                r[0]
                for r in conn.fetch_all(
                    f"select distinct tenant_id from {qualified('analytics', table)}"
                )
            }
    return marts, tenants_by_mart


@pytest.mark.postgres
def test_demo_marts_are_identical_on_duckdb_and_postgres(tmp_path, postgres_url):
    on_duckdb, tenants_by_mart = _flow(
        make_settings(tmp_path / "d", f"duckdb:///{tmp_path / 'd.duckdb'}")
    )
    on_postgres, _ = _flow(make_settings(tmp_path / "p", postgres_url))
    # Every mart has rows for every tenant that has its source.
    with_source = {
        source: {t for t, sources, _ in TENANTS if source in sources}
        for source in ("stripe", "github", "shopify", "google_analytics")
    }
    expected_sources = {
        "revenue_daily": "stripe",
        "revenue_analytics": "stripe",
        "unified_customers": "stripe",
        "developer_activity": "github",
        "developer_activity_monthly": "github",
        "website_analytics": "google_analytics",
        "website_traffic": "google_analytics",
        "tenant_daily_metrics": "stripe",
        "user_dashboard_summary": "stripe",
    }
    for table, source in expected_sources.items():
        assert with_source[source] <= tenants_by_mart[table], table
    assert set(on_duckdb) == set(on_postgres)
    assert {
        "revenue_daily",
        "revenue_analytics",
        "developer_activity",
        "website_analytics",
        "unified_customers",
        "user_dashboard_summary",
        "tenant_daily_metrics",
    } <= set(on_duckdb)
    for table, rows in on_duckdb.items():
        assert rows, f"analytics.{table} is empty"
        assert rows == on_postgres[table], f"analytics.{table} differs between DuckDB and Postgres"

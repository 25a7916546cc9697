"""The same simulated tenants through the whole flow on DuckDB and on Postgres give the same marts.

The two warehouses are the suite's shared whole-flow builds (tests/conftest.py demo_flow: a first
build, then an incremental day), which tests/test_web_dashboard.py serves to the tenants too."""

import datetime as dt
import decimal

import pytest

from conftest import DEMO_FLOW_TENANTS
from tenantpulse.warehouse import open_warehouse, qualified


def _plain(value):
    if isinstance(value, (float, decimal.Decimal)):
        return round(float(value), 4)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC)
    return value


def _marts(settings):
    marts, tenants_by_mart = {}, {}
    with open_warehouse(settings.warehouse).connect() as conn:
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
def test_demo_marts_are_identical_on_duckdb_and_postgres(demo_flow):
    with demo_flow("duckdb") as settings:
        on_duckdb, tenants_by_mart = _marts(settings)
    with demo_flow("postgres") as settings:
        on_postgres, _ = _marts(settings)
    # Every mart has rows for every tenant that has its source.
    with_source = {
        source: {t for t, _, sources, _ in DEMO_FLOW_TENANTS if source in sources}
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

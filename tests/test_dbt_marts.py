"""The dbt marts on both warehouses: hand-made landing data in, hand-computed numbers out, and daily
windowed runs that give the same rows as a full build.

The data set (tenant `hand`, usd; tenant `yen`, jpy), with the numbers it must give:
- subscriptions: monthly 50.00 and annual 1200.00 (100 a month) active since October; a 29.00 one
  still in its trial; a 79.00 one cancelled on Nov 3. MRR: October 50 + 100 + 79 = 229; November
  50 + 1200/12 = 150 (the trial excluded, the cancelled one churned: 79).
- charges: October 50 + 79 + 1200; November 50 (Nov 2, plus one failed), 20 (Nov 4, half
  refunded on Nov 5: refund 10) and a pending one (in neither count). November refund rate
  10 / 70.
- Shopify: two orders of one customer (Oct 10: 90 after a 10 discount; Nov 2: 45 after 5, 20
  refunded), a test order and a cancelled one (both left out).
- GitHub: a pull request merged exactly 3 days (72.0 hours) after it was opened, first reviewed
  (approved) after 24 hours; one closed unmerged; one left open; two commits.
- GA: two properties on Nov 5 with 100 and 300 sessions bouncing at 0.5 and 0.3 -> 0.35 weighted.
- tenant yen: a 5000 JPY charge, which is 5000 yen (a zero-decimal currency), not 50.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import astuple, replace
from decimal import Decimal

import pytest

from conftest import WAREHOUSES, copied_once_built, make_settings
from rawdata import sync_time, write_raw
from tenantpulse.landing.merge import ensure_landing_tables, land_stream
from tenantpulse.sources.contracts import STREAMS, STREAMS_BY_NAME
from tenantpulse.transform.dbt_cli import run_dbt
from tenantpulse.transform.tenant_findings import failures_table, read_findings
from tenantpulse.transform.windows import (
    RunWindow,
    daily_window,
    finish_run_window,
    mark_for_build,
    run_tenants,
    write_run_window,
)
from tenantpulse.warehouse import open_warehouse

TENANTS = ["hand", "yen"]
INCREMENTAL_MARTS = {
    "revenue_daily": "tenant_id, date, currency",
    "developer_activity": "tenant_id, date",
    "website_analytics": "tenant_id, date",
    "website_traffic": "tenant_id, date, dimension, dimension_value",
    "tenant_daily_metrics": "tenant_id, date",
}
# Incremental over the months of the run's window: keyed by month, not partitioned by day.
MONTHLY_MARTS = {"developer_activity_monthly": "tenant_id, month"}
# Rebuilt whole, or for the tenants of a run over the tenants that changed.
TABLE_MARTS = {
    "unified_customers": "tenant_id, customer_key",
    "revenue_analytics": "tenant_id, month, currency",
    "user_dashboard_summary": "tenant_id",
}
# The intermediate tables a run over the tenants that changed rebuilds for those tenants alone.
TABLE_INTERMEDIATES = {
    "int_pull_requests_reviewed": "tenant_id, pull_request_id",
    "int_subscriptions_activated": "tenant_id, subscription_id",
    "int_tenant_currencies_ranked": "tenant_id, currency",
    "int_tenant_days_spined": "tenant_id, date",
    "int_tenant_syncs_dated": "tenant_id, synced_date",
}


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def epoch(text: str) -> int:
    return int(at(text).timestamp())


def plan(unit_amount: int, interval: str, currency: str = "usd") -> dict:
    price = {
        "currency": currency,
        "recurring": {"interval": interval, "interval_count": 1},
        "unit_amount": unit_amount,
    }
    return {"data": [{"price": price, "quantity": 1}], "object": "list"}


def customer(customer_id, email, created, currency="usd"):
    return {
        "id": customer_id,
        "email": email,
        "currency": currency,
        "created": epoch(created),
        "updated": epoch(created),
        "delinquent": False,
    }


def subscription(sub_id, customer_id, status, unit_amount, interval, start, **times):
    record = {
        "id": sub_id,
        "customer": customer_id,
        "status": status,
        "currency": "usd",
        "created": epoch(start),
        "start_date": epoch(start),
        "updated": epoch(times.get("ended_at", start)),
        "items": plan(unit_amount, interval),
        "quantity": 1,
    }
    record.update({name: epoch(value) for name, value in times.items()})
    return record


def charge(charge_id, customer_id, amount, status, created, currency="usd", **extra):
    return {
        "id": charge_id,
        "customer": customer_id,
        "amount": amount,
        "amount_captured": amount if status == "succeeded" else 0,
        "amount_refunded": 0,
        "currency": currency,
        "status": status,
        "paid": status == "succeeded",
        "created": epoch(created),
        "updated": epoch(created),
        **extra,
    }


def order(order_id, created, subtotal, discounts, refunds=(), **extra):
    return {
        "id": order_id,
        "name": f"#{order_id}",
        "order_number": order_id,
        "customer_id": 501,
        "email": "ann@example.com",
        "currency": "USD",
        "subtotal_price": subtotal,
        "total_discounts": discounts,
        "total_price": subtotal,
        "financial_status": "paid",
        "created_at": at(created),
        "updated_at": at(created),
        "refunds": list(refunds),
        "test": False,
        **extra,
    }


def pull_request(pr_id, number, login, created, closed=None, merged=None):
    return {
        "id": pr_id,
        "number": number,
        "repository": "hand/api",
        "state": "open" if closed is None else "closed",
        "title": f"change {number}",
        "user": {"login": login},
        "created_at": at(created),
        "updated_at": at(closed or created),
        "closed_at": at(closed) if closed else None,
        "merged_at": at(merged) if merged else None,
    }


def commit(sha, when, email, login=None):
    return {
        "sha": sha,
        "repository": "hand/api",
        "branch": "main",
        "created_at": at(when),
        "commit": {"author": {"date": when, "email": email, "name": "x"}, "message": "work"},
        "author": {"login": login} if login else None,
    }


def ga_row(property_id, sessions, bounce_rate, users, duration, **breakdown):
    return {
        "property_id": property_id,
        "date": "20261105",
        "sessions": sessions,
        "bounceRate": bounce_rate,
        "totalUsers": users,
        "newUsers": users // 2,
        "screenPageViews": sessions * 3,
        "averageSessionDuration": duration,
        **breakdown,
    }


RAW = {
    ("hand", "stripe__customers"): [
        customer("cus_m", "Ann@Example.com ", "2026-10-01 00:00"),
        customer("cus_a", "bo@example.com", "2026-10-05 00:00"),
        customer("cus_t", "cy@example.com", "2026-11-01 00:00"),
        customer("cus_c", "di@example.com", "2026-10-01 00:00"),
    ],
    ("hand", "stripe__subscriptions"): [
        subscription("sub_m", "cus_m", "active", 5000, "month", "2026-10-01 00:00"),
        subscription("sub_a", "cus_a", "active", 120000, "year", "2026-10-05 00:00"),
        subscription(
            "sub_t",
            "cus_t",
            "trialing",
            2900,
            "month",
            "2026-11-01 00:00",
            trial_start="2026-11-01 00:00",
            trial_end="2026-11-15 00:00",
        ),
        subscription(
            "sub_c",
            "cus_c",
            "canceled",
            7900,
            "month",
            "2026-10-01 00:00",
            canceled_at="2026-11-03 12:00",
            ended_at="2026-11-03 12:00",
        ),
    ],
    ("hand", "stripe__charges"): [
        charge("ch_m_oct", "cus_m", 5000, "succeeded", "2026-10-01 01:00"),
        charge("ch_c_oct", "cus_c", 7900, "succeeded", "2026-10-01 02:00"),
        charge("ch_a_oct", "cus_a", 120000, "succeeded", "2026-10-05 01:00"),
        charge("ch_m_nov", "cus_m", 5000, "succeeded", "2026-11-02 01:00"),
        charge(
            "ch_c_nov", "cus_c", 7900, "failed", "2026-11-02 03:00", failure_code="card_declined"
        ),
        charge("ch_oneoff", "cus_m", 2000, "succeeded", "2026-11-04 10:00", amount_refunded=1000),
        charge("ch_pending", None, 3000, "pending", "2026-11-04 11:00"),
    ],
    ("hand", "stripe__refunds"): [
        {
            "id": "re_1",
            "charge": "ch_oneoff",
            "amount": 1000,
            "currency": "usd",
            "status": "succeeded",
            "created": epoch("2026-11-05 09:00"),
            "updated": epoch("2026-11-05 09:00"),
        }
    ],
    ("hand", "shopify__customers"): [
        {
            "id": 501,
            "email": " ANN@example.com",
            "state": "enabled",
            "currency": "USD",
            "orders_count": 2,
            "total_spent": 115.0,
            "last_order_id": 9002,
            "created_at": at("2026-09-01 00:00"),
            "updated_at": at("2026-11-02 12:00"),
        }
    ],
    ("hand", "shopify__orders"): [
        order(9001, "2026-10-10 12:00", 90.0, 10.0),
        order(
            9002,
            "2026-11-02 12:00",
            45.0,
            5.0,
            refunds=[
                {
                    "id": 1,
                    "transactions": [{"amount": "20.00", "kind": "refund", "status": "success"}],
                }
            ],
            financial_status="partially_refunded",
        ),
        order(9003, "2026-11-02 13:00", 1000.0, 0.0, test=True),
        order(
            9004,
            "2026-11-02 14:00",
            500.0,
            0.0,
            cancelled_at=at("2026-11-03 14:00"),
            financial_status="voided",
        ),
    ],
    ("hand", "github__repositories"): [
        {
            "id": 1,
            "name": "api",
            "full_name": "hand/api",
            "owner": {"login": "hand"},
            "created_at": at("2025-01-01 00:00"),
            "updated_at": at("2026-11-06 09:30"),
        }
    ],
    ("hand", "github__pull_requests"): [
        pull_request(101, 1, "ann", "2026-11-03 09:00", "2026-11-06 09:00", "2026-11-06 09:00"),
        pull_request(102, 2, "bob", "2026-11-03 10:00", "2026-11-04 10:00"),
        pull_request(103, 3, "ann", "2026-11-05 08:00"),
    ],
    ("hand", "github__reviews"): [
        {
            "id": 201,
            "repository": "hand/api",
            "state": "APPROVED",
            "user": {"login": "bob"},
            "pull_request_url": "https://api.github.com/repos/hand/api/pulls/1",
            "submitted_at": at("2026-11-04 09:00"),
            "created_at": at("2026-11-04 09:00"),
            "updated_at": at("2026-11-04 09:00"),
        }
    ],
    ("hand", "github__commits"): [
        commit("c1", "2026-11-06 09:00", "Ann@Example.com", login="ann"),
        commit("c2", "2026-11-06 09:30", "dev@example.com"),
    ],
    ("hand", "google_analytics__website_overview"): [
        ga_row("p1", 100, 0.5, 80, 60.0),
        ga_row("p2", 300, 0.3, 200, 100.0),
    ],
    ("hand", "google_analytics__traffic_sources"): [
        ga_row("p1", 60, 0.5, 50, 60.0, sessionSource="google", sessionMedium="organic"),
        ga_row("p2", 40, 0.25, 30, 60.0, sessionSource="google", sessionMedium="organic"),
    ],
    ("hand", "google_analytics__devices"): [
        ga_row(
            "p1",
            100,
            0.5,
            80,
            60.0,
            deviceCategory="mobile",
            operatingSystem="iOS",
            browser="Safari",
        ),
    ],
    ("hand", "google_analytics__conversions_report"): [
        {
            "property_id": "p1",
            "date": "20261105",
            "eventName": "purchase",
            "conversions": 12,
            "totalUsers": 10,
        },
        {
            "property_id": "p2",
            "date": "20261105",
            "eventName": "sign_up",
            "conversions": 8,
            "totalUsers": 8,
        },
    ],
    ("yen", "stripe__customers"): [customer("cus_y", "yu@example.jp", "2026-11-02 00:00", "jpy")],
    ("yen", "stripe__charges"): [
        charge("ch_y", "cus_y", 5000, "succeeded", "2026-11-02 05:00", currency="jpy"),
    ],
}


def as_airbyte_writes(record: dict) -> dict:
    """JSON fields as JSON text, as Airbyte writes them."""
    return {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in record.items()}


def load_hand_made_data(warehouse) -> None:
    """Write the raw tables as one Airbyte sync on Nov 7 and land every stream (empty ones too,
    so every staging model has its landing table)."""
    with warehouse.connect() as conn:
        for (tenant_id, stream), records in RAW.items():
            write_raw(
                conn, tenant_id, stream, [as_airbyte_writes(r) for r in records], sync_time(7)
            )
        for contract in STREAMS:
            ensure_landing_tables(conn, contract)
        for stream in sorted({stream for _, stream in RAW}):
            for outcome in land_stream(conn, STREAMS_BY_NAME[stream], TENANTS):
                assert outcome.rows_quarantined == 0, outcome


def dbt(settings, *args: str) -> None:
    done = run_dbt(settings, list(args), capture=True)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]


def exact(value):
    """Numbers as Decimal: the DuckDB seam returns numeric columns as Decimal, Postgres as float."""
    return Decimal(repr(value)) if isinstance(value, float) else value


def rows(warehouse, sql: str) -> list[tuple]:
    with warehouse.connect() as conn:
        return [tuple(map(exact, row)) for row in conn.fetch_all(sql)]


def mart_indexes(warehouse) -> set[tuple[str, str]]:
    """(table, indexed columns) of every index in the analytics schema."""
    if warehouse.dialect == "postgres":
        sql = "select tablename, indexdef from pg_indexes where schemaname = 'analytics'"
    else:
        sql = "select table_name, sql from duckdb_indexes() where schema_name = 'analytics'"
    return {
        (table, definition[definition.rindex("(") + 1 : definition.rindex(")")])
        for table, definition in rows(warehouse, sql)
    }


def D(text: str) -> Decimal:  # noqa: N802 - reads like a literal
    return Decimal(text)


def build_hand_made(settings) -> None:
    """The hand-made data landed and every model built and tested (its first build: every date)."""
    load_hand_made_data(open_warehouse(settings.warehouse))
    dbt(settings, "build", "--exclude", "test_type:unit")


@pytest.fixture(params=WAREHOUSES)
def hand_built(request, built_once):
    """The hand-made build, once per test run and warehouse (conftest built_once), for a test
    that only reads it."""
    with built_once("hand", request.param, build_hand_made) as settings:
        yield settings, open_warehouse(settings.warehouse)


@pytest.fixture(params=WAREHOUSES)
def hand_copy(request, built_once, copy_place):
    """A copy of the hand-made build for one test to change."""
    shared = built_once("hand", request.param, build_hand_made)
    with copied_once_built(shared, copy_place.folder, copy_place.database) as url:
        settings = make_settings(copy_place.folder, url)
        yield settings, open_warehouse(settings.warehouse)


def test_marts_give_the_hand_computed_numbers(hand_built):
    settings, warehouse = hand_built

    # revenue_daily: minor units converted per currency, pending charges in no count.
    assert rows(
        warehouse,
        "select tenant_id, date, currency, gross_charged, refunded, net_revenue, charges_succeeded,"
        " charges_failed, failed_charge_rate, new_customers, shopify_orders, shopify_gross_sales,"
        " shopify_discounts, shopify_refunds, shopify_net_sales"
        " from analytics.revenue_daily where date >= '2026-11-01' order by 1, 2, 3",
    ) == [
        ("hand", dt.date(2026, 11, 1), "usd", 0, 0, 0, 0, 0, None, 1, 0, 0, 0, 0, 0),
        ("hand", dt.date(2026, 11, 2), "usd", 50, 0, 50, 1, 1, D("0.5"), 0, 1, 50, 5, 20, 25),
        ("hand", dt.date(2026, 11, 4), "usd", 20, 0, 20, 1, 0, 0, 0, 0, 0, 0, 0, 0),
        ("hand", dt.date(2026, 11, 5), "usd", 0, 10, -10, 0, 0, None, 0, 0, 0, 0, 0, 0),
        ("yen", dt.date(2026, 11, 2), "jpy", 5000, 0, 5000, 1, 0, 0, 1, 0, 0, 0, 0, 0),
    ]

    # revenue_analytics: MRR, movements, churn, refunds and repeat customers per month.
    assert rows(
        warehouse,
        "select month, currency, mrr, new_mrr, expansion_mrr, contraction_mrr, churned_mrr,"
        " reactivation_mrr, mrr_growth_mom, gross_mrr_churn_rate, paying_customers,"
        " churned_customers, arpa, customer_churn_rate, ltv, gross_charged, refunded, refund_rate,"
        " net_revenue, shopify_net_sales, shopify_orders, repeat_customer_rate"
        " from analytics.revenue_analytics where tenant_id = 'hand' order by month",
    ) == [
        (
            dt.date(2026, 10, 1),
            "usd",
            229,
            229,
            0,
            0,
            0,
            0,
            None,
            None,
            3,
            0,
            D("76.3333"),
            None,
            None,
            1329,
            0,
            0,
            1329,
            90,
            1,
            0,
        ),
        (
            dt.date(2026, 11, 1),
            "usd",
            150,
            0,
            0,
            0,
            79,
            0,
            D("-0.344978"),
            D("0.344978"),
            2,
            1,
            75,
            D("0.333333"),
            225,
            70,
            10,
            D("0.142857"),
            60,
            25,
            1,
            0,  # Ann's one November order: she ordered before, but not twice in November
        ),
    ]

    # developer_activity: every day from the first GitHub activity; the merge took 72.0 hours.
    assert rows(
        warehouse,
        "select date, prs_opened, prs_merged, prs_closed_unmerged, median_hours_to_merge,"
        " p90_hours_to_merge, median_hours_to_first_review, review_coverage, commits,"
        " active_authors, open_prs_end_of_day"
        " from analytics.developer_activity where tenant_id = 'hand' order by date",
    ) == [
        (dt.date(2026, 11, 3), 2, 0, 0, None, None, None, None, 0, 2, 2),
        (dt.date(2026, 11, 4), 0, 0, 1, None, None, D("24.0"), None, 0, 0, 1),
        (dt.date(2026, 11, 5), 1, 0, 0, None, None, None, None, 0, 1, 2),
        (dt.date(2026, 11, 6), 0, 1, 0, D("72.0"), D("72.0"), None, 1, 2, 2, 1),
    ]
    assert rows(
        warehouse,
        "select month, prs_opened, prs_merged, median_hours_to_merge, review_coverage,"
        " open_prs_end_of_month from analytics.developer_activity_monthly",
    ) == [(dt.date(2026, 11, 1), 3, 1, D("72.0"), 1, 1)]

    # website: bounce rate weighted by sessions (0.35), not the plain mean of 0.5 and 0.3.
    assert rows(
        warehouse,
        "select tenant_id, date, sessions, total_users, bounce_rate, conversions, conversion_rate,"
        " avg_session_duration_seconds from analytics.website_analytics",
    ) == [("hand", dt.date(2026, 11, 5), 400, 280, D("0.35"), 20, D("0.05"), 90)]
    assert rows(
        warehouse,
        "select dimension, dimension_value, sessions, bounce_rate from analytics.website_traffic"
        " order by 1, 2",
    ) == [("device", "mobile", 100, D("0.5")), ("source_medium", "google / organic", 100, D("0.4"))]

    # unified_customers: the Stripe and Shopify Ann matched on the normalised email.
    assert rows(
        warehouse,
        "select customer_key, stripe_customer_id, shopify_customer_id, currency, lifetime_revenue,"
        " stripe_charge_count, shopify_order_count, subscription_status, is_churn_risk"
        " from analytics.unified_customers order by tenant_id, customer_key",
    ) == [
        ("ann@example.com", "cus_m", "501", "usd", 225, 3, 2, "active", False),
        ("bo@example.com", "cus_a", None, "usd", 1200, 1, 0, "active", False),
        ("cy@example.com", "cus_t", None, "usd", 0, 0, 0, "trialing", False),
        ("di@example.com", "cus_c", None, "usd", 79, 1, 0, "canceled", True),
        ("yu@example.jp", "cus_y", None, "jpy", 5000, 1, 0, None, False),
    ]

    # tenant_daily_metrics: a row for every day, MRR at each day's end.
    daily = rows(
        warehouse,
        "select date, currency, revenue, mrr, active_subscriptions, subscriptions_canceled,"
        " charges_failed, failed_charge_rate, prs_merged, median_hours_to_merge, sessions,"
        " bounce_rate, has_stripe, has_github, has_shopify, has_google_analytics"
        " from analytics.tenant_daily_metrics where tenant_id = 'hand' order by date",
    )
    assert len(daily) == 37  # Oct 1 .. Nov 6
    by_date = {row[0]: row[1:] for row in daily}
    assert by_date[dt.date(2026, 10, 1)] == (
        "usd",
        129,
        129,
        2,
        0,
        0,
        0,
        0,
        None,
        0,
        None,
        True,
        False,
        False,
        False,
    )
    assert by_date[dt.date(2026, 10, 3)] == (
        "usd",
        0,
        129,
        2,
        0,
        0,
        None,
        0,
        None,
        0,
        None,
        True,
        False,
        False,
        False,
    )
    assert by_date[dt.date(2026, 11, 2)] == (
        "usd",
        75,
        229,
        3,
        0,
        1,
        D("0.5"),
        0,
        None,
        0,
        None,
        True,
        False,
        True,
        False,
    )
    assert by_date[dt.date(2026, 11, 3)][2:4] == (150, 2)  # mrr, active subscriptions
    assert by_date[dt.date(2026, 11, 3)][4] == 1  # the cancelled subscription ended that day
    assert by_date[dt.date(2026, 11, 6)] == (
        "usd",
        0,
        150,
        2,
        0,
        0,
        None,
        1,
        D("72.0"),
        0,
        None,
        True,
        True,
        True,
        True,
    )
    # The sync at 00:00 on Nov 7 closes Nov 6: known at that day's end, not at Nov 5's.
    assert rows(
        warehouse,
        "select date, last_synced_at from analytics.tenant_daily_metrics"
        " where tenant_id = 'hand' and date >= '2026-11-05' order by date",
    ) == [(dt.date(2026, 11, 5), None), (dt.date(2026, 11, 6), sync_time(7))]

    # user_dashboard_summary: one row per tenant; the yen tenant's money stays in yen. The day
    # analysed is the newest activity of any tenant (Nov 6), so the yen tenant, quiet since Nov 2,
    # is as of Nov 6 too. Neither history covers the 60 days a growth over 30 days needs (hand's
    # begins Oct 1).
    assert rows(
        warehouse,
        "select tenant_id, as_of_date, currency, mrr, mrr_growth_mom, revenue_30d,"
        " revenue_prev_30d, revenue_growth_30d, paying_customers, failed_charge_rate_30d,"
        " prs_merged_30d, median_hours_to_merge_30d, sessions_30d, bounce_rate_30d,"
        " conversion_rate_30d, last_synced_at"
        " from analytics.user_dashboard_summary order by tenant_id",
    ) == [
        (
            "hand",
            dt.date(2026, 11, 6),
            "usd",
            150,
            None,
            175,
            1329,
            None,
            2,
            D("0.333333"),
            1,
            D("72.0"),
            400,
            D("0.35"),
            D("0.05"),
            sync_time(7),
        ),
        (
            "yen",
            dt.date(2026, 11, 6),
            "jpy",
            0,
            None,
            5000,
            0,
            None,
            0,
            0,
            0,
            None,
            0,
            None,
            None,
            sync_time(7),
        ),
    ]

    # The dashboard reads one tenant at a time: indexed on Postgres, not on DuckDB (see the
    # macro marts_postgres_indexes).
    assert mart_indexes(warehouse) == (
        {
            ("tenant_daily_metrics", "tenant_id, date"),
            ("user_dashboard_summary", "tenant_id"),
        }
        if warehouse.dialect == "postgres"
        else set()
    )


def test_daily_windowed_runs_give_the_rows_of_a_full_build(hand_copy):
    settings, warehouse = hand_copy  # the first build of the incremental models: every date
    marts = INCREMENTAL_MARTS | MONTHLY_MARTS
    full = {
        mart: rows(warehouse, f"select * from analytics.{mart} order by {key}")
        for mart, key in marts.items()
    }

    # Forget the last two days (and their month), and plant a stale row a windowed run must
    # remove.
    with warehouse.connect() as conn:
        for mart in INCREMENTAL_MARTS:
            conn.execute(f"delete from analytics.{mart} where date >= '2026-11-05'")
        for mart in MONTHLY_MARTS:
            conn.execute(f"delete from analytics.{mart} where month >= '2026-11-01'")
        conn.execute(
            "insert into analytics.revenue_daily (tenant_id, date, currency, gross_charged)"
            " values ('hand', '2026-11-05', 'eur', 1)"
        )
        conn.execute(  # yen has no GitHub: no month of developer activity
            "insert into analytics.developer_activity_monthly (tenant_id, month, commits)"
            " values ('yen', '2026-11-01', 1)"
        )
    for day in (5, 6):
        run_id = f"windowed-{day}"
        with warehouse.connect() as conn:
            write_run_window(
                conn, run_id, daily_window(dt.date(2026, 11, day), dt.date(2026, 11, day + 1))
            )
        done = run_dbt(settings, ["run", "--select", *marts], True, run_id)
        assert done.returncode == 0, done.stdout[-6000:]

    for mart, key in marts.items():
        assert rows(warehouse, f"select * from analytics.{mart} order by {key}") == full[mart], mart


def test_a_day_of_one_tenants_new_rows_built_incrementally_equals_a_full_build(hand_copy):
    """The flow's day after a first build: tenant hand's second sync (pull request 3 merged on
    Nov 7, a commit by a new author on Nov 7) is landed, the marts are built over the window
    from Nov 6 (the run's row of ops.dbt_run_window), and every incremental mart then equals a
    full refresh (the intermediate tables rebuilt first, as in the flow). By hand: hand's November gains one merged pull request, one commit and one
    active author (ann, bob, dev@example.com, then cy); yen, which synced nothing, keeps its
    rows."""
    settings, warehouse = hand_copy  # the first build: every model, every date
    marts = INCREMENTAL_MARTS | MONTHLY_MARTS

    def mart_rows() -> dict[str, list[tuple]]:
        return {
            mart: rows(warehouse, f"select * from analytics.{mart} order by {key}")
            for mart, key in marts.items()
        }

    november = (
        "select prs_merged, commits, active_authors from analytics.developer_activity_monthly"
        " where tenant_id = 'hand' and month = '2026-11-01'"
    )
    yen = "select * from analytics.revenue_daily where tenant_id = 'yen' order by date, currency"
    assert rows(warehouse, november) == [(1, 2, 3)]
    yen_before = rows(warehouse, yen)

    merged = pull_request(103, 3, "ann", "2026-11-05 08:00", "2026-11-07 08:00", "2026-11-07 08:00")
    new_commit = commit("c3", "2026-11-07 10:00", "cy@example.com", login="cy")
    with warehouse.connect() as conn:
        for stream, record in (("github__pull_requests", merged), ("github__commits", new_commit)):
            write_raw(conn, "hand", stream, [as_airbyte_writes(record)], sync_time(8))
            land_stream(conn, STREAMS_BY_NAME[stream], TENANTS)
        write_run_window(
            conn, "day-8", daily_window(dt.date(2026, 11, 6), dt.date(2026, 11, 8), True)
        )
    # As the flow's build does: the intermediate tables the marts read, then the marts.
    done = run_dbt(settings, ["run", "--select", "path:models/intermediate", *marts], True, "day-8")
    assert done.returncode == 0, done.stdout[-6000:]
    incremental = mart_rows()
    assert rows(warehouse, november) == [(2, 3, 4)]
    assert rows(warehouse, yen) == yen_before != []

    dbt(settings, "run", "--full-refresh", "--select", *marts)
    assert incremental == mart_rows()


AFTER_STAGING = ("--exclude", "path:models/staging")  # every model a batch's run builds


def build_batch_of_syncs(
    settings,
    warehouse,
    run_id: str,
    syncs: list[tuple[str, str, dict]],
    at: dt.datetime,
    models: tuple[str, ...] = AFTER_STAGING,
    statements: list[str] | None = None,
) -> list[str] | None:
    """As the flow does for a batch of syncs finished at `at`: their (tenant, stream, record)
    written and landed with the tenants marked, then a run of `models` over the tenants that
    changed, whose marks are cleared if it ran every model after staging; the tenants it rebuilt
    (None: every tenant). Given `statements`, the run logs its SQL (--debug) there."""
    with warehouse.connect() as conn:
        mark_for_build(conn, sorted({tenant_id for tenant_id, _, _ in syncs}))
        for tenant_id, stream, record in syncs:
            write_raw(conn, tenant_id, stream, [as_airbyte_writes(record)], at)
            land_stream(conn, STREAMS_BY_NAME[stream], [tenant_id])
        window = daily_window(dt.date(2026, 11, 6), dt.date(2026, 11, 8), True)
        write_run_window(conn, run_id, replace(window, changed_tenants_only=True))
    debug = ["--debug"] if statements is not None else []
    done = run_dbt(settings, ["run", *debug, *models], True, run_id)
    assert done.returncode == 0, done.stdout[-6000:]
    if statements is not None:
        statements.append(done.stdout)
    with warehouse.connect() as conn:
        rebuilt = run_tenants(conn, run_id)
        if models == AFTER_STAGING:
            finish_run_window(conn, run_id)
    return rebuilt


# yen sends its customer again at noon on Nov 7; hand's sync on Nov 8 brings a pull request merged
# and a commit by a new author, both on Nov 7.
NOON_ON_NOV_7 = dt.datetime(2026, 11, 7, 12, tzinfo=dt.UTC)
YEN_AT_NOON_ON_NOV_7 = [
    ("yen", "stripe__customers", customer("cus_y", "yu@example.jp", "2026-11-02 00:00", "jpy"))
]
HAND_ON_NOV_7 = [
    (
        "hand",
        "github__pull_requests",
        pull_request(103, 3, "ann", "2026-11-05 08:00", "2026-11-07 08:00", "2026-11-07 08:00"),
    ),
    ("hand", "github__commits", commit("c3", "2026-11-07 10:00", "cy@example.com", login="cy")),
]
CALM = ["calm_a", "calm_b"]
SPINES = (
    "select tenant_id, cast(min(date) as varchar), cast(max(date) as varchar)"
    " from intermediate.int_tenant_days_spined group by tenant_id order by tenant_id"
)
# Every table a run over the tenants that changed builds (not the staging views), by its key.
BUILT_TABLES = {
    f"analytics.{mart}": key
    for mart, key in (INCREMENTAL_MARTS | MONTHLY_MARTS | TABLE_MARTS).items()
} | {f"intermediate.{table}": key for table, key in TABLE_INTERMEDIATES.items()}


def calm_customer(tenant_id: str) -> dict:
    return customer(f"cus_{tenant_id}", f"{tenant_id}@example.com", "2026-10-20 00:00")


def add_calm_tenants(settings, warehouse) -> None:
    """Beside hand and yen, two quiet tenants, calm_a and calm_b, each with one charge on Nov 1
    and a sync on Nov 6, so their spines end on Nov 6 (the days after a tenant's newest sync are
    unknown, up to it they are zeros); then every model after staging built."""
    calm_synced = dt.datetime(2026, 11, 6, 12, tzinfo=dt.UTC)
    with warehouse.connect() as conn:
        for tenant_id in CALM:
            charge_row = charge(
                f"ch_{tenant_id}", f"cus_{tenant_id}", 900, "succeeded", "2026-11-01 10:00"
            )
            for stream, record in (
                ("stripe__customers", calm_customer(tenant_id)),
                ("stripe__charges", charge_row),
            ):
                write_raw(conn, tenant_id, stream, [as_airbyte_writes(record)], calm_synced)
        for stream in ("stripe__customers", "stripe__charges"):
            land_stream(conn, STREAMS_BY_NAME[stream], CALM)
    dbt(settings, "run", "--exclude", "path:models/staging")
    assert rows(warehouse, SPINES) == [
        ("calm_a", "2026-11-01", "2026-11-06"),
        ("calm_b", "2026-11-01", "2026-11-06"),
        ("hand", "2026-10-01", "2026-11-06"),
        ("yen", "2026-11-02", "2026-11-06"),
    ]


def assert_built_tables_equal_a_full_build(settings, warehouse) -> None:
    built = {t: rows(warehouse, f"select * from {t} order by {k}") for t, k in BUILT_TABLES.items()}
    dbt(settings, "run", "--full-refresh", "--exclude", "path:models/staging")
    for table, key in BUILT_TABLES.items():
        assert rows(warehouse, f"select * from {table} order by {key}") == built[table], table


def test_a_run_over_the_tenants_that_changed_equals_a_full_build(hand_copy):
    """Three batches of syncs, each landed with its tenants marked for a build (as a land run of a
    batch does), then built by a run over the tenants that changed, beside hand, yen and two quiet
    tenants (add_calm_tenants).
    1. Nov 7 noon: yen's sync sends its customer again. The run rebuilds yen alone; yen's day
       spine (from its charge on Nov 2) still ends on Nov 6, the newest day of any tenant.
    2. Nov 8: hand's sync (pull request 3 merged on Nov 7, a commit by a new author on Nov 7)
       makes Nov 7 the newest day of any tenant. yen, which synced on Nov 7, now has its spine
       to Nov 7: yen joins the run as it runs, beside hand (2 of 4 tenants).
    3. Nov 9: calm_a and calm_b send their customers again, and hand a commit on Nov 8: 3 of the
       4 tenants, more than half, so the run covers every tenant from the spine on.
    Every mart, the mart tables included, and every intermediate table built per tenant then
    equals a full refresh."""
    settings, warehouse = hand_copy
    add_calm_tenants(settings, warehouse)

    def build_batch(run_id: str, syncs: list[tuple[str, str, dict]], at: dt.datetime):
        return build_batch_of_syncs(settings, warehouse, run_id, syncs, at)

    assert build_batch("batch-1", YEN_AT_NOON_ON_NOV_7, NOON_ON_NOV_7) == ["yen"]
    assert rows(warehouse, SPINES)[3] == ("yen", "2026-11-02", "2026-11-06")

    assert build_batch("batch-2", HAND_ON_NOV_7, sync_time(8)) == ["hand", "yen"]
    assert rows(warehouse, SPINES) == [
        ("calm_a", "2026-11-01", "2026-11-06"),
        ("calm_b", "2026-11-01", "2026-11-06"),
        ("hand", "2026-10-01", "2026-11-07"),
        ("yen", "2026-11-02", "2026-11-07"),
    ]

    syncs = [(t, "stripe__customers", calm_customer(t)) for t in CALM]
    syncs.append(("hand", "github__commits", commit("c4", "2026-11-08 10:00", "cy@example.com")))
    assert build_batch("batch-3", syncs, sync_time(9)) is None  # every tenant
    assert rows(warehouse, SPINES) == [
        ("calm_a", "2026-11-01", "2026-11-08"),
        ("calm_b", "2026-11-01", "2026-11-08"),
        ("hand", "2026-10-01", "2026-11-08"),
        ("yen", "2026-11-02", "2026-11-07"),
    ]
    assert rows(warehouse, "select count(*) from ops.dbt_pending_tenants") == [(0,)]
    assert_built_tables_equal_a_full_build(settings, warehouse)


def test_a_run_that_stops_after_the_spine_leaves_the_tenants_whose_spine_moved_to_the_next(
    hand_copy,
):
    """The first two batches above, but the second run stops after the intermediate models (a
    model after them failed, or the run covered those only), so its marks stay. yen's spine moved
    to Nov 7 in it: yen is marked beside hand. The next run over the tenants that changed, with no
    new sync, sees no spine move (yen's has moved already) and rebuilds both all the same; every
    table then equals a full refresh, and no mark is left."""
    settings, warehouse = hand_copy
    add_calm_tenants(settings, warehouse)
    assert build_batch_of_syncs(
        settings, warehouse, "noon", YEN_AT_NOON_ON_NOV_7, NOON_ON_NOV_7
    ) == ["yen"]
    stopped = build_batch_of_syncs(
        settings,
        warehouse,
        "stopped",
        HAND_ON_NOV_7,
        sync_time(8),
        ("-s", "path:models/intermediate"),
    )
    assert stopped == ["hand", "yen"]
    assert rows(warehouse, SPINES)[3] == ("yen", "2026-11-02", "2026-11-07")
    pending = "select distinct tenant_id from ops.dbt_pending_tenants order by tenant_id"
    assert rows(warehouse, pending) == [("hand",), ("yen",)]

    assert build_batch_of_syncs(settings, warehouse, "next", [], sync_time(8)) == ["hand", "yen"]
    assert rows(warehouse, pending) == []
    assert_built_tables_equal_a_full_build(settings, warehouse)


def test_a_run_over_the_tenants_that_changed_leaves_the_others_rows(hand_copy):
    """With only hand marked and nothing new, a run over the tenants that changed rebuilds hand's
    rows of the intermediate tables built per tenant, the mart tables and the window's days, and
    not yen's: a value planted in each tenant's rows is gone for hand and still there for yen.
    The run then clears the mark it took, not one made after it took them, and a run over every
    tenant rebuilds yen."""
    settings, warehouse = hand_copy
    planted = {
        "analytics.unified_customers": "email = 'planted'",
        "analytics.revenue_analytics": "currency = 'planted'",
        "analytics.user_dashboard_summary": "currency = 'planted'",
        "analytics.tenant_daily_metrics": "sessions = -1",
        "intermediate.int_tenant_currencies_ranked": "currency = 'planted'",
        "intermediate.int_subscriptions_activated": "status = 'planted'",
        "intermediate.int_pull_requests_reviewed": "state = 'planted'",
        "intermediate.int_tenant_days_spined": "first_github_date = cast('1999-01-01' as date)",
        "intermediate.int_tenant_syncs_dated": "last_synced_at"
        " = cast('2001-01-01 00:00:00+00' as timestamp with time zone)",
    }
    plant = [
        f"update {relation} set {condition}"
        + (" where date = '2026-11-06'" if relation == "analytics.tenant_daily_metrics" else "")
        for relation, condition in planted.items()
    ]

    def planted_tenants() -> dict[str, list[str]]:
        return {
            relation: [
                t
                for (t,) in rows(
                    warehouse,
                    f"select distinct tenant_id from {relation} where {condition} order by 1",
                )
            ]
            for relation, condition in planted.items()
        }

    with warehouse.connect() as conn:
        for sql in plant:
            conn.execute(sql)
        mark_for_build(conn, ["hand"])
        window = daily_window(dt.date(2026, 11, 6), dt.date(2026, 11, 7), True)
        write_run_window(conn, "changed-7", replace(window, changed_tenants_only=True))
        conn.commit()
        mark_for_build(conn, ["hand"])  # a land run that ends after the dbt run took the marks
    before = planted_tenants()
    assert all("hand" in tenants for tenants in before.values()), before
    assert sum("yen" in tenants for tenants in before.values()) >= 5, before
    done = run_dbt(settings, ["run", "--exclude", "path:models/staging"], True, "changed-7")
    assert done.returncode == 0, done.stdout[-6000:]
    assert planted_tenants() == {
        relation: [t for t in tenants if t != "hand"] for relation, tenants in before.items()
    }

    pending = "select tenant_id from ops.dbt_pending_tenants order by tenant_id"
    assert rows(warehouse, pending) == [("hand",), ("hand",)]
    with warehouse.connect() as conn:
        finish_run_window(conn, "changed-7")
        assert run_tenants(conn, "changed-7") == []  # its scope is cleared with the marks
    assert rows(warehouse, pending) == [("hand",)]  # the mark made after the run took them

    with warehouse.connect() as conn:  # a land of every tenant: the next run covers them all
        mark_for_build(conn, None)
        write_run_window(conn, "changed-all", replace(window, changed_tenants_only=True))
    done = run_dbt(settings, ["run", "--exclude", "path:models/staging"], True, "changed-all")
    assert done.returncode == 0, done.stdout[-6000:]
    assert planted_tenants() == dict.fromkeys(planted, [])


def test_a_run_widened_to_every_tenant_keeps_the_people_of_the_tenants_that_did_not_change(
    hand_copy,
):
    """unified_customers follows each tenant's own inputs only. yen's sync at noon on Nov 7 is
    built alone (its spine still ends on Nov 6); hand's sync then makes Nov 7 the newest day, so
    yen's spine moves to Nov 7, yen joins the run, and with both tenants in it the run widens to
    every tenant. A value planted in yen's people stays (yen's inputs did not change), while yen's
    rows of user_dashboard_summary, which follow the day analysed, are rebuilt; hand's people are
    rebuilt, and both tenants' people equal a full build (yen's as before the planting)."""
    settings, warehouse = hand_copy
    people = (
        "select * from analytics.unified_customers where tenant_id = '{}' order by customer_key"
    )
    planted = {
        "analytics.unified_customers": "email = 'planted'",
        "analytics.user_dashboard_summary": "currency = 'planted'",
    }
    build = build_batch_of_syncs(settings, warehouse, "noon", YEN_AT_NOON_ON_NOV_7, NOON_ON_NOV_7)
    assert build == ["yen"]
    yen_people = rows(warehouse, people.format("yen"))
    with warehouse.connect() as conn:
        for relation, condition in planted.items():
            conn.execute(f"update {relation} set {condition}")
    assert build_batch_of_syncs(settings, warehouse, "next", HAND_ON_NOV_7, sync_time(8)) is None
    assert {
        relation: [
            t for (t,) in rows(warehouse, f"select distinct tenant_id from {relation} where {cond}")
        ]
        for relation, cond in planted.items()
    } == {"analytics.unified_customers": ["yen"], "analytics.user_dashboard_summary": []}

    hand_people = rows(warehouse, people.format("hand"))
    dbt(settings, "run", "--full-refresh", "--select", "unified_customers")
    assert rows(warehouse, people.format("hand")) == hand_people != []
    assert rows(warehouse, people.format("yen")) == yen_people != []


def test_a_run_over_every_tenant_of_a_table_built_per_tenant_replaces_it_instead_of_copying_rows(
    hand_copy,
):
    """unified_customers is rebuilt in place for the tenants that changed: yen's sync alone
    replaces yen's people in the table (their rows deleted, the new ones inserted), hand's
    planted value staying. When the run's tenants are every tenant of the table (every sync
    finished at once), the new table replaces the old one (renamed into its place) instead of
    each row being deleted and copied in again: nothing planted left, and the same people as a
    full build."""
    settings, warehouse = hand_copy
    people = "select * from analytics.unified_customers order by tenant_id, customer_key"
    planted = "select distinct tenant_id from analytics.unified_customers where email = 'planted'"
    renamed = 'rename to "unified_customers"'
    deleted = 'where tenant_id in (select tenant_id from "unified_customers__tenants")'
    with warehouse.connect() as conn:
        conn.execute("update analytics.unified_customers set email = 'planted'")

    yen_only: list[str] = []
    assert build_batch_of_syncs(
        settings, warehouse, "yen", YEN_AT_NOON_ON_NOV_7, NOON_ON_NOV_7, statements=yen_only
    ) == ["yen"]
    assert renamed not in yen_only[0] and deleted in yen_only[0]
    assert rows(warehouse, planted) == [("hand",)]

    both: list[str] = []
    syncs = YEN_AT_NOON_ON_NOV_7 + HAND_ON_NOV_7
    assert (
        build_batch_of_syncs(settings, warehouse, "both", syncs, sync_time(8), statements=both)
        is None
    )  # both tenants marked: the run widens to every tenant
    assert renamed in both[0] and deleted not in both[0]
    assert rows(warehouse, planted) == []
    built = rows(warehouse, people)
    dbt(settings, "run", "--full-refresh", "--select", "unified_customers")
    assert rows(warehouse, people) == built


def test_a_run_over_the_tenants_that_changed_rebuilds_every_tenant_of_a_table_whose_columns_changed(
    hand_copy,
):
    """A run over hand alone replaces hand's rows of user_dashboard_summary in place, reading its
    inputs for hand alone: on DuckDB, hand is written into the SQL as a literal. When the table's
    columns are not the model's (an upgrade changed the model since the table was built), the
    run rebuilds every tenant instead, with no tenant literal in the way: yen's rows, deleted
    here, come back from yen's inputs, and the table equals the full build."""
    settings, warehouse = hand_copy
    table = "analytics.user_dashboard_summary"
    select = f"select * from {table} order by tenant_id"
    full = rows(warehouse, select)
    assert [row[0] for row in full] == ["hand", "yen"]
    window = daily_window(dt.date(2026, 11, 6), dt.date(2026, 11, 7), True)

    def run_over_hand(run_id: str) -> str:
        with warehouse.connect() as conn:
            mark_for_build(conn, ["hand"])
            write_run_window(conn, run_id, replace(window, changed_tenants_only=True))
        build = ["run", "--debug", "--select", "user_dashboard_summary"]
        done = run_dbt(settings, build, True, run_id)
        assert done.returncode == 0, done.stdout[-6000:]
        with warehouse.connect() as conn:
            finish_run_window(conn, run_id)
        return done.stdout

    in_place = run_over_hand("hand-in-place")
    assert ("tenant_id in ('hand')" in in_place) == (warehouse.dialect == "duckdb")
    assert "every tenant is rebuilt" not in in_place
    assert rows(warehouse, select) == full

    with warehouse.connect() as conn:
        conn.execute(f"delete from {table} where tenant_id = 'yen'")
        conn.execute(f"alter table {table} add column stale integer")
    assert "every tenant is rebuilt" in run_over_hand("hand-columns-changed")
    assert rows(warehouse, select) == full


def test_a_run_over_the_tenants_that_changed_writes_only_tenant_ids_into_its_sql(hand_copy):
    """The run's tenants reach the daily marts' SQL as literals; a row of the run's scope that is
    not a tenant id (written past mark_for_build, which refuses it) stops the run at compile
    time, before any statement runs, and the mart keeps its rows."""
    settings, warehouse = hand_copy
    daily = "select count(*) from analytics.revenue_daily"
    before = rows(warehouse, daily)
    with warehouse.connect() as conn:
        with pytest.raises(ValueError, match="tenant id"):
            mark_for_build(conn, ["x'); drop table analytics.revenue_daily; --"])
        window = daily_window(dt.date(2026, 11, 6), dt.date(2026, 11, 7), True)
        write_run_window(conn, "hostile", replace(window, changed_tenants_only=True))
        conn.execute(
            "insert into ops.dbt_run_tenants (run_id, tenant_id) values (%s, %s)",
            ("hostile", "x'); drop table analytics.revenue_daily; --"),
        )
    done = run_dbt(settings, ["run", "--select", "revenue_daily"], True, "hostile")
    assert done.returncode != 0
    assert "not a tenant id: x'); drop table" in done.stdout
    assert rows(warehouse, daily) == before != [(0,)]


def test_unified_customers_built_one_tenant_at_a_time_equals_its_build_in_one_group(hand_copy):
    """unified_customers is built a group of tenants at a time (1,000 by default: hand and yen are
    one group). With a group per tenant, the build runs twice (the second group inserted into the
    new table) and each tenant's people come from its own rows alone: the table equals the
    one-group build, row for row."""
    settings, warehouse = hand_copy
    people = "select * from analytics.unified_customers order by tenant_id, customer_key"
    in_one_group = rows(warehouse, people)
    assert {row[0] for row in in_one_group} == {"hand", "yen"}

    done = run_dbt(
        settings,
        ["run", "--debug", "--select", "unified_customers", "--vars", "{tenants_per_group: 1}"],
        capture=True,
    )
    assert done.returncode == 0, done.stdout[-6000:]
    assert done.stdout.count(") as group_rows") == 1  # the second of two groups

    assert rows(warehouse, people) == in_one_group


def test_unified_customers_groups_by_range_on_duckdb_and_in_one_group_on_postgres(hand_copy):
    """The default build. DuckDB builds groups of 1,000 tenants and reads each group as a range of
    tenant ids, which it applies where it reads the landing tables. Postgres builds one group of
    every tenant, which its inputs need not be filtered for (a run over the tenants that changed
    filters them by the semi-join alone), with the group table analysed: given the range, whose bounds
    it cannot know when it plans, Postgres estimated 0.5% of the rows and chose nested loops that
    scanned all of `landing.stripe__charges` once per outer row (over 11 minutes at 1,000 tenants,
    57.8 s without the range); and without the range every group reads every row (20.6 s for a
    group of 100 of those 1,000 tenants)."""
    settings, warehouse = hand_copy
    people = "select * from analytics.unified_customers order by tenant_id, customer_key"
    before = rows(warehouse, people)

    done = run_dbt(settings, ["run", "--debug", "--select", "unified_customers"], capture=True)
    assert done.returncode == 0, done.stdout[-6000:]
    ranges = done.stdout.count(
        'between (select min(tenant_id) from "unified_customers__tenant_group")'
    )
    analysed = done.stdout.count('analyze "unified_customers__tenant_group"')
    if warehouse.dialect == "duckdb":
        assert ranges > 0 and analysed == 0
    else:
        assert ranges == 0 and analysed == 1
    assert done.stdout.count(") as group_rows") == 0  # one group: hand and yen
    assert rows(warehouse, people) == before


def test_incremental_staging_tests_check_only_the_rows_synced_since_the_given_day(
    settings, warehouse
):
    """Tenant findings (charges without a currency, a refund of a charge the tenant does not
    have) are reported per tenant, and with `test_synced_since` only about the rows synced since
    that day; in a run over the tenants that changed, only about those tenants' rows. The other
    side of a relationship is read whole."""
    load_hand_made_data(warehouse)  # synced Nov 7

    def insert(table: str, row: dict, synced: dt.datetime) -> None:
        row = {"tenant_id": "hand", **row, "_airbyte_raw_id": f"raw-{row['id']}"}
        row["_airbyte_extracted_at"] = synced
        with warehouse.connect() as conn:
            conn.execute(
                f"insert into landing.{table} ({', '.join(row)})"
                f" values ({', '.join(['%s'] * len(row))})",
                tuple(row.values()),
            )

    def charge_without_currency(charge_id: str, synced: dt.datetime, tenant_id="hand") -> None:
        row = {"tenant_id": tenant_id, "id": charge_id, "amount": 100, "status": "succeeded"}
        insert("stripe__charges", row, synced)

    def refund_of(refund_id: str, charge_id: str, synced: dt.datetime) -> None:
        insert("stripe__refunds", {"id": refund_id, "charge": charge_id, "amount": 1}, synced)

    def staging(
        tests_since: dt.date | None = None, select: str = "staging", tenants: tuple[str, ...] = ()
    ) -> dict[str, list[tuple]]:
        """The two tests' findings: (tenant, offending rows, example), after a build of `select`
        (its views and their tests), with the run's window testing the rows synced since
        `tests_since` when it is given, and, with `tenants`, a run over those tenants (marked for
        a build, as a land run marks them). A finding does not fail the run."""
        run_id = None
        if tests_since or tenants:
            run_id = f"since-{tests_since}-{'-'.join(tenants)}"
            window = RunWindow(tests_since=tests_since, changed_tenants_only=bool(tenants))
            with warehouse.connect() as conn:
                mark_for_build(conn, tenants)
                write_run_window(conn, run_id, window)
        build = ["build", "--select", *select.split()]
        done = run_dbt(settings, build, True, run_id, target_dir=settings.home / "dbt")
        assert done.returncode == 0, done.stdout[-6000:]
        if run_id:
            with warehouse.connect() as conn:
                finish_run_window(conn, run_id)
        manifest = json.loads((settings.home / "dbt" / "manifest.json").read_text())
        found = {}
        for name in (
            "not_null_per_tenant_stg_stripe__charges_currency",
            "relationships_within_tenant_stg_stripe__refunds_charge_id__charge_id__ref_stg_stripe__charges_",
        ):
            [test_id] = [key for key, node in manifest["nodes"].items() if node["name"] == name]
            with warehouse.connect() as conn:
                found[name.split("_stg_")[0]] = read_findings(
                    conn, *failures_table(manifest, test_id)
                )
        return {test: [astuple(f) for f in findings] for test, findings in found.items()}

    since_nov_8 = dt.date(2026, 11, 8)
    charge_without_currency("ch_old_bad", sync_time(7))
    refund_of("re_old_orphan", "ch_gone", sync_time(7))
    old = {
        "not_null_per_tenant": [("hand", 1, None)],
        "relationships_within_tenant": [("hand", 1, "ch_gone")],
    }
    assert staging() == old  # every row: the old rows are found
    # Rows synced since Nov 8: nothing to find.
    assert staging(since_nov_8) == {"not_null_per_tenant": [], "relationships_within_tenant": []}

    charge_without_currency("ch_new_bad", sync_time(9))
    refund_of("re_new_orphan", "ch_missing", sync_time(9))
    refund_of("re_new_of_old_charge", "ch_m_oct", sync_time(9))  # its charge synced Nov 7
    # Only Stripe's rows changed since the two builds of every staging view and test above (each
    # window passed on the other views' rows): the two views these tests read, and their tests.
    stripe = "stg_stripe__charges stg_stripe__refunds"
    assert staging(since_nov_8, stripe) == {  # the new rows only
        "not_null_per_tenant": [("hand", 1, None)],
        "relationships_within_tenant": [("hand", 1, "ch_missing")],
    }
    assert staging(select=stripe) == {
        "not_null_per_tenant": [("hand", 2, None)],
        "relationships_within_tenant": [("hand", 2, "ch_gone")],  # the least of the two
    }

    # yen's charge without a currency, synced with hand's new rows: a run over hand does not see
    # it (yen's rows did not change for that run), a run over yen does, and one over both both.
    charge_without_currency("ch_yen_bad", sync_time(9), tenant_id="yen")
    hands_new_rows = {
        "not_null_per_tenant": [("hand", 1, None)],
        "relationships_within_tenant": [("hand", 1, "ch_missing")],
    }
    assert staging(since_nov_8, stripe, ("hand",)) == hands_new_rows
    assert staging(since_nov_8, stripe, ("yen",)) == {
        "not_null_per_tenant": [("yen", 1, None)],
        "relationships_within_tenant": [],
    }
    assert staging(None, stripe, ("hand", "yen")) == {
        "not_null_per_tenant": [("hand", 2, None), ("yen", 1, None)],
        "relationships_within_tenant": [("hand", 2, "ch_gone")],
    }


def test_repeat_customer_rate_is_the_share_ordering_more_than_once_in_the_month(
    settings, warehouse
):
    """Tenant `shop` (usd): customer 1 orders twice in November; customer 2 once in October and
    once in November; customer 3 once in November (its second November order was cancelled);
    a guest known by email alone orders twice in October. October: 2 ordering, the guest repeats:
    1/2. November: 3 ordering, customer 1 repeats: 1/3."""

    def shop_order(order_id, created, customer_id, email, **extra):
        return order(order_id, created, 10.0, 0.0, customer_id=customer_id, email=email, **extra)

    orders = [
        shop_order(1, "2026-11-03 10:00", 1, "one@example.com"),
        shop_order(2, "2026-11-20 10:00", 1, "one@example.com"),
        shop_order(3, "2026-10-05 10:00", 2, "two@example.com"),
        shop_order(4, "2026-11-06 10:00", 2, "two@example.com"),
        shop_order(5, "2026-11-07 10:00", 3, "three@example.com"),
        shop_order(
            6, "2026-11-08 10:00", 3, "three@example.com", cancelled_at=at("2026-11-08 12:00")
        ),
        shop_order(7, "2026-10-10 10:00", None, "guest@example.com"),
        shop_order(8, "2026-10-25 10:00", None, "guest@example.com"),
    ]
    with warehouse.connect() as conn:
        write_raw(
            conn, "shop", "shopify__orders", [as_airbyte_writes(o) for o in orders], sync_time(30)
        )
        for contract in STREAMS:
            ensure_landing_tables(conn, contract)
        for outcome in land_stream(conn, STREAMS_BY_NAME["shopify__orders"], ["shop"]):
            assert outcome.rows_quarantined == 0, outcome
    dbt(settings, "run", "--select", "+revenue_analytics")
    assert rows(
        warehouse,
        "select month, shopify_orders, repeat_customer_rate from analytics.revenue_analytics"
        " where tenant_id = 'shop' order by month",
    ) == [(dt.date(2026, 10, 1), 3, D("0.5")), (dt.date(2026, 11, 1), 4, D("0.333333"))]

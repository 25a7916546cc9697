"""The day analysed, on both warehouses: every tenant's daily history reaches it, growth over 30
days is one figure in the mart, the trends and the insights, and freshness counts from syncs.

Three hand-built tenants. `busy` sold 10.00 on Nov 30 (its sync that morning landed it), which
makes Nov 30 the day analysed, the last row of every tenant synced since:
- `quiet`: Stripe charges of 100 (Oct 2), 200 (Oct 15), 200 (Oct 31), then 300 (Nov 1), 300
  (Nov 10) and 300 (Nov 26), its last activity, 4 days before the day analysed. The 30 days ending
  Nov 30 sum to 900, the 30 before (Oct 2 - Oct 31) to 500: growth 900 / 500 - 1 = 0.8. Means over
  the days up to its last activity (26 days against 30) would give 900/26 / (500/30) - 1 = 1.08.
  Its rows were landed by a sync on Nov 27; a sync on Nov 30 at 06:00 found nothing new (only
  ops.airbyte_sync_history has it): fresh, 0 days.
- `stale`: charges of 50 on Sep 28 and Nov 20, landed by its last successful sync on Nov 26 at
  08:00; the sync on Nov 29 failed: 4 days without a successful sync as of Nov 30. Its rows stop on
  Nov 26: the days after are unknown, not zero. Its growth is as of Nov 26, in the dashboard and
  in the analysis of Nov 30 alike: 50 (Nov 20) against 50 (Sep 28), growth 0.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from rawdata import write_raw
from tenantpulse.analysis import health, patterns
from tenantpulse.analysis.daily import normalise_history
from tenantpulse.insights.deterministic import draft_sentences
from tenantpulse.insights.facts import tenant_facts
from tenantpulse.landing.merge import ensure_landing_tables, land_stream
from tenantpulse.sources.contracts import STREAMS, STREAMS_BY_NAME
from tenantpulse.sources.sync_history import FAILED, SUCCEEDED, SyncRecord, record_sync
from test_dbt_marts import D, as_airbyte_writes, at, charge, customer, dbt, rows
from test_patterns import last_day, make_history

AS_OF = dt.date(2026, 11, 30)
QUIET_CHARGES = [
    ("2026-10-02 10:00", 10000),
    ("2026-10-15 10:00", 20000),
    ("2026-10-31 10:00", 20000),
    ("2026-11-01 10:00", 30000),
    ("2026-11-10 10:00", 30000),
    ("2026-11-26 10:00", 30000),
]


def sync(tenant_id: str, finished: str, status: str = SUCCEEDED, records: int = 0) -> SyncRecord:
    return SyncRecord(
        tenant_id=tenant_id,
        connection_id=f"conn-{tenant_id}",
        source="stripe",
        job_id=finished,
        started_at=at(finished) - dt.timedelta(minutes=5),
        finished_at=at(finished),
        records=records,
        status=status,
    )


def load(warehouse) -> None:
    """Each tenant's customer and charges, landed by its last sync that brought rows."""
    quiet = [
        charge(f"ch_q{i}", "cus_q", amount, "succeeded", created)
        for i, (created, amount) in enumerate(QUIET_CHARGES)
    ]
    stale = [
        charge("ch_s1", "cus_s", 5000, "succeeded", "2026-09-28 10:00"),
        charge("ch_s2", "cus_s", 5000, "succeeded", "2026-11-20 10:00"),
    ]
    busy = [charge("ch_b", "cus_b", 1000, "succeeded", "2026-11-30 05:00")]
    raw = {
        "quiet": ("cus_q", quiet, "2026-11-27 06:00"),
        "stale": ("cus_s", stale, "2026-11-26 08:00"),
        "busy": ("cus_b", busy, "2026-11-30 07:00"),
    }
    with warehouse.connect() as conn:
        for tenant_id, (customer_id, charges, synced) in raw.items():
            signed_up = customer(customer_id, f"{tenant_id}@example.com", "2026-10-01 00:00")
            write_raw(conn, tenant_id, "stripe__customers", [signed_up], at(synced))
            charges = [as_airbyte_writes(c) for c in charges]
            write_raw(conn, tenant_id, "stripe__charges", charges, at(synced))
        for contract in STREAMS:
            ensure_landing_tables(conn, contract)
        for stream in ("stripe__customers", "stripe__charges"):
            for outcome in land_stream(conn, STREAMS_BY_NAME[stream], list(raw)):
                assert outcome.rows_quarantined == 0, outcome
        record_sync(conn, sync("quiet", "2026-11-27 06:00", records=len(quiet) + 1))
        record_sync(conn, sync("quiet", "2026-11-30 06:00"))  # nothing new to land
        record_sync(conn, sync("stale", "2026-11-26 08:00", records=3))
        record_sync(conn, sync("stale", "2026-11-29 08:00", status=FAILED))
        conn.commit()


def test_histories_reach_the_day_analysed_with_one_growth_and_sync_freshness(settings, warehouse):
    load(warehouse)
    dbt(settings, "build", "--exclude", "test_type:unit")

    # The rows run to the day analysed, quiet days as zeros; the stale tenant's to its last sync.
    assert rows(
        warehouse,
        "select tenant_id, min(date), max(date), count(*) from analytics.tenant_daily_metrics"
        " group by tenant_id order by tenant_id",
    ) == [
        ("busy", AS_OF, AS_OF, 1),
        ("quiet", dt.date(2026, 10, 2), AS_OF, 60),
        ("stale", dt.date(2026, 9, 28), dt.date(2026, 11, 26), 60),
    ]
    assert rows(
        warehouse,
        "select date, revenue, last_synced_at from analytics.tenant_daily_metrics"
        " where tenant_id = 'quiet' and date >= '2026-11-26' order by date",
    ) == [
        (dt.date(2026, 11, 26), 300, None),  # landed by the sync of Nov 27
        (dt.date(2026, 11, 27), 0, at("2026-11-27 06:00")),
        (dt.date(2026, 11, 28), 0, at("2026-11-27 06:00")),
        (dt.date(2026, 11, 29), 0, at("2026-11-27 06:00")),
        (dt.date(2026, 11, 30), 0, at("2026-11-30 06:00")),
    ]

    # The dashboard: as of each tenant's last row; growth over 30 days from the sums.
    assert rows(
        warehouse,
        "select tenant_id, as_of_date, revenue_30d, revenue_prev_30d, revenue_growth_30d,"
        " last_synced_at from analytics.user_dashboard_summary order by tenant_id",
    ) == [
        ("busy", AS_OF, 10, 0, None, at("2026-11-30 07:00")),
        ("quiet", AS_OF, 900, 500, D("0.8"), at("2026-11-30 06:00")),
        ("stale", dt.date(2026, 11, 26), 50, 50, 0, at("2026-11-26 08:00")),
    ]

    # The analysis of Nov 30 reads the same history: the same growth, freshness from syncs.
    with warehouse.connect() as conn:
        history = normalise_history(conn.read_frame("select * from analytics.tenant_daily_metrics"))
    trends = patterns.trends(history, AS_OF)
    revenue = trends[trends["metric"] == "revenue"].set_index("tenant_id")["mom_growth"]
    assert revenue["quiet"] == pytest.approx(0.8)
    assert revenue["stale"] == 0  # over its known days, to Nov 26: Nov 27-30 are unknown
    scores = health.health_scores(history, AS_OF, trends).set_index("tenant_id")
    assert scores.loc["quiet", "days_since_data"] == 0
    assert scores.loc["quiet", "data_freshness"] == 100.0
    assert scores.loc["stale", "days_since_data"] == 4
    assert scores.loc["stale", "data_freshness"] == pytest.approx(50.0)  # 100 at 1 day, 0 at 7

    # The insights quote the same facts.
    def sentences(tenant_id: str) -> list[str]:
        tables = {
            "health_scores": scores.loc[[tenant_id]].reset_index(),
            "churn_risk": [],
            "trends": trends[trends["tenant_id"] == tenant_id],
            "seasonality": [],
            "anomalies": [],
            "recommendations": [],
        }
        return [s.text for s in draft_sentences(tenant_facts(tenant_id, AS_OF, tables))]

    quiet, stale = sentences("quiet"), sentences("stale")
    [growth] = [s for s in quiet if "up 80%" in s]
    assert "revenue" in growth.lower()
    assert not any("108%" in s for s in quiet)
    assert not any("sync" in s for s in quiet)
    assert "No successful sync for 4 days: check the connections" in stale


def test_growth_over_30_days_compares_the_sums_of_two_whole_windows():
    revenue = np.zeros(60)
    revenue[[0, 13, 29]] = [100.0, 200.0, 200.0]  # the 30 days before: 500
    revenue[[30, 39, 55]] = 300.0  # the last 30 days: 900, the last 4 of them quiet
    history = make_history("quiet", days=60, start="2026-10-02", revenue=revenue)
    assert last_day(history) == AS_OF
    growth = patterns.trends(history, AS_OF).set_index("metric").loc["revenue", "mom_growth"]
    assert growth == pytest.approx(900 / 500 - 1)

    # A history that stops at the last sale (Nov 26) is measured over its own 30 days to Nov 26,
    # whose 30 days before reach back before its first day: no growth, not the
    # 900/26 / (500/30) - 1 = 1.08 of the means over 26 days against 30.
    cut = history[history["date"] <= pd.Timestamp("2026-11-26")]
    assert np.isnan(patterns.trends(cut, AS_OF).set_index("metric").loc["revenue", "mom_growth"])

    # Ending on the last day of a history that stops early: 30 days to Nov 26 against the 30
    # before, from Sep 28 on.
    early = make_history("early", days=60, start="2026-09-28", revenue=revenue)
    growth = patterns.trends(early, AS_OF).set_index("metric").loc["revenue", "mom_growth"]
    assert growth == pytest.approx(900 / 500 - 1)

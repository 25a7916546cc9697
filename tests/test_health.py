"""health: components and score computed by hand on constant series, missing sources, the
failed-payments override, freshness (from syncs), as_of, and the demo tenants."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from tenantpulse.analysis import checks, health
from test_patterns import last_day, load_demo, make_history

DAYS = 60


def business(tenant_id="t1", sources=("stripe", "github", "shopify", "google_analytics"), **over):
    """Revenue 2 then 3 a day (mom_growth 0.5), flat MRR, PRs and sessions; 10 charges a day."""
    series = {
        "revenue": [2.0] * 30 + [3.0] * 30,
        "mrr": np.full(DAYS, 1000.0),
        "charges_failed": np.full(DAYS, 1),
        "charges_succeeded": np.full(DAYS, 9),
        "active_subscriptions": np.full(DAYS, 100),
        "prs_merged": np.full(DAYS, 4),
        "median_hours_to_merge": np.full(DAYS, 72.0),
        "sessions": np.full(DAYS, 1000),
        "bounce_rate": np.full(DAYS, 0.5),
    }
    series.update(over)
    return make_history(tenant_id, days=DAYS, sources=sources, **series)


def scores(history, as_of=None):
    result = health.health_scores(history, as_of or last_day(history))
    return result.set_index("tenant_id")


def test_components_and_score_by_hand():
    result = scores(business()).loc["t1"]
    assert result["revenue"] == pytest.approx((100 + 60) / 2)  # mom 0.5 -> 100, flat MRR -> 60
    # failed rate 0.1: 100 - (0.1 - 0.02) / 0.18 x 100; no cancellations -> 100
    payments = (100 - 0.08 / 0.18 * 100 + 100) / 2
    assert result["payments"] == pytest.approx(payments)
    assert result["engineering"] == pytest.approx((50 + 70) / 2)  # 72 h -> 50, flat PRs -> 70
    assert result["web"] == pytest.approx((60 + 50) / 2)  # flat sessions -> 60, bounce 0.5 -> 50
    assert result["data_freshness"] == 100.0
    expected = 0.35 * 80 + 0.2 * payments + 0.2 * 60 + 0.15 * 55 + 0.1 * 100
    assert result["health_score"] == round(expected) == 74
    assert result["override"] is None
    assert result["failed_charge_rate_30d"] == pytest.approx(0.1)
    assert result["median_hours_to_merge_30d"] == 72.0
    assert result["bounce_rate_30d"] == pytest.approx(0.5)


def test_a_tenant_without_github_has_no_engineering_and_renormalised_weights():
    result = scores(business(sources=("stripe", "shopify", "google_analytics"))).loc["t1"]
    assert np.isnan(result["engineering"])
    assert np.isnan(result["median_hours_to_merge_30d"])
    assert result["components_used"] == "revenue,payments,web,data_freshness"
    payments = (100 - 0.08 / 0.18 * 100 + 100) / 2
    expected = (0.35 * 80 + 0.2 * payments + 0.15 * 55 + 0.1 * 100) / 0.8
    assert result["health_score"] == round(expected) == 77


def test_a_stripe_only_tenant_uses_revenue_payments_and_freshness():
    result = scores(business(sources=("stripe",))).loc["t1"]
    assert result["components_used"] == "revenue,payments,data_freshness"
    assert np.isnan(result["web"]) and np.isnan(result["bounce_rate_30d"])


def test_failed_charges_at_twenty_percent_cap_the_score():
    failing = business(
        "failing", charges_failed=np.full(DAYS, 3), charges_succeeded=np.full(DAYS, 7)
    )
    result = scores(pd.concat([failing, business("fine")]))
    assert result.loc["failing", "payments"] == pytest.approx(50.0)  # rate 0.3 -> 0, no cancels
    uncapped = 0.35 * 80 + 0.2 * 50 + 0.2 * 60 + 0.15 * 55 + 0.1 * 100  # 68.25
    assert uncapped > health.OVERRIDE_CAP
    assert result.loc["failing", "health_score"] == health.OVERRIDE_CAP
    assert "0.30" in result.loc["failing", "override"]
    assert "capped at 40" in result.loc["failing", "override"]
    assert result.loc["fine", "override"] is None


def test_stale_data_lowers_freshness():
    history = business()
    result = scores(history, last_day(history) + dt.timedelta(days=4)).loc["t1"]
    assert result["days_since_data"] == 4
    assert result["data_freshness"] == pytest.approx(50.0)  # 100 at 1 day, 0 at 7


def test_freshness_counts_from_the_newest_sync_not_the_last_activity():
    quiet = business("quiet", revenue=[2.0] * 50 + [0.0] * 10)  # no sales for 10 days
    stale = business("stale")  # sales every day, but the syncs stopped 4 days before as_of
    stale.loc[stale.index[-4:], "last_synced_at"] = stale["last_synced_at"].iloc[-5]
    unsynced = business("unsynced")  # its history came with a sync after as_of
    unsynced["last_synced_at"] = pd.NaT
    result = scores(pd.concat([quiet, stale, unsynced]))
    assert result.loc["quiet", "days_since_data"] == 0  # synced this morning
    assert result.loc["quiet", "data_freshness"] == 100.0
    assert result.loc["stale", "days_since_data"] == 4
    assert result.loc["stale", "data_freshness"] == pytest.approx(50.0)  # 100 at 1 day, 0 at 7
    assert np.isnan(result.loc["unsynced", "data_freshness"])
    assert pd.isna(result.loc["unsynced", "days_since_data"])
    assert result["days_since_data"].dtype == "Int64"  # a bigint column, NULL when unknown
    assert "data_freshness" not in result.loc["unsynced", "components_used"]


def test_nothing_after_as_of_is_used():
    history = business()
    as_of = last_day(history) - dt.timedelta(days=5)
    planted = history.copy()
    later = planted["date"] > pd.Timestamp(as_of)
    planted.loc[later, ["revenue", "charges_failed", "median_hours_to_merge"]] = 1e9
    pd.testing.assert_frame_equal(
        health.health_scores(history, as_of), health.health_scores(planted, as_of)
    )


def test_demo_churning_tenant_is_less_healthy_than_steady_growth():
    history, as_of = load_demo()
    result = scores(history, as_of)
    assert result.loc["globex_churn", "health_score"] < result.loc["acme_growth", "health_score"]
    assert result.loc["globex_churn", "override"] is not None  # ~27% failed charges
    assert "engineering" not in result.loc["umbrella_spikes", "components_used"]


def test_a_day_no_component_measured_has_no_score_and_the_others_are_scored():
    # Shopify only, 20 days (no 30-day revenue comparison yet), its history brought by a sync
    # after as_of: nothing measured that day. It must not stop the other tenant's score.
    unmeasured = make_history("newshop", days=20, sources=("shopify",), revenue=np.full(20, 5.0))
    unmeasured["last_synced_at"] = pd.NaT
    result = scores(pd.concat([business(), unmeasured]), last_day(unmeasured))
    assert pd.isna(result.loc["newshop", "health_score"])
    assert result.loc["newshop", "components_used"] == ""
    assert result.loc["t1", "health_score"] > 0
    assert result["health_score"].dtype == "Int64"  # a bigint column, NULL when unmeasured
    frame = result.reset_index().assign(as_of=last_day(unmeasured))
    assert checks._health_out_of_range(frame) == []  # the check accepts an unmeasured day
    assert checks._health_out_of_range(frame.assign(components_used="revenue"))  # not otherwise

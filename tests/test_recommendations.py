"""recommendations: each rule fires on hand-made inputs with evidence equal to them, stays quiet
otherwise, and the slowing demo team gets the PR-process recommendation."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from tenantpulse.analysis import health, patterns
from tenantpulse.analysis.recommendations import COLUMNS, recommendations
from test_patterns import load_demo, make_history

AS_OF = dt.date(2026, 3, 5)
TENANTS = ("slow", "mid", "fast", "failing", "churny", "spiky", "weekly", "bouncy", "calm")


def history_of(tenants=TENANTS):
    start = AS_OF - dt.timedelta(days=59)
    return pd.concat([make_history(t, days=60, start=start) for t in tenants])


def trends_of(rows):
    """rows: (tenant_id, metric, direction, relative_slope_90d, mom_growth)."""
    frame = pd.DataFrame(
        rows, columns=["tenant_id", "metric", "direction", "relative_slope_90d", "mom_growth"]
    )
    for column in ("slope_28d", "slope_90d", "relative_slope_28d"):
        frame[column] = np.nan
    return frame


def health_of(**by_tenant):
    """by_tenant: tenant -> dict of 30-day metrics; unspecified ones are healthy."""
    healthy = {"failed_charge_rate_30d": 0.02, "median_hours_to_merge_30d": 20.0}
    healthy["bounce_rate_30d"] = 0.4
    rows = [{"tenant_id": t, **healthy, **by_tenant.get(t, {})} for t in TENANTS]
    return pd.DataFrame(rows).assign(health_score=80)


NO_SEASONALITY = pd.DataFrame(columns=["tenant_id", "metric", "weekly", "strength", "peak_day"])
NO_ANOMALIES = pd.DataFrame(
    columns=["tenant_id", "metric", "date", "value", "expected", "robust_z", "kind"]
)


def run(trends=None, seasonality=NO_SEASONALITY, anomalies=NO_ANOMALIES, health=None, churn=None):
    return recommendations(
        trends if trends is not None else trends_of([]),
        seasonality,
        anomalies,
        health if health is not None else health_of(),
        churn,
        history_of(),
        AS_OF,
    )


def by_rule(result, rule):
    return result[result["rule"] == rule].set_index("tenant_id")


def test_healthy_inputs_give_no_recommendations():
    result = run()
    assert result.empty and list(result.columns) == COLUMNS


def test_slow_and_rising_merges_need_pr_automation():
    trends = trends_of(
        [
            ("slow", "median_hours_to_merge", "up", 0.4, 0.3),
            ("mid", "median_hours_to_merge", "up", 0.2, 0.1),
            ("fast", "median_hours_to_merge", "down", -0.1, -0.1),
        ]
    )
    hours = {
        "slow": {"median_hours_to_merge_30d": 80.0},
        "mid": {"median_hours_to_merge_30d": 60.0},
        "fast": {"median_hours_to_merge_30d": 90.0},  # slow but improving: no rule
    }
    result = by_rule(run(trends=trends, health=health_of(**hours)), "slow_pr_merges")
    assert sorted(result.index) == ["mid", "slow"]
    assert result.loc["slow", "priority"] == "high"  # > 72 h
    assert result.loc["mid", "priority"] == "medium"
    assert result.loc["slow", "action"] == "Introduce PR automation and review SLAs"
    assert result.loc["slow", "evidence"] == [
        "median_hours_to_merge_30d = 80.0",
        "median_hours_to_merge_relative_slope_90d = 0.4",
    ]
    assert "80.0 h" in result.loc["slow", "impact"] and "40%" in result.loc["slow", "impact"]


def test_falling_revenue_with_failed_charges_needs_dunning():
    trends = trends_of(
        [("failing", "revenue", "down", -0.2, -0.35), ("calm", "revenue", "down", -0.1, -0.1)]
    )
    rates = {"failing": {"failed_charge_rate_30d": 0.25}, "calm": {"failed_charge_rate_30d": 0.05}}
    result = by_rule(run(trends=trends, health=health_of(**rates)), "failed_payments")
    assert list(result.index) == ["failing"]
    assert result.loc["failing", "priority"] == "high"
    assert result.loc["failing", "evidence"] == [
        "failed_charge_rate_30d = 0.25",
        "revenue_direction = down",
        "revenue_mom_growth = -0.35",
    ]


def test_high_churn_risk_needs_a_call():
    churn = pd.DataFrame(
        {
            "tenant_id": ["churny", "calm"],
            "churn_probability": [0.81, 0.1],
            "churn_risk": ["high", "low"],
            "reason": ["model", "model"],
        }
    )
    result = by_rule(run(churn=churn), "churn_risk")
    assert list(result.index) == ["churny"]
    assert result.loc["churny", "priority"] == "high"
    assert result.loc["churny", "evidence"] == ["churn_risk = high", "churn_probability = 0.81"]


def test_a_recent_revenue_anomaly_is_investigated_and_an_old_one_is_not():
    anomalies = pd.DataFrame(
        {
            "tenant_id": ["spiky", "calm", "fast"],
            "metric": ["revenue", "revenue", "sessions"],
            "date": pd.to_datetime(["2026-03-03", "2026-02-20", "2026-03-04"]),
            "value": [4200.0, 10.0, 9000.0],
            "expected": [1500.0, 100.0, 1000.0],
            "robust_z": [12.3, -8.0, 20.0],
            "kind": ["spike", "drop", "spike"],
        }
    )
    result = by_rule(run(anomalies=anomalies), "revenue_anomaly")
    assert list(result.index) == ["spiky"]
    assert result.loc["spiky", "action"] == "Investigate the revenue anomaly on 2026-03-03"
    assert result.loc["spiky", "priority"] == "medium"
    assert result.loc["spiky", "evidence"] == [
        "date = 2026-03-03",
        "revenue = 4200.0",
        "expected = 1500.0",
        "robust_z = 12.3",
    ]


def test_weekly_revenue_times_campaigns_and_high_bounce_reviews_landing_pages():
    seasonality = pd.DataFrame(
        {
            "tenant_id": ["weekly", "calm"],
            "metric": ["revenue", "revenue"],
            "weekly": [True, False],
            "strength": [0.88, 0.1],
            "peak_day": ["Tue", None],
            "trough_day": ["Sun", None],
        }
    )
    bounce = {"bouncy": {"bounce_rate_30d": 0.7}}
    result = run(seasonality=seasonality, health=health_of(**bounce))
    weekly = by_rule(result, "weekly_peak")
    assert list(weekly.index) == ["weekly"]
    assert weekly.loc["weekly", "action"] == "Time campaigns for Tue"
    assert weekly.loc["weekly", "priority"] == "low"
    assert weekly.loc["weekly", "evidence"][0] == "revenue_weekly_strength = 0.88"
    bouncing = by_rule(result, "high_bounce")
    assert list(bouncing.index) == ["bouncy"]
    assert bouncing.loc["bouncy", "evidence"] == ["bounce_rate_30d = 0.7"]


def _from_patterns(history):
    as_of = history["date"].max().date()
    trends = patterns.trends(history, as_of)
    return recommendations(
        trends,
        patterns.weekly_seasonality(history, as_of),
        patterns.anomalies(history, as_of),
        health.health_scores(history, as_of, trends),
        None,
        history,
        as_of,
    )


def test_two_sunday_sales_and_a_single_customer_time_no_campaign():
    # The case: revenue on two Sundays and one new customer in a quiet 56-day window.
    revenue, customers = np.zeros(56), np.zeros(56)
    revenue[[6, 13]] = 500.0  # Sundays
    customers[6] = 1
    history = make_history("quiet", days=56, revenue=revenue, new_customers=customers)
    assert by_rule(_from_patterns(history), "weekly_peak").empty


def test_a_planted_weekend_peak_times_campaigns_for_the_weekend():
    days = pd.date_range("2026-01-05", periods=56, freq="D")  # from a Monday
    noise = np.random.default_rng(0).lognormal(0, 0.2, 56)
    revenue = 100 * noise * np.where(days.day_of_week >= 5, 2.0, 1.0)
    history = make_history("weekend", days=56, revenue=revenue)
    weekly = by_rule(_from_patterns(history), "weekly_peak")
    assert weekly.loc["weekend", "action"] in ("Time campaigns for Sat", "Time campaigns for Sun")


def test_tenants_without_data_up_to_as_of_get_nothing():
    late = make_history("slow", days=10, start=AS_OF + dt.timedelta(days=1))
    trends = trends_of([("slow", "median_hours_to_merge", "up", 0.4, 0.3)])
    hours = health_of(slow={"median_hours_to_merge_30d": 80.0})
    result = recommendations(trends, NO_SEASONALITY, NO_ANOMALIES, hours, None, late, AS_OF)
    assert result.empty


def test_demo_slowing_team_gets_a_pr_process_recommendation():
    history, as_of = load_demo()
    trends = patterns.trends(history, as_of)
    result = recommendations(
        trends,
        patterns.weekly_seasonality(history, as_of),
        patterns.anomalies(history, as_of),
        health.health_scores(history, as_of, trends),
        None,
        history,
        as_of,
    )
    slow = by_rule(result, "slow_pr_merges")
    assert "hooli_eng" in slow.index
    assert slow.loc["hooli_eng", "action"] == "Introduce PR automation and review SLAs"
    assert "acme_growth" not in slow.index  # merges in about 18 h
    assert "globex_churn" in by_rule(result, "failed_payments").index

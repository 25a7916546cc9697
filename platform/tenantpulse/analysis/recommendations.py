"""Recommendations: documented rules over the computed patterns, health and churn risk.

Each rule reads per-tenant numbers the platform already computed (the inputs) and, when it fires,
emits one recommendation whose `evidence` lists those numbers as "metric = value" strings and whose
`impact` quotes only them, so every number passes the grounding check of METRICS.md.

| rule | fires when | priority |
|---|---|---|
| slow_pr_merges | median_hours_to_merge_30d > SLOW_MERGE_HOURS and merge time trend "up" | high above SLOW_MERGE_HIGH_HOURS, else medium |
| failed_payments | revenue falling (direction "down" or mom_growth < 0) and failed_charge_rate_30d >= DUNNING_FAILED_RATE | high |
| churn_risk | churn_risk == "high" | high |
| revenue_anomaly | a revenue anomaly within RECENT_ANOMALY_DAYS up to as_of (the latest one) | medium |
| weekly_peak | revenue is weekly (patterns: enough evidence and a significant test) | low |
| high_bounce | bounce_rate_30d > HIGH_BOUNCE_RATE | medium |
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

SLOW_MERGE_HOURS = 48.0  # median hours to merge over 30 days above which PRs wait too long
SLOW_MERGE_HIGH_HOURS = 72.0  # above this the PR recommendation is high priority
DUNNING_FAILED_RATE = 0.10  # 30-day failed charge rate that, with falling revenue, needs dunning
RECENT_ANOMALY_DAYS = 7  # a revenue anomaly this recent (days up to as_of) is worth a look
HIGH_BOUNCE_RATE = 0.6  # session-weighted 30-day bounce rate above which landing pages need work
PRIORITY_ORDER = {"high": 0, "medium": 1, "low": 2}
COLUMNS = ["tenant_id", "priority", "action", "impact", "evidence", "rule"]


def _fmt(value) -> str:
    """A number as quoted in evidence: 2 decimals, 4 for values below 1 (rates)."""
    if isinstance(value, str):
        return value
    number = float(value)
    return str(round(number, 4 if abs(number) < 1 else 2))


def _evidence(**values) -> list[str]:
    return [f"{name} = {_fmt(value)}" for name, value in values.items()]


def _metric(trends: pd.DataFrame, metric: str, column: str) -> pd.Series:
    rows = trends[trends["metric"] == metric]
    return rows.set_index("tenant_id")[column]


def recommendations(
    trends: pd.DataFrame,
    seasonality: pd.DataFrame,
    anomalies: pd.DataFrame,
    health: pd.DataFrame,
    churn: pd.DataFrame | None,
    history: pd.DataFrame,
    as_of: dt.date,
) -> pd.DataFrame:
    """Recommendations for the tenants with data up to as_of, highest priority first per tenant.

    trends / seasonality / anomalies come from patterns, health from health.health_scores, churn
    from churn.predict (None when there is no churn model yet: that rule is skipped)."""
    end = pd.Timestamp(as_of)
    tenants = pd.Index(history.loc[history["date"] <= end, "tenant_id"].unique(), name="tenant_id")
    t = pd.DataFrame(index=tenants).join(health.set_index("tenant_id"))
    t["merge_direction"] = _metric(trends, "median_hours_to_merge", "direction")
    t["merge_slope"] = _metric(trends, "median_hours_to_merge", "relative_slope_90d")
    t["revenue_direction"] = _metric(trends, "revenue", "direction")
    t["revenue_mom"] = _metric(trends, "revenue", "mom_growth")
    rows: list[dict] = []

    def add(tenant, priority, action, impact, evidence, rule):
        rows.append(
            dict(zip(COLUMNS, (tenant, priority, action, impact, evidence, rule), strict=True))
        )

    slow = t[(t["median_hours_to_merge_30d"] > SLOW_MERGE_HOURS) & (t["merge_direction"] == "up")]
    for tenant, r in slow.iterrows():
        hours, slope = r["median_hours_to_merge_30d"], r["merge_slope"]
        add(
            tenant,
            "high" if hours > SLOW_MERGE_HIGH_HOURS else "medium",
            "Introduce PR automation and review SLAs",
            f"Median time to merge is {_fmt(hours)} h over 30 days and rising "
            f"{slope:.0%} a month; faster reviews ship work sooner",
            _evidence(
                median_hours_to_merge_30d=hours, median_hours_to_merge_relative_slope_90d=slope
            ),
            "slow_pr_merges",
        )

    falling = (t["revenue_direction"] == "down") | (t["revenue_mom"] < 0)
    dunning = t[falling & (t["failed_charge_rate_30d"] >= DUNNING_FAILED_RATE)]
    for tenant, r in dunning.iterrows():
        rate = r["failed_charge_rate_30d"]
        add(
            tenant,
            "high",
            "Turn on dunning and call the customer",
            f"Recover part of the {rate:.0%} of charges that failed in the last 30 days",
            _evidence(
                failed_charge_rate_30d=rate,
                revenue_direction=r["revenue_direction"],
                revenue_mom_growth=r["revenue_mom"],
            ),
            "failed_payments",
        )

    if churn is not None:
        at_risk = churn[churn["churn_risk"] == "high"]
        for r in at_risk.itertuples(index=False):
            add(
                r.tenant_id,
                "high",
                "Schedule a customer success call and offer a retention discount",
                f"Churn probability is {r.churn_probability:.0%}",
                _evidence(churn_risk=r.churn_risk, churn_probability=r.churn_probability),
                "churn_risk",
            )

    recent_from = end - pd.Timedelta(days=RECENT_ANOMALY_DAYS)
    revenue_anomalies = anomalies[
        (anomalies["metric"] == "revenue")
        & (anomalies["date"] > recent_from)
        & (anomalies["date"] <= end)
    ]
    latest = revenue_anomalies.sort_values("date").groupby("tenant_id").tail(1)
    for r in latest.itertuples(index=False):
        day = pd.Timestamp(r.date).date().isoformat()
        add(
            r.tenant_id,
            "medium",
            f"Investigate the revenue anomaly on {day}",
            f"Revenue was {_fmt(r.value)} against {_fmt(r.expected)} expected ({r.kind})",
            _evidence(date=day, revenue=r.value, expected=r.expected, robust_z=r.robust_z),
            "revenue_anomaly",
        )

    weekly = seasonality[(seasonality["metric"] == "revenue") & seasonality["weekly"]]
    for r in weekly.itertuples(index=False):
        add(
            r.tenant_id,
            "low",
            f"Time campaigns for {r.peak_day}",
            f"Revenue peaks on {r.peak_day} and is lowest on {r.trough_day}",
            _evidence(
                revenue_weekly_strength=r.strength, peak_day=r.peak_day, trough_day=r.trough_day
            ),
            "weekly_peak",
        )

    bouncing = t[t["bounce_rate_30d"] > HIGH_BOUNCE_RATE]
    for tenant, r in bouncing.iterrows():
        add(
            tenant,
            "medium",
            "Review the landing pages: most visitors leave at once",
            f"{r['bounce_rate_30d']:.0%} of sessions bounced over the last 30 days",
            _evidence(bounce_rate_30d=r["bounce_rate_30d"]),
            "high_bounce",
        )

    out = pd.DataFrame(rows, columns=COLUMNS)
    out = out[out["tenant_id"].isin(tenants)]
    rank = out["priority"].map(PRIORITY_ORDER)
    return (
        out.assign(_rank=rank)
        .sort_values(["tenant_id", "_rank"], kind="stable")[COLUMNS]
        .reset_index(drop=True)
    )

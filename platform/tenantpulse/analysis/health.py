"""Tenant health: a 0-100 score from five components, each 0-100 or NaN when the source is missing.

Each component is the mean of its parts, every part a piecewise-linear map (breakpoints below, flat
outside them) of a metric computed from rows dated on or before `as_of`:

- revenue (stripe or shopify): revenue growth over 30 days (patterns.trends' mom_growth); MRR
  relative slope per 30 days over 90 days (stripe only).
- payments (stripe): failed charge rate over 30 days (failed / attempted); cancellation rate over 30
  days (subscriptions canceled / mean active subscriptions).
- engineering (github): median time to merge over 30 days (median of the daily medians); relative
  slope of PRs merged per 30 days over 90 days.
- web (google_analytics): relative slope of sessions per 30 days over 90 days; bounce rate over 30
  days weighted by sessions.
- data_freshness: days from the tenant's newest successful sync at or before as_of (the history's
  last_synced_at) to as_of; quiet business days do not count. Left out on a day before the
  tenant's first sync (history loaded by a later sync).

The score is the weighted mean of the components the tenant has (weights renormalised), rounded.
Hard override: a 30-day failed charge rate at or above FAILED_RATE_OVERRIDE caps it at OVERRIDE_CAP.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from tenantpulse.analysis import patterns

WINDOW_DAYS = 30  # the window of every "30d" metric
# Component weights, renormalised over the components a tenant has.
WEIGHTS = {
    "revenue": 0.35,
    "payments": 0.20,
    "engineering": 0.20,
    "web": 0.15,
    "data_freshness": 0.10,
}
# (metric value, score) breakpoints, in increasing metric order.
REVENUE_MOM_POINTS = ((-0.30, 0.0), (0.0, 60.0), (0.10, 100.0))  # revenue mom_growth
MRR_SLOPE_POINTS = ((-0.20, 0.0), (0.0, 60.0), (0.06, 100.0))  # MRR relative slope / 30 days
FAILED_RATE_POINTS = ((0.02, 100.0), (0.20, 0.0))  # failed charge rate, 30 days
CANCEL_RATE_POINTS = ((0.015, 100.0), (0.15, 0.0))  # cancellations / active subscriptions, 30 days
MERGE_HOURS_POINTS = ((24.0, 100.0), (120.0, 0.0))  # median hours to merge, 30 days
PR_SLOPE_POINTS = ((-0.30, 0.0), (0.0, 70.0), (0.05, 100.0))  # PRs merged relative slope / 30 days
SESSIONS_SLOPE_POINTS = ((-0.20, 0.0), (0.0, 60.0), (0.10, 100.0))  # sessions relative slope
BOUNCE_RATE_POINTS = ((0.30, 100.0), (0.70, 0.0))  # bounce rate, 30 days
STALENESS_POINTS = ((1.0, 100.0), (7.0, 0.0))  # days since the newest successful sync
FAILED_RATE_OVERRIDE = 0.20  # 30-day failed charge rate at which the score is capped
OVERRIDE_CAP = 40  # the cap


def _score(values: pd.Series, points: tuple[tuple[float, float], ...]) -> pd.Series:
    xs, ys = zip(*points, strict=True)
    return pd.Series(np.interp(values.to_numpy(float), xs, ys), index=values.index)


def window_metrics(history: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """Per tenant (index): the 30-day metrics health and recommendations quote, NaN when the tenant
    lacks the source or the window has nothing to measure."""
    end = pd.Timestamp(as_of)
    known = history[history["date"] <= end]
    rows = known[known["date"] > end - pd.Timedelta(days=WINDOW_DAYS)].copy()
    rows["weighted_bounce"] = rows["bounce_rate"] * rows["sessions"]
    rows["bounce_sessions"] = rows["sessions"].where(rows["bounce_rate"].notna())
    g = rows.groupby("tenant_id")
    sums = g[
        [
            "charges_failed",
            "charges_succeeded",
            "subscriptions_canceled",
            "weighted_bounce",
            "bounce_sessions",
        ]
    ].sum()
    attempts = sums["charges_failed"] + sums["charges_succeeded"]
    active = g["active_subscriptions"].mean()
    flags = known.groupby("tenant_id")[
        ["has_stripe", "has_github", "has_shopify", "has_google_analytics"]
    ].any()
    out = pd.DataFrame(index=flags.index)
    out["failed_charge_rate_30d"] = (sums["charges_failed"] / attempts.where(attempts > 0)).where(
        flags["has_stripe"]
    )
    out["cancellation_rate_30d"] = (
        sums["subscriptions_canceled"] / active.where(active > 0)
    ).where(flags["has_stripe"])
    out["median_hours_to_merge_30d"] = (
        g["median_hours_to_merge"].median().where(flags["has_github"])
    )
    bounce_sessions = sums["bounce_sessions"]
    out["bounce_rate_30d"] = (
        sums["weighted_bounce"] / bounce_sessions.where(bounce_sessions > 0)
    ).where(flags["has_google_analytics"])
    synced = pd.to_datetime(known["last_synced_at"], utc=True).groupby(known["tenant_id"]).max()
    out["days_since_data"] = (end - synced.dt.tz_localize(None).dt.normalize()).dt.days
    return out.join(flags)


def health_scores(
    history: pd.DataFrame, as_of: dt.date, trends: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Per tenant: health_score (0-100 int), the five components, the names of those used, the
    override (or None) and the 30-day metrics behind them. `trends` is patterns.trends(history,
    as_of), computed when not given."""
    if trends is None:
        trends = patterns.trends(history, as_of)
    metrics = window_metrics(history, as_of)
    wide = trends.pivot(index="tenant_id", columns="metric")
    mom = wide["mom_growth"].reindex(metrics.index)
    slope = wide["relative_slope_90d"].reindex(metrics.index)
    has_revenue = metrics["has_stripe"] | metrics["has_shopify"]

    parts = {
        "revenue": [
            _score(mom.get("revenue", np.nan), REVENUE_MOM_POINTS),
            _score(slope.get("mrr", np.nan), MRR_SLOPE_POINTS).where(metrics["has_stripe"]),
        ],
        "payments": [
            _score(metrics["failed_charge_rate_30d"], FAILED_RATE_POINTS),
            _score(metrics["cancellation_rate_30d"], CANCEL_RATE_POINTS),
        ],
        "engineering": [
            _score(metrics["median_hours_to_merge_30d"], MERGE_HOURS_POINTS),
            _score(slope.get("prs_merged", np.nan), PR_SLOPE_POINTS),
        ],
        "web": [
            _score(slope.get("sessions", np.nan), SESSIONS_SLOPE_POINTS),
            _score(metrics["bounce_rate_30d"], BOUNCE_RATE_POINTS),
        ],
        "data_freshness": [_score(metrics["days_since_data"], STALENESS_POINTS)],
    }
    source = {
        "revenue": has_revenue,
        "payments": metrics["has_stripe"],
        "engineering": metrics["has_github"],
        "web": metrics["has_google_analytics"],
        "data_freshness": metrics["days_since_data"].notna(),
    }
    out = pd.DataFrame(index=metrics.index)
    for name, scores in parts.items():
        out[name] = pd.concat(scores, axis=1).mean(axis=1).where(source[name])

    components = out[list(WEIGHTS)]
    weights = pd.Series(WEIGHTS)
    present = components.notna()
    weighted = (components.fillna(0.0) * weights).sum(axis=1)
    score = (weighted / present.mul(weights).sum(axis=1)).round()
    failed = metrics["failed_charge_rate_30d"]
    capped = failed >= FAILED_RATE_OVERRIDE
    # A tenant-day no component measured (say, a history day before its first sync, of a source
    # with no trend yet) has no score: NULL, with components_used empty.
    out["health_score"] = score.where(~capped, np.minimum(score, OVERRIDE_CAP)).astype("Int64")
    names = np.array(list(WEIGHTS))
    out["components_used"] = [",".join(names[row]) for row in present.to_numpy()]
    out["override"] = None
    reasons = failed[capped].map(
        lambda rate: (
            f"failed charge rate {rate:.2f} over {WINDOW_DAYS} days >= "
            f"{FAILED_RATE_OVERRIDE}: score capped at {OVERRIDE_CAP}"
        )
    )
    out.loc[capped, "override"] = reasons
    metric_columns = [
        "failed_charge_rate_30d",
        "cancellation_rate_30d",
        "median_hours_to_merge_30d",
        "bounce_rate_30d",
        "days_since_data",
    ]
    out = out.join(metrics[metric_columns]).reset_index()
    # Whole days, missing before the tenant's first sync: stored as a nullable bigint.
    out["days_since_data"] = out["days_since_data"].astype("Int64")
    columns = ["tenant_id", "health_score", *WEIGHTS, "components_used", "override"]
    return out[columns + metric_columns]

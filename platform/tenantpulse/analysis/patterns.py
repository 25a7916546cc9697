"""Patterns in tenants' daily metrics: robust trends, weekly seasonality and anomalies.

Input is the mart analytics.tenant_daily_metrics as a DataFrame (one row per tenant and day, a
contiguous daily spine per tenant that reaches the day analysed). Every function takes `as_of` and
reads only rows dated on or before it, so the analysis of day D never sees a later day. Metrics from a source the tenant has not
connected are treated as missing (NaN), not as zeros, so they never look like a collapse.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

# Metric -> source flags: the metric means something when the tenant has any of these sources.
METRIC_SOURCES = {
    "revenue": ("has_stripe", "has_shopify"),
    "mrr": ("has_stripe",),
    "new_customers": ("has_stripe", "has_shopify"),
    "prs_merged": ("has_github",),
    "median_hours_to_merge": ("has_github",),
    "sessions": ("has_google_analytics",),
}
METRICS = tuple(METRIC_SOURCES)  # metrics with trends
FLOW_METRICS = ("revenue", "new_customers", "prs_merged", "sessions")  # seasonality, anomalies

SHORT_WINDOW_DAYS = 28  # window of slope_28d
LONG_WINDOW_DAYS = 90  # window of slope_90d, which sets the direction
DAYS_PER_MONTH = 30  # relative slopes are per 30 days
MOM_WINDOW_DAYS = 30  # mom_growth: growth over 30 days (see trends)
MIN_TREND_DAYS = 21  # non-null days in the 90-day window below which direction is "unknown"
DIRECTION_THRESHOLD = 0.03  # |relative_slope_90d| per month above which a trend is up / down

SEASONAL_WINDOW_DAYS = 56  # weekly seasonality looks at the last 8 weeks
SMOOTHING_DAYS = 7  # centred rolling mean that removes the trend before day-of-week means
WEEKLY_STRENGTH_THRESHOLD = 0.3  # eta squared of day-of-week means that makes a series weekly
# Evidence a weekly pattern needs in the 56-day window before it is tested (else weekly is False):
MIN_SEASONAL_DAYS = 42  # six full weeks of non-null days
MIN_NONZERO_DAYS = 14  # days with a value above 0: two a week on average
MIN_ACTIVE_WEEKS = 6  # of the 8 weeks (7-day blocks back from as_of), with a day above 0
# Count metrics also need this many events (customers, PRs, sessions) in the window: 5 expected
# per day of the week, the usual minimum for testing counts. Revenue is an amount, not a count.
COUNT_METRICS = ("new_customers", "prs_merged", "sessions")
MIN_EVENTS = 35
# A series with the evidence and the strength is weekly only when a Kruskal-Wallis test of its
# detrended values grouped by day of the week rejects "every day alike" at this level. Ranks make
# a few large days on one weekday (a spike or two) weak evidence, unlike a test of the means.
SIGNIFICANCE_LEVEL = 0.01
FLAT_VARIANCE = 1e-12  # below this total variance a series is constant: strength 0
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

ANOMALY_LOOKBACK_DAYS = 90  # anomalies are reported for these last days up to as_of
NEIGHBOUR_DAYS = 3  # expected value = median of up to 3 days each side, the day itself excluded
MIN_NEIGHBOURS = 3  # fewer non-null neighbours than this: no expected value, no anomaly
ANOMALY_Z = 3.5  # |robust z| at or above which a day is an anomaly
MAD_TO_SD = 1.4826  # makes the median absolute deviation estimate a normal standard deviation
# A near-constant series has MAD ~ 0; the scale is at least this share of its typical level, so a
# tiny wobble is not an anomaly and a single spike on a flat line gives a finite z.
SCALE_FLOOR_FRACTION = 0.05

KEYS = ["tenant_id", "metric"]


def _long(history: pd.DataFrame, as_of: dt.date, metrics, days: int) -> pd.DataFrame:
    """(tenant_id, metric, date, value) for the last `days` days up to as_of, sorted by tenant,
    metric and date."""
    end = pd.Timestamp(as_of)
    rows = history[(history["date"] <= end) & (history["date"] > end - pd.Timedelta(days=days))]
    metrics = sorted(metrics)
    values = []
    for metric in metrics:
        connected = rows[list(METRIC_SOURCES[metric])].astype(bool).any(axis=1)
        values.append(rows[metric].astype(float).where(connected).to_numpy())
    # Ordered and built over integer codes and string arrays: sorting the frame by its string
    # columns, or making its strings from Python objects, cost seconds a call at 10,000 tenants.
    tenants = rows["tenant_id"].astype("str").array
    row_codes = np.tile(np.arange(len(rows)), len(metrics))
    metric_codes = np.repeat(np.arange(len(metrics)), len(rows))
    tenant_codes = pd.factorize(tenants, sort=True)[0][row_codes]
    dates = pd.to_datetime(rows["date"]).to_numpy()[row_codes]
    order = np.lexsort((dates, metric_codes, tenant_codes))
    long = pd.DataFrame(
        {
            "tenant_id": tenants.take(row_codes[order]),
            "metric": pd.array(metrics, dtype="str").take(metric_codes[order]),
            "date": dates[order],
            "value": np.concatenate(values)[order],
        }
    )
    long["age"] = (end - long["date"]).dt.days  # 0 on as_of
    return long


THEIL_SEN_CHUNK = 2_000_000  # pairwise slopes held at once (16 MB of float64)


def row_medians(values: np.ndarray) -> np.ndarray:
    """The median of each row's present (non-NaN) values, NaN for a row without any: what
    np.nanmedian gives, without its slow path for rows with NaN. Rows without a missing value
    are partitioned at the middle; the others sorted (NaN last) and read at their middle."""
    medians = np.full(len(values), np.nan)
    if values.shape[1] == 0:
        return medians
    present = np.sum(~np.isnan(values), axis=1)
    width = values.shape[1]
    middle = [(width - 1) // 2, width // 2]
    full = present == width
    if full.any():
        medians[full] = np.partition(values[full], middle, axis=1)[:, middle].mean(axis=1)
    partial = ~full & (present > 0)
    if partial.any():
        ordered = np.sort(values[partial], axis=1)
        count = present[partial]
        at = np.stack([(count - 1) // 2, count // 2], axis=1)
        medians[partial] = np.take_along_axis(ordered, at, axis=1).mean(axis=1)
    return medians


def _theil_sen_rows(values: np.ndarray) -> np.ndarray:
    """Per row of `values` (a series by age in days: column 0 is as_of, NaN where missing): the
    Theil-Sen slope per day, the median of the slopes between every pair of present points (NaN
    with fewer than two). All series at once, in chunks of rows."""
    newer, older = np.triu_indices(values.shape[1], k=1)
    rows = max(1, THEIL_SEN_CHUNK // max(len(newer), 1))
    slopes = np.full(len(values), np.nan)
    for start in range(0, len(values), rows):
        chunk = values[start : start + rows]
        pairs = (chunk[:, newer] - chunk[:, older]) / (older - newer)
        slopes[start : start + rows] = row_medians(pairs)
    return slopes


def _window_slope(long: pd.DataFrame, days: int) -> pd.DataFrame:
    part = long[(long["age"] < days) & long["value"].notna()]
    grouped = part.groupby(KEYS)
    size = grouped.size()
    by_age = np.full((len(size), days), np.nan)
    by_age[grouped.ngroup().to_numpy(), part["age"].to_numpy()] = part["value"].to_numpy(float)
    slope = pd.Series(_theil_sen_rows(by_age), index=size.index)
    mean = grouped["value"].mean()
    relative = slope * DAYS_PER_MONTH / mean.where(mean != 0)
    return pd.DataFrame({f"slope_{days}d": slope, f"relative_slope_{days}d": relative, "n": size})


def trends(history: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """Per tenant and metric: Theil-Sen slopes (per day) over 28 and 90 days, the same per 30 days
    relative to the window's mean level, growth over 30 days (`mom_growth`) and a direction.

    Growth over 30 days is the one definition user_dashboard_summary.revenue_growth_30d also
    uses: the sum of the 30 days ending on the tenant's last day up to as_of (as_of itself unless
    its history stops earlier: at its last sync, or the newest data is older than as_of) / the sum
    of the 30 days before - 1. It is NaN unless each of the 60 days has a value (the tenant's
    history and the metric's source cover them all), or when the earlier sum is 0."""
    long = _long(history, as_of, METRICS, max(LONG_WINDOW_DAYS, 2 * MOM_WINDOW_DAYS))
    out = long[KEYS].drop_duplicates().set_index(KEYS)
    short = _window_slope(long, SHORT_WINDOW_DAYS).drop(columns="n")
    full = _window_slope(long, LONG_WINDOW_DAYS)
    out = out.join(short).join(full)

    last_day = long.groupby("tenant_id")["date"].transform("max")
    age = (last_day - long["date"]).dt.days  # 0 on the tenant's last day up to as_of
    recent = long[age < MOM_WINDOW_DAYS].groupby(KEYS)["value"].agg(["sum", "count"])
    prior_rows = long[(age >= MOM_WINDOW_DAYS) & (age < 2 * MOM_WINDOW_DAYS)]
    prior = prior_rows.groupby(KEYS)["value"].agg(["sum", "count"])
    whole = (recent["count"] == MOM_WINDOW_DAYS) & (prior["count"] == MOM_WINDOW_DAYS)
    mom = recent["sum"] / prior["sum"].where(prior["sum"] != 0) - 1
    out["mom_growth"] = mom.where(whole)

    rel = out["relative_slope_90d"]
    direction = np.select(
        [rel > DIRECTION_THRESHOLD, rel < -DIRECTION_THRESHOLD, rel.notna()],
        ["up", "down", "flat"],
        default="unknown",
    )
    out["direction"] = np.where(out["n"].fillna(0) >= MIN_TREND_DAYS, direction, "unknown")
    columns = ["slope_28d", "slope_90d", "relative_slope_28d", "relative_slope_90d"]
    return out.reset_index()[KEYS + columns + ["mom_growth", "direction"]]


def weekly_profile(history: pd.DataFrame, as_of: dt.date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The seasonality summary and a table of day-of-week factors (mean 1 over the week): what
    weekly_seasonality and anomalies read (compute it once and give it to both)."""
    long = _long(history, as_of, FLOW_METRICS, SEASONAL_WINDOW_DAYS)
    grouped = long.groupby(KEYS)["value"]
    # A centred mean of each 7 days over all series at once, each window summed on its own (a
    # running sum, as pandas' rolling mean keeps, carries rounding from the series before into a
    # tenant's values, and with them its ties and its weekly verdict); windows that cross into
    # another series are blanked.
    half = SMOOTHING_DAYS // 2
    values = long["value"].to_numpy(float)
    level = np.full(len(values), np.nan)
    if len(values) >= SMOOTHING_DAYS:
        windows = np.lib.stride_tricks.sliding_window_view(values, SMOOTHING_DAYS)
        level[half : len(values) - half] = windows.mean(axis=1)
    position, size = grouped.cumcount(), grouped.transform("size")
    level = pd.Series(level, index=long.index).where((position >= half) & (position < size - half))
    long["detrended"] = long["value"] / level.where(level > 0)
    long["dow"] = long["date"].dt.day_of_week
    valid = long[long["detrended"].notna()]

    # eta squared = between-day-of-week sum of squares / total sum of squares.
    series = valid.groupby(KEYS)["detrended"]
    squares = (valid["detrended"] - series.transform("mean")) ** 2
    total = squares.groupby([valid["tenant_id"], valid["metric"]]).sum()
    by_day = valid.groupby(KEYS + ["dow"])["detrended"].agg(["mean", "count"]).reset_index()
    by_day = by_day.join(series.mean().rename("grand"), on=KEYS)
    by_day["between"] = by_day["count"] * (by_day["mean"] - by_day["grand"]) ** 2
    between = by_day.groupby(KEYS)["between"].sum()

    summary = long[KEYS].drop_duplicates().set_index(KEYS)
    summary["strength"] = between / total.where(total > FLAT_VARIANCE)
    summary["strength"] = summary["strength"].fillna(0.0)  # constant, or no valid day
    strong = (summary["strength"] >= WEEKLY_STRENGTH_THRESHOLD) & _enough_evidence(long)
    summary["p_value"] = _day_of_week_p_values(valid, summary.index[strong])
    summary["weekly"] = summary["p_value"] < SIGNIFICANCE_LEVEL
    ranked = by_day.sort_values(KEYS + ["mean"]).groupby(KEYS)["dow"]
    for column, day in (("trough_day", ranked.first()), ("peak_day", ranked.last())):
        names = day.map(lambda d: WEEKDAYS[d]).reindex(summary.index).astype(object)
        summary[column] = names.where(summary["weekly"], None)
    summary = summary.reset_index()

    day_means = by_day.groupby(KEYS)["mean"].transform("mean")
    factors = by_day.assign(factor=by_day["mean"] / day_means)[KEYS + ["dow", "factor"]]
    return summary, factors


def _enough_evidence(long: pd.DataFrame) -> pd.Series:
    """Per series: does the window hold the evidence a weekly pattern needs (MIN_* above)?"""
    active = long[long["value"] > 0]
    by_series = active.groupby(KEYS)
    found = pd.DataFrame(
        {
            "days": long.groupby(KEYS)["value"].count(),
            "nonzero_days": by_series.size(),
            "weeks": (active["age"] // 7)
            .groupby([active["tenant_id"], active["metric"]])
            .nunique(),
            "events": by_series["value"].sum(),
        }
    ).fillna(0)
    is_count = found.index.get_level_values("metric").isin(COUNT_METRICS)
    return (
        (found["days"] >= MIN_SEASONAL_DAYS)
        & (found["nonzero_days"] >= MIN_NONZERO_DAYS)
        & (found["weeks"] >= MIN_ACTIVE_WEEKS)
        & ((found["events"] >= MIN_EVENTS) | ~is_count)
    )


def _day_of_week_p_values(valid: pd.DataFrame, tested: pd.MultiIndex) -> pd.Series:
    """Kruskal-Wallis p-value of the detrended values grouped by day of the week, for the `tested`
    series (NaN for the others): scipy.stats.kruskal's statistic (average ranks, tie correction)
    and chi-squared p-value, computed for every series at once."""
    from scipy.stats import chi2  # here: loading the code location does not pay for scipy

    rows = valid[pd.MultiIndex.from_frame(valid[KEYS]).isin(tested)]
    series = rows.groupby(KEYS)["detrended"]
    n = series.size()
    ranked = rows.assign(rank=series.rank(method="average"))
    by_day = ranked.groupby(KEYS + ["dow"])["rank"].agg(["sum", "count"])
    between = (by_day["sum"] ** 2 / by_day["count"]).groupby(KEYS).sum()
    statistic = 12.0 / (n * (n + 1)) * between - 3 * (n + 1)
    ties = rows.groupby(KEYS + ["detrended"]).size()
    correction = 1 - (ties**3 - ties).groupby(KEYS).sum() / (n**3 - n)
    groups = by_day.groupby(KEYS).size().reindex(n.index)
    corrected = (statistic / correction).reindex(n.index)
    p_values = chi2.sf(corrected.to_numpy(float), groups.to_numpy(float) - 1)
    return pd.Series(p_values, index=n.index, dtype=float)


def weekly_seasonality(
    history: pd.DataFrame,
    as_of: dt.date,
    profile: tuple[pd.DataFrame, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Per tenant and metric over the last 56 days: is there a weekly pattern, and its peak and
    trough days. strength = eta squared of the day-of-week means of the detrended series; weekly
    when it is >= WEEKLY_STRENGTH_THRESHOLD, the window holds the evidence of the MIN_* constants
    and the Kruskal-Wallis p_value (NaN when not tested) is below SIGNIFICANCE_LEVEL."""
    summary, _ = profile or weekly_profile(history, as_of)
    return summary[KEYS + ["weekly", "strength", "p_value", "peak_day", "trough_day"]]


def anomalies(
    history: pd.DataFrame,
    as_of: dt.date,
    lookback_days: int = ANOMALY_LOOKBACK_DAYS,
    profile: tuple[pd.DataFrame, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Days in the last `lookback_days` up to as_of whose value is far from its neighbours.

    expected = median of up to 3 days each side (not the day itself), on the series divided by its
    day-of-week factor when the metric is weekly-seasonal, times the day's factor; robust z =
    (value - expected) / (1.4826 x MAD of the residuals over the lookback), floored as described
    at SCALE_FLOOR_FRACTION."""
    end = pd.Timestamp(as_of)
    long = _long(history, as_of, FLOW_METRICS, lookback_days + NEIGHBOUR_DAYS)
    summary, factors = profile or weekly_profile(history, as_of)
    seasonal = factors.merge(summary.loc[summary["weekly"], KEYS], on=KEYS)
    long["dow"] = long["date"].dt.day_of_week
    long = long.merge(seasonal, on=KEYS + ["dow"], how="left")  # keeps long's order
    factor = long["factor"].fillna(1.0)
    factor = factor.where(factor > 0)
    adjusted = (long["value"] / factor).groupby([long["tenant_id"], long["metric"]])

    shifts = [k for k in range(-NEIGHBOUR_DAYS, NEIGHBOUR_DAYS + 1) if k != 0]
    neighbours = pd.concat([adjusted.shift(k) for k in shifts], axis=1)
    enough = neighbours.notna().sum(axis=1) >= MIN_NEIGHBOURS
    middle = pd.Series(row_medians(neighbours.to_numpy(float)), index=neighbours.index)
    long["expected"] = (middle * factor).where(enough)
    long["residual"] = long["value"] - long["expected"]

    recent = long[
        (long["date"] > end - pd.Timedelta(days=lookback_days)) & long["residual"].notna()
    ]
    grouped = recent.groupby(KEYS)
    centre = grouped["residual"].transform("median")
    mad = (recent["residual"] - centre).abs().groupby([recent["tenant_id"], recent["metric"]])
    floor = (
        SCALE_FLOOR_FRACTION
        * recent["expected"].abs().groupby([recent["tenant_id"], recent["metric"]]).median()
    )
    scale = np.maximum(MAD_TO_SD * mad.median(), floor).rename("scale")
    recent = recent.join(scale, on=KEYS)
    recent["robust_z"] = recent["residual"] / recent["scale"].where(recent["scale"] > 0)

    found = recent[recent["robust_z"].abs() >= ANOMALY_Z].copy()
    found["kind"] = np.where(found["robust_z"] > 0, "spike", "drop")
    columns = KEYS + ["date", "value", "expected", "robust_z", "kind"]
    return found[columns].reset_index(drop=True)

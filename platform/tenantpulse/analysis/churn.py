"""Churn risk of a tenant (the SaaS company itself, as a business), point in time.

Everything for day D uses only rows with ``date <= D``: features are read from trailing windows that
end on D, labels from the ``horizon_days`` after D. A tenant has *churned* as of D when

* its revenue over the ``horizon_days`` after D is below ``CHURN_REVENUE_DROP`` times its revenue
  over the ``horizon_days`` up to and including D, or
* its MRR on day D + ``horizon_days`` is at least ``CHURN_MRR_DROP`` below its MRR on day D.

Features are computed on a (tenant x day) panel with numpy windows, vectorised over all samples:
no loop per tenant. Pure pandas / numpy / scikit-learn.

Until there is enough real labelled history (analysis.daily.train_churn_model says when), the
model also trains on the SYNTHETIC population of ``synthetic_tenants.synthetic_training_history``
(ids starting ``syn-``); the model says what it was trained on and reports its held-out metrics on
all tenants and, separately, on the real ones (none when there are too few)::

    X, y, groups = training_set(tenant_daily_metrics)  # + training_set(synthetic history)
    model = train(X, y, groups, seed=0)
    print(model.trained_on, model.roc_auc_real, model.real_evaluation, model.calibration)
    predict(model, tenant_daily_metrics, as_of)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from tenantpulse.analysis.patterns import row_medians
from tenantpulse.analysis.synthetic_tenants import is_synthetic

# scikit-learn is imported where a model is trained, so that loading the code location (which
# every Dagster run does) does not pay for it.
if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline


# --- label ---------------------------------------------------------------------------------------
CHURN_REVENUE_DROP = 0.75  # churned: revenue after D < this share of revenue before D
CHURN_MRR_DROP = 0.20  # churned: MRR falls by at least this share over the horizon
HORIZON_DAYS = 30  # days after D the label looks at (and the revenue window before D)
# --- samples -------------------------------------------------------------------------------------
MIN_HISTORY_DAYS = 45  # days of history up to and including D needed for features
STEP_DAYS = 7  # days between two training samples of one tenant
# --- features ------------------------------------------------------------------------------------
WINDOW_DAYS = 30  # trailing window for rates and month-over-month growth
SLOPE_DAYS = 28  # trailing window for Theil-Sen trends
SMOOTH_DAYS = 7  # trends are fitted to the trailing 7-day mean (daily counts are small integers)
MIN_WINDOW_DAYS = 14  # fewer non-null days than this in a window -> the feature is NaN
DAYS_PER_MONTH = 30  # relative slope = slope per day * this / mean level
FEATURE_CLIP = 3.0  # growth and relative slopes are clipped to [-1, FEATURE_CLIP] / +-FEATURE_CLIP
# Neutral value imputed for a missing feature (no change, or a typical healthy SaaS rate).
NEUTRAL = {
    "revenue_mom_growth": 0.0,
    "mrr_growth_30d": 0.0,
    "failed_charge_rate_30d": 0.03,  # typical card failure rate
    "cancellation_rate_30d": 0.02,  # typical monthly subscription churn
    "new_customers_trend": 0.0,
    "revenue_slope_28d": 0.0,
    "prs_merged_trend": 0.0,
    "sessions_trend": 0.0,
}
BASE_FEATURES = tuple(NEUTRAL)
# Missing means "no charges" / "no subscriptions" in the window: also a 0/1 flag. (No flag for a
# missing GitHub or GA source: having connected one is not evidence about churn.)
FLAGGED = ("failed_charge_rate_30d", "cancellation_rate_30d")
FEATURES = BASE_FEATURES + tuple(f"{name}_missing" for name in FLAGGED)
# --- model ---------------------------------------------------------------------------------------
MIN_TRAIN_SAMPLES = 20  # fewer samples than this -> rule fallback
MIN_CLASS_SAMPLES = 3  # fewer samples of either class than this -> rule fallback
MIN_CHURNED_TENANTS = 2  # churned samples from fewer tenants than this -> rule fallback
EVAL_FOLDS = 5  # group (tenant) folds for the out-of-fold evaluation
CALIBRATION_BINS = 5  # equal-width probability bins of the calibration table
LOGISTIC_C = 1.0  # inverse L2 regularisation strength
# Held-out metrics on the real tenants alone need scored samples of this many real tenants, this
# many of them with a churned sample (else they are None and real_evaluation says why).
MIN_EVAL_REAL_TENANTS = 10
MIN_EVAL_REAL_CHURNED_TENANTS = 3
TOP_DRIVERS = 2  # at most this many features named in the reason of a model prediction
DRIVER_MIN_LOGIT = 0.5  # ... each adding at least this much to the log-odds of churn
# --- bands and guards ----------------------------------------------------------------------------
LOW_BELOW = 0.3  # churn_probability below this -> "low"
HIGH_FROM = 0.6  # churn_probability from this on -> "high"; between -> "medium"
# A probability is never shown as certain: predict clips to [PROBABILITY_FLOOR, PROBABILITY_CEILING]
# and rounds to PROBABILITY_DECIMALS (so no text says 0.0, 1.0, 0% or 100%); the band is the
# rounded value's.
PROBABILITY_FLOOR, PROBABILITY_CEILING, PROBABILITY_DECIMALS = 0.01, 0.99, 2
MAX_STALE_DAYS = 7  # latest row more than this many days before as_of -> "unknown"
# Rule fallback: probability = share of these signals that fire (feature, direction, threshold).
RULE_SIGNALS = (
    ("revenue_mom_growth", "<=", -0.15),
    ("mrr_growth_30d", "<=", -0.05),
    ("failed_charge_rate_30d", ">=", 0.10),
    ("cancellation_rate_30d", ">=", 0.05),
    ("revenue_slope_28d", "<=", -0.15),
)
PANEL_COLUMNS = (
    "revenue",
    "mrr",
    "active_subscriptions",
    "subscriptions_canceled",
    "new_customers",
    "charges_failed",
    "charges_succeeded",
    "prs_merged",
    "sessions",
    "has_stripe",
    "has_shopify",
    "has_github",
    "has_google_analytics",
)


@dataclass
class ChurnModel:
    """A trained churn model (or the rule fallback) with its held-out evaluation.

    ``pipeline`` is None when the model could not be trained; ``fallback_reason`` then says why and
    ``predict`` uses ``RULE_SIGNALS``. ``roc_auc``, ``brier`` and ``calibration`` come from
    out-of-fold predictions (each sample is scored by a model that never saw its tenant) over all
    tenants, synthetic ones included; ``roc_auc_real`` and ``brier_real`` from the same scores of
    the real tenants alone, None when there are too few (``real_evaluation`` says which).
    """

    pipeline: Pipeline | None
    n_samples: int
    n_tenants: int
    n_positive: int
    n_real_samples: int = 0
    n_real_tenants: int = 0
    prior_shift: float = 0.0  # log(n_churned / n_not): undoes class_weight="balanced" (see train)
    roc_auc: float | None = None
    brier: float | None = None
    roc_auc_real: float | None = None
    brier_real: float | None = None
    real_evaluation: str = "not measured on real tenants: no model"
    calibration: pd.DataFrame = field(default_factory=pd.DataFrame)
    fallback_reason: str | None = None

    @property
    def n_synthetic_tenants(self) -> int:
        return self.n_tenants - self.n_real_tenants

    @property
    def trained_on(self) -> str:
        """Which tenants the model learned from: "6 real tenants (36 samples) and 60 SYNTHETIC
        tenants (660 samples)", "60 real tenants (...)" or "no real tenant and 60 SYNTHETIC..."."""
        real = f"{self.n_real_tenants} real tenants ({self.n_real_samples} samples)"
        if not self.n_synthetic_tenants:
            return real
        synthetic = f"{self.n_synthetic_tenants} SYNTHETIC tenants "
        synthetic += f"({self.n_samples - self.n_real_samples} samples)"
        return (
            f"{real} and {synthetic}" if self.n_real_tenants else f"no real tenant and {synthetic}"
        )

    def metadata(self) -> dict:
        """What the model was trained and evaluated on, for the churn_risk asset's metadata."""
        return {
            "trained_on": self.trained_on,
            "training_samples": self.n_samples,
            "real_tenants": self.n_real_tenants,
            "synthetic_tenants": self.n_synthetic_tenants,
            "roc_auc_held_out_real_tenants": self.roc_auc_real,
            "brier_score_real_tenants": self.brier_real,
            "real_tenant_evaluation": self.real_evaluation,
            "roc_auc_held_out_all_tenants": self.roc_auc,
            "brier_score_all_tenants": self.brier,
            "calibration_all_tenants": self.calibration.to_dict(orient="records"),
            "fallback_reason": self.fallback_reason or "",
        }


@dataclass
class _Panel:
    tenants: np.ndarray  # tenant ids, one per row
    start: pd.Timestamp  # the date of column 0
    values: dict[str, np.ndarray]  # column -> [tenant, day] floats, NaN where the tenant has no row
    first: np.ndarray  # first day index with a row, per tenant
    last: np.ndarray  # last day index with a row, per tenant


def _panel(history: pd.DataFrame) -> _Panel:
    frame = history.loc[:, ["tenant_id", "date", *PANEL_COLUMNS]].copy()
    frame["date"] = pd.to_datetime(frame["date"]).dt.normalize().astype("datetime64[ns]")
    start = frame["date"].min()
    frame["day"] = ((frame["date"] - start) // pd.Timedelta(days=1)).astype(int)
    n_days = int(frame["day"].max()) + 1
    wide = frame.set_index(["tenant_id", "day"])[list(PANEL_COLUMNS)].astype(float).unstack("day")
    values = {c: wide[c].reindex(columns=range(n_days)).to_numpy(float) for c in PANEL_COLUMNS}
    span = frame.groupby("tenant_id")["day"].agg(["min", "max"]).reindex(wide.index)
    return _Panel(
        wide.index.to_numpy(), start, values, span["min"].to_numpy(), span["max"].to_numpy()
    )


def _window(arr: np.ndarray, rows: np.ndarray, days: np.ndarray, length: int) -> np.ndarray:
    """Values of days ``day - length + 1 .. day`` (never later), NaN before column 0."""
    idx = days[:, None] + np.arange(1 - length, 1)[None, :]
    out = arr[rows[:, None], np.clip(idx, 0, None)]
    out[idx < 0] = np.nan
    return out


def _mean(w: np.ndarray) -> np.ndarray:
    count = np.sum(~np.isnan(w), axis=1)
    total = np.nansum(w, axis=1)
    return np.where(count >= MIN_WINDOW_DAYS, total / np.maximum(count, 1), np.nan)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _relative_slope(w: np.ndarray) -> np.ndarray:
    """Theil-Sen slope (median of pairwise slopes) * DAYS_PER_MONTH / mean level, fitted to the
    trailing SMOOTH_DAYS mean of a window of SLOPE_DAYS + SMOOTH_DAYS - 1 days."""
    w = np.lib.stride_tricks.sliding_window_view(w, SMOOTH_DAYS, axis=1).mean(axis=2)
    i, j = np.triu_indices(w.shape[1], 1)
    slope = row_medians((w[:, j] - w[:, i]) / (j - i))  # NaN for an all-NaN window
    return np.clip(_ratio(slope * DAYS_PER_MONTH, _mean(w)), -FEATURE_CLIP, FEATURE_CLIP)


def _features_at(panel: _Panel, rows: np.ndarray, days: np.ndarray) -> pd.DataFrame:
    """Features of (tenant row, day) pairs from windows ending on the day: point in time."""
    v = panel.values

    def win(col: str, length: int = WINDOW_DAYS, lag: int = 0) -> np.ndarray:
        return _window(v[col], rows, days - lag, length)

    trend = SLOPE_DAYS + SMOOTH_DAYS - 1

    mrr_then = np.where(
        days >= WINDOW_DAYS, v["mrr"][rows, np.maximum(days - WINDOW_DAYS, 0)], np.nan
    )
    charges = np.nansum(win("charges_failed") + win("charges_succeeded"), axis=1)
    at_day = {c: v[c][rows, days] == 1 for c in ("has_github", "has_google_analytics")}
    f = {
        "revenue_mom_growth": _ratio(_mean(win("revenue")), _mean(win("revenue", lag=WINDOW_DAYS)))
        - 1,
        "mrr_growth_30d": _ratio(v["mrr"][rows, days], mrr_then) - 1,
        "failed_charge_rate_30d": _ratio(np.nansum(win("charges_failed"), axis=1), charges),
        "cancellation_rate_30d": _ratio(
            np.nansum(win("subscriptions_canceled"), axis=1), _mean(win("active_subscriptions"))
        ),
        "new_customers_trend": _relative_slope(win("new_customers", trend)),
        "revenue_slope_28d": _relative_slope(win("revenue", trend)),
        "prs_merged_trend": np.where(
            at_day["has_github"], _relative_slope(win("prs_merged", trend)), np.nan
        ),
        "sessions_trend": np.where(
            at_day["has_google_analytics"], _relative_slope(win("sessions", trend)), np.nan
        ),
    }
    for name in ("revenue_mom_growth", "mrr_growth_30d"):
        f[name] = np.clip(f[name], -1.0, FEATURE_CLIP)
    out = pd.DataFrame(f)
    for name in FLAGGED:
        out[f"{name}_missing"] = out[name].isna().astype(float)
    out = out.fillna(NEUTRAL)
    out.index = pd.MultiIndex.from_arrays(
        [panel.tenants[rows], panel.start + pd.to_timedelta(days, unit="D")],
        names=["tenant_id", "date"],
    )
    return out.loc[:, list(FEATURES)]


def churn_features(history: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """Features of each tenant as of its latest date <= ``as_of`` (index tenant_id, date).

    Rows after ``as_of`` are dropped before anything is computed, so they cannot leak in.
    """
    panel = _panel(history[pd.to_datetime(history["date"]) <= pd.Timestamp(as_of)])
    return _features_at(panel, np.arange(len(panel.tenants)), panel.last)


def training_set(
    history: pd.DataFrame, horizon_days: int = HORIZON_DAYS, step_days: int = STEP_DAYS
) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Samples (X, y, groups) for every tenant and every D, ``step_days`` apart, counted back from
    the tenant's last labelable day, with >= MIN_HISTORY_DAYS days up to D and ``horizon_days``
    days after D, and a Stripe or Shopify revenue source on D. X is indexed by (tenant_id, D); y
    is 1 when the tenant churned (module docstring); groups = tenant_id. No history: no samples."""
    if history.empty:
        index = pd.MultiIndex.from_arrays([[], pd.DatetimeIndex([])], names=["tenant_id", "date"])
        X = pd.DataFrame(index=index, columns=list(FEATURES), dtype=float)
        y = pd.Series(index=index, dtype="int64", name="churned")
        return X, y, pd.Series(index=index, dtype=object, name="tenant_id")
    panel = _panel(history)
    v = panel.values
    earliest = panel.first + MIN_HISTORY_DAYS - 1
    latest = panel.last - horizon_days
    counts = np.where(latest >= earliest, (latest - earliest) // step_days + 1, 0)
    rows = np.repeat(np.arange(len(panel.tenants)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    days = latest[rows] - offsets * step_days
    source = np.fmax(v["has_stripe"][rows, days], v["has_shopify"][rows, days]) == 1
    rows, days = rows[source], days[source]  # a revenue source on day D itself
    X = _features_at(panel, rows, days)
    before = np.nansum(_window(v["revenue"], rows, days, horizon_days), axis=1)
    after = np.nansum(_window(v["revenue"], rows, days + horizon_days, horizon_days), axis=1)
    mrr_now, mrr_later = v["mrr"][rows, days], v["mrr"][rows, days + horizon_days]
    revenue_drop = after < CHURN_REVENUE_DROP * before
    mrr_drop = (mrr_now > 0) & (mrr_later <= (1 - CHURN_MRR_DROP) * mrr_now)
    y = pd.Series((revenue_drop | mrr_drop).astype(int), index=X.index, name="churned")
    groups = pd.Series(panel.tenants[rows], index=X.index, name="tenant_id")
    return X, y, groups


def _pipeline(seed: int) -> Pipeline:
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="median")),
            ("scale", StandardScaler()),
            ("model", LogisticRegression(C=LOGISTIC_C, class_weight="balanced", random_state=seed)),
        ]
    )


def _probability(pipeline: Pipeline, shift: float, Xv: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-(pipeline.decision_function(Xv) + shift)))


def _shift(y: np.ndarray) -> float:
    return float(np.log(y.sum() / (len(y) - y.sum())))


def _calibration(y: np.ndarray, p: np.ndarray) -> pd.DataFrame:
    edges = np.linspace(0, 1, CALIBRATION_BINS + 1)
    bins = pd.cut(p, edges, include_lowest=True).astype(str)
    frame = pd.DataFrame({"bin": bins, "predicted": p, "observed": y}).groupby("bin", sort=False)
    table = frame.agg(n=("observed", "size"), mean_predicted=("predicted", "mean"))
    table = table.assign(observed_rate=frame["observed"].mean()).sort_values("mean_predicted")
    return table.reset_index()


def train(X: pd.DataFrame, y: pd.Series, groups: pd.Series, seed: int = 0) -> ChurnModel:
    """Fit imputer + scaler + balanced logistic regression on (X, y).

    Evaluation: tenants are shuffled (``seed``) into up to EVAL_FOLDS folds; every sample is scored
    by a model fitted without its tenant, and roc_auc (None with one class), the Brier score and
    the calibration table are computed on those out-of-fold scores. The returned pipeline is then
    fitted on everything. class_weight="balanced" fits the classes as if they were 50/50; the
    log prior odds of the fit set are added back to the logit (``prior_shift``) so that
    churn_probability matches the training base rate (the calibration table shows how well).
    With fewer than MIN_TRAIN_SAMPLES samples, MIN_CLASS_SAMPLES of a class or churned samples
    from MIN_CHURNED_TENANTS tenants (one churned tenant cannot be held out), no model is
    fitted and ``fallback_reason`` says why (``predict`` then uses RULE_SIGNALS).
    """
    yv, gv = y.to_numpy(int), groups.to_numpy()
    n_pos, n_tenants = int(yv.sum()), len(np.unique(gv))
    real = ~is_synthetic(gv)
    base = {
        "n_samples": len(yv),
        "n_tenants": n_tenants,
        "n_positive": n_pos,
        "n_real_samples": int(real.sum()),
        "n_real_tenants": len(np.unique(gv[real])),
    }
    churned_tenants = len(np.unique(gv[yv == 1]))
    if (
        len(yv) < MIN_TRAIN_SAMPLES
        or min(n_pos, len(yv) - n_pos) < MIN_CLASS_SAMPLES
        or churned_tenants < MIN_CHURNED_TENANTS
    ):
        reason = (
            f"{len(yv)} samples, {n_pos} churned (from {churned_tenants} tenants) and "
            f"{len(yv) - n_pos} not; needs {MIN_TRAIN_SAMPLES} samples, {MIN_CLASS_SAMPLES} of "
            f"each class and churned samples from {MIN_CHURNED_TENANTS} tenants"
        )
        return ChurnModel(pipeline=None, fallback_reason=reason, **base)
    Xv = X.loc[:, list(FEATURES)].to_numpy(float)
    unique = np.random.default_rng(seed).permutation(np.unique(gv))
    fold_of = dict(zip(unique, np.arange(len(unique)) % min(EVAL_FOLDS, len(unique)), strict=True))
    folds = np.array([fold_of[g] for g in gv])
    oof = np.full(len(yv), np.nan)
    for k in np.unique(folds) if n_tenants > 1 else []:
        fit = folds != k
        if len(np.unique(yv[fit])) == 2:
            fold_model = _pipeline(seed).fit(Xv[fit], yv[fit])
            oof[~fit] = _probability(fold_model, _shift(yv[fit]), Xv[~fit])
    scored = ~np.isnan(oof)
    ys, ps = yv[scored], oof[scored]
    from sklearn.metrics import brier_score_loss, roc_auc_score

    auc = float(roc_auc_score(ys, ps)) if len(np.unique(ys)) == 2 else None
    brier = float(brier_score_loss(ys, ps)) if len(ys) else None
    return ChurnModel(
        pipeline=_pipeline(seed).fit(Xv, yv),
        prior_shift=_shift(yv),
        roc_auc=auc,
        brier=brier,
        calibration=_calibration(ys, ps),
        **_real_evaluation(yv[scored & real], oof[scored & real], gv[scored & real]),
        **base,
    )


def _real_evaluation(y: np.ndarray, p: np.ndarray, tenants: np.ndarray) -> dict:
    """ROC AUC and Brier score of the real tenants' out-of-fold scores, when there are enough."""
    from sklearn.metrics import brier_score_loss, roc_auc_score

    n_tenants, n_churned = len(np.unique(tenants)), len(np.unique(tenants[y == 1]))
    if n_tenants < MIN_EVAL_REAL_TENANTS or n_churned < MIN_EVAL_REAL_CHURNED_TENANTS:
        return {
            "real_evaluation": f"not measured on real tenants: {n_tenants} held out, {n_churned} "
            f"of them churned; needs {MIN_EVAL_REAL_TENANTS}, {MIN_EVAL_REAL_CHURNED_TENANTS} "
            "churned"
        }
    auc, brier = float(roc_auc_score(y, p)), float(brier_score_loss(y, p))
    return {
        "roc_auc_real": auc,
        "brier_real": brier,
        "real_evaluation": f"held out on {n_tenants} real tenants ({len(y)} samples, "
        f"{n_churned} tenants churned): ROC AUC {auc:.2f}, Brier {brier:.2f}",
    }


def _rule(X: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    hits = np.column_stack([X[n] <= t if op == "<=" else X[n] >= t for n, op, t in RULE_SIGNALS])
    texts = [
        ", ".join(
            f"{n} = {X[n].iloc[i]:.2f} {op} {t}"
            for (n, op, t), h in zip(RULE_SIGNALS, row, strict=True)
            if h
        )
        or "no rule signal fired"
        for i, row in enumerate(hits)
    ]
    return hits.mean(axis=1), texts


def _drivers(model: ChurnModel, X: pd.DataFrame) -> list[str]:
    steps = model.pipeline.named_steps
    z = steps["scale"].transform(steps["impute"].transform(X.to_numpy(float)))
    z = z * steps["model"].coef_[0]  # each feature's share of the log-odds (vs the training mean)
    order = np.argsort(-z, axis=1)[:, :TOP_DRIVERS]
    return [
        ", ".join(f"{FEATURES[j]} = {X.iloc[i, j]:.2f}" for j in row if z[i, j] >= DRIVER_MIN_LOGIT)
        or "none"
        for i, row in enumerate(order)
    ]


def band(probability: float) -> str:
    """The churn_risk band of a probability: "low" < LOW_BELOW <= "medium" < HIGH_FROM <= "high"."""
    return "low" if probability < LOW_BELOW else "high" if probability >= HIGH_FROM else "medium"


def predict(model: ChurnModel, history: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """churn_probability, churn_risk and a reason per tenant as of ``as_of`` (rows <= as_of only).

    "unknown" (probability NaN) for a tenant with fewer than MIN_HISTORY_DAYS days up to as_of,
    no Stripe or Shopify revenue source on its latest day, or no row in the MAX_STALE_DAYS before
    as_of. Otherwise the model's probability, or the rule fallback's (share of RULE_SIGNALS
    firing) when the model was not trained, with the reason saying which one and why; clipped to
    [PROBABILITY_FLOOR, PROBABILITY_CEILING] and rounded to PROBABILITY_DECIMALS.
    """
    past = history[pd.to_datetime(history["date"]) <= pd.Timestamp(as_of)]
    if past.empty:
        return pd.DataFrame(columns=["tenant_id", "churn_probability", "churn_risk", "reason"])
    panel = _panel(past)
    rows, v = np.arange(len(panel.tenants)), panel.values
    X = _features_at(panel, rows, panel.last)
    if model.pipeline is None:
        prob, why = _rule(X)
        reasons = [f"rule fallback (model not trained: {model.fallback_reason}); {w}" for w in why]
    else:
        prob = _probability(model.pipeline, model.prior_shift, X.to_numpy(float))
        head = f"logistic model; trained on {model.trained_on}; {model.real_evaluation}"
        reasons = [f"{head}; strongest risk signals: {d}" for d in _drivers(model, X)]
    prob = np.round(np.clip(prob, PROBABILITY_FLOOR, PROBABILITY_CEILING), PROBABILITY_DECIMALS)
    n_days = panel.last - panel.first + 1
    source = np.fmax(v["has_stripe"][rows, panel.last], v["has_shopify"][rows, panel.last]) == 1
    latest = panel.start + pd.to_timedelta(panel.last, unit="D")
    stale = (pd.Timestamp(as_of) - latest).days > MAX_STALE_DAYS
    unknown = [  # the first that applies is the reason
        f"only {n} days of history up to {as_of} (needs {MIN_HISTORY_DAYS})"
        if n < MIN_HISTORY_DAYS
        else "no Stripe or Shopify revenue source"
        if not has_source
        else f"no data since {last.date()} (more than {MAX_STALE_DAYS} days before {as_of})"
        if is_stale
        else None
        for n, has_source, last, is_stale in zip(n_days, source, latest, stale, strict=True)
    ]
    known = np.array([u is None for u in unknown])
    return pd.DataFrame(
        {
            "tenant_id": panel.tenants,
            "churn_probability": np.where(known, prob, np.nan),
            "churn_risk": [band(p) if k else "unknown" for p, k in zip(prob, known, strict=True)],
            "reason": [r if u is None else u for r, u in zip(reasons, unknown, strict=True)],
        }
    )

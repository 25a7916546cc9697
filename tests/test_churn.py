"""Churn model: point in time, labels by hand, held-out evaluation, bands, unknowns, fallback.

The model trains on ``synthetic_training_history`` (a SYNTHETIC population of growers, flat,
noisy and declining tenants, seeded), because six demo tenants are too few; ``as_real`` renames
such tenants into real ones where a test needs many real tenants.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from tenantpulse.analysis import churn
from tenantpulse.analysis.churn import (
    CHURN_MRR_DROP,
    CHURN_REVENUE_DROP,
    FEATURES,
    HIGH_FROM,
    HORIZON_DAYS,
    LOW_BELOW,
    MIN_HISTORY_DAYS,
    band,
    churn_features,
    predict,
    train,
    training_set,
)
from tenantpulse.analysis.synthetic_tenants import synthetic_training_history

START = pd.Timestamp("2026-01-01")


@pytest.fixture(scope="module")
def population() -> pd.DataFrame:
    return synthetic_training_history(n_tenants=60, days=150, seed=0)


@pytest.fixture(scope="module")
def model(population) -> churn.ChurnModel:
    return train(*training_set(population), seed=0)


@pytest.fixture(scope="module")
def held_out() -> pd.DataFrame:
    """Tenants the model never saw: another seed, renamed so no id is shared."""
    frame = synthetic_training_history(n_tenants=40, days=150, seed=1)
    return frame.assign(tenant_id=frame["tenant_id"].str.replace("syn-", "heldout-"))


def hand_history(revenue, mrr=None, tenant="hand", **flags) -> pd.DataFrame:
    """One tenant's tenant_daily_metrics rows from a revenue (and MRR) series, the rest constant."""
    revenue = np.asarray(revenue, dtype=float)
    n = len(revenue)
    return pd.DataFrame(
        {
            "tenant_id": tenant,
            "date": pd.date_range(START, periods=n, freq="D"),
            "currency": "usd",
            "revenue": revenue,
            "mrr": np.full(n, 1000.0) if mrr is None else np.asarray(mrr, dtype=float),
            "active_subscriptions": 20,
            "subscriptions_canceled": 0,
            "new_customers": 1,
            "charges_failed": 0,
            "charges_succeeded": 4,
            "failed_charge_rate": 0.0,
            "refunded": 0.0,
            "prs_opened": 0,
            "prs_merged": 0,
            "median_hours_to_merge": np.nan,
            "commits": 0,
            "sessions": 0,
            "total_users": 0,
            "conversions": 0,
            "bounce_rate": np.nan,
            "has_stripe": flags.get("has_stripe", True),
            "has_github": False,
            "has_shopify": flags.get("has_shopify", False),
            "has_google_analytics": False,
        }
    )


def kind(tenant_ids: pd.Series) -> pd.Series:
    return tenant_ids.str.split("-").str[1]


def as_real(frame: pd.DataFrame) -> pd.DataFrame:
    """Synthetic tenants renamed as registered tenants would be: syn-grower-000 -> real_grower_000."""
    return frame.assign(
        tenant_id=frame["tenant_id"].str.replace("syn-", "real-").str.replace("-", "_")
    )


# --- point in time ------------------------------------------------------------------------------


def test_rows_after_d_never_change_the_features_of_d(population, model):
    as_of = (START + pd.Timedelta(days=100)).date()
    after = population["date"] > pd.Timestamp(as_of)
    changed = population.copy()
    rng = np.random.default_rng(3)
    for column in ("revenue", "mrr", "failed_charge_rate", "bounce_rate", "median_hours_to_merge"):
        changed.loc[after, column] = rng.uniform(0, 1e6, after.sum())
    for column in (
        "active_subscriptions",
        "subscriptions_canceled",
        "new_customers",
        "charges_failed",
        "charges_succeeded",
        "prs_merged",
        "sessions",
    ):
        changed.loc[after, column] = rng.integers(0, 1000, after.sum())
    for column in ("has_stripe", "has_github", "has_shopify", "has_google_analytics"):
        changed.loc[after, column] = ~changed.loc[after, column]

    pd.testing.assert_frame_equal(churn_features(population, as_of), churn_features(changed, as_of))
    pd.testing.assert_frame_equal(predict(model, population, as_of), predict(model, changed, as_of))
    # training_set builds its panel over the whole history: samples up to D must still not move.
    X, y, _ = training_set(population, step_days=1)
    X2, y2, _ = training_set(changed, step_days=1)
    upto = X.index.get_level_values("date") <= pd.Timestamp(as_of)
    upto2 = X2.index.get_level_values("date") <= pd.Timestamp(as_of)
    assert upto.sum() > 500
    pd.testing.assert_frame_equal(X[upto], X2[upto2])
    assert (y[upto] != y2[upto2]).any()  # the labels do look after D, so the change was real


def test_features_do_not_depend_on_the_date_unit(population):
    as_of = (START + pd.Timedelta(days=120)).date()
    micro = population.assign(date=population["date"].astype("datetime64[us]"))
    pd.testing.assert_frame_equal(churn_features(population, as_of), churn_features(micro, as_of))


# --- samples and labels -------------------------------------------------------------------------


def test_training_set_only_where_history_and_horizon_exist(population):
    too_short = hand_history(np.full(MIN_HISTORY_DAYS + HORIZON_DAYS - 1, 100.0), tenant="short")
    just_enough = hand_history(np.full(MIN_HISTORY_DAYS + HORIZON_DAYS, 100.0), tenant="exact")
    no_revenue_source = hand_history(np.full(120, 100.0), tenant="nosource", has_stripe=False)
    history = pd.concat([population, too_short, just_enough, no_revenue_source])
    X, y, groups = training_set(history, step_days=7)

    assert list(X.columns) == list(FEATURES)
    assert X.index.equals(y.index) and X.index.equals(groups.index)
    assert not X.isna().any().any()
    assert set(groups) == set(population["tenant_id"]) | {"exact"}
    assert (X.loc["exact"].index == [START + pd.Timedelta(days=MIN_HISTORY_DAYS - 1)]).all()
    span = history.groupby("tenant_id")["date"].agg(["min", "max"])
    dates = X.index.get_level_values("date")
    first, last = span.loc[groups, "min"].to_numpy(), span.loc[groups, "max"].to_numpy()
    assert ((dates - first).days >= MIN_HISTORY_DAYS - 1).all()
    assert ((last - dates).days >= HORIZON_DAYS).all()
    # 150 days: eligible D from day 44 to day 119, every 7 days counted back from day 119.
    per_tenant = groups.value_counts()
    assert (per_tenant.drop("exact") == (119 - 44) // 7 + 1).all()
    assert X.loc["syn-grower-000"].index.max() == START + pd.Timedelta(days=119)


def test_labels_match_a_hand_check():
    # 100 a day for 60 days, then 50 a day: a revenue drop from day 60 on.
    X, y, _ = training_set(hand_history([100.0] * 60 + [50.0] * 40), step_days=1)
    day = (y.index.get_level_values("date") - START).days
    assert list(day) == sorted(day, reverse=True) and day.min() == 44 and day.max() == 69
    labels = dict(zip(day, y, strict=True))
    assert 20 not in labels  # D = day 20: too little history, no sample at all
    # D = day 44: the 30 days after hold 15 x 100 + 15 x 50 = 2250 = 0.75 x 3000, not below it.
    assert CHURN_REVENUE_DROP * 3000 == 2250 and labels[44] == 0
    assert labels[45] == 1 and labels[59] == 1  # 2200 < 2250; 1500 < 2250
    assert all(labels[d] == 1 for d in range(45, 70))


def test_labels_from_an_mrr_drop_of_twenty_percent():
    mrr = [1000.0] * 80 + [1000.0 * (1 - CHURN_MRR_DROP)] * 40  # exactly -20% from day 80
    _, y, _ = training_set(hand_history([100.0] * 120, mrr=mrr), step_days=1)
    day = (y.index.get_level_values("date") - START).days
    labels = dict(zip(day, y, strict=True))
    assert all(labels[d] == (50 <= d < 80) for d in labels)  # D + 30 reaches day 80
    mrr_less = [1000.0] * 80 + [810.0] * 40  # -19%: not churn
    _, y2, _ = training_set(hand_history([100.0] * 120, mrr=mrr_less), step_days=1)
    assert y2.sum() == 0


def test_synthetic_labels_follow_the_planted_kinds(population):
    _, y, groups = training_set(population)
    rate = y.groupby(kind(groups)).mean()
    assert rate["grower"] == 0 and rate["flat"] == 0
    assert rate["decliner"] > 0.5
    assert rate["noisy"] < 0.15


# --- model --------------------------------------------------------------------------------------


def test_train_reports_held_out_auc_and_calibration(model):
    assert model.pipeline is not None and model.fallback_reason is None
    assert model.n_tenants == 60 and model.n_samples == 60 * 11
    assert model.roc_auc is not None and model.roc_auc > 0.8
    table = model.calibration
    assert list(table.columns) == ["bin", "n", "mean_predicted", "observed_rate"]
    assert table["n"].sum() == model.n_samples
    assert 0 <= model.brier < 0.15
    # prior_shift undoes class_weight="balanced": mean prediction ~ base rate.
    predicted = (table["n"] * table["mean_predicted"]).sum() / table["n"].sum()
    assert predicted == pytest.approx(model.n_positive / model.n_samples, abs=0.05)


def test_predict_bands_held_out_decliners_high_and_growers_low(model, held_out):
    result = predict(model, held_out, held_out["date"].max().date())
    assert list(result.columns) == ["tenant_id", "churn_probability", "churn_risk", "reason"]
    by_kind = result.groupby(kind(result["tenant_id"]))["churn_risk"]
    assert (by_kind.get_group("decliner") == "high").all()
    assert (by_kind.get_group("grower") == "low").all()
    assert result["churn_probability"].between(0, 1).all()
    assert (
        result["reason"]
        .str.startswith(
            "logistic model; trained on no real tenant and 60 SYNTHETIC tenants (660 samples); "
            "not measured on real tenants: 0 held out, 0 of them churned; needs 10, 3 churned; "
            "strongest risk signals: "
        )
        .all()
    )
    decliners = result[kind(result["tenant_id"]) == "decliner"]
    assert decliners["reason"].str.contains("=").all()  # names the features behind the risk


def test_band_edges():
    assert band(LOW_BELOW - 1e-9) == "low" and band(LOW_BELOW) == "medium"
    assert band(HIGH_FROM - 1e-9) == "medium" and band(HIGH_FROM) == "high"


def test_unknown_with_a_reason(model, held_out):
    as_of = date(2026, 1, 30)  # day 29: 30 days of history
    short = predict(model, held_out, as_of)
    assert (short["churn_risk"] == "unknown").all() and short["churn_probability"].isna().all()
    assert (short["reason"] == f"only 30 days of history up to {as_of} (needs 45)").all()

    end = held_out["date"].max()
    no_source = hand_history(np.full(150, 100.0), tenant="nosource", has_stripe=False)
    stale = hand_history(np.full(100, 100.0), tenant="stale")
    result = predict(model, pd.concat([held_out, no_source, stale]), end.date()).set_index(
        "tenant_id"
    )
    assert result.loc["nosource", "churn_risk"] == "unknown"
    assert result.loc["nosource", "reason"] == "no Stripe or Shopify revenue source"
    assert result.loc["stale", "churn_risk"] == "unknown"
    assert result.loc["stale", "reason"].startswith("no data since 2026-04-10")
    assert (result.drop(["nosource", "stale"])["churn_risk"] != "unknown").all()
    assert predict(model, held_out, date(2025, 1, 1)).empty


def test_single_class_training_falls_back_to_the_documented_rule(population, held_out):
    growers = population[kind(population["tenant_id"]) == "grower"]
    fallback = train(*training_set(growers), seed=0)
    assert fallback.pipeline is None and fallback.roc_auc is None
    assert fallback.fallback_reason.startswith("165 samples, 0 churned (from 0 tenants)")

    result = predict(fallback, held_out, held_out["date"].max().date())
    assert result["reason"].str.startswith("rule fallback (model not trained: 165 samples").all()
    by_kind = result.groupby(kind(result["tenant_id"]))
    decliners, grow = by_kind.get_group("decliner"), by_kind.get_group("grower")
    assert (decliners["churn_risk"] == "high").all()
    assert decliners["reason"].str.contains("failed_charge_rate_30d = ").all()
    assert (grow["churn_risk"] == "low").all()
    assert grow["reason"].str.endswith("no rule signal fired").all()


def test_too_few_samples_fall_back_too():
    tiny = hand_history([100.0] * 60 + [50.0] * 40)
    fallback = train(*training_set(tiny), seed=0)
    assert fallback.pipeline is None and "needs 20 samples" in fallback.fallback_reason


def test_churned_samples_from_one_tenant_fall_back(population):
    ids = population["tenant_id"]
    one_decliner = population[(ids == "syn-decliner-001") | kind(ids).isin(["grower", "flat"])]
    X, y, groups = training_set(one_decliner)
    assert y.sum() >= 3 and groups[y == 1].nunique() == 1
    fallback = train(X, y, groups, seed=0)
    assert fallback.pipeline is None and "(from 1 tenants)" in fallback.fallback_reason


def test_synthetic_history_has_the_mart_shape(population):
    assert population.groupby("tenant_id").size().eq(150).all()
    assert population["date"].dtype == "datetime64[ns]"
    assert not population[["revenue", "mrr", "sessions"]].isna().any().any()
    again = synthetic_training_history(n_tenants=60, days=150, seed=0)
    pd.testing.assert_frame_equal(population, again)
    assert (population["date"].min() + timedelta(days=149)) == population["date"].max()


# --- what the model claims ----------------------------------------------------------------------


def test_probabilities_are_never_0_or_1_and_have_two_decimals(population, model, held_out):
    assert (churn.PROBABILITY_FLOOR, churn.PROBABILITY_CEILING) == (0.01, 0.99)
    result = predict(model, held_out, held_out["date"].max().date())
    p = result["churn_probability"]
    assert p.between(0.01, 0.99).all() and (p * 100).round(9).mod(1).eq(0).all()
    assert p.max() == 0.99  # decliners the model is surest about: at the ceiling, not 1.0
    assert f"{p.max():.0%}" == "99%" and f"{p.min():.0%}" != "0%"
    assert all(band(v) == r for v, r in zip(p, result["churn_risk"], strict=True))
    # The rule fallback's share of signals: none firing is 0.01, not 0.
    growers = population[kind(population["tenant_id"]) == "grower"]
    fallback = train(*training_set(growers), seed=0)
    rule = predict(fallback, held_out, held_out["date"].max().date())
    grower_p = rule.loc[kind(rule["tenant_id"]) == "grower", "churn_probability"]
    assert (grower_p == 0.01).all()
    assert rule["churn_probability"].between(0.01, 0.99).all()


def test_a_model_of_synthetic_tenants_only_says_so_and_measures_nothing_on_real_ones(model):
    assert (model.n_real_tenants, model.n_synthetic_tenants, model.n_real_samples) == (0, 60, 0)
    assert model.trained_on == "no real tenant and 60 SYNTHETIC tenants (660 samples)"
    assert model.roc_auc_real is None and model.brier_real is None
    assert model.real_evaluation == (
        "not measured on real tenants: 0 held out, 0 of them churned; needs 10, 3 churned"
    )


def test_on_real_tenants_only_the_real_metrics_are_the_held_out_metrics(population):
    X, y, groups = training_set(as_real(population))
    real = train(X, y, groups, seed=0)
    assert (real.n_real_tenants, real.n_synthetic_tenants) == (60, 0)
    assert real.trained_on == "60 real tenants (660 samples)"
    # Every scored sample is a real tenant's: the same samples, the same numbers.
    assert real.roc_auc_real == real.roc_auc and real.brier_real == real.brier
    assert real.real_evaluation == (
        f"held out on 60 real tenants (660 samples, {groups[y == 1].nunique()} tenants churned): "
        f"ROC AUC {real.roc_auc:.2f}, Brier {real.brier:.2f}"
    )


def real_tenants(decliners: int, others: int, seed: int = 2) -> pd.DataFrame:
    """Real-named tenants of another seed: `decliners` declining ones, `others` growers or flat."""
    frame = synthetic_training_history(n_tenants=100, days=150, seed=seed)
    ids = pd.Series(frame["tenant_id"].unique())
    chosen = list(ids[kind(ids) == "decliner"][:decliners])
    chosen += list(ids[kind(ids).isin(["grower", "flat"])][:others])
    return as_real(frame[frame["tenant_id"].isin(chosen)])


@pytest.mark.parametrize(
    ("decliners", "others", "measured"), [(3, 7, True), (3, 6, False), (2, 8, False)]
)
def test_metrics_on_real_tenants_need_ten_of_them_three_churned(
    population, decliners, others, measured
):
    real = real_tenants(decliners, others)
    X, y, groups = training_set(real)
    assert groups.nunique() == decliners + others
    assert groups[y == 1].nunique() == decliners  # every decliner churns, no grower or flat one
    mixed = train(*training_set(pd.concat([population, real])), seed=0)
    n = decliners + others
    assert mixed.trained_on == (
        f"{n} real tenants ({len(y)} samples) and 60 SYNTHETIC tenants (660 samples)"
    )
    assert (mixed.roc_auc_real is not None) is measured
    assert mixed.real_evaluation.startswith("held out on" if measured else "not measured")
    if measured:
        assert mixed.roc_auc_real != mixed.roc_auc  # real tenants only, not the whole population
    else:
        assert mixed.real_evaluation == (
            f"not measured on real tenants: {n} held out, {decliners} of them churned; "
            "needs 10, 3 churned"
        )


def test_the_model_metadata_says_what_it_was_trained_and_evaluated_on(model):
    metadata = model.metadata()
    assert metadata["trained_on"] == model.trained_on
    assert (metadata["real_tenants"], metadata["synthetic_tenants"]) == (0, 60)
    assert metadata["roc_auc_held_out_real_tenants"] is None
    assert metadata["real_tenant_evaluation"] == model.real_evaluation
    assert metadata["roc_auc_held_out_all_tenants"] == model.roc_auc
    assert len(metadata["calibration_all_tenants"]) == len(model.calibration)


@pytest.mark.parametrize(
    ("decliners", "others", "synthetic"), [(10, 40, False), (10, 39, True), (9, 41, True)]
)
def test_synthetic_tenants_are_left_out_once_real_history_is_enough(decliners, others, synthetic):
    from tenantpulse.analysis.daily import (
        REAL_ONLY_MIN_CHURNED_TENANTS,
        REAL_ONLY_MIN_TENANTS,
        train_churn_model,
    )

    assert (REAL_ONLY_MIN_TENANTS, REAL_ONLY_MIN_CHURNED_TENANTS) == (50, 10)
    real = real_tenants(decliners, others)
    model = train_churn_model(real, real["date"].max().date())
    assert model.n_real_tenants == decliners + others
    assert model.n_synthetic_tenants == (60 if synthetic else 0)
    assert model.roc_auc_real is not None  # 49 or 50 real tenants, 9 or 10 churned: measured

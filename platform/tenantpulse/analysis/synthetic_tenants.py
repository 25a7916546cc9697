"""A SYNTHETIC population of tenants (tenant_daily_metrics-shaped history) for training the churn
model until there is enough real labelled history (analysis.daily.REAL_ONLY_MIN_TENANTS): generated
curves, not real tenants and not the simulator."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

SYNTHETIC_KINDS = ("grower", "decliner", "flat", "noisy")  # tenant i is kind i % 4
SYNTHETIC_START = date(2026, 1, 1)  # first day of every synthetic history
# Synthetic ids hold a "-", which a registered tenant id never does (tenants/ids.py): the model can
# train on both populations without a real tenant ever taking a synthetic one's rows.
SYNTHETIC_PREFIX = "syn-"


def is_synthetic(tenant_ids) -> np.ndarray:
    """True for the ids of synthetic tenants."""
    return np.array([str(t).startswith(SYNTHETIC_PREFIX) for t in tenant_ids], dtype=bool)


def synthetic_training_history(n_tenants: int = 60, days: int = 150, seed: int = 0) -> pd.DataFrame:
    """SYNTHETIC tenant_daily_metrics-shaped history: NOT real tenants, NOT the simulator.

    A labelled population to train the churn model on while real history is too short (a handful
    of tenants, a few months). Tenant ``i`` is ``syn-<kind>-<i>`` with kind SYNTHETIC_KINDS[i % 4]:
    growers (+3..10% a month), flat (+-1%), noisy (-1..+3%, 3x the noise, one-day spikes) and
    decliners, whose revenue, MRR, sign-ups and sessions fall 30-60% a month from an onset day in
    [50, days - 40] while failed charges (2-6% otherwise) rise by 12-25 points and cancellations
    (1-3.5% a month otherwise) by 4.5-10.5 points over 30 days, starting 0-20 days before the
    onset. About 70% have GitHub, 70% GA, 50% Shopify, all Stripe. Deterministic in ``seed``;
    columns and dtypes as the mart's. Needs ``days >= 91``.

    What a model learns from it is this function's assumptions about how churn looks, not observed
    churn: use it only to bootstrap, and replace it as real labelled history accumulates.
    """
    rng = np.random.default_rng(seed)
    n, t = n_tenants, np.arange(days)[None, :]
    kind = np.array(SYNTHETIC_KINDS)[np.arange(n) % len(SYNTHETIC_KINDS)][:, None]
    u = lambda lo, hi: rng.uniform(lo, hi, (n, 1))  # noqa: E731
    growth = np.select(
        [kind == "grower", kind == "flat", kind == "noisy"],
        [u(0.03, 0.10), u(-0.01, 0.01), u(-0.01, 0.03)],
        u(0.0, 0.04),
    )
    onset = np.where(kind == "decliner", rng.integers(50, days - 40, (n, 1)), 10 * days)
    since = np.clip(t - onset, 0, None)
    # Payment failures and cancellations lead: they start rising 0-20 days before revenue falls.
    ramp = np.clip((t - onset + rng.integers(0, 21, (n, 1))) / 30, 0, 1)
    decay = (1 - u(0.3, 0.6)) ** (since / 30)
    level = (1 + growth) ** (t / 30) * decay
    sigma = np.where(kind == "noisy", 0.45, 0.15)
    weekly = np.array([1.1, 1.15, 1.1, 1.05, 1.0, 0.8, 0.8])[(t + 3) % 7]  # 2026-01-01 is a Thu
    spikes = np.where(
        (kind == "noisy") & (rng.random((n, days)) < 0.02), rng.uniform(3, 5, (n, days)), 1
    )
    base = u(500, 5000)
    revenue = base * level * weekly * spikes * rng.lognormal(0, sigma, (n, days))
    mrr = 20 * base * level * rng.lognormal(0, 0.01, (n, days))
    active = np.round(mrr / u(50, 150)).astype(int)
    cancel_rate = u(0.01, 0.035) + ramp * u(0.045, 0.105)
    failure = u(0.02, 0.06) + ramp * u(0.12, 0.25)
    charges = rng.poisson(base / 50 * level)
    failed = rng.binomial(charges, np.clip(failure, 0, 1))
    has = {s: rng.random((n, 1)) < p for s, p in (("github", 0.7), ("shopify", 0.5), ("ga", 0.7))}
    prs = rng.poisson(5 * weekly * np.where(has["github"], 1, 0))
    merged = rng.binomial(prs, 0.82)
    sessions = rng.poisson(900 * level * weekly * np.where(has["ga"], 1, 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        failed_rate = np.where(charges > 0, failed / charges, np.nan)
    cols = {
        "revenue": np.round(revenue, 2),
        "mrr": np.round(mrr, 2),
        "active_subscriptions": active,
        "subscriptions_canceled": rng.poisson(active * cancel_rate / 30),
        "new_customers": rng.poisson(base / 200 * level * decay),
        "charges_failed": failed,
        "charges_succeeded": charges - failed,
        "failed_charge_rate": failed_rate,
        "refunded": np.round(revenue * rng.uniform(0, 0.04, (n, days)), 2),
        "prs_opened": prs,
        "prs_merged": merged,
        "median_hours_to_merge": np.where(
            merged > 0, rng.lognormal(np.log(18), 0.4, (n, days)), np.nan
        ),
        "commits": rng.poisson(9 * weekly * np.where(has["github"], 1, 0)),
        "sessions": sessions,
        "total_users": np.round(sessions * 0.7).astype(int),
        "conversions": rng.binomial(sessions, 0.02),
        "bounce_rate": np.where(sessions > 0, rng.uniform(0.3, 0.6, (n, days)), np.nan),
    }
    ids = np.array([f"{SYNTHETIC_PREFIX}{k}-{i:03d}" for i, k in enumerate(kind[:, 0])])
    frame = pd.DataFrame(
        {
            "tenant_id": np.repeat(ids, days),
            "date": np.tile(
                pd.date_range(SYNTHETIC_START, periods=days, freq="D").as_unit("ns"), n
            ),
            "currency": "usd",
            **{c: np.broadcast_to(a, (n, days)).ravel() for c, a in cols.items()},
            "has_stripe": True,
            "has_github": np.repeat(has["github"][:, 0], days),
            "has_shopify": np.repeat(has["shopify"][:, 0], days),
            "has_google_analytics": np.repeat(has["ga"][:, 0], days),
        }
    )
    return frame

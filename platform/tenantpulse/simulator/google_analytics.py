"""The simulator's Google Analytics 4 reports: one row per dimension combination per closed day,
with the connector's lookback (each sync re-reads the two days before the last one it had,
whose numbers GA has meanwhile revised upwards)."""

from __future__ import annotations

import numpy as np

from tenantpulse.simulator.world import (
    MINOR_UNITS,
    P_GA_DAY,
    PRICE_SCALE,
    SECONDS_PER_DAY,
    Rows,
    World,
    hash64,
)

LOOKBACK_DAYS = 2
# Share of the final numbers a report shows 0 and 1 days after the day closed (uniform ranges).
PRELIMINARY_SHARE = ((0.93, 0.97), (0.98, 0.995))
TRAFFIC_SOURCES = (
    ("google", "organic", 0.38),
    ("(direct)", "(none)", 0.22),
    ("google", "cpc", 0.12),
    ("newsletter", "email", 0.08),
    ("facebook.com", "referral", 0.07),
    ("linkedin.com", "referral", 0.06),
    ("bing", "organic", 0.04),
    ("t.co", "referral", 0.03),
)
DEVICES = (
    ("desktop", "Windows", "Chrome", 0.25),
    ("mobile", "iOS", "Safari", 0.22),
    ("mobile", "Android", "Chrome", 0.18),
    ("desktop", "Macintosh", "Chrome", 0.12),
    ("desktop", "Macintosh", "Safari", 0.08),
    ("desktop", "Windows", "Edge", 0.05),
    ("tablet", "iOS", "Safari", 0.04),
    ("mobile", "iOS", "Chrome", 0.03),
    ("desktop", "Linux", "Firefox", 0.02),
    ("desktop", "Windows", "Firefox", 0.01),
)
DEVICE_DURATION = {"desktop": 190.0, "mobile": 120.0, "tablet": 150.0}
# (eventName, conversions per session, counts revenue)
EVENTS = (("purchase", 0.018, True), ("sign_up", 0.030, False), ("generate_lead", 0.012, False))
PURCHASE_VALUE_USD = 55.0

_N_ROWS = 1 + len(TRAFFIC_SOURCES) + len(DEVICES)  # overview, then each combination
_N_Z = _N_ROWS + len(EVENTS)
_N_U = 5 * _N_ROWS + len(EVENTS) + 2


def property_id(tenant_key: int) -> str:
    return "3" + f"{int(hash64(tenant_key)[0] % np.uint64(10**8)):08d}"


def _web_demand(world: World, day: int) -> float:
    """Sessions follow demand, spikes included; a payment outage does not keep visitors away."""
    profile = world.profile
    return profile.demand(day, world.weekday(day)) * profile.spike_factor(day)


def sync(world: World, after_t: float | None) -> dict[str, Rows]:
    last_closed = world.last_day - 1
    if after_t is None:
        first = 0
    else:
        previous_closed = int((after_t - world.start_t) // SECONDS_PER_DAY) - 1
        first = max(0, min(previous_closed + 1, last_closed) - LOOKBACK_DAYS)
    days = np.arange(first, last_closed + 1)
    n = len(days)
    z = np.empty((n, _N_Z))
    u = np.empty((n, _N_U))
    demand = np.empty(n)
    for i, day in enumerate(days):
        rng = world.rng(P_GA_DAY, int(day))
        z[i], u[i] = rng.standard_normal(_N_Z), rng.random(_N_U)
        demand[i] = _web_demand(world, int(day))
    # What this sync reads: the final numbers two or more days after the day, else a share of them.
    revision = np.minimum(last_closed - days, LOOKBACK_DAYS)
    low, high = np.array(PRELIMINARY_SHARE + ((1.0, 1.0),)).T
    share = low[revision] + (high[revision] - low[revision]) * u[:, -2]

    sessions_total = world.profile.sessions_per_day * world.volume * demand * np.exp(0.08 * z[:, 0])
    shares = np.array([1.0] + [s[-1] for s in TRAFFIC_SOURCES] + [d[-1] for d in DEVICES])
    sessions = np.where(np.arange(_N_ROWS) == 0, 1.0, np.exp(0.1 * z[:, :_N_ROWS]))
    sessions = sessions_total[:, None] * shares[None, :] * sessions
    durations = np.array(
        [160.0] * (1 + len(TRAFFIC_SOURCES)) + [DEVICE_DURATION[d[0]] for d in DEVICES]
    )
    metrics = _metrics(sessions, share, u[:, : 5 * _N_ROWS].reshape(n, _N_ROWS, 5), durations)

    dates = np.array([world.date_of(int(d)).strftime("%Y%m%d") for d in days], dtype=object)
    prop = property_id(world.tenant_key)
    out = {}
    blocks = {
        "google_analytics__website_overview": (slice(0, 1), {}),
        "google_analytics__traffic_sources": (
            slice(1, 1 + len(TRAFFIC_SOURCES)),
            {
                "sessionSource": [s[0] for s in TRAFFIC_SOURCES],
                "sessionMedium": [s[1] for s in TRAFFIC_SOURCES],
            },
        ),
        "google_analytics__devices": (
            slice(1 + len(TRAFFIC_SOURCES), _N_ROWS),
            {
                "deviceCategory": [d[0] for d in DEVICES],
                "operatingSystem": [d[1] for d in DEVICES],
                "browser": [d[2] for d in DEVICES],
            },
        ),
    }
    for name, (cols, dims) in blocks.items():
        width = cols.stop - cols.start
        keep = (metrics["sessions"][:, cols] > 0).ravel()
        columns = {
            "property_id": np.full(n * width, prop, dtype=object),
            "date": np.repeat(dates, width),
        }
        for dim, values in dims.items():
            columns[dim] = np.tile(np.array(values, dtype=object), n)
        for metric, values in metrics.items():
            columns[metric] = values[:, cols].ravel()
        keys = (days[:, None] * 64 + np.arange(cols.start, cols.stop)[None, :]).ravel()
        out[name] = Rows(keys[keep], {k: np.asarray(v)[keep] for k, v in columns.items()})
    out["google_analytics__conversions_report"] = _conversions(
        world, days, dates, prop, sessions_total * share, z, u
    )
    return out


def _metrics(sessions: np.ndarray, share: np.ndarray, u: np.ndarray, durations: np.ndarray) -> dict:
    """GA's metrics for each (day, row); counts scaled by the revision share of that day."""
    final_sessions = np.round(sessions)
    users_final = np.maximum(
        np.round(final_sessions / (1.15 + 0.25 * u[..., 0])), np.minimum(final_sessions, 1)
    )
    views_final = np.round(final_sessions * (2.0 + 1.6 * u[..., 3]))
    s = np.round(final_sessions * share[:, None])
    users = np.round(users_final * share[:, None])
    users = np.minimum(np.maximum(users, np.minimum(s, 1)), s)
    new_users = np.round(users * (0.55 + 0.2 * u[..., 1]))
    views = np.round(views_final * share[:, None])
    safe_s = np.maximum(s, 1)
    return {
        "totalUsers": users.astype(np.int64),
        "newUsers": new_users.astype(np.int64),
        "sessions": s.astype(np.int64),
        "sessionsPerUser": np.round(s / np.maximum(users, 1), 6),
        "averageSessionDuration": np.round(durations[None, :] * (0.8 + 0.4 * u[..., 2]), 3),
        "screenPageViews": views.astype(np.int64),
        "screenPageViewsPerSession": np.round(views / safe_s, 6),
        "bounceRate": np.round(0.30 + 0.30 * u[..., 4], 6),
    }


def _conversions(world, days, dates, prop, sessions, z, u) -> Rows:
    n, k = len(days), len(EVENTS)
    rates = np.array([e[1] for e in EVENTS])
    conversions = np.round(sessions[:, None] * rates[None, :] * np.exp(0.15 * z[:, _N_ROWS:]))
    users = np.round(conversions * (0.85 + 0.15 * u[:, 5 * _N_ROWS : 5 * _N_ROWS + k]))
    currency = world.profile.currency
    value = PURCHASE_VALUE_USD * PRICE_SCALE[currency]
    digits = 0 if MINOR_UNITS[currency] == 1 else 2
    revenue = np.where([e[2] for e in EVENTS], np.round(conversions * value, digits), 0.0)
    keep = (conversions > 0).ravel()
    keys = (days[:, None] * 64 + 40 + np.arange(k)[None, :]).ravel()
    columns = {
        "property_id": np.full(n * k, prop, dtype=object),
        "date": np.repeat(dates, k),
        "eventName": np.tile(np.array([e[0] for e in EVENTS], dtype=object), n),
        "conversions": conversions.astype(np.int64).ravel(),
        "totalUsers": users.astype(np.int64).ravel(),
        "totalRevenue": revenue.ravel(),
    }
    return Rows(keys[keep], {c: v[keep] for c, v in columns.items()})

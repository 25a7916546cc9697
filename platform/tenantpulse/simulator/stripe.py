"""The simulator's Stripe world: customers, one-off charges, refunds, and the rows of every
Stripe stream (the subscription lifecycle itself is in stripe_billing)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tenantpulse.simulator.profiles import DRIFT_COLUMN, DRIFT_FEE_RATE, DRIFT_FEE_START_DAY
from tenantpulse.simulator.stripe_billing import (
    ANNUAL_SHARE,
    FAILURE_CODE_WEIGHTS,
    FAILURE_CODES,
    OUTAGE_FAILURE_CODE,
    PLAN_TIER_WEIGHTS,
    QUANTITY_WEIGHTS,
    TRIAL_SHARE,
    Hazard,
    Ledger,
    frame_of_records,
    invoice_rows,
    live,
    subscription_rows,
)
from tenantpulse.simulator.world import (
    HOUR,
    MINOR_UNITS,
    P_STRIPE_CUSTOMERS,
    P_STRIPE_DELETE,
    P_STRIPE_INITIAL,
    P_STRIPE_ONEOFF,
    P_STRIPE_PENDING,
    P_STRIPE_REFUND,
    PRICE_SCALE,
    SECONDS_PER_DAY,
    Rows,
    World,
    base62_ids,
    choice_index,
    concat_parts,
    dumps,
    emit,
    event_versions,
    in_day,
    people,
)
from tenantpulse.sources.contracts import BIGINT, Column

INITIAL_ONEOFF_CUSTOMER_SHARE = 0.35  # one-off buyers per subscribed customer at day 0
ONEOFF_CUSTOMERS_PER_DAY = 2.0  # new one-off buyers per day (x demand)
ONEOFF_KNOWN_CUSTOMER_SHARE = 0.75  # one-off charges with a customer (else a guest payment)
ONEOFF_MEDIAN_USD, ONEOFF_SIGMA = 45.0, 0.5
ONEOFF_CHANNELS = ("checkout", "payment_link", "invoice_item")
PENDING_SHARE, PENDING_DAYS = 0.05, 2  # one-off charges that settle later (bank debits)
REFUND_SHARE, FULL_REFUND_SHARE = 0.03, 0.70
REFUND_REASONS, REFUND_REASON_WEIGHTS = (
    ("requested_by_customer", "duplicate", "fraudulent"),
    (0.8, 0.12, 0.08),
)
DELETED_SHARE = 0.03  # of one-off buyers, deleted 20-180 days after sign-up
CITIES = {
    "usd": (("Austin", "US", "73301"), ("Boston", "US", "02108"), ("Denver", "US", "80202")),
    "eur": (("Berlin", "DE", "10115"), ("Lyon", "FR", "69001"), ("Utrecht", "NL", "3511")),
    "gbp": (("Leeds", "GB", "LS1"), ("Bristol", "GB", "BS1"), ("London", "GB", "EC1A")),
    "jpy": (
        ("Osaka", "JP", "530-0001"),
        ("Tokyo", "JP", "100-0001"),
        ("Fukuoka", "JP", "810-0001"),
    ),
}

_ONEOFF_KEY_BASE = 1 << 50


def minor(amount_major: np.ndarray, currency: np.ndarray) -> np.ndarray:
    """Major units to Stripe's integer minor units (jpy amounts rounded to 10 yen)."""
    units = np.array([MINOR_UNITS[c] for c in currency], dtype=float)
    scale = np.array([PRICE_SCALE[c] for c in currency], dtype=float)
    value = amount_major * scale * units
    zero_decimal = units == 1
    value = np.where(zero_decimal, np.round(value / 10.0) * 10.0, np.round(value))
    return value.astype(np.int64)


def _initial_customers(world: World) -> dict:
    profile = world.profile
    n_sub = round(profile.initial_subscriptions * world.volume)
    n = n_sub + round(n_sub * INITIAL_ONEOFF_CUSTOMER_SHARE)
    rng = world.rng(P_STRIPE_INITIAL)
    created = world.start_t - np.sort(rng.integers(HOUR, 540 * SECONDS_PER_DAY, n))[::-1]
    has_sub = rng.permutation(n) < n_sub
    return _customer_attributes(world, rng, created, has_sub, initial=True)


def _daily_counts(world: World, day: int, rng: np.random.Generator) -> tuple[int, int]:
    """The first draws of a day's customer generator: new subscribers and new one-off buyers."""
    weekday = world.weekday(day)
    n_sub = world.steady_count(world.profile.signups(day, weekday), rng)
    demand = world.profile.demand(day, weekday) * world.profile.spike_factor(day)
    n_oneoff = world.count(ONEOFF_CUSTOMERS_PER_DAY * demand, rng)
    return n_sub, n_oneoff


def _customer_attributes(world, rng, created, has_sub, *, initial: bool) -> dict:
    n = len(created)
    u = rng.random((n, 5))
    profile = world.profile
    currency = np.full(n, profile.currency, dtype=object)
    if profile.second_currency:
        currency[u[:, 0] < profile.second_currency_share] = profile.second_currency
    return {
        "created": created.astype(np.int64),
        "has_sub": has_sub,
        "initial": np.full(n, initial),
        "currency": currency,
        "tier": choice_index(u[:, 1], PLAN_TIER_WEIGHTS),
        "annual": u[:, 2] < ANNUAL_SHARE,
        "quantity": choice_index(u[:, 3], QUANTITY_WEIGHTS) + 1,
        "trial": (u[:, 4] < TRIAL_SHARE) & (not initial),
    }


def _customers(world: World) -> dict:
    def build(day: int, rng: np.random.Generator) -> dict:
        n_sub, n_oneoff = _daily_counts(world, day, rng)
        n = n_sub + n_oneoff
        created = in_day(rng, world.day_start(day), n)
        has_sub = rng.permutation(n) < n_sub
        return _customer_attributes(world, rng, created, has_sub, initial=False)

    parts = [_initial_customers(world)]
    parts += [build(day, world.rng(P_STRIPE_CUSTOMERS, day)) for day in range(world.last_day + 1)]
    return concat_parts(parts)


def stripe_emails(world: World, index: np.ndarray) -> np.ndarray:
    """Stripe customer `index`'s email as Stripe holds it (a few with a capital first letter)."""
    _first, _last, email = people(world, 0, index)
    capital = world.uniform(P_STRIPE_CUSTOMERS, index, salt=1) < 0.08
    return np.array(
        [e[0].upper() + e[1:] if c else e for e, c in zip(email, capital, strict=True)],
        dtype=object,
    )


def _oneoff_charges(world: World, cust: dict, customers_before: np.ndarray) -> dict:
    profile = world.profile

    def build(day: int, rng: np.random.Generator) -> dict:
        expected = profile.oneoff_charges_per_day * profile.demand(day, world.weekday(day))
        n = world.steady_count(expected * profile.spike_factor(day), rng)
        t = in_day(rng, world.day_start(day), n)
        u = rng.random((n, 5))
        major = ONEOFF_MEDIAN_USD * np.exp(ONEOFF_SIGMA * rng.standard_normal(n))
        known = (u[:, 0] < ONEOFF_KNOWN_CUSTOMER_SHARE) & (customers_before[day] > 0)
        customer = np.where(known, (u[:, 1] * customers_before[day]).astype(np.int64), -1)
        failed = u[:, 2] < profile.charge_failure_rate(day)
        return {
            "_key": _ONEOFF_KEY_BASE + (day << 20) + np.arange(n, dtype=np.int64),
            "created": t,
            "customer": customer,
            "major": major,
            "failed": failed,
            "code": choice_index(u[:, 3], FAILURE_CODE_WEIGHTS),
            "channel": choice_index(u[:, 4], (0.6, 0.3, 0.1)),
            "outage": np.full(n, profile.is_outage(day)),
        }

    parts = world.per_day(P_STRIPE_ONEOFF, build)
    # A guest payment, or a customer deleted before this charge, has no customer.
    customer = parts["customer"]
    deleted = cust["deleted_at"][np.maximum(customer, 0)]
    customer[(customer >= 0) & (deleted <= parts["created"])] = -1
    currency = np.where(customer >= 0, cust["currency"][np.maximum(customer, 0)], profile.currency)
    parts["currency"] = currency.astype(object)
    parts["amount"] = minor(parts["major"], parts["currency"])
    codes = np.array(FAILURE_CODES, dtype=object)[parts["code"]]
    parts["failure_code"] = np.where(
        parts["failed"], np.where(parts["outage"], OUTAGE_FAILURE_CODE, codes), None
    )
    return parts


def sync(world: World, after_t: float | None) -> dict[str, Rows]:
    profile = world.profile
    cust = _customers(world)
    n_cust = len(cust["created"])
    index = np.arange(n_cust, dtype=np.int64)
    deleted = ~cust["has_sub"] & (world.uniform(P_STRIPE_DELETE, index) < DELETED_SHARE)
    delay = (20 + 160 * world.uniform(P_STRIPE_DELETE, index, salt=1)) * SECONDS_PER_DAY
    cust["deleted_at"] = np.where(deleted, cust["created"] + delay, np.inf)

    ledger = Ledger([], [], [], [])
    hazard = Hazard(world)
    for c in np.flatnonzero(cust["has_sub"]):
        live(world, int(c), cust, hazard, ledger)

    customers_before = (
        np.searchsorted(
            cust["created"][cust["initial"].sum() :],
            [world.day_start(d) for d in range(world.last_day + 1)],
        )
        + cust["initial"].sum()
    )
    oneoff = _oneoff_charges(world, cust, customers_before)

    cus_ids = base62_ids(world, "cus_", 1, index, 14)
    sub_ids = base62_ids(world, "sub_", 2, index, 24)
    drift = (Column(DRIFT_COLUMN, BIGINT),) if profile.schema_drift else ()
    return {
        "stripe__customers": _customer_rows(world, cust, cus_ids, ledger, after_t),
        "stripe__subscriptions": subscription_rows(world, cust, cus_ids, sub_ids, ledger, after_t),
        "stripe__invoices": invoice_rows(world, cust, cus_ids, sub_ids, ledger, after_t),
        **_charge_and_refund_rows(world, cust, cus_ids, ledger, oneoff, after_t, drift),
    }


def _customer_rows(world, cust, cus_ids, ledger, after_t) -> Rows:
    n = len(cus_ids)
    index = np.arange(n, dtype=np.int64)
    first, last, _ = people(world, 0, index)
    email = stripe_emails(world, index)
    names = np.array(
        [f"{f.title()} {la.title()}" for f, la in zip(first, last, strict=True)], dtype=object
    )
    pick = (world.uniform(P_STRIPE_CUSTOMERS, index, salt=2) * 3).astype(int)
    addresses = {
        (cur, i): dumps({"city": c, "country": cc, "line1": None, "postal_code": pc})
        for cur, cities in CITIES.items()
        for i, (c, cc, pc) in enumerate(cities)
    }
    address = np.array(
        [addresses[(cur, i)] for cur, i in zip(cust["currency"], pick, strict=True)], dtype=object
    )
    channel = np.array(['{"signup_channel":"web"}', '{"signup_channel":"sales"}'], dtype=object)
    metadata = channel[(world.uniform(P_STRIPE_CUSTOMERS, index, salt=3) < 0.2).astype(int)]
    credit = world.uniform(P_STRIPE_CUSTOMERS, index, salt=4) < 0.03
    credit_amount = {
        c: -50 * round(PRICE_SCALE[c]) * MINOR_UNITS[c] if c == "jpy" else -50 * MINOR_UNITS[c]
        for c in MINOR_UNITS
    }
    balance = np.where(credit, [credit_amount[c] for c in cust["currency"]], 0)

    delinquency = np.array(ledger.delinquency, dtype=np.float64).reshape(-1, 3)
    deleted = np.isfinite(cust["deleted_at"])
    versions = event_versions(
        [
            (index, cust["created"], {"delinquent": False, "is_deleted": False}),
            (
                delinquency[:, 0].astype(np.int64),
                delinquency[:, 1],
                {"delinquent": delinquency[:, 2] > 0, "is_deleted": False},
            ),
            (deleted, cust["deleted_at"], {"delinquent": False, "is_deleted": True}),
        ]
    )

    def render(latest: pd.DataFrame) -> dict:
        k = latest["_key"].to_numpy()
        return {
            "id": cus_ids[k],
            "created": cust["created"][k],
            "updated": latest["_t"].to_numpy().astype(np.int64),
            "email": email[k],
            "name": names[k],
            "currency": cust["currency"][k],
            "balance": balance[k],
            "delinquent": latest["delinquent"].to_numpy(),
            "address": address[k],
            "metadata": metadata[k],
            "is_deleted": latest["is_deleted"].to_numpy(),
            "livemode": np.ones(len(k), bool),
        }

    return emit(versions, render, world, after_t)


def _charge_and_refund_rows(
    world, cust, cus_ids, ledger, oneoff, after_t, drift
) -> dict[str, Rows]:
    renewal = frame_of_records(
        ledger.charges,
        ["_key", "created", "amount", "status", "failure_code", "invoice", "customer", "currency"],
        ("_key", "created", "amount", "invoice", "customer"),
    )
    renewal["channel"] = -1
    n = len(oneoff["_key"])
    one = pd.DataFrame(
        {
            "_key": oneoff["_key"],
            "created": oneoff["created"],
            "amount": oneoff["amount"],
            "status": np.where(oneoff["failed"], "failed", "succeeded").astype(object),
            "failure_code": oneoff["failure_code"],
            "invoice": np.full(n, -1, dtype=np.int64),
            "customer": oneoff["customer"],
            "currency": oneoff["currency"],
            "channel": oneoff["channel"],
        }
    )
    charges = pd.concat([renewal, one], ignore_index=True)
    keys = charges["_key"].to_numpy(np.int64)
    created = charges["created"].to_numpy(np.int64)
    amount = charges["amount"].to_numpy(np.int64)
    succeeded = charges["status"].to_numpy() == "succeeded"
    is_oneoff = charges["invoice"].to_numpy() < 0

    # Some one-off charges settle later (pending first); a few succeeded charges are refunded.
    pending = succeeded & is_oneoff & (world.uniform(P_STRIPE_PENDING, keys) < PENDING_SHARE)
    settled_t = np.where(pending, created + PENDING_DAYS * SECONDS_PER_DAY, created)
    refunded = succeeded & (world.uniform(P_STRIPE_REFUND, keys) < REFUND_SHARE)
    refund_t = settled_t + (
        (1 + 19 * world.uniform(P_STRIPE_REFUND, keys, 1)) * SECONDS_PER_DAY
    ).astype(np.int64)
    partial = world.uniform(P_STRIPE_REFUND, keys, 2) >= FULL_REFUND_SHARE
    share = 0.3 + 0.4 * world.uniform(P_STRIPE_REFUND, keys, 3)
    refund_amount = np.where(partial, np.round(amount * share), amount).astype(np.int64)
    reason = np.array(REFUND_REASONS, dtype=object)[
        choice_index(world.uniform(P_STRIPE_REFUND, keys, 4), REFUND_REASON_WEIGHTS)
    ]

    status0 = np.where(pending, "pending", charges["status"].to_numpy()).astype(object)
    row = np.arange(len(keys))
    settled, refund = {"status": "succeeded", "refunded_amount": 0}, {"status": "succeeded"}
    versions = event_versions(
        [
            (keys, created, {"row": row, "status": status0, "refunded_amount": 0}),
            (keys[pending], settled_t[pending], {"row": row[pending], **settled}),
            (
                keys[refunded],
                refund_t[refunded],
                {"row": row[refunded], **refund, "refunded_amount": refund_amount[refunded]},
            ),
        ]
    )
    charge_ids = base62_ids(world, "ch_", 4, keys, 24)
    invoice_keys = charges["invoice"].to_numpy(np.int64)
    invoice_ids = np.where(
        invoice_keys >= 0, base62_ids(world, "in_", 3, np.maximum(invoice_keys, 0), 24), None
    )
    customer = charges["customer"].to_numpy(np.int64)
    customer_ids = np.where(customer >= 0, cus_ids[np.maximum(customer, 0)], None)
    currency = charges["currency"].to_numpy().astype(object)
    channels = np.array([dumps({"channel": c}) for c in ONEOFF_CHANNELS] + ["{}"], dtype=object)
    metadata = channels[charges["channel"].to_numpy()]
    fee_day = (created - world.start_t) // SECONDS_PER_DAY >= DRIFT_FEE_START_DAY
    fee = np.where(fee_day & succeeded, np.round(amount * DRIFT_FEE_RATE), np.nan)

    def render(latest: pd.DataFrame) -> dict:
        r = latest["row"].to_numpy()
        status = latest["status"].to_numpy()
        ok = status == "succeeded"
        refunded_amount = latest["refunded_amount"].to_numpy()
        columns = {
            "id": charge_ids[r],
            "amount": amount[r],
            "amount_captured": np.where(ok, amount[r], 0),
            "amount_refunded": refunded_amount,
            "currency": currency[r],
            "status": status,
            "paid": ok,
            "refunded": refunded_amount >= amount[r],
            "captured": ok,
            "disputed": np.zeros(len(r), bool),
            "customer": customer_ids[r],
            "invoice": invoice_ids[r],
            "created": created[r],
            "updated": latest["_t"].to_numpy(),
            "failure_code": charges["failure_code"].to_numpy()[r],
            "metadata": metadata[r],
        }
        if drift:
            columns[DRIFT_COLUMN] = [None if np.isnan(f) else int(f) for f in fee[r]]
        return columns

    refund_rows = pd.DataFrame(
        {"_key": keys[refunded], "_t": refund_t[refunded], "row": np.flatnonzero(refunded)}
    )

    def render_refunds(latest: pd.DataFrame) -> dict:
        r = latest["row"].to_numpy()
        return {
            "id": base62_ids(world, "re_", 5, keys[r], 24),
            "amount": refund_amount[r],
            "currency": currency[r],
            "status": np.full(len(r), "succeeded", dtype=object),
            "reason": reason[r],
            "charge": charge_ids[r],
            "created": refund_t[r],
            "updated": refund_t[r],
        }

    return {
        "stripe__charges": emit(versions, render, world, after_t, drift),
        "stripe__refunds": emit(refund_rows, render_refunds, world, after_t),
    }

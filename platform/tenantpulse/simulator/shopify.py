"""The simulator's Shopify world: a store's products, customers (some of them also Stripe customers,
their emails written differently) and orders with payment, fulfilment and refund updates."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from tenantpulse.simulator.stripe import INITIAL_ONEOFF_CUSTOMER_SHARE, stripe_emails
from tenantpulse.simulator.world import (
    HOUR,
    NEVER,
    P_SHOPIFY_CUSTOMERS,
    P_SHOPIFY_ORDERS,
    P_SHOPIFY_RESTOCK,
    P_SHOPIFY_STORE,
    PRICE_SCALE,
    SECONDS_PER_DAY,
    Rows,
    World,
    choice_index,
    dumps,
    emit,
    event_versions,
    in_day,
    iso,
    people,
    untidy_emails,
)

PRODUCT_NOUNS = (
    ("Tote Bag", "Bags"),
    ("Mug", "Kitchen"),
    ("Hoodie", "Apparel"),
    ("Candle", "Home"),
    ("Notebook", "Stationery"),
    ("Water Bottle", "Kitchen"),
    ("Sneakers", "Footwear"),
    ("Backpack", "Bags"),
    ("Tea Set", "Kitchen"),
    ("Desk Lamp", "Home"),
    ("T-Shirt", "Apparel"),
)
PRODUCT_ADJECTIVES = ("Classic", "Organic", "Everyday", "Premium", "Travel", "Mini", "Eco")
PRODUCT_STATUSES, PRODUCT_STATUS_WEIGHTS = ("active", "archived", "draft"), (0.85, 0.10, 0.05)
BASE_PRICES_USD = (15, 19, 24, 29, 35, 39, 45, 59, 69)
VARIANT_TITLES = ("Small", "Medium", "Large")
RESTOCK_EVERY_DAYS = 7
INITIAL_CUSTOMERS = 400  # store accounts when history starts, at volume 1.0
NEW_CUSTOMER_SHARE = 0.40  # orders placed by a first-time customer
SHARED_CUSTOMER_SHARE = 0.30  # Shopify customers who are also Stripe customers (same person)
ITEMS_PER_ORDER_WEIGHTS = (0.65, 0.27, 0.08)
QUANTITY_WEIGHTS = (0.85, 0.12, 0.03)
DISCOUNT_SHARE, DISCOUNT_RATE = 0.20, 0.10
TAX_RATES = {"jpy": 0.10}
DEFAULT_TAX_RATE = 0.08
FINANCIAL_OUTCOMES = ("paid", "pending", "authorized", "refunded", "partially_refunded", "voided")
FINANCIAL_OUTCOME_WEIGHTS = (0.88, 0.05, 0.02, 0.03, 0.015, 0.005)
SOURCE_NAMES, SOURCE_NAME_WEIGHTS = ("web", "pos", "shopify_draft_order"), (0.8, 0.1, 0.1)
CUSTOMER_STATES, CUSTOMER_STATE_WEIGHTS = ("enabled", "disabled", "invited"), (0.85, 0.10, 0.05)

_ORDER_ID_BASE = 5_100_000_000_000
_CUSTOMER_ID_BASE = 7_200_000_000_000
_PRODUCT_ID_BASE = 8_300_000_000_000
_VARIANT_ID_BASE = 45_000_000_000_000
_REFUND_ID_BASE = 900_000_000_000


def shop_url(tenant_id: str) -> str:
    return f"{tenant_id.replace('_', '-')}.myshopify.com"


def vendor_name(tenant_id: str) -> str:
    """The vendor of the tenant's products."""
    return tenant_id.replace("_", " ").title()


def _price(usd: np.ndarray, currency: str) -> np.ndarray:
    """Shelf prices in major units: 23.99-style, or 3,580-style yen."""
    if currency == "jpy":
        return np.round(usd * 150, -2) - 20
    return np.round(usd * PRICE_SCALE[currency]) - 0.01


class _Store:
    def __init__(self, world: World) -> None:
        rng = world.rng(P_SHOPIFY_STORE)
        currency = world.profile.currency
        n = max(3, round((14 + int(rng.integers(0, 16))) * math.sqrt(world.volume)))
        u = rng.random((n, 5))
        self.currency = currency
        self.noun = (u[:, 0] * len(PRODUCT_NOUNS)).astype(int)
        self.title = np.array(
            [
                f"{PRODUCT_ADJECTIVES[int(a * len(PRODUCT_ADJECTIVES))]} {PRODUCT_NOUNS[k][0]}"
                for a, k in zip(u[:, 1], self.noun, strict=True)
            ],
            dtype=object,
        )
        self.status = np.array(PRODUCT_STATUSES, dtype=object)[
            choice_index(u[:, 2], PRODUCT_STATUS_WEIGHTS)
        ]
        self.status[0] = "active"
        self.n_variants = 1 + (u[:, 3] * 3).astype(int)
        base = np.array(BASE_PRICES_USD, dtype=float)[(u[:, 4] * len(BASE_PRICES_USD)).astype(int)]
        # Variant v of product p costs base * (1 + 0.1 v); its id is derived from (p, v).
        self.variant_price = _price(base[:, None] * (1 + 0.1 * np.arange(3))[None, :], currency)
        self.id = _PRODUCT_ID_BASE + np.arange(n, dtype=np.int64) * 13
        self.created = world.start_t - rng.integers(30 * SECONDS_PER_DAY, 700 * SECONDS_PER_DAY, n)
        self.offset = rng.integers(0, RESTOCK_EVERY_DAYS, n)
        self.active = np.flatnonzero(self.status == "active")


def _variant_id(product: np.ndarray, variant: np.ndarray) -> np.ndarray:
    return _VARIANT_ID_BASE + product * 10 + variant


def _orders(world: World, store: _Store, initial: int) -> dict:
    profile = world.profile
    customers = initial

    def build(day: int, rng: np.random.Generator) -> dict:
        nonlocal customers
        expected = profile.orders_per_day * profile.demand(day, world.weekday(day))
        n = world.steady_count(expected * profile.order_factor(day), rng)
        t = in_day(rng, world.day_start(day), n)
        u = rng.random((n, 12))
        new = (u[:, 0] < NEW_CUSTOMER_SHARE) | (customers == 0)
        customer = np.where(
            new, customers + np.cumsum(new) - 1, (u[:, 1] * customers).astype(np.int64)
        )
        customers += int(new.sum())
        items = choice_index(u[:, 2], ITEMS_PER_ORDER_WEIGHTS) + 1
        product = store.active[(u[:, 3:6] * len(store.active)).astype(int)]
        variant = (u[:, 6:7] * store.n_variants[product]).astype(int)
        quantity = np.where(
            np.arange(3)[None, :] < items[:, None],
            choice_index(u[:, 7], QUANTITY_WEIGHTS)[:, None] + 1,
            0,
        )
        return {
            "created": t,
            "customer": customer,
            "new": new,
            "product": product,
            "variant": variant,
            "quantity": quantity,
            "discount": u[:, 8] < DISCOUNT_SHARE,
            "outcome": choice_index(u[:, 9], FINANCIAL_OUTCOME_WEIGHTS),
            "delay1": u[:, 10],
            "delay2": u[:, 11],
        }

    return world.per_day(P_SHOPIFY_ORDERS, build)


def _customer_people(world: World, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Names and emails of Shopify customers 0..n-1. Shared customers take, in turn, a Stripe
    customer of the day-0 cohort (a fixed permutation, so no two share one), untidily written."""
    index = np.arange(n, dtype=np.int64)
    first, last, email = people(world, 1, index)
    first, last = first.copy(), last.copy()
    stripe_n = round(world.profile.initial_subscriptions * world.volume)
    stripe_n += round(stripe_n * INITIAL_ONEOFF_CUSTOMER_SHARE)
    shared = world.uniform(P_SHOPIFY_CUSTOMERS, index) < SHARED_CUSTOMER_SHARE
    turn = np.cumsum(shared) - 1
    shared &= turn < stripe_n
    if shared.any():
        step = next(p for p in (7919, 7907, 7901, 7883) if math.gcd(p, stripe_n) == 1)
        stripe_index = (turn[shared] * step) % stripe_n
        s_first, s_last, _ = people(world, 0, stripe_index)
        canonical = np.array([e.lower() for e in stripe_emails(world, stripe_index)], dtype=object)
        email = email.copy()
        email[shared] = untidy_emails(
            canonical, world.uniform(P_SHOPIFY_CUSTOMERS, index[shared], salt=1)
        )
        first[shared], last[shared] = s_first, s_last
    return first, last, email


def sync(world: World, after_t: float | None) -> dict[str, Rows]:
    store = _Store(world)
    url = shop_url(world.tenant_id)
    n_initial = round(INITIAL_CUSTOMERS * world.volume)
    orders = _orders(world, store, n_initial)
    n_orders = len(orders["created"])
    n_customers = n_initial + int(orders["new"].sum())
    age = world.rng(P_SHOPIFY_CUSTOMERS).integers(HOUR, 600 * SECONDS_PER_DAY, n_initial)
    initial_created = world.start_t - np.sort(age)[::-1]
    # A first-time customer's account is created just before the first order.
    created = np.concatenate([initial_created, orders["created"][orders["new"]] - 45])

    # Money, in the store's currency (major units).
    currency = store.currency
    digits = 0 if currency == "jpy" else 2
    price = store.variant_price[orders["product"], orders["variant"]]
    subtotal = np.round((price * orders["quantity"]).sum(axis=1), digits)
    discount = np.where(orders["discount"], np.round(subtotal * DISCOUNT_RATE, digits), 0.0)
    tax = np.round((subtotal - discount) * TAX_RATES.get(currency, DEFAULT_TAX_RATE), digits)
    total = np.round(subtotal - discount + tax, digits)
    order_id = _ORDER_ID_BASE + np.arange(n_orders, dtype=np.int64) * 7

    person = _customer_people(world, n_customers)
    return {
        "shopify__orders": _order_rows(
            world, store, orders, order_id, subtotal, discount, tax, total, person, url, after_t
        ),
        "shopify__customers": _customer_rows(
            world, orders, order_id, total, created, n_initial, person, url, after_t
        ),
        "shopify__products": _product_rows(world, store, url, after_t),
    }


def _outcome_times(orders: dict) -> dict[str, np.ndarray]:
    t, d1, d2, outcome = orders["created"], orders["delay1"], orders["delay2"], orders["outcome"]
    pending, authorized, voided = outcome == 1, outcome == 2, outcome == 5
    refund = (outcome == 3) | (outcome == 4)
    paid = np.where(
        pending,
        t + ((1 + d1) * SECONDS_PER_DAY).astype(np.int64),
        np.where(authorized | voided, NEVER, t),
    )
    fulfilled = np.where(
        authorized | voided,
        NEVER,
        np.maximum(
            t + ((0.5 + 2.5 * d2) * SECONDS_PER_DAY).astype(np.int64),
            np.minimum(paid, NEVER - HOUR) + HOUR,
        ),
    )
    return {
        "paid": paid,
        "fulfilled": fulfilled,
        "refunded": np.where(
            refund, t + ((3.2 + 12 * d1) * SECONDS_PER_DAY).astype(np.int64), NEVER
        ),
        "voided": np.where(voided, t + SECONDS_PER_DAY, NEVER),
    }


def _order_rows(
    world, store, orders, order_id, subtotal, discount, tax, total, person, url, after_t
) -> Rows:
    # A version at creation and at each later event; its state is derived from its time.
    times = _outcome_times(orders)
    late_paid = (times["paid"] != NEVER) & (times["paid"] != orders["created"])
    versions = event_versions(
        [(np.ones(len(order_id), bool), orders["created"], {}), (late_paid, times["paid"], {})]
        + [(times[k] != NEVER, times[k], {}) for k in ("fulfilled", "refunded", "voided")]
    )

    email = person[2]
    customer = orders["customer"]
    customer_id = _CUSTOMER_ID_BASE + customer * 3
    email_json = {}
    outcome = np.array(FINANCIAL_OUTCOMES, dtype=object)[orders["outcome"]]
    refund_amount = np.where(
        orders["outcome"] == 3,
        total,
        np.round(total * (0.3 + 0.3 * orders["delay2"]), 0 if store.currency == "jpy" else 2),
    )
    fragments = {}
    for p in range(len(store.id)):
        for v in range(store.n_variants[p]):
            # Sorted keys, split around the quantity: a line item is head + quantity + tail.
            price, product = float(store.variant_price[p, v]), int(store.id[p])
            head = f'{{"price":{price!r},"product_id":{product},"quantity":'
            title, variant = dumps(str(store.title[p])), int(_variant_id(p, v))
            tail = f',"sku":"SKU-{p:03d}-{v}","title":{title},"variant_id":{variant}}}'
            fragments[(p, v)] = (head, tail)
    source = np.array(SOURCE_NAMES, dtype=object)[
        choice_index(world.uniform(P_SHOPIFY_ORDERS, order_id), SOURCE_NAME_WEIGHTS)
    ]

    def line_items(o: int) -> str:
        parts = []
        for slot in range(3):
            q = orders["quantity"][o, slot]
            if q:
                head, tail = fragments[
                    (int(orders["product"][o, slot]), int(orders["variant"][o, slot]))
                ]
                parts.append(f"{head}{q}{tail}")
        return "[" + ",".join(parts) + "]"

    def render(latest: pd.DataFrame) -> dict:
        k = latest["_key"].to_numpy()
        t = latest["_t"].to_numpy()
        paid, refunded, voided = (
            t >= times["paid"][k],
            t >= times["refunded"][k],
            t >= times["voided"][k],
        )
        status = np.where(
            voided,
            "voided",
            np.where(
                refunded,
                outcome[k],
                np.where(
                    paid, "paid", np.where(orders["outcome"][k] == 1, "pending", "authorized")
                ),
            ),
        )
        refund_iso = iso(np.where(refunded, times["refunded"][k], 0))
        refunds = [
            dumps(
                [
                    {
                        "created_at": ri,
                        "id": _REFUND_ID_BASE + int(o),
                        "transactions": [
                            {
                                "amount": float(refund_amount[o]),
                                "kind": "refund",
                                "status": "success",
                            }
                        ],
                    }
                ]
            )
            if r
            else "[]"
            for r, ri, o in zip(refunded, refund_iso, k, strict=True)
        ]
        c = customer[k]
        for cc in np.unique(c):
            if cc not in email_json:
                email_json[cc] = dumps(email[cc])
        return {
            "id": order_id[k],
            "name": np.array([f"#{1001 + o}" for o in k], dtype=object),
            "order_number": 1001 + k,
            "email": email[c],
            "currency": np.full(len(k), store.currency, dtype=object),
            "total_price": total[k],
            "subtotal_price": subtotal[k],
            "total_tax": tax[k],
            "total_discounts": discount[k],
            "financial_status": status.astype(object),
            "fulfillment_status": np.where(t >= times["fulfilled"][k], "fulfilled", None),
            "cancelled_at": np.where(voided, times["voided"][k], np.nan),
            "cancel_reason": np.where(voided, "customer", None),
            "created_at": orders["created"][k],
            "processed_at": orders["created"][k],
            "updated_at": t,
            "customer": [
                f'{{"email":{email_json[cc]},"id":{customer_id[o]}}}'
                for cc, o in zip(c, k, strict=True)
            ],
            "customer_id": customer_id[k],
            "line_items": [line_items(o) for o in k],
            "refunds": refunds,
            "test": np.zeros(len(k), bool),
            "source_name": source[k],
            "shop_url": np.full(len(k), url, dtype=object),
        }

    return emit(versions, render, world, after_t)


def _customer_rows(
    world, orders, order_id, total, created, n_initial, person, url, after_t
) -> Rows:
    n_customers = len(created)
    customer = orders["customer"]
    counted = np.where(orders["outcome"] == 5, 0.0, total)
    order = np.lexsort((orders["created"], customer))
    by_customer = pd.DataFrame({"c": customer[order], "spent": counted[order]})
    count = by_customer.groupby("c").cumcount().to_numpy() + 1
    spent = by_customer.groupby("c")["spent"].cumsum().to_numpy()
    versions = pd.DataFrame(
        {
            "_key": np.concatenate([np.arange(n_initial), customer[order]]),
            "_t": np.concatenate([created[:n_initial], orders["created"][order]]),
            "orders_count": np.concatenate([np.zeros(n_initial, np.int64), count]),
            "total_spent": np.concatenate([np.zeros(n_initial), spent]),
            "last_order": np.concatenate([np.full(n_initial, -1, np.int64), order_id[order]]),
        }
    )
    first, last, email = person
    index = np.arange(n_customers, dtype=np.int64)
    state = np.array(CUSTOMER_STATES, dtype=object)[
        choice_index(world.uniform(P_SHOPIFY_CUSTOMERS, index, salt=2), CUSTOMER_STATE_WEIGHTS)
    ]
    verified = world.uniform(P_SHOPIFY_CUSTOMERS, index, salt=3) < 0.9
    digits = 0 if world.profile.currency == "jpy" else 2

    def render(latest: pd.DataFrame) -> dict:
        k = latest["_key"].to_numpy()
        last_order = latest["last_order"].to_numpy()
        return {
            "id": _CUSTOMER_ID_BASE + k * 3,
            "email": email[k],
            "first_name": np.array([f.title() for f in first[k]], dtype=object),
            "last_name": np.array([la.title() for la in last[k]], dtype=object),
            "state": state[k],
            "currency": np.full(len(k), world.profile.currency, dtype=object),
            "orders_count": latest["orders_count"].to_numpy(),
            "total_spent": np.round(latest["total_spent"].to_numpy(), digits),
            "last_order_id": [None if o < 0 else int(o) for o in last_order],
            "verified_email": verified[k],
            "created_at": created[k],
            "updated_at": latest["_t"].to_numpy(),
            "shop_url": np.full(len(k), url, dtype=object),
        }

    return emit(versions, render, world, after_t)


def _product_rows(world, store, url, after_t) -> Rows:
    n = len(store.id)
    restocks = [
        (p, world.day_start(d) + 6 * HOUR + int(store.offset[p]) * 600)
        for p in range(n)
        for d in range(int(store.offset[p]), world.last_day + 1, RESTOCK_EVERY_DAYS)
    ]
    restock = np.array(restocks, dtype=np.int64).reshape(-1, 2)
    versions = pd.DataFrame(
        {
            "_key": np.concatenate([np.arange(n), restock[:, 0]]),
            "_t": np.concatenate([store.created, restock[:, 1]]),
        }
    )
    types = np.array([PRODUCT_NOUNS[k][1] for k in store.noun], dtype=object)
    vendor = vendor_name(world.tenant_id)

    def render(latest: pd.DataFrame) -> dict:
        k = latest["_key"].to_numpy()
        t = latest["_t"].to_numpy()
        variants = []
        for p, tt in zip(k, t, strict=True):
            draws = world.uniform(P_SHOPIFY_RESTOCK, np.array([p * 1_000_003 + tt]), salt=0)[0]
            variants.append(
                dumps(
                    [
                        {
                            "id": int(_variant_id(p, v)),
                            "inventory_quantity": int(5 + (draws * 97 + 31 * v) % 120),
                            "price": float(store.variant_price[p, v]),
                            "sku": f"SKU-{p:03d}-{v}",
                            "title": VARIANT_TITLES[v],
                        }
                        for v in range(store.n_variants[p])
                    ]
                )
            )
        return {
            "id": store.id[k],
            "title": store.title[k],
            "status": store.status[k],
            "product_type": types[k],
            "vendor": np.full(len(k), vendor, dtype=object),
            "created_at": store.created[k],
            "updated_at": t,
            "variants": variants,
            "shop_url": np.full(len(k), url, dtype=object),
        }

    return emit(versions, render, world, after_t)

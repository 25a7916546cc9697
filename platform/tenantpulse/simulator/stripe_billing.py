"""The Stripe subscription lifecycle: plans and prices, trials, renewals with their invoices and
charge attempts, retries and past_due, plan changes, voluntary and involuntary cancellation."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tenantpulse.simulator.world import (
    HOUR,
    MINOR_UNITS,
    P_STRIPE_SUBSCRIPTION,
    SECONDS_PER_DAY,
    Rows,
    World,
    add_months,
    base62_ids,
    choice_index,
    dumps,
    emit,
)

PLAN_TIERS = ("starter", "growth", "scale")
PLAN_TIER_WEIGHTS = (0.50, 0.35, 0.15)
# Monthly list prices in major units; an annual plan costs 10 months.
PLAN_PRICES = {
    "usd": (29, 79, 199),
    "eur": (25, 69, 179),
    "gbp": (22, 59, 159),
    "jpy": (3000, 9000, 24000),
}
ANNUAL_SHARE = 0.15
ANNUAL_MONTHS_CHARGED = 10
QUANTITY_WEIGHTS = (0.65, 0.20, 0.10, 0.05)  # quantity 1..4
TRIAL_SHARE = 0.30  # of new subscriptions
TRIAL_DAYS = 14
TRIAL_CONVERSION = 0.75
INCOMPLETE_RECOVERY = 0.50  # a failed first payment completed within 23 hours
RETRY_DELAYS_DAYS = (3, 7)  # after a failed renewal attempt
RETRY_EXTRA_FAILURE = 0.40  # a retry fails with the day's failure rate plus this
FINAL_FAILURE_CANCEL_SHARE = 0.75  # else the subscription is left unpaid
EXPANSION_SHARE, CONTRACTION_SHARE, UPGRADE_SHARE = 0.02, 0.01, 0.005  # per renewal
AT_PERIOD_END_SHARE = 0.70  # of voluntary cancellations
FAILURE_CODES = ("card_declined", "insufficient_funds", "expired_card", "incorrect_cvc")
FAILURE_CODE_WEIGHTS = (0.55, 0.30, 0.10, 0.05)
OUTAGE_FAILURE_CODE = "processing_error"
_SUB_KEY_BITS = 14  # a renewal charge key: customer << 14 | invoice number << 2 | attempt


def unit_amount(tier: int, annual: bool, currency: str) -> int:
    months = ANNUAL_MONTHS_CHARGED if annual else 1
    return PLAN_PRICES[currency][tier] * MINOR_UNITS[currency] * months


@dataclass
class Ledger:
    """Rows collected while subscriptions live their lives."""

    subs: list
    invoices: list
    charges: list
    delinquency: list


class Hazard:
    """Cumulative voluntary-cancellation hazard over time, to draw cancellation moments."""

    def __init__(self, world: World) -> None:
        self.start_t = world.start_t
        days = np.arange(-1, world.last_day + 400)
        rates = np.array([world.profile.cancel_hazard_per_day(int(d)) for d in days])
        self.days = days.astype(float)
        self.cumulative = np.concatenate([[0.0], np.cumsum(rates)[:-1]])

    def at(self, t: float) -> float:
        return float(np.interp((t - self.start_t) / SECONDS_PER_DAY, self.days, self.cumulative))

    def moment(self, level: float) -> int:
        day = float(np.interp(level, self.cumulative, self.days))
        return int(self.start_t + day * SECONDS_PER_DAY)


def live(world: World, c: int, cust: dict, hazard: Hazard, out: Ledger) -> None:
    """Simulate customer `c`'s subscription from creation to the sync's clock."""
    profile, now = world.profile, world.now_t
    rng = world.rng(P_STRIPE_SUBSCRIPTION, 0, c)
    created = int(cust["created"][c]) + 90
    tier, qty = int(cust["tier"][c]), int(cust["quantity"][c])
    months = 12 if cust["annual"][c] else 1
    currency = cust["currency"][c]

    def day_of(t: float) -> int:
        return int((t - world.start_t) // SECONDS_PER_DAY)

    def sub(t, status, ps, pe, canceled=None, at_end=False, ended=None):
        out.subs.append((c, t, status, ps, pe, canceled, at_end, ended, tier, qty))

    def invoice(no, t, status, due, paid_amount, ps, pe, reason, created_t):
        out.invoices.append(
            (c << 12 | no, t, status, due, paid_amount, ps, pe, reason, created_t, c)
        )

    def charge(no, attempt, t, amount, failed, code_draw=0.0):
        code = None
        key = (c << _SUB_KEY_BITS) | (no << 2) | attempt
        status = "failed" if failed else "succeeded"
        if failed and profile.is_outage(day_of(t)):
            code = OUTAGE_FAILURE_CODE
        elif failed:
            draw = np.array([(code_draw + 0.37 * attempt) % 1.0])
            code = FAILURE_CODES[choice_index(draw, FAILURE_CODE_WEIGHTS)[0]]
        out.charges.append((key, t, amount, status, code, c << 12 | no, c, currency))

    no = 0
    if cust["initial"][c]:
        k = 0
        while add_months(created, (k + 1) * months) <= world.start_t:
            k += 1
        anchor, ps, pe = (
            created,
            add_months(created, k * months),
            add_months(created, (k + 1) * months),
        )
        sub(ps, "active", ps, pe)
        first_new = False
    elif cust["trial"][c]:
        trial_end = created + TRIAL_DAYS * SECONDS_PER_DAY
        out.subs.append((c, created, "trialing", created, trial_end, None, False, None, tier, qty))
        invoice(no, created, "paid", 0, 0, created, trial_end, "subscription_create", created)
        if rng.random() >= TRIAL_CONVERSION:
            sub(trial_end, "canceled", created, trial_end, canceled=trial_end, ended=trial_end)
            return
        anchor, k, first_new = trial_end, 0, False
        ps, pe = trial_end, add_months(trial_end, months)
    else:
        anchor, k, first_new = created, 0, True
        ps, pe = created, add_months(created, months)

    while ps <= now:
        u = rng.random(10)
        if not first_new and not (cust["initial"][c] and no == 0):
            if u[0] < EXPANSION_SHARE:
                qty += 1
            elif u[0] < EXPANSION_SHARE + CONTRACTION_SHARE and qty > 1:
                qty -= 1
            elif u[0] < EXPANSION_SHARE + CONTRACTION_SHARE + UPGRADE_SHARE and tier < 2:
                tier += 1
        if cust["initial"][c] and no == 0:
            settled = ps  # the period running when history starts was paid before it
            no = 1
        else:
            no += 1
            amount = unit_amount(tier, months == 12, currency) * qty
            reason = "subscription_create" if first_new else "subscription_cycle"
            attempt_t = ps + 60 + int(u[1] * 3000)
            invoice(no, ps, "open", amount, 0, ps, pe, reason, ps)
            failed = u[2] < profile.charge_failure_rate(day_of(attempt_t))
            if first_new:
                sub(ps, "incomplete" if failed else "active", ps, pe)
            else:
                sub(ps, "active", ps, pe)
            charge(no, 0, attempt_t, amount, failed, u[9])
            settled = attempt_t
            if not failed:
                invoice(no, attempt_t, "paid", amount, amount, ps, pe, reason, ps)
            elif first_new:
                if u[4] >= INCOMPLETE_RECOVERY:
                    expired = ps + 23 * HOUR
                    invoice(no, expired, "void", amount, 0, ps, pe, reason, ps)
                    sub(expired, "incomplete_expired", ps, pe, ended=expired)
                    return
                settled = attempt_t + int((1 + 19 * u[5]) * HOUR)
                charge(no, 1, settled, amount, False)
                invoice(no, settled, "paid", amount, amount, ps, pe, reason, ps)
                sub(settled, "active", ps, pe)
            else:
                sub(attempt_t, "past_due", ps, pe)
                out.delinquency.append((c, attempt_t, True))
                recovered = False
                for attempt, delay in enumerate(RETRY_DELAYS_DAYS, start=1):
                    settled = attempt_t + delay * SECONDS_PER_DAY
                    rate = min(
                        0.95, RETRY_EXTRA_FAILURE + profile.charge_failure_rate(day_of(settled))
                    )
                    retry_failed = u[3 + attempt] < rate
                    charge(no, attempt, settled, amount, retry_failed, u[9])
                    if not retry_failed:
                        invoice(no, settled, "paid", amount, amount, ps, pe, reason, ps)
                        sub(settled, "active", ps, pe)
                        out.delinquency.append((c, settled, False))
                        recovered = True
                        break
                if not recovered:
                    invoice(no, settled, "uncollectible", amount, 0, ps, pe, reason, ps)
                    if u[6] < FINAL_FAILURE_CANCEL_SHARE:
                        sub(settled, "canceled", ps, pe, canceled=settled, ended=settled)
                    else:
                        sub(settled, "unpaid", ps, pe)
                    return
        first_new = False
        # Voluntary cancellation at a moment drawn from the profile's hazard over the period.
        begin = max(settled, world.start_t)
        level = hazard.at(begin)
        if u[7] < 1.0 - math.exp(-(hazard.at(pe) - level)):
            moment = max(begin + 60, hazard.moment(level - math.log1p(-u[7])))
            moment = min(moment, pe - 60)
            if u[8] < AT_PERIOD_END_SHARE:
                sub(moment, "active", ps, pe, canceled=moment, at_end=True)
                sub(pe, "canceled", ps, pe, canceled=moment, at_end=True, ended=pe)
            else:
                sub(moment, "canceled", ps, pe, canceled=moment, ended=moment)
            return
        k += 1
        ps, pe = pe, add_months(anchor, (k + 1) * months)


def frame_of_records(records: list, columns: list[str], integers: tuple[str, ...]) -> pd.DataFrame:
    """A frame of collected tuples; text columns stay object (None for missing), even when empty."""
    frame = pd.DataFrame.from_records(records, columns=columns)
    for name in columns:
        frame[name] = frame[name].astype(np.int64 if name in integers else object)
    return frame


def _plan_json(tier: int, annual: bool, currency: str, quantity: int | None) -> str:
    interval = "year" if annual else "month"
    price_id = f"price_{PLAN_TIERS[tier]}_{interval}ly_{currency}"
    amount = unit_amount(tier, annual, currency)
    product = f"prod_{PLAN_TIERS[tier]}"
    if quantity is None:
        return dumps(
            {
                "active": True,
                "amount": amount,
                "currency": currency,
                "id": price_id,
                "interval": interval,
                "interval_count": 1,
                "nickname": f"{PLAN_TIERS[tier].title()} {interval}ly",
                "product": product,
            }
        )
    price = {
        "currency": currency,
        "id": price_id,
        "product": product,
        "recurring": {"interval": interval, "interval_count": 1},
        "unit_amount": amount,
    }
    return dumps({"data": [{"price": price, "quantity": quantity}], "object": "list"})


def subscription_rows(world, cust, cus_ids, sub_ids, ledger, after_t) -> Rows:
    columns = [
        "_key",
        "_t",
        "status",
        "ps",
        "pe",
        "canceled_at",
        "at_end",
        "ended_at",
        "tier",
        "quantity",
    ]
    versions = frame_of_records(
        ledger.subs, columns, ("_key", "_t", "ps", "pe", "tier", "quantity")
    )
    cache: dict = {}

    def json_of(tier, annual, currency, quantity):
        key = (tier, annual, currency, quantity)
        if key not in cache:
            cache[key] = _plan_json(tier, annual, currency, quantity)
        return cache[key]

    def render(latest: pd.DataFrame) -> dict:
        k = latest["_key"].to_numpy()
        created = cust["created"][k] + 90
        trial = cust["trial"][k]
        tiers, qty = latest["tier"].to_numpy(), latest["quantity"].to_numpy()
        annual, currency = cust["annual"][k], cust["currency"][k]
        rows = list(zip(tiers, annual, currency, qty, strict=True))
        return {
            "id": sub_ids[k],
            "customer": cus_ids[k],
            "status": latest["status"].to_numpy(),
            "currency": currency,
            "created": created,
            "updated": latest["_t"].to_numpy(),
            "start_date": created,
            "current_period_start": latest["ps"].to_numpy(),
            "current_period_end": latest["pe"].to_numpy(dtype=float),
            "canceled_at": latest["canceled_at"].to_numpy(dtype=float, na_value=np.nan),
            "cancel_at_period_end": latest["at_end"].to_numpy(dtype=bool),
            "ended_at": latest["ended_at"].to_numpy(dtype=float, na_value=np.nan),
            "trial_start": np.where(trial, created, np.nan),
            "trial_end": np.where(trial, created + TRIAL_DAYS * SECONDS_PER_DAY, np.nan),
            "items": [json_of(int(t), bool(a), c, int(q)) for t, a, c, q in rows],
            "plan": [json_of(int(t), bool(a), c, None) for t, a, c, _ in rows],
            "quantity": qty,
            "is_deleted": np.zeros(len(k), bool),
        }

    return emit(versions, render, world, after_t)


def invoice_rows(world, cust, cus_ids, sub_ids, ledger, after_t) -> Rows:
    columns = [
        "_key",
        "_t",
        "status",
        "due",
        "paid_amount",
        "ps",
        "pe",
        "reason",
        "created",
        "cust",
    ]
    versions = frame_of_records(
        ledger.invoices,
        columns,
        ("_key", "_t", "due", "paid_amount", "ps", "pe", "created", "cust"),
    )
    keys = versions["_key"].to_numpy(np.int64)
    unique_keys = np.unique(keys)
    ids = dict(zip(unique_keys.tolist(), base62_ids(world, "in_", 3, unique_keys, 24), strict=True))

    def render(latest: pd.DataFrame) -> dict:
        c = latest["cust"].to_numpy()
        due, paid = latest["due"].to_numpy(), latest["paid_amount"].to_numpy()
        return {
            "id": np.array([ids[k] for k in latest["_key"].tolist()], dtype=object),
            "customer": cus_ids[c],
            "subscription": sub_ids[c],
            "status": latest["status"].to_numpy(),
            "currency": cust["currency"][c],
            "amount_due": due,
            "amount_paid": paid,
            "amount_remaining": due - paid,
            "subtotal": due,
            "total": due,
            "paid": latest["status"].to_numpy() == "paid",
            "created": latest["created"].to_numpy(),
            "updated": latest["_t"].to_numpy(),
            "due_date": [None] * len(c),
            "period_start": latest["ps"].to_numpy(),
            "period_end": latest["pe"].to_numpy(),
            "billing_reason": latest["reason"].to_numpy(),
            "is_deleted": np.zeros(len(c), bool),
        }

    return emit(versions, render, world, after_t)

"""Business profiles for the source simulator: the curves each tenant's world follows and the
signals planted in them, with the exact numbers as constants (docs/simulator.md explains them)."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import date, timedelta

# Signals are tuned for this much history (the default TENANTPULSE_SIM_HISTORY_DAYS); each curve
# keeps a sensible value past it, because the writer advances the clock one day per run.
REFERENCE_HISTORY_DAYS = 120

FLAT_WEEK = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)  # Monday .. Sunday
# seasonal: Tuesday peak, weekend trough; sums to 7 so weekly volume is unchanged.
SEASONAL_WEEKLY_PATTERN = (1.15, 1.65, 1.30, 1.10, 0.95, 0.45, 0.40)
SEASONAL_PEAK_WEEKDAY = 1  # Tuesday (date.weekday())
# Engineering work happens on weekdays: PR, commit and issue volume per weekday.
ENGINEERING_WEEK = (1.2, 1.2, 1.2, 1.2, 1.1, 0.3, 0.25)

# steady_growth
STEADY_MONTHLY_GROWTH = 0.065  # demand (one-off charges, orders, sessions, sign-ups) per 30 days
STEADY_SECOND_CURRENCY = "eur"
STEADY_SECOND_CURRENCY_SHARE = 0.20  # of Stripe customers

# churning: (first day, last day, value at the first day, value from the last day on)
CHURN_SIGNUP_RAMP = (45, 90, 1.0, 0.10)  # new subscriptions dry up to 10%
CHURN_DEMAND_RAMP = (45, 110, 1.0, 0.45)  # one-off charges, orders and sessions fall to 45%
CHURN_CANCEL_RAMP = (70, 80, 0.02, 0.16)  # voluntary cancellations per subscription-month
CHURN_FAILURE_RAMP = (60, 100, 0.04, 0.22)  # probability a charge attempt fails

# anomalous: (day offset from history_start, kind, factor). A spike multiplies that day's one-off
# charges, orders and sessions; the drop is a payment outage: only `factor` of the day's charge
# attempts succeed (the rest fail with processing_error) and orders fall to `factor`.
ANOMALIES = ((40, "spike", 5.0), (75, "drop", 0.2), (105, "spike", 4.0))
DRIFT_COLUMN = "application_fee_amount"  # extra stripe__charges column, not in the contract
DRIFT_FEE_START_DAY = 60  # charges created from this day on carry a 5% application fee
DRIFT_FEE_RATE = 0.05

# slowing_team: median PR time to merge = start * ratio ** (day / 120), capped.
SLOWING_MERGE_MEDIAN_START_HOURS = 12.0
SLOWING_MERGE_MEDIAN_RATIO_PER_120_DAYS = 8.0  # 12 h at day 0 -> 96 h (4 days) at day 120
SLOWING_MERGE_MEDIAN_CAP_HOURS = 240.0
SLOWING_PR_RATE_END_FACTOR = 0.60  # PRs per day fall linearly to 60% by day 120
ORDINARY_MERGE_MEDIAN_HOURS = 18.0


@dataclass(frozen=True)
class Ramp:
    """A value that moves linearly from `start_value` at `start_day` to `end_value` at `end_day`."""

    start_day: int
    end_day: int
    start_value: float
    end_value: float

    def at(self, day: float) -> float:
        if day <= self.start_day:
            return self.start_value
        if day >= self.end_day:
            return self.end_value
        share = (day - self.start_day) / (self.end_day - self.start_day)
        return self.start_value + share * (self.end_value - self.start_value)


def _flat(value: float) -> Ramp:
    return Ramp(0, 1, value, value)


@dataclass(frozen=True)
class Profile:
    name: str
    currency: str  # primary currency, lowercase ISO
    description: str  # one line: the planted signal
    second_currency: str | None = None
    second_currency_share: float = 0.0  # share of Stripe customers billed in second_currency
    monthly_growth: float = 0.03  # demand growth per 30 days
    weekly_pattern: tuple[float, ...] = FLAT_WEEK  # Monday .. Sunday multipliers of demand
    demand_ramp: Ramp = field(default_factory=lambda: _flat(1.0))
    signup_ramp: Ramp = field(default_factory=lambda: _flat(1.0))
    cancel_monthly: Ramp = field(default_factory=lambda: _flat(0.02))
    failure_rate: Ramp = field(default_factory=lambda: _flat(0.04))
    anomalies: tuple[tuple[int, str, float], ...] = ()
    schema_drift: bool = False
    merge_median_start_hours: float = ORDINARY_MERGE_MEDIAN_HOURS
    merge_median_ratio_per_120_days: float = 1.0
    pr_rate_end_factor: float = 1.0
    # Volume at volume=1.0.
    initial_subscriptions: int = 220  # subscribed customers when history starts
    signups_per_month: float = 0.06  # new subscriptions per month, as a share of the initial ones
    oneoff_charges_per_day: float = 18.0
    orders_per_day: float = 30.0
    sessions_per_day: float = 900.0
    prs_per_day: float = 5.0

    def demand(self, day: int, weekday: int) -> float:
        """Multiplier of one-off charges, Shopify orders and GA sessions on `day` (before
        anomalies: see spike_factor and order_factor)."""
        value = (1.0 + self.monthly_growth) ** (day / 30.0)
        return value * self.weekly_pattern[weekday] * self.demand_ramp.at(day)

    def signups(self, day: int, weekday: int) -> float:
        """Expected new subscriptions on `day` at volume 1.0."""
        base = self.initial_subscriptions * self.signups_per_month / 30.0
        growth = (1.0 + self.monthly_growth) ** (day / 30.0)
        return base * growth * self.weekly_pattern[weekday] * self.signup_ramp.at(day)

    def _anomaly(self, day: int) -> tuple[str, float] | None:
        for offset, kind, factor in self.anomalies:
            if day == offset:
                return kind, factor
        return None

    def spike_factor(self, day: int) -> float:
        """Multiplier of one-off charges and sessions: a spike's factor, else 1."""
        anomaly = self._anomaly(day)
        return anomaly[1] if anomaly and anomaly[0] == "spike" else 1.0

    def order_factor(self, day: int) -> float:
        """Multiplier of Shopify orders: a spike's or a drop's factor, else 1."""
        anomaly = self._anomaly(day)
        return anomaly[1] if anomaly else 1.0

    def is_outage(self, day: int) -> bool:
        anomaly = self._anomaly(day)
        return bool(anomaly and anomaly[0] == "drop")

    def charge_failure_rate(self, day: int) -> float:
        """Probability that a charge attempt on `day` fails (an outage lets `factor` through)."""
        anomaly = self._anomaly(day)
        if anomaly and anomaly[0] == "drop":
            return 1.0 - anomaly[1]
        return self.failure_rate.at(day)

    def merge_median_hours(self, day: float) -> float:
        hours = self.merge_median_start_hours * self.merge_median_ratio_per_120_days ** (day / 120)
        return min(hours, SLOWING_MERGE_MEDIAN_CAP_HOURS)

    def pr_rate(self, day: int) -> float:
        share = min(max(day, 0), REFERENCE_HISTORY_DAYS) / REFERENCE_HISTORY_DAYS
        return self.prs_per_day * (1.0 + share * (self.pr_rate_end_factor - 1.0))

    def cancel_hazard_per_day(self, day: int) -> float:
        """Daily hazard equivalent to the monthly cancellation probability on `day`."""
        return -math.log(1.0 - self.cancel_monthly.at(day)) / 30.0


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="steady_growth",
            currency="usd",
            description="revenue grows 6.5% per month, churn 1.5% a month, 3% failed charges; "
            "20% of Stripe customers pay in eur",
            second_currency=STEADY_SECOND_CURRENCY,
            second_currency_share=STEADY_SECOND_CURRENCY_SHARE,
            monthly_growth=STEADY_MONTHLY_GROWTH,
            cancel_monthly=_flat(0.015),
            failure_rate=_flat(0.03),
            signups_per_month=0.065,
        ),
        Profile(
            name="churning",
            currency="eur",
            description="sign-ups dry up from day 45, cancellations jump from 2% to 16% a month "
            "at days 70-80, failed charges rise from 4% to 22% over days 60-100",
            monthly_growth=0.0,
            demand_ramp=Ramp(*CHURN_DEMAND_RAMP),
            signup_ramp=Ramp(*CHURN_SIGNUP_RAMP),
            cancel_monthly=Ramp(*CHURN_CANCEL_RAMP),
            failure_rate=Ramp(*CHURN_FAILURE_RAMP),
            signups_per_month=0.03,
        ),
        Profile(
            name="seasonal",
            currency="jpy",
            description="weekly seasonality: demand peaks on Tuesday (x1.65) and bottoms at the "
            "weekend (x0.45 Saturday, x0.40 Sunday); zero-decimal currency",
            monthly_growth=0.02,
            weekly_pattern=SEASONAL_WEEKLY_PATTERN,
        ),
        Profile(
            name="anomalous",
            currency="gbp",
            description="steady, with one-day revenue anomalies: x5 on day 40, x0.2 payment "
            "outage on day 75, x4 on day 105; stripe__charges gains application_fee_amount",
            anomalies=ANOMALIES,
            schema_drift=True,
            initial_subscriptions=100,
            oneoff_charges_per_day=40.0,
        ),
        Profile(
            name="slowing_team",
            currency="usd",
            description="median PR time to merge rises from 12 h to 96 h over 120 days "
            "(12 h x 8^(day/120)); PRs per day fall 40%",
            merge_median_start_hours=SLOWING_MERGE_MEDIAN_START_HOURS,
            merge_median_ratio_per_120_days=SLOWING_MERGE_MEDIAN_RATIO_PER_120_DAYS,
            pr_rate_end_factor=SLOWING_PR_RATE_END_FACTOR,
        ),
    )
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise ValueError(f"unknown simulator profile {name!r}; known profiles: {known}") from None


def default_profile_for(tenant_id: str) -> str:
    """A stable profile for a tenant not given one (a hash of the id, same in every process)."""
    digest = hashlib.sha256(tenant_id.encode("utf-8")).digest()
    names = sorted(PROFILES)
    return names[int.from_bytes(digest[:8], "big") % len(names)]


def planted_anomaly_dates(history_start: date, end: date) -> list[tuple[date, str]]:
    """The anomalous profile's anomaly dates within [history_start, end], as (date, kind)."""
    dates = [(history_start + timedelta(days=offset), kind) for offset, kind, _ in ANOMALIES]
    return [(day, kind) for day, kind in dates if history_start <= day <= end]

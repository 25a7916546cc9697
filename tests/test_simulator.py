"""The source simulator: Airbyte's shape, determinism, consistent incremental syncs, and the
signals each profile plants (docs/simulator.md)."""

import json
import re
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tenantpulse.simulator.demo_tenants import DEMO_TENANTS
from tenantpulse.simulator.generator import SyncWindow, generate_sync
from tenantpulse.simulator.profiles import (
    ANOMALIES,
    DRIFT_COLUMN,
    PROFILES,
    SEASONAL_PEAK_WEEKDAY,
    STEADY_SECOND_CURRENCY_SHARE,
    default_profile_for,
    planted_anomaly_dates,
)
from tenantpulse.sources.contracts import (
    AIRBYTE_COLUMN_NAMES,
    JSON,
    STREAMS_BY_NAME,
    streams_for,
)

HISTORY_START = date(2026, 7, 4)
DAYS = 120
# The writer's first sync: 00:00 UTC of the end date, with `DAYS` days of history before it.
END = datetime.combine(HISTORY_START + timedelta(days=DAYS), datetime.min.time(), UTC)
ALL = ("stripe", "github", "shopify", "google_analytics")
SEED = 7
DTYPES = {
    "bigint": "Int64",
    "decimal": "float64",
    "varchar": "object",
    "timestamptz": "datetime64[ns, UTC]",
    "date": "object",
    "boolean": "boolean",
    "json": "object",
}


@cache
def sync(tenant, profile, sources=ALL, at=END, previous=None, number=1, seed=SEED, volume=1.0):
    window = SyncWindow(number, at, previous)
    return generate_sync(
        tenant, profile, sources, window, seed=seed, history_start=HISTORY_START, volume=volume
    )


def day_index(seconds: pd.Series) -> pd.Series:
    start = datetime.combine(HISTORY_START, datetime.min.time(), UTC).timestamp()
    return ((seconds.astype("float64") - start) // 86_400).astype(int)


def charges_by_day(frames) -> pd.DataFrame:
    charges = frames["stripe__charges"].copy()
    charges["day"] = day_index(charges["created"])
    return charges


def succeeded_revenue(charges: pd.DataFrame, oneoff_only: bool = False) -> pd.Series:
    ok = charges[charges["status"] == "succeeded"]
    if oneoff_only:
        ok = ok[ok["invoice"].isna()]
    return ok.groupby("day")["amount"].sum().reindex(range(DAYS), fill_value=0).astype(float)


def latest_per_key(frames_in_order, name) -> pd.DataFrame:
    stacked = pd.concat([frames[name] for frames in frames_in_order], ignore_index=True)
    key = list(STREAMS_BY_NAME[name].primary_key)
    stacked = stacked.sort_values("_airbyte_extracted_at", kind="stable")
    latest = stacked.drop_duplicates(key, keep="last").drop(columns=list(AIRBYTE_COLUMN_NAMES))
    return latest.sort_values(key).reset_index(drop=True)


# --- shape ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tenant, profile, sources",
    [("acme_growth", "steady_growth", ALL), ("umbrella_spikes", "anomalous", ALL)],
)
def test_every_frame_has_the_contract_columns_in_order_with_typed_values(tenant, profile, sources):
    frames = sync(tenant, profile, sources)
    assert list(frames) == [c.name for s in sources for c in streams_for(s)]
    for name, frame in frames.items():
        contract = STREAMS_BY_NAME[name]
        expected = [c.name for c in contract.all_columns]
        if profile == "anomalous" and name == "stripe__charges":
            expected.append(DRIFT_COLUMN)
        assert list(frame.columns) == expected, name
        for column in contract.all_columns:
            assert str(frame[column.name].dtype) == DTYPES[column.type], (name, column)
        assert len(frame) > 0, name
        assert frame["_airbyte_raw_id"].map(lambda v: str(uuid.UUID(v)) == v).all()
        assert frame["_airbyte_raw_id"].is_unique
        assert (frame["_airbyte_extracted_at"] == pd.Timestamp(END)).all()
        assert (frame["_airbyte_meta"] == '{"changes":[],"sync_id":1}').all()
        assert (frame["_airbyte_generation_id"] == 0).all()
        assert not frame.duplicated(list(contract.primary_key)).any(), name
    if profile == "anomalous":
        assert str(frames["stripe__charges"][DRIFT_COLUMN].dtype) == "Int64"


def test_json_columns_hold_compact_json_text_with_sorted_keys():
    for name, frame in sync("acme_growth", "steady_growth").items():
        for column in STREAMS_BY_NAME[name].all_columns:
            if column.type != JSON:
                continue
            for text in frame[column.name].dropna():
                assert json.dumps(json.loads(text), sort_keys=True, separators=(",", ":")) == text


def test_streams_with_no_rows_yet_come_back_as_typed_empty_frames():
    just_started = datetime.combine(HISTORY_START, datetime.min.time(), UTC) + timedelta(hours=1)
    frames = sync("acme_growth", "steady_growth", ALL, at=just_started)
    assert list(frames) == [c.name for s in ALL for c in streams_for(s)]
    for name in ("google_analytics__website_overview", "github__pull_requests", "stripe__refunds"):
        frame = frames[name]
        assert frame.empty
        assert list(frame.columns) == [c.name for c in STREAMS_BY_NAME[name].all_columns]
        for column in STREAMS_BY_NAME[name].all_columns:
            assert str(frame[column.name].dtype) == DTYPES[column.type]
    # The business existed before history starts: its customers and subscriptions are there.
    assert len(frames["stripe__subscriptions"]) == PROFILES["steady_growth"].initial_subscriptions


# --- determinism ---------------------------------------------------------------------------


def test_the_same_arguments_give_identical_frames_and_another_seed_differs():
    window = SyncWindow(1, END, None)
    again = generate_sync(
        "acme_growth", "steady_growth", ALL, window, seed=SEED, history_start=HISTORY_START
    )
    for name, frame in sync("acme_growth", "steady_growth").items():
        pd.testing.assert_frame_equal(frame, again[name])
    other = sync("acme_growth", "steady_growth", seed=SEED + 1)
    assert not other["stripe__charges"]["id"].equals(again["stripe__charges"]["id"])
    assert not other["shopify__orders"]["total_price"].equals(
        again["shopify__orders"]["total_price"]
    )


def test_frames_do_not_depend_on_the_process_hash_seed():
    script = (
        "import datetime as d, pandas as pd\n"
        "from tenantpulse.simulator import SyncWindow, generate_sync, default_profile_for\n"
        f"f = generate_sync('acme_growth', 'steady_growth', {list(ALL)!r}, SyncWindow(1, "
        f"d.datetime({END.year}, {END.month}, {END.day}, tzinfo=d.UTC), None), seed={SEED}, "
        f"history_start=d.date({HISTORY_START.year}, {HISTORY_START.month}, {HISTORY_START.day}))\n"
        "print(sum(int(pd.util.hash_pandas_object(v.astype(str)).sum() % 10**12) for v in "
        "f.values()), default_profile_for('acme_growth'))\n"
    )
    platform_dir = str(Path(__file__).resolve().parents[1] / "platform")
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={"PYTHONHASHSEED": hash_seed, "PYTHONPATH": platform_dir},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for hash_seed in ("1", "2")
    }
    assert len(outputs) == 1


# --- incremental syncs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "tenant, profile, first, second",
    [
        ("acme_growth", "steady_growth", END, END + timedelta(days=1)),
        (
            "umbrella_spikes",
            "anomalous",
            END - timedelta(days=9, hours=13),
            END + timedelta(hours=7),
        ),
        ("hooli_eng", "slowing_team", END, END + timedelta(hours=5)),
    ],
)
def test_two_syncs_hold_the_same_latest_state_as_one_sync_at_the_later_clock(
    tenant, profile, first, second
):
    one = sync(tenant, profile, ALL, at=first)
    two = sync(tenant, profile, ALL, at=second, previous=first, number=2)
    single = sync(tenant, profile, ALL, at=second)
    for name in single:
        pd.testing.assert_frame_equal(
            latest_per_key([one, two], name), latest_per_key([single], name), obj=name
        )
    assert all((f["_airbyte_meta"] == '{"changes":[],"sync_id":2}').all() for f in two.values())


def test_updated_records_come_again_in_the_next_sync_with_a_later_cursor():
    one = sync("acme_growth", "steady_growth")
    two = sync("acme_growth", "steady_growth", at=END + timedelta(days=1), previous=END, number=2)
    for name, cursor in [
        ("stripe__subscriptions", "updated"),
        ("shopify__orders", "updated_at"),
        ("shopify__customers", "updated_at"),
        ("github__pull_requests", "updated_at"),
    ]:
        both = one[name].merge(two[name], on="id", suffixes=("_1", "_2"))
        assert len(both) > 0, name
        assert (both[f"{cursor}_2"] > both[f"{cursor}_1"]).all(), name
    # A returning Shopify customer's counters move with the new order.
    customers = one["shopify__customers"].merge(two["shopify__customers"], on="id")
    assert (customers["orders_count_y"] > customers["orders_count_x"]).any()
    # Nothing changed since the first sync is not sent again.
    assert len(two["stripe__subscriptions"]) < len(one["stripe__subscriptions"]) / 5


def test_google_analytics_rereads_the_two_days_before_the_last_closed_day_with_revisions():
    one = sync("acme_growth", "steady_growth")
    two = sync("acme_growth", "steady_growth", at=END + timedelta(days=1), previous=END, number=2)
    first = one["google_analytics__website_overview"]
    second = two["google_analytics__website_overview"]
    days = [(END.date() - timedelta(days=d)).strftime("%Y%m%d") for d in (2, 1, 0)]
    assert first["date"].iloc[-1] == days[1]  # the day of the clock is not complete yet
    assert len(first) == DAYS
    assert second["date"].tolist() == days
    revised = first.set_index("date").loc[days[:2], "sessions"]
    assert (second.set_index("date").loc[days[:2], "sessions"] > revised).all()
    for name, frame in one.items():
        if name.startswith("google_analytics"):
            assert frame["date"].str.fullmatch(r"\d{8}").all()
            assert frame["property_id"].map(type).eq(str).all()
    overview = pd.concat([first, second])
    assert overview["bounceRate"].between(0, 1).all()
    assert (overview["sessions"] >= overview["totalUsers"]).all()


# --- money and currencies ------------------------------------------------------------------


def test_stripe_money_is_integer_minor_units_and_timestamps_epoch_seconds():
    charges = sync("acme_growth", "steady_growth")["stripe__charges"]
    assert str(charges["amount"].dtype) == "Int64" and (charges["amount"] > 0).all()
    assert (charges["amount"] % 100 != 0).mean() > 0.5  # cents, not whole dollars
    assert charges["created"].between(1.7e9, 2.1e9).all()
    refunded = charges[charges["amount_refunded"] > 0]
    assert len(refunded) > 0 and (refunded["amount_refunded"] <= refunded["amount"]).all()
    assert set(charges["status"]) == {"succeeded", "failed", "pending"} or set(
        charges["status"]
    ) == {"succeeded", "failed"}
    assert charges.loc[charges["status"] == "failed", "failure_code"].notna().all()


def test_a_jpy_tenant_has_no_minor_unit_scaling():
    frames = sync("initech_weekly", "seasonal")
    charges, subscriptions = frames["stripe__charges"], frames["stripe__subscriptions"]
    assert set(charges["currency"]) == {"jpy"}
    prices = {
        item["price"]["unit_amount"]
        for items in subscriptions["items"]
        for item in json.loads(items)["data"]
        if item["price"]["recurring"]["interval"] == "month"
    }
    assert prices <= {3000, 9000, 24000}  # yen, as listed: not x100
    oneoff = charges[charges["invoice"].isna()]["amount"]
    assert 3_000 < oneoff.median() < 15_000 and (oneoff % 10 == 0).all()
    assert (frames["shopify__orders"]["total_price"] % 1 == 0).all()


def test_shopify_money_is_major_units():
    orders = sync("acme_growth", "steady_growth")["shopify__orders"]
    assert orders["total_price"].dtype == "float64"
    assert 20 < orders["total_price"].median() < 200
    items = orders["line_items"].map(json.loads)
    subtotal = items.map(lambda lines: sum(line["price"] * line["quantity"] for line in lines))
    assert np.allclose(subtotal, orders["subtotal_price"], atol=0.011)
    assert set(orders["shop_url"]) == {"acme-growth.myshopify.com"}


def test_steady_growth_bills_a_fifth_of_stripe_customers_in_eur():
    customers = sync("acme_growth", "steady_growth")["stripe__customers"]
    share = (customers["currency"] == "eur").mean()
    assert abs(share - STEADY_SECOND_CURRENCY_SHARE) < 0.05
    assert set(customers["currency"]) == {"usd", "eur"}


def test_emails_match_across_stripe_and_shopify_only_after_normalising():
    frames = sync("acme_growth", "steady_growth")
    stripe = frames["stripe__customers"]["email"].dropna()
    shopify = frames["shopify__customers"]["email"]
    normalised = set(stripe.str.strip().str.lower()) & set(shopify.str.strip().str.lower())
    assert len(normalised) >= 0.2 * len(stripe)
    assert not set(stripe) & set(shopify)  # as written, none match


# --- planted signals -----------------------------------------------------------------------


def monthly_recurring_revenue(subscriptions: pd.DataFrame) -> float:
    live = subscriptions[subscriptions["status"].isin(["active", "past_due"])]
    total = 0.0
    for items in live["items"]:
        for item in json.loads(items)["data"]:
            months = 12 if item["price"]["recurring"]["interval"] == "year" else 1
            total += item["price"]["unit_amount"] * item["quantity"] / months
    return total


def test_steady_growth_grows_revenue_every_month_with_few_failures():
    mrr = [
        monthly_recurring_revenue(
            sync("piper_lite", "steady_growth", ("stripe",), at=END - timedelta(days=30 * m))[
                "stripe__subscriptions"
            ]
        )
        for m in (3, 2, 1, 0)
    ]
    growth = [after / before - 1 for before, after in zip(mrr, mrr[1:], strict=False)]
    # Planted at 6.5% a month; a few hundred subscriptions make single months noisy (sd ~2.5%).
    assert all(-0.03 < g < 0.15 for g in growth), growth
    assert 0.03 < np.mean(growth) < 0.10, growth
    charges = charges_by_day(sync("acme_growth", "steady_growth"))
    assert (charges["status"] == "failed").mean() < 0.06
    oneoff = succeeded_revenue(charges, oneoff_only=True)
    assert oneoff[90:].sum() > 1.1 * oneoff[:30].sum()


def test_churning_tenant_fails_more_charges_and_loses_subscriptions_at_the_end():
    frames = sync("globex_churn", "churning")
    charges = charges_by_day(frames)
    failed_share = {
        window: (charges[charges["day"].between(*window)]["status"] == "failed").mean()
        for window in [(0, 59), (DAYS - 21, DAYS - 1)]
    }
    assert failed_share[(DAYS - 21, DAYS - 1)] > 3 * failed_share[(0, 59)]
    assert 0.15 < failed_share[(DAYS - 21, DAYS - 1)] < 0.35
    subscriptions = frames["stripe__subscriptions"]
    assert (subscriptions["status"] == "past_due").any()
    ended = day_index(subscriptions["ended_at"].dropna())
    assert (ended >= DAYS - 45).sum() > 3 * (ended.between(0, 44)).sum()
    revenue = succeeded_revenue(charges)
    assert revenue[DAYS - 30 :].sum() < 0.7 * revenue[:30].sum()
    assert set(charges["currency"]) == {"eur"}


def test_seasonal_tenant_peaks_on_tuesday_and_dips_at_the_weekend():
    frames = sync("initech_weekly", "seasonal")
    weekday = pd.Series([(HISTORY_START + timedelta(days=d)).weekday() for d in range(DAYS)])
    oneoff = succeeded_revenue(charges_by_day(frames), oneoff_only=True)
    tuesday, weekend = weekday == SEASONAL_PEAK_WEEKDAY, weekday >= 5
    assert oneoff[tuesday.to_numpy()].mean() > 1.5 * oneoff[weekend.to_numpy()].mean()
    sessions = frames["google_analytics__website_overview"]["sessions"].astype(float)
    assert sessions[tuesday].mean() > 1.5 * sessions[weekend].mean()
    orders = frames["shopify__orders"]
    order_weekday = orders["created_at"].dt.day_of_week.value_counts()
    assert order_weekday[SEASONAL_PEAK_WEEKDAY] == order_weekday.max()


def test_anomalous_tenant_revenue_is_far_from_its_neighbours_on_the_planted_dates():
    charges = charges_by_day(sync("umbrella_spikes", "anomalous", ("stripe", "shopify")))
    revenue = succeeded_revenue(charges)
    planted = planted_anomaly_dates(HISTORY_START, END.date())
    assert [(d - HISTORY_START).days for d, _ in planted] == [a[0] for a in ANOMALIES]
    for day, kind in planted:
        i = (day - HISTORY_START).days
        neighbours = [revenue[j] for j in range(i - 7, i + 8) if j != i]
        ratio = revenue[i] / np.median(neighbours)
        assert ratio > 3 if kind == "spike" else ratio < 0.4, (day, kind, ratio)
    outage = charges[charges["day"] == ANOMALIES[1][0]]
    assert (outage["failure_code"] == "processing_error").mean() > 0.5


def test_planted_anomaly_dates_only_within_the_history():
    assert planted_anomaly_dates(HISTORY_START, HISTORY_START + timedelta(days=80)) == [
        (HISTORY_START + timedelta(days=40), "spike"),
        (HISTORY_START + timedelta(days=75), "drop"),
    ]
    assert planted_anomaly_dates(HISTORY_START, HISTORY_START + timedelta(days=10)) == []


def test_slowing_team_takes_ever_longer_to_merge():
    prs = sync("hooli_eng", "slowing_team", ("stripe", "github"))["github__pull_requests"]
    merged = prs[prs["merged_at"].notna()]
    hours = (merged["merged_at"] - merged["created_at"]).dt.total_seconds() / 3600
    merged_day = (merged["merged_at"] - pd.Timestamp(HISTORY_START, tz="UTC")).dt.days
    first, last = hours[merged_day < 30].median(), hours[merged_day >= DAYS - 30].median()
    assert last > 3 * first, (first, last)
    created_day = (prs["created_at"] - pd.Timestamp(HISTORY_START, tz="UTC")).dt.days
    assert (created_day >= DAYS - 30).sum() < (created_day < 30).sum()


def test_other_profiles_merge_at_an_ordinary_steady_pace():
    prs = sync("acme_growth", "steady_growth")["github__pull_requests"]
    merged = prs[prs["merged_at"].notna()]
    hours = (merged["merged_at"] - merged["created_at"]).dt.total_seconds() / 3600
    merged_day = (merged["merged_at"] - pd.Timestamp(HISTORY_START, tz="UTC")).dt.days
    first, last = hours[merged_day < 30].median(), hours[merged_day >= DAYS - 30].median()
    assert 0.6 < last / first < 1.6


# --- GitHub shape --------------------------------------------------------------------------


def test_github_records_link_up_as_on_github():
    frames = sync("acme_growth", "steady_growth")
    prs, issues, reviews = (
        frames["github__pull_requests"],
        frames["github__issues"],
        frames["github__reviews"],
    )
    closed_unmerged = prs[(prs["state"] == "closed") & prs["merged_at"].isna()]
    assert len(closed_unmerged) > 0 and prs.loc[prs["state"] == "open", "merged_at"].isna().all()
    assert (prs["merged_at"].notna() == prs["merge_commit_sha"].notna()).all()
    pr_issues = issues[issues["pull_request"].notna()]
    assert len(pr_issues) == len(prs) and len(issues) > len(prs)
    assert not issues.duplicated(["repository", "number"]).any()
    urls = {
        f"https://api.github.com/repos/{r}/pulls/{n}"
        for r, n in zip(prs["repository"], prs["number"], strict=True)
    }
    assert set(reviews["pull_request_url"]) <= urls
    assert (reviews["state"] == "APPROVED").mean() > 0.5
    commits = frames["github__commits"]
    assert commits["sha"].str.fullmatch(r"[0-9a-f]{40}").all()
    assert set(prs["merge_commit_sha"].dropna()) <= set(commits["sha"])
    author = json.loads(commits["commit"].iloc[0])["author"]
    assert set(author) == {"name", "email", "date"}
    assert re.fullmatch(r"[\w-]+/[\w-]+", frames["github__repositories"]["full_name"].iloc[0])
    assert 2 <= len(frames["github__repositories"]) <= 4


# --- sources, profiles, tenants, errors ----------------------------------------------------


def test_a_tenant_with_only_stripe_gets_only_stripe_frames():
    frames = sync("piper_lite", "steady_growth", ("stripe",))
    assert list(frames) == [c.name for c in streams_for("stripe")]


def test_unknown_profile_or_source_is_rejected_with_the_known_names():
    window = SyncWindow(1, END, None)
    with pytest.raises(ValueError, match=r"unknown simulator profile 'boom'.*steady_growth"):
        generate_sync("acme", "boom", ["stripe"], window, seed=1, history_start=HISTORY_START)
    with pytest.raises(ValueError, match=r"unknown source 'salesforce'.*google_analytics"):
        generate_sync(
            "acme", "churning", ["salesforce"], window, seed=1, history_start=HISTORY_START
        )


@pytest.mark.parametrize(
    "window, message",
    [
        (SyncWindow(1, datetime(2026, 11, 1), None), "naive"),
        (SyncWindow(2, END, END), "not before"),
        (SyncWindow(1, END - timedelta(days=DAYS + 1), None), "before history_start"),
        (SyncWindow(0, END, None), "1-based"),
    ],
)
def test_impossible_windows_are_rejected(window, message):
    with pytest.raises(ValueError, match=message):
        generate_sync("acme", "churning", ["stripe"], window, seed=1, history_start=HISTORY_START)


def test_default_profile_is_a_stable_pick_from_the_tenant_id():
    picks = {default_profile_for(f"tenant_{i}") for i in range(50)}
    assert picks == set(PROFILES)
    assert default_profile_for("acme_growth") == default_profile_for("acme_growth")


def test_demo_tenants_cover_every_profile_and_a_single_source_tenant():
    assert len(DEMO_TENANTS) == 6
    assert {t.profile for t in DEMO_TENANTS} == set(PROFILES)
    assert all(re.fullmatch(r"[a-z0-9_]+", t.tenant_id) for t in DEMO_TENANTS)
    assert all(set(t.sources) <= set(ALL) for t in DEMO_TENANTS)
    assert any(t.sources == ("stripe",) for t in DEMO_TENANTS)
    for name, profile in PROFILES.items():
        assert profile.name == name and profile.currency in {"usd", "eur", "gbp", "jpy"}
        assert profile.description


# --- volume --------------------------------------------------------------------------------


def test_a_first_sync_is_a_few_thousand_rows_per_source():
    frames = generate_sync(
        "speed_check",
        "steady_growth",
        ALL,
        SyncWindow(1, END, None),
        seed=3,
        history_start=HISTORY_START,
    )
    assert 10_000 <= sum(len(f) for f in frames.values()) <= 25_000


def test_volume_scales_entity_counts():
    full = sync("acme_growth", "steady_growth", ("stripe", "shopify"))
    half = sync("acme_growth", "steady_growth", ("stripe", "shopify"), volume=0.5)
    for name in ("stripe__charges", "stripe__subscriptions", "shopify__orders"):
        assert 0.4 < len(half[name]) / len(full[name]) < 0.6, name

"""One day's analysis end to end in Python: deterministic, stored per day, and read back as the
METRICS.md document."""

import datetime as dt
import math

import numpy as np
import pandas as pd

from tenantpulse.analysis.checks import check_analysis
from tenantpulse.analysis.daily import (
    DayAnalysis,
    analyse_day,
    analyse_days,
    analyse_tenant_days,
    combine_days,
    normalise_history,
    train_churn_model,
)
from tenantpulse.analysis.document import ANALYSIS_TABLES, analysis_document
from tenantpulse.analysis.synthetic_tenants import synthetic_training_history
from tenantpulse.analysis.tables import read_days, replace_days
from tenantpulse.sources.raw_table_ddl import logical_type_of
from tenantpulse.warehouse import quote_ident
from test_patterns import load_demo, make_history

AS_OF = dt.date(2026, 11, 20)


def _analyse():
    history = normalise_history(load_demo()[0])
    return analyse_day(history, AS_OF, train_churn_model(history, AS_OF))


def test_rerunning_a_day_gives_the_same_output():
    first, second = _analyse(), _analyse()
    for name, frame in first.tables().items():
        pd.testing.assert_frame_equal(frame, second.tables()[name], obj=name)
    columns = [c for c in first.workflow.columns if c != "created_at"]
    pd.testing.assert_frame_equal(first.workflow[columns], second.workflow[columns])


def test_stored_days_are_replaced_whole_and_read_back_as_the_document(warehouse):
    day = _analyse()
    with warehouse.connect() as conn:
        for _ in range(2):  # storing the same day twice leaves one copy
            for name, frame in day.tables().items():
                replace_days(conn, "analysis", name, frame, [AS_OF])
            replace_days(conn, "ops", "ai_workflow_analysis", day.workflow, [AS_OF])
        assert conn.fetch_value("select count(*) from ops.ai_workflow_analysis") == 6
        assert (
            conn.fetch_value(
                "select count(*) from analysis.health_scores where as_of = %s", (AS_OF,)
            )
            == 6
        )
        tables = {name: read_days(conn, name, "globex_churn", None) for name in ANALYSIS_TABLES}
    document = analysis_document("globex_churn", AS_OF, tables)
    assert document["user_id"] == "globex_churn" and document["as_of"] == "2026-11-20"
    assert document["churn_risk"] == "high" and 0 <= document["health_score"] <= 40
    assert document["churn_probability"] == 0.99  # the model is sure, but never says 1.0
    assert document["patterns"]["revenue_trend"]["direction"] == "down"
    assert document["patterns"]["seasonality"]["peak_day"] is None  # not weekly: no NaN leaks out
    assert set(document["health_components"]) == {
        "revenue",
        "payments",
        "engineering",
        "web",
        "data_freshness",
    }
    assert any(r["priority"] == "high" for r in document["recommendations"])
    for recommendation in document["recommendations"]:
        assert isinstance(recommendation["evidence"], list) and recommendation["evidence"]
    numbers = [v for v in document["health_components"].values() if isinstance(v, float)]
    assert not any(math.isnan(v) for v in numbers)


def _day(as_of: dt.date, tenants: list[str]) -> DayAnalysis:
    """A DayAnalysis whose every output has one row per tenant (anomalies: none)."""
    frame = pd.DataFrame({"tenant_id": tenants, "as_of": as_of})
    return DayAnalysis(
        *(frame.copy() for _ in range(3)), frame.iloc[0:0], *(frame.copy() for _ in range(4))
    )


def test_days_combine_into_one_analysis_in_order_keeping_the_columns_of_empty_outputs():
    first, second = dt.date(2026, 11, 19), dt.date(2026, 11, 20)
    combined = combine_days([_day(first, ["acme", "globex"]), _day(second, ["acme"])])
    assert combined.health.to_dict(orient="list") == {
        "tenant_id": ["acme", "globex", "acme"],
        "as_of": [first, first, second],
    }
    assert list(combined.anomalies.columns) == ["tenant_id", "as_of"]
    assert combined.anomalies.empty
    assert len(combined.workflow) == 3


def _create_mart(warehouse, history: pd.DataFrame) -> None:
    """analytics.tenant_daily_metrics holding `history`, as dbt would leave it."""
    with warehouse.connect() as conn:
        conn.ensure_schema("analytics")
        columns = ", ".join(
            f"{quote_ident(name)} {conn.sql_type(logical_type_of(history[name]))}"
            for name in history.columns
        )
        conn.execute(f"create table analytics.tenant_daily_metrics ({columns})")
        conn.write_frame("analytics", "tenant_daily_metrics", history)


def test_a_range_of_days_is_analysed_with_one_model_and_stored_replacing_those_days(warehouse):
    history, _ = load_demo()
    days = [AS_OF - dt.timedelta(days=1), AS_OF]
    _create_mart(warehouse, history)
    first = analyse_days(warehouse, days)
    # Analysing the days again with nothing changed recomputes nothing and leaves one copy of each.
    analysed = analyse_days(warehouse, days)
    assert analysed.days == days and first.history_rows == len(history)
    assert analysed.history_rows == 0  # no tenant's inputs changed: none of their rows is read
    assert first.model.n_tenants > 6  # the six demo tenants and the synthetic population
    assert first.rows_written["health_scores"] == 12  # six tenants, two days
    assert first.rows_written["churn_risk"] == 12
    assert (analysed.tenant_days_analysed, analysed.tenant_days_unchanged) == (0, 12)
    assert set(analysed.rows_written.values()) == {0}
    with warehouse.connect() as conn:
        assert conn.fetch_all(
            "select as_of, count(*) from analysis.health_scores group by as_of order by as_of"
        ) == [(days[0], 6), (AS_OF, 6)]
        assert conn.fetch_value("select count(*) from ops.ai_workflow_analysis") == 12


def test_an_output_without_rows_keeps_its_columns_and_types_when_stamped():
    # Short histories (a new tenant's first weeks) find no anomalies: an empty frame with a
    # datetime column, which pandas cannot scan for lists with `any`.
    from tenantpulse.analysis.daily import _stamped

    empty = pd.DataFrame(
        {
            "tenant_id": pd.Series([], dtype=object),
            "date": pd.Series([], dtype="datetime64[us]"),
            "evidence": pd.Series([], dtype=object),
        }
    )
    stamped = _stamped(empty, AS_OF)
    assert stamped.empty and list(stamped.columns) == ["tenant_id", "as_of", "date", "evidence"]
    assert str(stamped["date"].dtype) == "datetime64[us]"


# Empty and minimal inputs: a quiet day, one tenant, one source, a tenant without recent rows.

QUIET_END = dt.date(2026, 3, 5)


def stripe_only(tenant="solo", days=60, end=QUIET_END, revenue=None) -> pd.DataFrame:
    """One Stripe-only tenant: 100 of revenue and 3,000 of MRR a day up to `end`."""
    return make_history(
        tenant,
        days=days,
        start=end - dt.timedelta(days=days - 1),
        sources=("stripe",),
        revenue=np.full(days, 100.0) if revenue is None else revenue,
        mrr=np.full(days, 3000.0),
    )


def _analyse_one_day(history: pd.DataFrame, as_of: dt.date = QUIET_END) -> DayAnalysis:
    history = normalise_history(history)
    day = analyse_day(history, as_of, train_churn_model(history, as_of))
    failed = [
        o for o in check_analysis(day.tables(), history["tenant_id"].unique()) if not o.passed
    ]
    assert failed == []
    return day


def test_one_stripe_only_tenant_on_a_quiet_day_is_analysed_and_stored(warehouse):
    _create_mart(warehouse, stripe_only())
    analysed = analyse_days(warehouse, [QUIET_END])
    rows = analysed.rows_written
    assert (rows["anomalies"], rows["recommendations"]) == (0, 0)  # flat: nothing to report
    assert (rows["tenant_features"], rows["health_scores"], rows["churn_risk"]) == (1, 1, 1)
    assert rows["trends"] == 6 and rows["seasonality"] == 4  # every metric, one row each
    with warehouse.connect() as conn:
        assert conn.fetch_all(
            "select direction, mom_growth from analysis.trends where metric = %s", ("revenue",)
        ) == [("flat", 0.0)]  # 30 x 100 against 30 x 100
        assert conn.fetch_all(
            "select direction from analysis.trends where metric = %s", ("sessions",)
        ) == [("unknown",)]  # no Google Analytics: unknown, not a collapse
        assert conn.fetch_value("select components_used from analysis.health_scores") == (
            "revenue,data_freshness"
        )
        assert conn.fetch_value("select count(*) from analysis.anomalies") == 0
        assert conn.fetch_value("select anomalies from ops.ai_workflow_analysis") == 0


def test_a_day_before_any_data_stores_no_rows_and_a_later_day_stores_its_own(warehouse):
    revenue = np.full(60, 100.0)
    revenue[55] = 1000.0  # 2026-02-28: an anomaly for the later day
    _create_mart(warehouse, stripe_only(revenue=revenue))
    early = QUIET_END - dt.timedelta(days=100)
    analysed = analyse_days(warehouse, [early])
    assert set(analysed.rows_written.values()) == {0}
    analysed = analyse_days(warehouse, [QUIET_END])  # into the tables the empty day created
    assert analysed.rows_written["anomalies"] == 1
    with warehouse.connect() as conn:
        assert conn.fetch_all("select value, expected, kind from analysis.anomalies") == [
            (1000.0, 100.0, "spike")
        ]
        assert conn.fetch_value("select count(*) from ops.ai_workflow_analysis") == 1


def test_no_history_at_all_gives_outputs_without_rows_and_with_their_columns():
    day = _analyse_one_day(stripe_only().iloc[0:0])
    for name, frame in {**day.tables(), "workflow": day.workflow}.items():
        assert frame.empty, name
    assert list(day.anomalies.columns) == [
        "tenant_id",
        "as_of",
        "metric",
        "date",
        "value",
        "expected",
        "robust_z",
        "kind",
    ]
    assert str(day.anomalies["robust_z"].dtype) == "float64"


def test_a_tenant_without_rows_in_the_windows_is_unknown_beside_an_analysed_one():
    # "gone" stopped 200 days ago with 30 days of data; "late" starts after the day analysed.
    gone = stripe_only("gone", days=30, end=QUIET_END - dt.timedelta(days=200))
    late = stripe_only("late", days=10, end=QUIET_END + dt.timedelta(days=10))
    day = _analyse_one_day(pd.concat([stripe_only(), gone, late]))
    assert sorted(day.features["tenant_id"]) == ["gone", "solo"]  # late: nothing up to the day
    risk = day.churn.set_index("tenant_id")
    assert risk.loc["gone", "churn_risk"] == "unknown"
    assert risk.loc["gone", "reason"] == f"only 30 days of history up to {QUIET_END} (needs 45)"
    assert risk.loc["solo", "churn_risk"] != "unknown"
    assert set(day.trends["tenant_id"]) == {"solo"}  # no row of gone's in the 90 days
    assert day.anomalies.empty and day.recommendations.empty


def test_one_tenant_with_github_only_has_no_revenue_analysis_and_no_error():
    github = make_history(
        "gh",
        days=60,
        start=QUIET_END - dt.timedelta(days=59),
        sources=("github",),
        prs_merged=np.full(60, 2.0),
    )
    day = _analyse_one_day(github)
    risk = day.churn.iloc[0]
    assert (risk["churn_risk"], risk["reason"]) == (
        "unknown",
        "no Stripe or Shopify revenue source",
    )
    trends = day.trends.set_index("metric")
    assert trends.loc["revenue", "direction"] == "unknown"
    assert trends.loc["prs_merged", "direction"] == "flat"
    assert day.health.iloc[0]["components_used"] == "engineering,data_freshness"


def _population(tenants: int) -> pd.DataFrame:
    """Synthetic 180-day histories of ordinary tenant ids, with holes in every flow metric."""
    history = synthetic_training_history(tenants, 180, seed=5)
    history["tenant_id"] = history["tenant_id"].str.replace("syn-", "t_").str.replace("-", "_")
    history["last_synced_at"] = (history["date"] + pd.Timedelta(hours=20)).dt.tz_localize("UTC")
    rng = np.random.default_rng(5)
    for metric in ("revenue", "new_customers", "prs_merged", "median_hours_to_merge", "sessions"):
        history.loc[rng.random(len(history)) < 0.05, metric] = np.nan
    return normalise_history(history[rng.random(len(history)) > 0.03])


def _assert_same_tenant_rows(day: DayAnalysis, expected: DayAnalysis, tenants: set[str]) -> None:
    """The rows of `tenants` in every output of `day` are those in `expected`, to the last bit."""
    wanted = expected.tables() | {"workflow": expected.workflow}
    for name, frame in (day.tables() | {"workflow": day.workflow}).items():
        other = wanted[name]
        rows, other_rows = (
            f[f["tenant_id"].isin(tenants)].drop(columns="created_at", errors="ignore")
            for f in (frame, other)
        )
        if rows.empty and other_rows.empty:  # an output without rows: its type may be object
            assert list(rows.columns) == list(other_rows.columns), name
            continue
        pd.testing.assert_frame_equal(
            rows.reset_index(drop=True),
            other_rows.reset_index(drop=True),
            check_exact=True,
            obj=name,
        )


def test_a_tenants_analysis_does_not_depend_on_the_tenants_analysed_beside_it():
    # Exactly, to the last bit: a value computed over a run of every tenant's rows (pandas'
    # rolling mean keeps a running sum) carried the tenants before it into a tenant's weekly
    # strength, its ties and so its p-value.
    history = _population(16)
    day = history["date"].max().date()
    model = train_churn_model(history, day - dt.timedelta(days=7))
    together = analyse_day(history, day, model)
    for alone in sorted(set(history["tenant_id"])):
        apart = analyse_day(history[history["tenant_id"] == alone], day, model)
        _assert_same_tenant_rows(apart, together, {alone})


def test_tenants_split_among_processes_give_the_rows_of_one_process():
    history = _population(16)
    newest = history["date"].max().date()
    model = train_churn_model(history, newest - dt.timedelta(days=7))
    tenants = sorted(set(history["tenant_id"]))
    tasks = [
        (newest - dt.timedelta(days=1), set(tenants[3:9])),  # a day with some tenants changed
        (newest, set(tenants)),
    ]
    one = analyse_tenant_days(history, tasks, model, processes=1)
    split = analyse_tenant_days(history, tasks, model, processes=2)
    for (day, changed), alone, shared in zip(tasks, one, split, strict=True):
        assert set(shared.health["tenant_id"]) == changed and set(shared.health["as_of"]) == {day}
        _assert_same_tenant_rows(shared, alone, changed)

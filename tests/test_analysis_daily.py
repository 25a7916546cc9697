"""One day's analysis end to end in Python: deterministic, stored per day, and read back as the
METRICS.md document."""

import datetime as dt
import math

import pandas as pd

from tenantpulse.analysis.daily import (
    DayAnalysis,
    analyse_day,
    analyse_days,
    combine_days,
    normalise_history,
    train_churn_model,
)
from tenantpulse.analysis.document import ANALYSIS_TABLES, analysis_document
from tenantpulse.analysis.tables import read_days, replace_days
from tenantpulse.sources.raw_table_ddl import logical_type_of
from tenantpulse.warehouse import quote_ident
from test_patterns import load_demo

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


def test_a_range_of_days_is_analysed_with_one_model_and_stored_replacing_those_days(warehouse):
    history, _ = load_demo()
    days = [AS_OF - dt.timedelta(days=1), AS_OF]
    with warehouse.connect() as conn:  # the mart as dbt would leave it
        conn.ensure_schema("analytics")
        columns = ", ".join(
            f"{quote_ident(name)} {conn.sql_type(logical_type_of(history[name]))}"
            for name in history.columns
        )
        conn.execute(f"create table analytics.tenant_daily_metrics ({columns})")
        conn.write_frame("analytics", "tenant_daily_metrics", history)
    for _ in range(2):  # analysing the days again leaves one copy of each
        analysed = analyse_days(warehouse, days)
    assert analysed.days == days and analysed.history_rows == len(history)
    assert analysed.model.n_tenants > 6  # the six demo tenants and the synthetic population
    assert analysed.rows_written["health_scores"] == 12  # six tenants, two days
    assert analysed.rows_written["churn_risk"] == 12
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

"""One day's analysis end to end in Python: deterministic, stored per day, and read back as the
METRICS.md document."""

import datetime as dt
import math

import pandas as pd

from tenantpulse.analysis.daily import analyse_day, normalise_history, train_churn_model
from tenantpulse.analysis.document import ANALYSIS_TABLES, analysis_document
from tenantpulse.analysis.tables import read_days, replace_days
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

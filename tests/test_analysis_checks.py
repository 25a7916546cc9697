"""The analysis asset's checks catch real defects in the frames it stores, and pass on the demo's
analysis; the column schemas shown in the UI are the columns the analysis writes."""

import datetime as dt

import pandas as pd
import pytest

from tenantpulse.analysis.checks import (
    CHECKS,
    CHURN_PROBABILITY_VALID,
    HEALTH_IN_RANGE,
    ONE_ROW_PER_METRIC,
    ONE_ROW_PER_TENANT_AND_DAY,
    ONLY_ACTIVE_TENANTS,
    RECOMMENDATIONS_VALID,
    TABLES_OF,
    check_analysis,
)
from tenantpulse.analysis.daily import analyse_day, normalise_history, train_churn_model
from tenantpulse.analysis.tables import ANALYSIS_COLUMNS
from tenantpulse.defs.analysis import ANALYSIS_ASSETS
from tenantpulse.sources.raw_table_ddl import logical_type_of
from test_patterns import load_demo

DAY = dt.date(2026, 11, 20)


def small_tables(**changes) -> dict[str, pd.DataFrame]:
    """Two tenants analysed on one day, every check passing; `changes` replace tables."""
    tenants = ["acme", "globex"]
    tables = {
        "tenant_features": pd.DataFrame({"tenant_id": tenants, "as_of": DAY, "date": DAY}),
        "trends": pd.DataFrame(
            {"tenant_id": tenants, "as_of": DAY, "metric": "revenue", "direction": "up"}
        ),
        "seasonality": pd.DataFrame(
            {"tenant_id": tenants, "as_of": DAY, "metric": "revenue", "weekly": False}
        ),
        "anomalies": pd.DataFrame(
            {"tenant_id": ["acme"], "as_of": DAY, "metric": "revenue", "date": DAY}
        ),
        "health_scores": pd.DataFrame(
            {
                "tenant_id": tenants,
                "as_of": DAY,
                "health_score": [88, 38],
                "revenue": [90.0, 20.0],
                "engineering": [float("nan"), 55.0],  # no GitHub: no component
            }
        ),
        "churn_risk": pd.DataFrame(
            {
                "tenant_id": tenants,
                "as_of": DAY,
                "churn_probability": [0.05, 0.97],
                "churn_risk": ["low", "high"],
                "reason": "logistic model (...)",
            }
        ),
        "recommendations": pd.DataFrame(
            {
                "tenant_id": ["globex"],
                "as_of": DAY,
                "priority": ["high"],
                "action": ["Turn on dunning and call the customer"],
                "impact": ["..."],
                "evidence": ['["failed_charge_rate_30d = 0.26"]'],
                "rule": ["failed_payments"],
            }
        ),
    }
    return tables | changes


def failed(tables, active=("acme", "globex")) -> dict[tuple[str, str], list[str]]:
    return {(o.asset, o.name): o.examples for o in check_analysis(tables, active) if not o.passed}


def test_every_check_passes_on_sound_frames_and_each_is_reported_once():
    outcomes = check_analysis(small_tables(), ["acme", "globex"])
    assert [(o.asset, o.name) for o in outcomes] == [
        (asset, name) for asset, checks in CHECKS.items() for name, _ in checks
    ]
    assert all(o.passed for o in outcomes), [o for o in outcomes if not o.passed]


def test_a_health_score_or_component_outside_0_100_fails_naming_the_row():
    tables = small_tables()
    health = tables["health_scores"].copy()
    health.loc[1, "health_score"] = 104
    health.loc[0, "revenue"] = -3.0
    assert failed(small_tables(health_scores=health)) == {
        ("health_scores", HEALTH_IN_RANGE): [
            "acme 2026-11-20: revenue -3.0",
            "globex 2026-11-20: health_score 104",
        ]
    }


def test_a_churn_probability_of_0_or_1_or_out_of_band_fails():
    tables = small_tables()
    churn = tables["churn_risk"].copy()
    churn["churn_probability"] = [1.0, 0.45]  # the model never says certain; 0.45 is medium
    found = failed(small_tables(churn_risk=churn))
    assert found == {
        ("churn_risk", CHURN_PROBABILITY_VALID): [
            "acme 2026-11-20: churn_probability 1.0",
            "globex 2026-11-20: churn_risk high for probability 0.450 (band medium)",
        ]
    }
    # Never certain, the rule fallback neither (churn.predict clips to 0.01..0.99).
    churn = churn.assign(
        churn_probability=[0.0, 0.995], churn_risk=["low", "high"], reason="rule fallback (...)"
    )
    assert failed(small_tables(churn_risk=churn)) == {
        ("churn_risk", CHURN_PROBABILITY_VALID): [
            "acme 2026-11-20: churn_probability 0.0",
            "globex 2026-11-20: churn_probability 0.995",
        ]
    }
    churn = churn.assign(churn_probability=[0.01, 0.99])
    assert failed(small_tables(churn_risk=churn)) == {}
    # Unknown risk: no probability, and no probability only when unknown.
    churn = churn.assign(churn_probability=[float("nan")] * 2, churn_risk=["unknown", "low"])
    assert failed(small_tables(churn_risk=churn)) == {
        ("churn_risk", CHURN_PROBABILITY_VALID): [
            "globex 2026-11-20: no probability but churn_risk low"
        ]
    }


def test_a_duplicated_or_missing_tenant_day_fails():
    tables = small_tables()
    health = pd.concat([tables["health_scores"]] * 2, ignore_index=True)
    churn = tables["churn_risk"].iloc[:1]
    trends = pd.concat([tables["trends"], tables["trends"].iloc[:1]], ignore_index=True)
    assert failed(small_tables(health_scores=health, churn_risk=churn, trends=trends)) == {
        ("health_scores", ONE_ROW_PER_TENANT_AND_DAY): [
            "acme 2026-11-20: 2 rows",
            "globex 2026-11-20: 2 rows",
        ],
        ("churn_risk", ONE_ROW_PER_TENANT_AND_DAY): ["globex 2026-11-20: missing"],
        ("patterns", ONE_ROW_PER_METRIC): ["trends: acme 2026-11-20 revenue: 2 rows"],
    }


def test_a_tenant_that_is_not_active_fails_every_output_it_is_in():
    found = failed(small_tables(), active=["acme"])
    assert set(found) == {(asset, ONLY_ACTIVE_TENANTS) for asset in CHECKS}
    assert found[("patterns", ONLY_ACTIVE_TENANTS)] == ["globex (seasonality)", "globex (trends)"]
    assert found[("recommendations", ONLY_ACTIVE_TENANTS)] == ["globex (recommendations)"]


def test_a_recommendation_without_priority_or_evidence_fails():
    tables = small_tables()
    recommendations = tables["recommendations"].assign(priority="urgent", evidence="[]")
    assert failed(small_tables(recommendations=recommendations)) == {
        ("recommendations", RECOMMENDATIONS_VALID): [
            "globex 2026-11-20 failed_payments: priority 'urgent'",
            "globex 2026-11-20 failed_payments: no evidence",
        ]
    }


@pytest.fixture(scope="module")
def demo_day():
    history = normalise_history(load_demo()[0])
    return analyse_day(history, DAY, train_churn_model(history, DAY))


def test_the_demo_analysis_passes_every_check(demo_day):
    tenants = demo_day.features["tenant_id"].unique()
    assert len(tenants) == 6
    outcomes = check_analysis(demo_day.tables(), tenants)
    assert all(o.passed for o in outcomes), [o for o in outcomes if not o.passed]


def test_the_column_schemas_are_the_columns_the_analysis_writes(demo_day):
    tables = demo_day.tables()
    assert set(ANALYSIS_COLUMNS) == set(tables)
    for table, frame in tables.items():
        columns = ANALYSIS_COLUMNS[table]
        assert [c.name for c in columns] == list(frame.columns), table
        for column in columns:
            # replace_days stores as_of as a date; every other column as its frame's type.
            written = "date" if column.name == "as_of" else logical_type_of(frame[column.name])
            assert column.type == written, (table, column.name)
            assert column.description.endswith("."), (table, column.name)
    assert {name: tables for name, (tables, _) in ANALYSIS_ASSETS.items()} == TABLES_OF

"""Insights without an LLM: the fact sheet, the grounding check, the deterministic sentences, and
the gate that drops ungrounded sentences and falls back to the draft of their topic."""

import datetime as dt
import json

import pandas as pd
import pytest

from tenantpulse.analysis import patterns
from tenantpulse.insights.compose import (
    DeterministicWriter,
    Written,
    compose,
    request_for,
    write_insights,
)
from tenantpulse.insights.deterministic import draft_sentences
from tenantpulse.insights.facts import WINDOW_FACTS, Recommendation, TenantFacts, tenant_facts
from tenantpulse.insights.grounding import check_sentence, quoted_numbers
from test_patterns import make_history

AS_OF = dt.date(2026, 11, 20)


def make_facts(numbers=None, labels=None, dates=None, recommendations=()):
    return TenantFacts(
        "acme",
        AS_OF,
        {**WINDOW_FACTS, **(numbers or {})},
        labels or {},
        dates or {},
        list(recommendations),
    )


def test_tenant_facts_are_named_numbers_labels_and_dates_of_the_stored_analysis():
    tables = {
        "health_scores": pd.DataFrame(
            [
                {
                    "tenant_id": "acme",
                    "health_score": 72,
                    "revenue": 90.0,
                    "payments": 40.0,
                    "engineering": None,
                    "web": None,
                    "data_freshness": 100.0,
                    "components_used": "revenue,payments,data_freshness",
                    "failed_charge_rate_30d": 0.125,
                    "cancellation_rate_30d": None,
                    "median_hours_to_merge_30d": 84.0,
                    "bounce_rate_30d": None,
                    "days_since_data": 0,
                }
            ]
        ),
        "churn_risk": pd.DataFrame(
            [{"tenant_id": "acme", "churn_risk": "medium", "churn_probability": 0.31}]
        ),
        "trends": pd.DataFrame(
            [
                {
                    "metric": "revenue",
                    "direction": "up",
                    "mom_growth": 0.153,
                    "relative_slope_90d": 0.08,
                },
                {
                    "metric": "sessions",
                    "direction": "unknown",
                    "mom_growth": None,
                    "relative_slope_90d": None,
                },
            ]
        ),
        "seasonality": pd.DataFrame(
            [
                {
                    "metric": "revenue",
                    "weekly": True,
                    "peak_day": "Tue",
                    "trough_day": "Sun",
                    "strength": 0.5,
                }
            ]
        ),
        "anomalies": pd.DataFrame(
            [{"metric": "revenue", "date": "2026-11-18", "value": 4200.0, "expected": 1500.0}]
        ),
        "recommendations": pd.DataFrame(
            [
                {
                    "rule": "revenue_anomaly",
                    "priority": "medium",
                    "action": "Investigate the revenue anomaly on 2026-11-18",
                    "impact": "Revenue was 4200.0 against 1500.0 expected (spike)",
                    "evidence": json.dumps(
                        ["date = 2026-11-18", "revenue = 4200.0", "robust_z = 9.1"]
                    ),
                }
            ]
        ),
    }
    facts = tenant_facts("acme", AS_OF, tables)
    n = facts.numbers
    assert n["health_score"] == 72 and n["health_revenue"] == 90 and n["health_payments"] == 40
    assert "health_engineering" not in n and "bounce_rate_30d" not in n  # missing stays missing
    assert n["median_days_to_merge_30d"] == 3.5  # 84 hours, the unit METRICS.md quotes
    assert (
        n["revenue_avg_last_30d_vs_prior_30d"] == 0.153
        and "sessions_avg_last_30d_vs_prior_30d" not in n
    )
    assert n["revenue_anomaly_2026-11-18_value"] == 4200 and n["revenue_anomaly.robust_z"] == 9.1
    assert n["window_days"] == 30
    assert facts.labels["churn_risk"] == "medium" and facts.labels["revenue_direction"] == "up"
    assert "sessions_direction" not in facts.labels
    assert facts.labels["revenue_peak_day"] == "Tue"
    assert set(facts.dates.values()) == {"2026-11-18"}
    assert facts.recommendations[0].priority == "medium"


@pytest.mark.parametrize(
    "sentence, expected",
    [
        ("Revenue grew 15% (15.3%) MoM", [(15.0, 0, True), (15.3, 1, True)]),
        ("1,234.56 USD over 30 days", [(1234.56, 2, False), (30.0, 0, False)]),
        ("GA4 shows p90 at 12 h on 2026-11-18", [(12.0, 0, False)]),  # names and dates aside
        ("no numbers here", []),
    ],
)
def test_quoted_numbers_reads_decimals_percentages_and_skips_names_and_dates(sentence, expected):
    assert quoted_numbers(sentence) == expected


@pytest.mark.parametrize(
    "sentence, grounded, unmatched",
    [
        ("Revenue is up 15% on the previous 30 days", True, ()),  # 0.153 as a percentage
        ("Revenue is up 15.3% month over month", True, ()),
        ("Revenue is up 16% month over month", False, ("16%",)),  # 15.3 does not round to 16
        ("Revenue fell 12%", True, ()),  # -0.12: the sign is in the words
        ("A median of 3.5 days (84 hours)", True, ()),
        ("A median of 3.6 days", False, ("3.6",)),
        ("Revenue was 4,200 on 2026-11-18", True, ()),
        ("Revenue was 4,200 on 2026-11-17", False, ("2026-11-17",)),
        ("Health score 72 out of 100", False, ("100",)),  # 100 is no fact of this tenant
        ("Available 24/7", False, ("24", "7")),
    ],
)
def test_grounding_accepts_only_numbers_and_dates_of_the_tenants_facts(
    sentence, grounded, unmatched
):
    facts = make_facts(
        {
            "revenue_avg_last_30d_vs_prior_30d": 0.153,
            "mrr_avg_last_30d_vs_prior_30d": -0.12,
            "median_hours_to_merge_30d": 84.0,
            "median_days_to_merge_30d": 3.5,
            "health_score": 72,
            "revenue_anomaly_2026-11-18_value": 4200.0,
        },
        dates={"revenue_anomaly_2026-11-18": "2026-11-18"},
    )
    verdict = check_sentence(sentence, facts)
    assert (verdict.grounded, verdict.unmatched) == (grounded, unmatched)


def test_deterministic_sentences_for_a_growing_and_a_struggling_tenant():
    growing = make_facts(
        {
            "revenue_avg_last_30d_vs_prior_30d": 0.153,
            "median_hours_to_merge_30d": 18.04,
            "median_days_to_merge_30d": 18.04 / 24,
            "failed_charge_rate_30d": 0.012,
            "churn_probability": 0.07,
            "health_revenue": 92.0,
            "health_data_freshness": 100.0,
        },
        {"churn_risk": "low", "revenue_peak_day": "Tue"},
    )
    assert [(s.topic, s.kind, s.text) for s in draft_sentences(growing)] == [
        (
            "revenue_growth",
            "strength",
            "Average daily revenue over the last 30 days is up 15% on the 30 days before",
        ),
        (
            "fast_merges",
            "strength",
            "Pull requests merge quickly: a median of 18.0 hours over the last 30 days",
        ),
        (
            "reliable_payments",
            "strength",
            "Payments are reliable: 1.2% of charges failed over the last 30 days",
        ),
        ("low_churn_risk", "strength", "Churn risk is low (probability 7%)"),
        ("weekly_rhythm", "strength", "Revenue follows a steady weekly rhythm, peaking on Tue"),
        ("strong_revenue", "strength", "Strong revenue health score: 92"),
    ]
    struggling = make_facts(
        {
            "mrr_avg_last_30d_vs_prior_30d": -0.2,
            "median_hours_to_merge_30d": 84.0,
            "median_days_to_merge_30d": 3.5,
            "failed_charge_rate_30d": 0.25,
            "churn_probability": 0.81,
            "bounce_rate_30d": 0.72,
            "days_since_data": 4,
            "health_payments": 10.0,
        },
        {"churn_risk": "high"},
        recommendations=[
            Recommendation("churn_risk", "high", "Call", "Churn probability is 81%", [])
        ],
    )
    assert [s.text for s in draft_sentences(struggling)] == [
        "Average MRR over the last 30 days is down 20% on the 30 days before",
        "Pull requests wait long to merge: a median of 3.5 days (84 hours) over the last 30 days",
        "25% of charges failed over the last 30 days",
        "Churn risk is high (probability 81%)",
        "72% of website sessions bounced over the last 30 days",
        "No successful sync for 4 days: check the connections",
        "Weak payments health score: 10",
        "Churn probability is 81%",
    ]
    for facts in (growing, struggling):  # every template quotes only its facts
        assert all(check_sentence(s.text, facts).grounded for s in draft_sentences(facts))


def test_a_trend_sentence_says_what_it_compares_the_30_day_averages():
    # MRR was 1200 for 15 days, then 800 for 45 days: flat at 800 over the whole last 30 days (0%
    # from the start of those days to their end), but its average over them (800) is 20% below
    # its average over the 30 days before ((15 x 1200 + 15 x 800) / 30 = 1000). Daily revenue: 2
    # for 30 days, then 3: its average is up 50%.
    history = make_history(
        days=60, mrr=[1200.0] * 15 + [800.0] * 45, revenue=[2.0] * 30 + [3.0] * 30
    )
    as_of = history["date"].max().date()
    empty: list[dict] = []
    tables = {
        "health_scores": empty,
        "churn_risk": empty,
        "trends": patterns.trends(history, as_of),
        "seasonality": empty,
        "anomalies": empty,
        "recommendations": empty,
    }
    facts = tenant_facts("t1", as_of, tables)
    assert facts.numbers["mrr_avg_last_30d_vs_prior_30d"] == pytest.approx(-0.2)
    assert facts.numbers["revenue_avg_last_30d_vs_prior_30d"] == pytest.approx(0.5)
    assert {s.topic: s.text for s in draft_sentences(facts)} == {
        "revenue_growth": "Average daily revenue over the last 30 days is up 50% on the 30 days before",
        "mrr_decline": "Average MRR over the last 30 days is down 20% on the 30 days before",
    }


class ScriptedWriter:
    name = "scripted-model"

    def __init__(self, texts):
        self.texts = texts

    def write(self, request):
        return Written(dict(self.texts), self.name, prompt_tokens=10, completion_tokens=5)


def struggling_request():
    facts = make_facts(
        {"mrr_avg_last_30d_vs_prior_30d": -0.2, "churn_probability": 0.81},
        {"churn_risk": "high"},
        recommendations=[
            Recommendation(
                "churn_risk",
                "high",
                "Schedule a customer success call and offer a retention discount",
                "Churn probability is 81%",
                ["churn_probability = 0.81"],
            )
        ],
    )
    return request_for(facts)


def test_an_ungrounded_sentence_is_dropped_counted_and_replaced_by_its_draft():
    request = struggling_request()
    writer = ScriptedWriter(
        {
            # grounded: the draft's numbers, units, metric and direction, in other words
            "mrr_decline": "Over the last 30 days, average MRR dropped 20% on the 30 days before",
            "churn_risk": "Churn risk is high: 93% likely to leave",  # 93 is not a fact
            "made_up_topic": "Offer 50% off",  # no such topic: ignored
        }
    )
    insights = compose(request, writer.write(request))
    assert insights.improvements == [
        "Over the last 30 days, average MRR dropped 20% on the 30 days before",
        "Churn risk is high (probability 81%)",
    ]
    assert [(d.topic, d.unmatched) for d in insights.dropped] == [("churn_risk", ("93%",))]
    # the recommendation's topic was not written: it keeps the analysis's own wording
    assert insights.recommendation_impacts == {"churn_risk": "Churn probability is 81%"}
    assert insights.fallback_topics == ["churn_risk", "recommendation:churn_risk"]
    assert insights.sentences_checked == 4 and insights.generated_by == "scripted-model"


def test_a_writer_error_leaves_the_drafts_and_says_deterministic():
    request = struggling_request()
    failed = Written({}, "scripted-model", error="APITimeoutError: Request timed out.")
    insights = compose(request, failed)
    assert insights.generated_by == "deterministic"
    assert insights.improvements == [s.text for s in request.drafts[:2]]
    assert not insights.dropped


def test_the_deterministic_writer_writes_the_drafts_for_every_tenant_in_order():
    requests = [
        struggling_request(),
        request_for(make_facts({"revenue_avg_last_30d_vs_prior_30d": 0.05})),
    ]
    results = write_insights(requests, DeterministicWriter(), concurrency=4)
    assert [r.generated_by for r in results] == ["deterministic", "deterministic"]
    assert results[1].strengths == [
        "Average daily revenue over the last 30 days is up 5% on the 30 days before"
    ]
    assert all(not r.dropped and not r.fallback_topics for r in results)


def test_the_insights_of_analysed_days_are_written_by_the_drafts_and_stored_once(settings):
    from tenantpulse.analysis.tables import replace_days
    from tenantpulse.insights.daily import write_days
    from tenantpulse.warehouse import open_warehouse
    from test_analysis_daily import _analyse

    warehouse = open_warehouse(settings.warehouse)
    with warehouse.connect() as conn:
        for name, frame in _analyse().tables().items():
            replace_days(conn, "analysis", name, frame, [AS_OF])
    days = [AS_OF - dt.timedelta(days=1), AS_OF]  # the day before was not analysed: no facts
    for _ in range(2):  # writing the days again leaves one row per tenant and day
        progress, warnings = [], []
        written = write_days(
            warehouse, days, settings.llm, log=progress.append, warn=warnings.append
        )
    assert not settings.llm.enabled and written.days == days
    assert len(written.results) == 6 and len(written.frame) == 6
    assert set(written.frame["generated_by"]) == {"deterministic"}
    assert written.frame["sentences_dropped"].sum() == 0 and warnings == []
    assert progress[-1] == "insights: 6/6 tenant-days written" and len(progress) == 6
    with warehouse.connect() as conn:
        assert conn.fetch_all("select as_of, count(*) from analysis.insights group by as_of") == [
            (AS_OF, 6)
        ]
        assert not conn.table_exists("ops", "llm_cache")  # no LLM, no cache


def test_the_report_is_strict_json_with_null_for_a_missing_peak_day():
    from tenantpulse.analysis.document import analysis_document, document_json

    nan = float("nan")
    tables = {
        "health_scores": pd.DataFrame([{"health_score": 55.0, "components_used": "revenue"}]),
        "churn_risk": pd.DataFrame([{"churn_risk": nan, "churn_probability": nan}]),
        "trends": pd.DataFrame(
            [
                {
                    "metric": "revenue",
                    "direction": "flat",
                    "mom_growth": nan,
                    "relative_slope_90d": 0.01,
                }
            ]
        ),
        # Not weekly: the analysis leaves peak_day missing (NaN in the frame).
        "seasonality": pd.DataFrame(
            [{"metric": "revenue", "weekly": False, "peak_day": nan, "strength": nan}]
        ),
        "anomalies": pd.DataFrame(),
        "recommendations": pd.DataFrame(),
    }
    text = document_json(analysis_document("acme", AS_OF, tables))
    document = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in the JSON"))
    assert document["patterns"]["weekly_seasonality"]["revenue"] == {
        "weekly": False,
        "peak_day": None,
        "strength": None,
    }
    assert document["churn_risk"] == "unknown" and document["churn_probability"] is None
    assert document["patterns"]["trends"]["revenue"]["mom_growth"] is None
    with pytest.raises(ValueError, match="not JSON compliant"):
        document_json({"value": float("inf")})  # a number that slipped through fails loudly

"""The daily analysis recomputes only the tenant-days whose inputs changed, keeps the others' rows
exactly, re-evaluates every tenant on a new day (freshness depends on the calendar day), and
scores with the saved churn model, retrained only when it is due."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from tenantpulse.analysis.daily import analyse_days, retrain_churn_model
from tenantpulse.analysis.document import ANALYSIS_TABLES
from tenantpulse.analysis.model_store import MODEL_MAX_AGE_DAYS, load_model
from test_analysis_daily import QUIET_END, _create_mart, stripe_only

DAY_BEFORE, NEXT_DAY = QUIET_END - dt.timedelta(days=1), QUIET_END + dt.timedelta(days=1)
# Every analysis table, and the input hash (with when it was computed).
TABLES = (*(f"analysis.{t}" for t in (*ANALYSIS_TABLES, "tenant_features")), "ops.analysed_inputs")


def _two_tenants() -> pd.DataFrame:
    falling = np.linspace(200.0, 50.0, 60)
    return pd.concat([stripe_only("acme"), stripe_only("bolt", revenue=falling)])


def _rows(conn, tenant: str, day: dt.date) -> dict[str, list[tuple]]:
    """Every stored row of the tenant's day, analysis tables and input hash (with its time)."""
    return {
        table: sorted(
            conn.fetch_all(
                f"select * from {table} where tenant_id = %s and as_of = %s",
                (tenant, day),
            ),
            key=repr,
        )
        for table in TABLES
    }


def test_only_changed_tenants_are_reanalysed_and_a_new_day_reevaluates_freshness(warehouse):
    _create_mart(warehouse, _two_tenants())
    first = analyse_days(warehouse, [DAY_BEFORE, QUIET_END])
    assert (first.tenant_days_analysed, first.tenant_days_unchanged) == (4, 0)
    with warehouse.connect() as conn:
        before = {
            (t, d): _rows(conn, t, d) for t in ("acme", "bolt") for d in (DAY_BEFORE, QUIET_END)
        }
        # acme's next sync revises its day before (a late refund) and brings the next day.
        conn.execute(
            "update analytics.tenant_daily_metrics set revenue = 40 "
            "where tenant_id = 'acme' and date = %s",
            (DAY_BEFORE,),
        )
        next_row = stripe_only("acme", days=1, end=NEXT_DAY)
        conn.write_frame("analytics", "tenant_daily_metrics", next_row)

    second = analyse_days(warehouse, [DAY_BEFORE, QUIET_END, NEXT_DAY])

    # acme: its two stored days again; both tenants on the new day; bolt's stored days kept.
    assert (second.tenant_days_analysed, second.tenant_days_unchanged) == (4, 2)
    assert sorted(
        zip(second.analysed.health["tenant_id"], second.analysed.health["as_of"], strict=True)
    ) == [
        ("acme", DAY_BEFORE),
        ("acme", QUIET_END),
        ("acme", NEXT_DAY),
        ("bolt", NEXT_DAY),
    ]
    with warehouse.connect() as conn:
        for day in (DAY_BEFORE, QUIET_END):
            assert _rows(conn, "bolt", day) == before[("bolt", day)]  # untouched, to the byte
            assert _rows(conn, "acme", day) != before[("acme", day)]
            assert (
                conn.fetch_value(
                    "select count(*) from analysis.health_scores where as_of = %s", (day,)
                )
                == 2
            )
        freshness = dict(
            conn.fetch_all(
                "select tenant_id, days_since_data from analysis.health_scores where as_of = %s",
                (NEXT_DAY,),
            )
        )
        revised = conn.fetch_value(
            "select mom_growth from analysis.trends where tenant_id = 'acme' and as_of = %s "
            "and metric = 'revenue'",
            (QUIET_END,),
        )
    # bolt sent nothing new: one more day since its last sync, seen on the new day.
    assert freshness == {"acme": 0, "bolt": 1}
    assert float(revised) == pytest.approx(2940 / 3000 - 1)  # the revised day is in its window


def test_a_removed_tenant_is_taken_out_of_the_days_analysed_again(warehouse):
    from tenantpulse.tenants.registry import add_tenant, remove_tenant

    _create_mart(warehouse, _two_tenants())
    with warehouse.connect() as conn:
        for tenant in ("acme", "bolt"):
            add_tenant(conn, tenant, tenant.title(), ["stripe"])
    analyse_days(warehouse, [QUIET_END])
    with warehouse.connect() as conn:
        remove_tenant(conn, "bolt")
    again = analyse_days(warehouse, [QUIET_END])
    assert (again.tenant_days_analysed, again.tenant_days_unchanged) == (0, 1)
    with warehouse.connect() as conn:
        for table in TABLES:
            assert conn.fetch_all(f"select distinct tenant_id from {table}") in (
                [("acme",)],
                [],  # anomalies, recommendations: none for a quiet tenant
            ), table
        assert conn.fetch_all("select tenant_id from ops.ai_workflow_analysis") == [("acme",)]


def test_the_model_is_trained_once_then_scored_with_until_it_is_due(warehouse):
    _create_mart(warehouse, _two_tenants())
    first = analyse_days(warehouse, [QUIET_END])
    assert first.model_source == "trained and saved"  # no model yet: the first run trains one
    with warehouse.connect() as conn:
        saved = load_model(conn)
    assert saved.known_until == QUIET_END - dt.timedelta(days=7)
    assert saved.model.trained_on == first.model.trained_on

    fresh = analyse_days(warehouse, [DAY_BEFORE, QUIET_END], now=saved.trained_at)
    assert fresh.model_source == "saved"
    assert fresh.model.trained_on == saved.model.trained_on
    with warehouse.connect() as conn:
        assert load_model(conn).trained_at == saved.trained_at  # not retrained
        assert conn.fetch_value("select count(*) from ops.churn_models") == 1

    due = saved.trained_at + dt.timedelta(days=MODEL_MAX_AGE_DAYS + 1)
    later = analyse_days(warehouse, [QUIET_END], now=due)
    assert later.model_source == "trained and saved"
    with warehouse.connect() as conn:
        assert load_model(conn).trained_at == due


def test_retraining_on_the_schedule_saves_a_model_the_next_daily_run_scores_with(warehouse):
    _create_mart(warehouse, _two_tenants())
    scheduled = retrain_churn_model(warehouse)
    assert scheduled.known_until == QUIET_END - dt.timedelta(days=7)
    daily = analyse_days(warehouse, [QUIET_END], now=scheduled.trained_at)
    assert daily.model_source == "saved"
    with warehouse.connect() as conn:
        assert conn.fetch_all("select distinct model_id from ops.analysed_inputs") == [
            (scheduled.model_id,)
        ]
    # A backfill of days the saved model has seen past gets a model of its own, not saved.
    backfill = analyse_days(warehouse, [QUIET_END - dt.timedelta(days=20)])
    assert backfill.model_source.startswith("trained for the range")
    with warehouse.connect() as conn:
        assert conn.fetch_value("select count(*) from ops.churn_models") == 1


# Insights and actions follow the analysis: only the tenant-days whose analysis changed.

DEMO_TENANT = "globex_churn"


def _demo_analysed(warehouse) -> dt.date:
    """The demo tenants' mart, registered, analysed on its last day; returns the day."""
    from tenantpulse.tenants.registry import add_tenant
    from test_patterns import load_demo

    history, last = load_demo()
    _create_mart(warehouse, history)
    with warehouse.connect() as conn:
        for tenant in sorted(history["tenant_id"].unique()):
            add_tenant(conn, tenant, tenant, ["stripe"])
    analyse_days(warehouse, [last])
    return last


def _revise(warehouse, day: dt.date) -> None:
    """A late revision of the demo tenant's revenue on `day` (its next sync)."""
    with warehouse.connect() as conn:
        conn.execute(
            "update analytics.tenant_daily_metrics set revenue = revenue * 3 "
            "where tenant_id = %s and date = %s",
            (DEMO_TENANT, day),
        )
    assert analyse_days(warehouse, [day]).tenant_days_analysed == 1


def test_insights_are_written_again_only_for_a_changed_analysis_without_a_new_llm_call(
    tmp_path, warehouse_url
):
    import openai

    from conftest import make_settings
    from openai_standin import OpenAIStandIn, Reply, rewording
    from tenantpulse.insights.daily import write_days
    from tenantpulse.warehouse import open_warehouse

    def reply(body, number):
        return Reply(content=rewording(body, lambda topic, draft: f"{draft}."))

    with OpenAIStandIn(reply) as standin:
        settings = make_settings(
            tmp_path,
            warehouse_url,
            OPENAI_API_KEY="test-key",
            OPENAI_BASE_URL=standin.base_url,
            TENANTPULSE_LLM_MODEL="standin-model",
        )
        warehouse = open_warehouse(settings.warehouse)
        client = openai.OpenAI(api_key="test-key", base_url=standin.base_url)
        day = _demo_analysed(warehouse)
        first = write_days(warehouse, [day], settings.llm, client)
        calls = len(standin.requests)
        again = write_days(warehouse, [day], settings.llm, client)
        calls_again = len(standin.requests)
        with warehouse.connect() as conn:
            stored = conn.fetch_all("select * from analysis.insights order by tenant_id")
        _revise(warehouse, day)
        revised = write_days(warehouse, [day], settings.llm, client)
        with warehouse.connect() as conn:
            after = conn.fetch_all("select * from analysis.insights order by tenant_id")
    assert (len(first.frame), calls) == (6, 6)
    assert again.frame.empty and again.tenant_days_unchanged == 6 and calls_again == calls
    assert list(revised.frame["tenant_id"]) == [DEMO_TENANT] and revised.tenant_days_unchanged == 5
    assert len(standin.requests) == calls + 1  # its facts changed: one new call, no other
    assert [r for r in after if r[0] != DEMO_TENANT] == [r for r in stored if r[0] != DEMO_TENANT]


def test_playbooks_are_evaluated_again_only_for_a_changed_analysis_or_playbook(
    warehouse, settings, tmp_path
):
    from tenantpulse.actions.execute import act_on_day
    from tenantpulse.actions.handlers import build_handlers
    from tenantpulse.actions.playbooks import load_playbooks

    playbooks = load_playbooks(settings.actions.playbooks_path)
    handlers = build_handlers(settings.actions, playbooks.handlers_used())
    day = _demo_analysed(warehouse)
    first = act_on_day(warehouse, playbooks, handlers, day)
    with warehouse.connect() as conn:
        ledger = conn.fetch_all("select * from ops.action_log order by 1, 2, 3, 4, 5")
    again = act_on_day(warehouse, playbooks, handlers, day)
    _revise(warehouse, day)
    revised = act_on_day(warehouse, playbooks, handlers, day)
    edited = tmp_path / "playbooks.yaml"
    edited.write_text(
        settings.actions.playbooks_path.read_text().replace(
            "cooldown_days: 14", "cooldown_days: 13"
        )
    )
    changed_playbooks = act_on_day(warehouse, load_playbooks(edited), handlers, day)
    named = act_on_day(warehouse, playbooks, handlers, day, [DEMO_TENANT, "acme_growth"])
    assert (first.tenants_evaluated, first.tenants_unchanged) == (6, 0)
    assert first.planned  # the churning tenant's rescue, at least
    assert (again.tenants_evaluated, again.tenants_unchanged) == (0, 6)
    assert again.planned == [] and again.sent == []
    assert (revised.tenants_evaluated, revised.tenants_unchanged) == (1, 5)
    assert (changed_playbooks.tenants_evaluated, changed_playbooks.tenants_unchanged) == (6, 0)
    assert named.tenants_evaluated == 2  # tenants named explicitly are always evaluated
    with warehouse.connect() as conn:
        # Evaluating again records nothing twice: the ledger's rows are the first run's.
        assert conn.fetch_all(
            "select tenant_id, playbook, action, as_of from ops.action_log order by 1, 2, 3, 4"
        ) == [row[:4] for row in ledger]


def test_the_churn_model_job_retrains_and_saves_the_model(settings, warehouse):
    import dagster as dg

    from tenantpulse.definitions import build_definitions

    _create_mart(warehouse, _two_tenants())
    job = build_definitions(settings).resolve_job_def("churn_model_job")
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert result.success
    metadata = result.asset_materializations_for_node("analysis__churn_model")[0].metadata
    with warehouse.connect() as conn:
        saved = load_model(conn)
    assert metadata["model_id"].value == saved.model_id
    assert metadata["known_until"].value == (QUIET_END - dt.timedelta(days=7)).isoformat()
    assert metadata["trained_on"].value == saved.model.trained_on

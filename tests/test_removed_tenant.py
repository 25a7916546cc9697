"""A removed tenant's data stays where it is, but from the next run on no stage after landing
analyses it, writes about it, sends it to the LLM or acts on it. The flow runs on DuckDB (the
filters are in Python, over one registry query); the registry query runs on both warehouses."""

from __future__ import annotations

import json

from conftest import SHORT_HISTORY, make_settings
from flowkit import memory_instance, run_flow_in_process, step_errors
from openai_standin import OpenAIStandIn, Reply, rewording
from tenantpulse import flow
from tenantpulse.simulator.run import assign_profile, run_simulation
from tenantpulse.tenants.registry import (
    add_tenant,
    list_tenants,
    remove_tenant,
    removed_tenant_ids,
)
from tenantpulse.warehouse import open_warehouse
from test_tenant_isolation import PLAYBOOKS as EVERY_TENANT_EVERY_DAY

KEPT, REMOVED = "keptco", "goneco"


def _flow(settings, instance) -> list:
    results = run_flow_in_process(settings, instance)
    assert all(r.success for r in results), [step_errors(r) for r in results]
    return results


def _rows_by_tenant(conn, table: str, days: list[str]) -> dict[str, int]:
    placeholders = ", ".join(["%s"] * len(days))
    return dict(
        conn.fetch_all(
            f"select tenant_id, count(*) from {table} "
            f"where cast(as_of as varchar) in ({placeholders}) group by 1",
            tuple(days),
        )
    )


def test_removed_tenants_are_the_registrys_removed_ones(warehouse):
    with warehouse.connect() as conn:
        for tenant_id in ("kept", "gone", "back"):
            add_tenant(conn, tenant_id, tenant_id, "stripe")
        remove_tenant(conn, "gone")
        remove_tenant(conn, "back")
        add_tenant(conn, "back", "back", "stripe")  # registered again: active
        assert removed_tenant_ids(conn) == {"gone"}


def test_a_removed_tenant_is_not_analysed_written_about_sent_to_the_llm_or_acted_on(
    tmp_path, monkeypatch
):
    warehouse_url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    # A playbook that fires for every analysed tenant each day, so the second flow would act on
    # the removed tenant if it were still evaluated (the default playbooks' cooldowns would hold
    # both tenants back the day after).
    playbooks = tmp_path / "playbooks.yaml"
    playbooks.write_text(EVERY_TENANT_EVERY_DAY)
    with OpenAIStandIn(lambda body, n: Reply(content=rewording(body))) as standin:
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")  # the resource reads it (dg.EnvVar)
        settings = make_settings(
            tmp_path,
            warehouse_url,
            OPENAI_API_KEY="test-key",
            OPENAI_BASE_URL=standin.base_url,
            TENANTPULSE_LLM_MODEL="standin-model",
            TENANTPULSE_LLM_MAX_RETRIES="0",
            TENANTPULSE_PLAYBOOKS=str(playbooks),
            **SHORT_HISTORY,
        )
        warehouse = open_warehouse(settings.warehouse)
        instance = memory_instance()
        with warehouse.connect() as conn:
            for tenant_id in (KEPT, REMOVED):
                add_tenant(conn, tenant_id, tenant_id, "stripe")
                assign_profile(conn, tenant_id, "churning")
        with warehouse.connect() as conn:
            tenants = list_tenants(conn)
        run_simulation(warehouse, tenants, settings.simulator, show_progress=False)
        first_flow = _flow(settings, instance)
        first_calls = list(standin.requests)
        assert _acted_on(warehouse, first_flow) == [(REMOVED,), (KEPT,)]  # goneco, keptco
        assert any(REMOVED in json.dumps(body) for body in first_calls)

        with warehouse.connect() as conn:
            remove_tenant(conn, REMOVED)
            tenants = list_tenants(conn)
        assert [t.tenant_id for t in tenants] == [KEPT]
        run_simulation(warehouse, tenants, settings.simulator, show_progress=False)
        results = _flow(settings, instance)
        later_calls = standin.requests[len(first_calls) :]

    analyse = next(r for r in results if r.dagster_run.job_name == flow.ANALYSE.job)
    tags = analyse.dagster_run.tags
    first, last = tags[flow.PARTITION_RANGE_START], tags[flow.PARTITION_RANGE_END]
    days = [d for d in flow_days(first, last)]
    assert later_calls and not any(REMOVED in json.dumps(body) for body in later_calls)
    with warehouse.connect() as conn:
        for table in ("analysis.health_scores", "analysis.churn_risk", "analysis.insights"):
            rows = _rows_by_tenant(conn, table, days)
            assert rows.get(KEPT, 0) > 0 and REMOVED not in rows, (table, rows)
        assert _acted_on(warehouse, results) == [(KEPT,)]
        # Its data is kept: the landing rows are still there.
        landed = conn.fetch_value(
            "select count(*) from landing.stripe__charges where tenant_id = %s", (REMOVED,)
        )
        assert landed > 0


def _acted_on(warehouse, results: list) -> list[tuple]:
    """The tenants whose actions the flow's act run claimed (to send them)."""
    act = next(r for r in results if r.dagster_run.job_name == flow.ACT.job)
    with warehouse.connect() as conn:
        return conn.fetch_all(
            "select distinct tenant_id from ops.action_log where claimed_by = %s order by 1",
            (act.run_id,),
        )


def flow_days(first: str, last: str) -> list[str]:
    import datetime as dt

    day, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    days = []
    while day <= end:
        days.append(day.isoformat())
        day += dt.timedelta(days=1)
    return days

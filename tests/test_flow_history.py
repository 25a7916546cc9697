"""A tenant whose history arrives after the daily marts were first built (a tenant onboarded late,
a source connected later) gets every day of it in the daily marts, while the other tenants' older
days are left as they were: the flow's own runs, in the test's process."""

from __future__ import annotations

import datetime as dt

import pytest

from conftest import SHORT_HISTORY, SHORT_HISTORY_START, make_settings
from flowkit import memory_instance, run_flow_in_process, step_errors
from rawdata import write_raw
from tenantpulse import flow
from tenantpulse.definitions import build_definitions
from tenantpulse.defs.landing import landing_run_config
from tenantpulse.flow_runs import describe_run
from tenantpulse.landing.history import (
    landed_generations,
    tenants_back_after_a_gap,
    tenants_with_new_history,
)
from tenantpulse.simulator.run import run_simulation
from tenantpulse.sources.contracts import STREAMS_BY_NAME
from tenantpulse.tenants.registry import add_tenant, get_tenant
from tenantpulse.warehouse import open_warehouse

DAILY_MARTS = ("revenue_daily", "developer_activity", "tenant_daily_metrics")


def _flow(settings, instance, until: str = "dbt") -> list:
    results = run_flow_in_process(settings, instance, until=until)
    assert all(r.success for r in results), [step_errors(r) for r in results]
    return results


def _sync(settings, tenant_ids: list[str]) -> None:
    warehouse = open_warehouse(settings.warehouse)
    with warehouse.connect() as conn:
        tenants = [get_tenant(conn, t) for t in tenant_ids]
    run_simulation(warehouse, tenants, settings.simulator, show_progress=False)


def _rows(conn, mart: str, tenant_id: str) -> list[tuple]:
    return sorted(
        conn.fetch_all(f"select * from analytics.{mart} where tenant_id = %s", (tenant_id,)),
        key=repr,
    )


def test_a_tenant_onboarded_after_the_first_build_gets_every_day_of_its_history(
    tmp_path, warehouse_url
):
    settings = make_settings(tmp_path, warehouse_url, **SHORT_HISTORY)
    warehouse = open_warehouse(settings.warehouse)
    instance = memory_instance()
    with warehouse.connect() as conn:
        add_tenant(conn, "acme", "Acme", "stripe,github")
    _sync(settings, ["acme"])
    _flow(settings, instance)
    with warehouse.connect() as conn:
        acme_before = {mart: _rows(conn, mart, "acme") for mart in DAILY_MARTS}
        add_tenant(conn, "newco", "Newco", "stripe,github")

    _sync(settings, ["newco"])  # its first sync: 28 days of history
    land, dbt = _flow(settings, instance)
    assert land.dagster_run.tags[flow.HISTORY_TENANTS_TAG] == "newco"
    assert dbt.dagster_run.tags[flow.PARTITION_RANGE_START] == SHORT_HISTORY_START
    assert "every day for newco, the others from 2026-10-29" in describe_run(dbt.dagster_run)

    with warehouse.connect() as conn:
        spine_days = conn.fetch_value(
            "select count(*) from intermediate.int_tenant_days_spined where tenant_id = 'newco'"
        )
        mart_days = conn.fetch_value(
            "select count(*) from analytics.tenant_daily_metrics where tenant_id = 'newco'"
        )
        assert spine_days >= 28 and mart_days == spine_days
        staged = conn.fetch_all(
            "select lower(currency), sum(amount) from staging.stg_stripe__charges "
            "where tenant_id = 'newco' and status = 'succeeded' group by 1"
        )
        marted = conn.fetch_all(
            "select currency, sum(gross_charged) from analytics.revenue_daily "
            "where tenant_id = 'newco' group by 1"
        )
        assert {c: float(v) for c, v in marted} == pytest.approx({c: float(v) for c, v in staged})
        staged_prs = conn.fetch_value(
            "select count(*) from staging.stg_github__pull_requests where tenant_id = 'newco'"
        )
        opened = conn.fetch_value(
            "select sum(prs_opened) from analytics.developer_activity where tenant_id = 'newco'"
        )
        assert staged_prs > 0 and opened == staged_prs
        # The history run rebuilt newco's days only: acme's rows are the same rows.
        assert {mart: _rows(conn, mart, "acme") for mart in DAILY_MARTS} == acme_before

    # The next day's syncs bring no new history.
    _sync(settings, ["acme", "newco"])
    [land] = _flow(settings, instance, until="land")
    assert land.dagster_run.tags[flow.HISTORY_TENANTS_TAG] == ""


def test_new_history_is_a_tenants_first_rows_of_a_stream_or_a_higher_generation():
    before = {"same": 3, "refreshed": 3, "untouched": 1}
    after = {"same": 3, "refreshed": 4, "untouched": 1, "first": 0}
    merged = {"same", "refreshed", "first"}
    assert tenants_with_new_history(before, after, merged) == {"refreshed", "first"}


def test_a_source_back_after_a_gap_is_new_history_when_its_last_sync_is_before_the_recent_days():
    synced_before = {
        ("back", "stripe"): dt.datetime(2026, 11, 2, tzinfo=dt.UTC),
        ("back", "github"): dt.datetime(2026, 11, 8, tzinfo=dt.UTC),
        ("daily", "stripe"): dt.datetime(2026, 11, 6, tzinfo=dt.UTC),  # the recent days' first
        ("quiet", "stripe"): dt.datetime(2026, 11, 1, tzinfo=dt.UTC),  # nothing merged now
    }
    merged = {("back", "stripe"), ("daily", "stripe"), ("first", "stripe")}
    recent = dt.date(2026, 11, 6)
    assert tenants_back_after_a_gap(synced_before, merged, recent) == {"back"}
    assert tenants_back_after_a_gap(synced_before, {("back", "github")}, recent) == set()


def test_a_tenant_whose_syncs_paused_gets_every_day_of_the_days_it_missed(tmp_path, warehouse_url):
    """Tenant paused's Stripe syncs stop after Nov 2 (their token expired, say) and resume on
    Nov 9, bringing a charge of Nov 3, older than the recent days a run rebuilds (from Nov 6,
    three before the newest sync's day). Its land run reports it as new history, so its every day
    is rebuilt: the Nov 3 charge is in revenue_daily and every day of its spine in
    tenant_daily_metrics. Tenant steady, which synced on Nov 7, keeps to the recent days (and was
    itself new history on Nov 7, five days after its sync before)."""
    settings = make_settings(
        tmp_path, warehouse_url, **SHORT_HISTORY, TENANTPULSE_DAILY_PARTITIONS_END="2026-11-12"
    )
    warehouse = open_warehouse(settings.warehouse)
    instance = memory_instance()

    def charge(charge_id: str, day: int) -> dict:
        created = int(dt.datetime(2026, 11, day, 10, tzinfo=dt.UTC).timestamp())
        return {
            "id": charge_id,
            "customer": "cus_1",
            "amount": 1000 * day,
            "amount_captured": 1000 * day,
            "amount_refunded": 0,
            "currency": "usd",
            "status": "succeeded",
            "paid": True,
            "created": created,
            "updated": created,
        }

    def sync(day: int, charges: dict[str, list[dict]]) -> tuple:
        with warehouse.connect() as conn:
            for tenant_id, records in charges.items():
                synced = dt.datetime(2026, 11, day, tzinfo=dt.UTC)
                write_raw(conn, tenant_id, "stripe__charges", records, synced, sync_id=day)
        return _flow(settings, instance)

    with warehouse.connect() as conn:
        add_tenant(conn, "paused", "Paused", "stripe")
        add_tenant(conn, "steady", "Steady", "stripe")
    sync(2, {"paused": [charge("p1", 1)], "steady": [charge("s1", 1)]})
    land, _ = sync(7, {"steady": [charge("s6", 6)]})
    assert land.dagster_run.tags[flow.HISTORY_TENANTS_TAG] == "steady"
    land, dbt = sync(9, {"paused": [charge("p3", 3), charge("p8", 8)], "steady": [charge("s8", 8)]})
    assert land.dagster_run.tags[flow.HISTORY_TENANTS_TAG] == "paused"
    assert "every day for paused, the others from 2026-11-06" in describe_run(dbt.dagster_run)

    with warehouse.connect() as conn:
        revenue = conn.fetch_all(
            "select cast(date as varchar), gross_charged from analytics.revenue_daily"
            " where tenant_id = 'paused' order by date"
        )
        assert [(day, float(amount)) for day, amount in revenue] == [
            ("2026-11-01", 10.0),
            ("2026-11-03", 30.0),
            ("2026-11-08", 80.0),
        ]
        days = "select cast(date as varchar) from {} where tenant_id = 'paused' order by date"
        spine = conn.fetch_all(days.format("intermediate.int_tenant_days_spined"))
        assert spine == [(f"2026-11-0{day}",) for day in range(1, 9)]
        assert conn.fetch_all(days.format("analytics.tenant_daily_metrics")) == spine


def test_a_land_run_for_named_tenants_reads_and_reports_only_their_history(tmp_path, warehouse_url):
    """A batch of syncs (`new_syncs_sensor` names its tenants) reads the generations of its own
    tenants only, and still reports a tenant's first rows as new history."""
    settings = make_settings(tmp_path, warehouse_url)
    warehouse = open_warehouse(settings.warehouse)
    with warehouse.connect() as conn:
        add_tenant(conn, "acme", "Acme", "stripe,github")
        add_tenant(conn, "newco", "Newco", "stripe,github")
    _sync(settings, ["acme"])
    land_job = build_definitions(settings).resolve_job_def(flow.LAND.job)
    instance = memory_instance()

    def land(tenant_ids: list[str]) -> str:
        result = land_job.execute_in_process(
            instance=instance, run_config=landing_run_config(tenant_ids)
        )
        assert result.success
        return result.dagster_run.tags[flow.HISTORY_TENANTS_TAG]

    assert land(["acme"]) == "acme"
    _sync(settings, ["newco"])
    assert land(["newco"]) == "newco"
    with warehouse.connect() as conn:
        assert landed_generations(conn, STREAMS_BY_NAME["stripe__charges"], ["newco"]) == {
            "newco": 0  # the simulator's syncs are generation 0
        }
        assert set(landed_generations(conn, STREAMS_BY_NAME["stripe__charges"])) == {
            "acme",
            "newco",
        }
    _sync(settings, ["acme", "newco"])
    assert land(["acme", "newco"]) == ""

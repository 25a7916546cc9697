"""One tenant whose streams disagree does not stop the flow for another (issue 15.3).

Tenant `brokenco` has a pull request naming a repository its `repositories` stream does not hold
and a Shopify order whose customer is not in its `customers` stream; tenant `cleanco` is clean.
The flow runs through (land, dbt, analyse, act), `cleanco` gets the marts, analysis and actions
of a flow without `brokenco`, and `brokenco`'s two problems are WARN checks naming it.
"""

from __future__ import annotations

import dagster as dg
import pytest

from conftest import SHORT_HISTORY, make_settings, postgres_database
from flowkit import (
    failed_checks,
    memory_instance,
    run_flow_in_process,
    run_job,
    step_errors,
    tenant_rows,
)
from rawdata import raw_relation, sync_time
from tenantpulse.simulator.run import assign_profile, run_simulation
from tenantpulse.sources.contracts import STREAMS
from tenantpulse.sources.raw_table_ddl import write_raw_frame
from tenantpulse.tenants.registry import add_tenant, list_tenants
from tenantpulse.transform.dbt_cli import target_path
from tenantpulse.transform.tenant_findings import (
    EXAMPLE_CHARS,
    TenantFinding,
    describe,
    read_findings,
)
from tenantpulse.warehouse import open_warehouse
from test_dbt_marts import load_hand_made_data

BROKEN, CLEAN = "brokenco", "cleanco"
SOURCES = "stripe,github,shopify"
PROFILES = {BROKEN: "steady_growth", CLEAN: "churning"}
GHOST_REPOSITORY = "brokenco/ghost"
GHOST_CUSTOMER = 987654321
# A playbook that fires for every analysed tenant, so each flow has an action for each.
PLAYBOOKS = """
version: 1
playbooks:
  - name: every_tenant
    description: Fires for every analysed tenant.
    when:
      - health_score >= 0
    cooldown_days: 1
    actions:
      - name: note_health
        handler: log
        params:
          message: "{tenant_id}: health score {health_score} on {as_of}"
"""


def _copy_with(conn, tenant_id: str, table: str, **changes) -> None:
    """Append to a tenant's raw stream a copy of one of its simulated rows with `changes`: a row
    of the connector's exact shape that differs only where the test says."""
    frame = conn.read_frame(
        f"select * from {raw_relation(conn, tenant_id, table)} order by id limit 1"
    )
    for column, value in changes.items():
        frame[column] = [value]
    [contract] = [c for c in STREAMS if c.raw_table == table]
    write_raw_frame(conn, tenant_id, contract, frame)


def _break_streams(conn) -> None:
    """A pull request in a repository BROKEN's repositories stream does not hold, and an order of
    a customer its customers stream does not hold, both synced with its other rows."""
    max_pr = conn.fetch_value(
        f"select max(id) from {raw_relation(conn, BROKEN, 'github_pull_requests')}"
    )
    _copy_with(
        conn,
        BROKEN,
        "github_pull_requests",
        id=max_pr + 1,
        number=1,
        repository=GHOST_REPOSITORY,
        _airbyte_raw_id="ghost-pull-request",
    )
    max_order = conn.fetch_value(
        f"select max(id) from {raw_relation(conn, BROKEN, 'shopify_orders')}"
    )
    _copy_with(
        conn,
        BROKEN,
        "shopify_orders",
        id=max_order + 1,
        customer_id=GHOST_CUSTOMER,
        customer=None,
        _airbyte_raw_id="ghost-order",
    )


def _settings(home, warehouse_url):
    playbooks = home / "playbooks.yaml"
    playbooks.parent.mkdir(parents=True)
    playbooks.write_text(PLAYBOOKS)
    return make_settings(
        home,
        warehouse_url,
        TENANTPULSE_PLAYBOOKS=str(playbooks),
        # The simulator's shortest history and partitions from its first day: four flows run
        # here, and a tenant's isolation does not need the suite's 60 days.
        **SHORT_HISTORY,
    )


def _flow(settings, tenants: list[str]):
    warehouse = open_warehouse(settings.warehouse)
    with warehouse.connect() as conn:
        for tenant_id in tenants:
            add_tenant(conn, tenant_id, tenant_id, SOURCES)
            assign_profile(conn, tenant_id, PROFILES[tenant_id])
        registered = list_tenants(conn)
    run_simulation(warehouse, registered, settings.simulator, show_progress=False)
    if BROKEN in tenants:
        with warehouse.connect() as conn:
            _break_streams(conn)
    instance = memory_instance()
    results = run_flow_in_process(settings, instance)
    assert all(r.success for r in results), [step_errors(r) for r in results]
    assert [r.job_def.name for r in results] == ["land_job", "dbt_job", "analyse_job", "act_job"]
    with warehouse.connect() as conn:
        clean = tenant_rows(conn, CLEAN)
    return warehouse, instance, results, clean


@pytest.fixture
def second_warehouse_url(warehouse_url, tmp_path):
    """Another empty warehouse of the same kind as `warehouse_url`."""
    if warehouse_url.startswith("duckdb"):
        yield f"duckdb:///{tmp_path / 'second.duckdb'}"
    else:
        with postgres_database() as url:
            yield url


def test_a_tenant_whose_streams_disagree_warns_by_name_and_the_others_run_through(
    tmp_path, warehouse_url, second_warehouse_url
):
    settings = _settings(tmp_path / "both", warehouse_url)
    warehouse, instance, results, clean_with_broken = _flow(settings, [BROKEN, CLEAN])

    # brokenco's two problems are WARN checks of the staging views naming it, with its count.
    failed = failed_checks(settings, instance)
    by_model = {key.asset_key.path[-1]: (key, e) for key, e in failed.items()}
    assert len(failed) == 2, failed
    assert set(by_model) == {"stg_github__pull_requests", "stg_shopify__orders"}
    for model, column in (
        ("stg_github__pull_requests", "repository"),
        ("stg_shopify__orders", "customer_id"),
    ):
        key, evaluation = by_model[model]
        assert key.name.startswith(f"relationships_within_tenant_{model}_{column}"), key
        assert evaluation.severity == dg.AssetCheckSeverity.WARN
        assert evaluation.metadata["offending_rows_by_tenant"].value == {BROKEN: 1}
    [dbt_run] = [r for r in results if r.job_def.name == "dbt_job"]
    warnings = [
        e.message
        for e in instance.all_logs(dbt_run.run_id)
        if e.level >= 30 and e.message and BROKEN in e.message
    ]
    assert any(GHOST_REPOSITORY in m for m in warnings), warnings
    assert any(str(GHOST_CUSTOMER) in m for m in warnings), warnings

    # brokenco's rows are kept: the pull request is developer activity, the order a sale.
    with warehouse.connect() as conn:
        assert conn.fetch_all(
            "select sum(prs_opened) from analytics.developer_activity where tenant_id = %s",
            (BROKEN,),
        ) == conn.fetch_all(
            "select count(*) from staging.stg_github__pull_requests where tenant_id = %s",
            (BROKEN,),
        )
        assert conn.fetch_all(
            "select sum(shopify_orders) from analytics.revenue_daily where tenant_id = %s",
            (BROKEN,),
        ) == conn.fetch_all(
            "select count(*) from staging.stg_shopify__orders where tenant_id = %s"
            " and not coalesce(is_test, false) and not is_cancelled",
            (BROKEN,),
        )

    # cleanco: marts, analysis and actions as in a flow without brokenco.
    _, _, _, clean_alone = _flow(_settings(tmp_path / "alone", second_warehouse_url), [CLEAN])
    for table in (
        "analytics.tenant_daily_metrics",
        "analytics.developer_activity",
        "analytics.revenue_daily",
        "analysis.health_scores",
        "analysis.insights",
        "ops.action_log",
    ):
        assert clean_with_broken[table], f"{table} has no row of {CLEAN}"
    assert set(clean_with_broken) == set(clean_alone)
    assert [t for t, rows in clean_alone.items() if clean_with_broken[t] != rows] == []


def test_a_finding_names_the_first_tenants_with_their_rows_and_counts_the_others():
    findings = [TenantFinding("acme", 1, "acme/ghost")] + [
        TenantFinding(f"t{i:02d}", i, None) for i in range(2, 13)
    ]
    assert describe(findings) == (
        "acme: 1 row (e.g. 'acme/ghost'); t02: 2 rows; t03: 3 rows; t04: 4 rows; t05: 5 rows; "
        "t06: 6 rows; t07: 7 rows; t08: 8 rows; t09: 9 rows; t10: 10 rows; and 2 more tenants"
    )


def test_a_dbt_error_still_fails_the_views_with_dbts_message_after_naming_the_findings(
    settings, warehouse
):
    """A value staging cannot cast (written straight to landing, past its validation) makes dbt
    fail: the run fails with dbt's error, not with a missing table of failures from the test
    that could not run; the finding reported before it still names its tenant."""
    load_hand_made_data(warehouse)
    with warehouse.connect() as conn:
        conn.execute(
            "insert into landing.google_analytics__website_overview (tenant_id, property_id,"
            " date, sessions, _airbyte_raw_id, _airbyte_extracted_at)"
            " values ('hand', 'p1', '(other)', 1, 'raw-ga', %s)",
            (sync_time(7),),
        )
        conn.execute(
            "insert into landing.stripe__refunds (tenant_id, id, charge, amount, created,"
            " _airbyte_raw_id, _airbyte_extracted_at) values ('hand', 're_x', 'ch_gone', 1,"
            " 1793923200, 'raw-re', %s)",
            (sync_time(7),),
        )
    # A day's partition, as every dbt_job run the flow launches has one (a range).
    day = settings.daily_partitions_end.isoformat()
    instance = memory_instance()
    result = run_job(settings, instance, "dbt_job", partition_key=day)
    assert not result.success
    assert "dbt build" in step_errors(result) and "does not exist" not in step_errors(result)
    # The failed run's own target folder is kept for whoever looks into it, and its log says where.
    [kept] = target_path(settings.warehouse).glob(f"dbt_models-{result.run_id[:7]}-*")
    assert (kept / "dbt.log").exists()
    messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert f"dbt's files of this run (compiled SQL, logs): {kept}" in messages
    checks = [
        e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.event_specific_data.passed
    ]
    [finding] = [c for c in checks if c.severity == dg.AssetCheckSeverity.WARN]
    assert finding.asset_key == dg.AssetKey(["staging", "stg_stripe__refunds"])
    assert finding.metadata["offending_rows_by_tenant"].value == {"hand": 1}
    assert finding.metadata["example_by_tenant"].value == {"hand": "ch_gone"}


def test_the_stored_findings_are_read_per_tenant_with_a_short_example(warehouse):
    with warehouse.connect() as conn:
        conn.ensure_schema("test_failures")
        conn.execute(
            "create table test_failures.some_test"
            " (tenant_id varchar, offending_rows bigint, example varchar)"
        )
        conn.execute(
            "insert into test_failures.some_test values ('b', 2, %s), ('a', 1, null)",
            ("x" * 5000,),
        )
        assert read_findings(conn, "test_failures", "some_test") == [
            TenantFinding("a", 1, None),
            TenantFinding("b", 2, "x" * EXAMPLE_CHARS),
        ]

"""Airbyte mode against a local stand-in of the Airbyte API (standins/airbyte_api.py): the real
dagster-airbyte client, the sync step, the jobs sensor, the history and landing after a sync."""

import datetime as dt

import dagster as dg
import pytest

from conftest import make_settings
from flowkit import land, run_job, step_errors
from rawdata import has_raw, raw_relation
from tenantpulse.airbyte.connections import connections_by_tenant, tenant_connection
from tenantpulse.airbyte.jobs_feed import OVERLAP, JobsCursor, newly_finished
from tenantpulse.config import AIRBYTE_CLIENT_SECRET, SettingsError, load_settings
from tenantpulse.definitions import build_definitions
from tenantpulse.defs.airbyte import airbyte_workspace, build_jobs_sensor
from tenantpulse.defs.resources import WarehouseResource
from tenantpulse.flow_runs import dagster_instance
from tenantpulse.standins.airbyte_api import AirbyteStandIn, JobPlan
from tenantpulse.tenants.registry import add_tenant
from tenantpulse.warehouse import open_warehouse

SECRET = "test-secret-not-real"
ERROR = "source: Stripe API returned 401: Invalid API Key provided"


def connection(namespace="user_acme", prefix="stripe_", **fields):
    return {
        "connectionId": "c-1",
        "name": "n",
        "status": "active",
        "namespaceDefinition": "custom_format",
        "namespaceFormat": namespace,
        "prefix": prefix,
    } | fields


def test_connections_are_mapped_to_tenants_by_namespace_and_prefix():
    assert tenant_connection(connection()).tenant_id == "acme"
    assert tenant_connection(connection(prefix="google_analytics_")).source == "google_analytics"
    for not_ours in [
        connection(namespace="public"),  # another namespace
        connection(namespace="user_Bad-Id"),  # not a tenant id
        connection(prefix="hubspot_"),  # not one of our sources
        connection(prefix="stripe"),  # no separator: tables would be stripecharges
        connection(status="inactive"),
        connection(namespaceDefinition="destination"),
    ]:
        assert tenant_connection(not_ours) is None, not_ours
    by_tenant = connections_by_tenant(
        [
            connection(connectionId="c-2", prefix="github_"),
            connection(connectionId="c-1"),
            connection(connectionId="c-3", namespace="user_globex"),
        ]
    )
    assert {t: [(c.source, c.connection_id) for c in cs] for t, cs in by_tenant.items()} == {
        "acme": [("github", "c-2"), ("stripe", "c-1")],
        "globex": [("stripe", "c-3")],
    }


def test_jobs_cursor_hands_on_each_finished_job_once_even_when_jobs_finish_out_of_order():
    t0 = dt.datetime(2026, 11, 2, 3, 0, tzinfo=dt.UTC)

    def job(job_id, status, minutes):
        at = (t0 + dt.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"jobId": job_id, "status": status, "startTime": at, "lastUpdatedAt": at}

    first, cursor = newly_finished(
        [job(7, "succeeded", 1), job(5, "running", 1), job(6, "failed", 2)], JobsCursor(t0)
    )
    assert [j["jobId"] for j in first] == [7, 6]
    assert cursor.updated_after == t0 + dt.timedelta(minutes=2)
    # Job 5 finishes later; the next listing (from cursor - OVERLAP) shows 6 and 7 again.
    again, cursor = newly_finished(
        [job(7, "succeeded", 1), job(6, "failed", 2), job(5, "succeeded", 3)],
        JobsCursor.from_json(cursor.to_json()),
    )
    assert [j["jobId"] for j in again] == [5]
    later, _ = newly_finished([job(8, "succeeded", 3 + OVERLAP.seconds // 60 + 5)], cursor)
    assert [j["jobId"] for j in later] == [8]
    assert newly_finished([], cursor) == ([], cursor)


def test_airbyte_settings_need_a_workspace_and_both_credentials(tmp_path):
    base = {"TENANTPULSE_HOME": str(tmp_path)}
    assert load_settings(base).airbyte is None
    airbyte = load_settings(
        base
        | {
            "TENANTPULSE_AIRBYTE_URL": "http://airbyte.internal:8000/",
            "TENANTPULSE_AIRBYTE_WORKSPACE_ID": "ws-1",
            "TENANTPULSE_AIRBYTE_CLIENT_ID": "id",
            AIRBYTE_CLIENT_SECRET: "very-secret",
        }
    ).airbyte
    assert airbyte.rest_api_base_url == "http://airbyte.internal:8000/api/public/v1"
    assert airbyte.configuration_api_base_url == "http://airbyte.internal:8000/api/v1"
    assert (airbyte.poll_timeout_seconds, airbyte.poll_interval_seconds) == (3600.0, 10.0)
    assert airbyte.jobs_interval_seconds == 60
    assert "very-secret" not in repr(airbyte)
    for env, named in [
        ({"TENANTPULSE_AIRBYTE_URL": "airbyte:8000"}, "TENANTPULSE_AIRBYTE_URL"),
        ({"TENANTPULSE_AIRBYTE_URL": "http://a:8000"}, "TENANTPULSE_AIRBYTE_WORKSPACE_ID"),
        (
            {
                "TENANTPULSE_AIRBYTE_URL": "http://a:8000",
                "TENANTPULSE_AIRBYTE_WORKSPACE_ID": "ws",
                "TENANTPULSE_AIRBYTE_CLIENT_ID": "id",
            },
            AIRBYTE_CLIENT_SECRET,
        ),
        (
            {
                "TENANTPULSE_AIRBYTE_URL": "http://a:8000",
                "TENANTPULSE_AIRBYTE_WORKSPACE_ID": "ws",
                "TENANTPULSE_AIRBYTE_POLL_TIMEOUT_SECONDS": "0",
            },
            "TENANTPULSE_AIRBYTE_POLL_TIMEOUT_SECONDS",
        ),
        (
            {
                "TENANTPULSE_AIRBYTE_URL": "http://a:8000",
                "TENANTPULSE_AIRBYTE_WORKSPACE_ID": "ws",
                "TENANTPULSE_AIRBYTE_JOBS_INTERVAL_SECONDS": "4",
            },
            "TENANTPULSE_AIRBYTE_JOBS_INTERVAL_SECONDS",
        ),
    ]:
        with pytest.raises(SettingsError, match=named):
            load_settings(base | env)


@pytest.fixture
def standin(tmp_path, warehouse_url):
    local = make_settings(tmp_path, warehouse_url)
    with AirbyteStandIn(open_warehouse(local.warehouse), local.simulator) as server:
        yield server


def airbyte_settings(tmp_path, warehouse_url, standin, monkeypatch, **env):
    monkeypatch.setenv(AIRBYTE_CLIENT_SECRET, SECRET)  # the resource reads it at run time
    return make_settings(
        tmp_path,
        warehouse_url,
        TENANTPULSE_AIRBYTE_URL=standin.url,
        TENANTPULSE_AIRBYTE_WORKSPACE_ID=standin.workspace_id,
        TENANTPULSE_AIRBYTE_CLIENT_ID=standin.client_id,
        TENANTPULSE_AIRBYTE_CLIENT_SECRET=SECRET,
        TENANTPULSE_AIRBYTE_POLL_INTERVAL_SECONDS="0.05",
        **env,
    )


def history(warehouse):
    with warehouse.connect() as conn:
        return conn.fetch_all(
            "select tenant_id, source, job_id, status, records > 0, error "
            "from ops.airbyte_sync_history order by tenant_id, source, job_id"
        )


def sync(settings, instance, tenant_ids=None) -> dg.ExecuteInProcessResult:
    """The `airbyte_sync_job` over the tenants' partitions (every active tenant by default), in
    one run, as `tenantpulse run` launches it."""
    from tenantpulse.defs.partitions import partition_ranges
    from tenantpulse.defs.tenants import sync_tenant_partitions
    from tenantpulse.tenants.registry import list_tenants

    with open_warehouse(settings.warehouse).connect() as conn:
        registered = [t.tenant_id for t in list_tenants(conn)]
    sync_tenant_partitions(instance, registered)
    ordered = list(instance.get_dynamic_partitions("tenants"))
    [(first, last)] = partition_ranges(ordered, tenant_ids or registered)
    tags = {
        "dagster/asset_partition_range_start": first,
        "dagster/asset_partition_range_end": last,
    }
    return run_job(settings, instance, "airbyte_sync_job", tags=tags)


def test_airbyte_mode_syncs_one_tenant_through_the_standin_and_lands_its_rows(
    tmp_path, warehouse_url, standin, monkeypatch
):
    settings = airbyte_settings(tmp_path, warehouse_url, standin, monkeypatch)
    warehouse = open_warehouse(settings.warehouse)
    with warehouse.connect() as conn:
        add_tenant(conn, "acme", "Acme", "stripe")
        add_tenant(conn, "globex", "Globex", "stripe")
    acme = standin.add_connection("acme", "stripe")
    standin.add_connection("globex", "stripe")
    instance = dagster_instance(settings)

    assert sync(settings, instance, ["acme"]).success
    assert land(settings, instance, ["acme"]).success
    assert history(warehouse) == [("acme", "stripe", "1001", "succeeded", True, None)]
    # Only acme's connection was synced: globex was not selected.
    assert [r for r in standin.requests if r[0] == "POST" and r[1].endswith("/jobs")] == [
        ("POST", "/api/public/v1/jobs")
    ]
    assert standin.jobs[1001].connection_id == acme
    with warehouse.connect() as conn:
        raw = conn.fetch_value(
            f"select count(*) from {raw_relation(conn, 'acme', 'stripe_charges')}"
        )
        landed = conn.fetch_value(
            "select count(*) from landing.stripe__charges where tenant_id = 'acme'"
        )
        assert not has_raw(conn, "globex", "stripe_charges")
    assert raw > 0 and landed == raw  # the first sync has one version of each charge
    charges = dg.AssetKey(["landing", "stripe__charges"])
    [landing] = instance.fetch_materializations(charges, limit=5).records
    assert landing.asset_materialization.metadata["tenants"].value == 1  # acme only
    # The sync step recorded the stream's version over all tenants.
    observed = instance.fetch_observations(dg.AssetKey(["raw", "stripe", "charges"]), limit=5)
    assert len(observed.records) == 1
    assert {r.asset_observation.metadata["tenants_with_table"].value for r in observed.records} == {
        1
    }


def test_a_failed_sync_fails_only_its_tenant_with_the_job_id_and_airbyte_error(
    tmp_path, warehouse_url, standin, monkeypatch
):
    settings = airbyte_settings(tmp_path, warehouse_url, standin, monkeypatch)
    warehouse = open_warehouse(settings.warehouse)
    with warehouse.connect() as conn:
        add_tenant(conn, "acme", "Acme", "stripe,github")
        add_tenant(conn, "broken", "Broken", "stripe")
        add_tenant(conn, "unconnected", "Unconnected", "shopify")
    standin.add_connection("acme", "stripe")
    standin.add_connection("acme", "github")
    standin.plan(standin.add_connection("broken", "stripe"), JobPlan("failed", seconds=0.2))

    instance = dagster_instance(settings)
    synced = sync(settings, instance)
    assert not synced.success and land(settings, instance).success
    error = step_errors(synced)
    failed_job = next(j for j in standin.jobs.values() if j.plan.status == "failed").job_id
    assert (
        f"broken: stripe ({standin.jobs[failed_job].connection_id}): Airbyte job {failed_job} "
        f"failed: {ERROR}" in error
    )
    assert "unconnected: no Airbyte connection writes to its schema" in error
    assert "acme" not in error
    job_of = {
        (
            standin.connections[j.connection_id].tenant_id,
            standin.connections[j.connection_id].source,
        ): str(j.job_id)
        for j in standin.jobs.values()
    }
    assert history(warehouse) == [
        ("acme", "github", job_of["acme", "github"], "succeeded", True, None),
        ("acme", "stripe", job_of["acme", "stripe"], "succeeded", True, None),
        ("broken", "stripe", str(failed_job), "failed", False, ERROR),
    ]
    with warehouse.connect() as conn:
        landed = conn.fetch_all("select distinct tenant_id from landing.stripe__charges")
    assert landed == [("acme",)]


def sync_run_events(instance):
    """The messages of the newest `airbyte_sync_job` run."""
    run = instance.get_runs(filters=dg.RunsFilter(job_name="airbyte_sync_job"), limit=1)[0]
    return [e.message for e in instance.all_logs(run.run_id)]


def test_a_running_sync_is_joined_and_a_slow_one_times_out_without_failing_others(
    tmp_path, warehouse_url, standin, monkeypatch
):
    settings = airbyte_settings(
        tmp_path, warehouse_url, standin, monkeypatch, TENANTPULSE_AIRBYTE_POLL_TIMEOUT_SECONDS="3"
    )
    warehouse = open_warehouse(settings.warehouse)
    with warehouse.connect() as conn:
        add_tenant(conn, "acme", "Acme", "stripe")
        add_tenant(conn, "raced", "Raced", "stripe")
        add_tenant(conn, "slow", "Slow", "stripe")
    acme = standin.add_connection("acme", "stripe")
    raced = standin.add_connection("raced", "stripe")
    slow = standin.add_connection("slow", "stripe")
    standin.plan(slow, JobPlan(seconds=30))
    scheduled = standin.start_scheduled_sync(acme, JobPlan(polls=2))
    # Airbyte's scheduler starts raced's sync between the client's look and its start: a 409.
    standin.conflicts.add(raced)
    instance = dagster_instance(settings)

    synced = sync(settings, instance)

    assert not synced.success
    error = step_errors(synced)
    slow_job = next(j.job_id for j in standin.jobs.values() if j.connection_id == slow)
    assert "slow: stripe" in error and f"Airbyte job {slow_job} timed out" in error
    assert "acme" not in error and "raced" not in error
    raced_jobs = [j for j in standin.jobs.values() if j.connection_id == raced]
    assert len(raced_jobs) == 1 and raced_jobs[0].status == "succeeded"
    assert [j.job_id for j in standin.jobs.values() if j.connection_id == acme] == [scheduled]
    assert history(warehouse) == [
        ("acme", "stripe", str(scheduled), "succeeded", True, None),
        ("raced", "stripe", str(raced_jobs[0].job_id), "succeeded", True, None),
    ]  # the slow job is still running in Airbyte: the jobs sensor records it when it ends
    assert standin.jobs[slow_job].status == "running"  # not cancelled
    messages = sync_run_events(instance)
    assert any("slow failed: stripe" in m and str(slow_job) in m for m in messages)
    assert not any(SECRET in (m or "") for m in messages)


def test_jobs_sensor_records_finished_scheduled_syncs_once_for_new_syncs_sensor_to_land(
    tmp_path, warehouse_url, standin, monkeypatch
):
    settings = airbyte_settings(tmp_path, warehouse_url, standin, monkeypatch)
    warehouse = open_warehouse(settings.warehouse)
    with warehouse.connect() as conn:
        for tenant in ("acme", "broken", "globex", "initech"):
            add_tenant(conn, tenant, tenant.title(), "stripe")
    ok = [
        standin.start_scheduled_sync(standin.add_connection(t, "stripe"))
        for t in ("acme", "globex")
    ]
    failed = standin.start_scheduled_sync(
        standin.add_connection("broken", "stripe"), JobPlan("failed")
    )
    standin.add_connection("initech", "stripe")  # no sync has run
    strangers = standin.add_connection("stranger", "stripe")  # not a registered tenant
    standin.start_scheduled_sync(strangers)
    sensor = build_jobs_sensor(settings.airbyte)
    resources = {
        "warehouse": WarehouseResource(url=settings.warehouse.url),
        "airbyte_workspace": airbyte_workspace(settings.airbyte),
    }
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("tenants", ["acme", "globex", "broken", "initech"])
        # A run in progress holds a DuckDB file: the finished syncs are recorded at the next tick
        # after it. A Postgres warehouse is shared.
        busy = dg.DagsterRun(job_name="land_job", run_id="busy", status=dg.DagsterRunStatus.STARTED)
        instance.add_run(busy)
        if settings.warehouse.dialect == "duckdb":
            waited = sensor(dg.build_sensor_context(instance=instance, resources=resources))
            assert waited.skip_message == (
                "a run is using the DuckDB warehouse; will record after it"
            )
            with warehouse.connect() as conn:  # nothing recorded: no history table yet
                assert not conn.fetch_value(
                    "select count(*) from information_schema.tables"
                    " where table_schema = 'ops' and table_name = 'airbyte_sync_history'"
                )
            instance.delete_run(busy.run_id)
        result = sensor(dg.build_sensor_context(instance=instance, resources=resources))

        # Recorded for new_syncs_sensor, which lands the two tenants whose syncs succeeded.
        assert not result.run_requests
        assert new_syncs(settings, instance) == ["acme", "globex"]
        [charges] = [
            e for e in result.asset_events if e.asset_key.path[1:] == ["stripe", "charges"]
        ]
        assert charges.asset_key.to_user_string() == "raw/stripe/charges"
        assert history(warehouse) == [
            ("acme", "stripe", str(ok[0]), "succeeded", True, None),
            ("broken", "stripe", str(failed), "failed", False, ERROR),
            ("globex", "stripe", str(ok[1]), "succeeded", True, None),
        ]
        again = sensor(
            dg.build_sensor_context(instance=instance, resources=resources, cursor=result.cursor)
        )
        assert "no Airbyte sync finished" in again.skip_reason.skip_message
        assert land(settings, instance, ["acme", "globex"]).success

        later = standin.start_scheduled_sync(standin.connections_of("initech")[0])
        third = sensor(
            dg.build_sensor_context(instance=instance, resources=resources, cursor=again.cursor)
        )
        assert not third.run_requests
        assert new_syncs(settings, instance) == ["initech"]
        assert ("initech", "stripe", str(later), "succeeded", True, None) in history(warehouse)


def test_airbyte_mode_adds_the_sync_job_and_a_running_sensor_and_local_mode_none(
    tmp_path, warehouse_url, standin, monkeypatch
):
    local = build_definitions(make_settings(tmp_path, warehouse_url))
    assert "airbyte_sync_job" not in [j.name for j in local.jobs]
    assert "airbyte_jobs_sensor" not in [s.name for s in local.sensors]
    assert "airbyte_workspace" not in local.resources

    defs = build_definitions(airbyte_settings(tmp_path, warehouse_url, standin, monkeypatch))
    sync_job = defs.resolve_job_def("airbyte_sync_job")
    assert sync_job.partitions_def.name == "tenants"
    assert defs.resolve_assets_def(dg.AssetKey(["airbyte", "tenant_syncs"])).backfill_policy == (
        dg.BackfillPolicy.single_run()
    )
    added = {s.name for s in defs.sensors} - {s.name for s in local.sensors}
    assert added == {"airbyte_jobs_sensor", "airbyte_provision_sensor"}
    sensor = defs.resolve_sensor_def("airbyte_jobs_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == 60
    assert not sensor.targets  # it records syncs; new_syncs_sensor starts the flow
    often = airbyte_settings(
        tmp_path,
        warehouse_url,
        standin,
        monkeypatch,
        TENANTPULSE_AIRBYTE_JOBS_INTERVAL_SECONDS="10",
    )
    assert (
        build_definitions(often).resolve_sensor_def("airbyte_jobs_sensor").minimum_interval_seconds
        == 10
    )
    # Building the definitions asked Airbyte nothing: it need not be reachable at load.
    assert standin.requests == []


def new_syncs(settings, instance) -> list[str]:
    """The tenants new_syncs_sensor would land now."""
    defs = build_definitions(settings)
    result = defs.resolve_sensor_def("new_syncs_sensor")(
        dg.build_sensor_context(instance=instance, definitions=defs)
    )
    return [
        t for r in result.run_requests for t in r.run_config["ops"]["land"]["config"]["tenants"]
    ]

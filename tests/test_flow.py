"""The flow through Dagster: raw observed and landed for several tenants in one run, and the
chain of runs the instance launches. Real daemons follow whole flows in tests/test_demo.py (started
by the CLI, on DuckDB) and tests/test_deployment_processes.py (started by syncs alone, on
Postgres)."""

import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from conftest import make_settings
from flowkit import land, memory_instance, run_job, step_errors
from rawdata import raw_name, raw_relation, sync_time, write_raw, write_raw_rows
from tenantpulse import flow
from tenantpulse.definitions import build_definitions
from tenantpulse.defs.partitions import partition_ranges
from tenantpulse.defs.tenants import sync_tenant_partitions
from tenantpulse.flow_runs import _stop, dagster_instance, describe_run
from tenantpulse.tenants.registry import add_tenant, list_tenants, remove_tenant
from tenantpulse.warehouse import open_warehouse


def test_partition_ranges_cover_the_selection_with_fewest_runs():
    keys = ["a", "b", "c", "d", "e"]
    assert partition_ranges(keys, keys) == [("a", "e")]
    assert partition_ranges(keys, ["b", "c", "e"]) == [("b", "c"), ("e", "e")]
    with pytest.raises(ValueError, match="register the tenants first"):
        partition_ranges(keys, ["zzz"])


def test_the_local_instance_fails_a_run_that_started_and_never_ended(tmp_path):
    from conftest import make_settings

    instance = dagster_instance(make_settings(tmp_path, f"duckdb:///{tmp_path / 'w.duckdb'}"))
    assert instance.run_monitoring_enabled
    assert instance.run_monitoring_start_timeout_seconds == 180
    assert instance.run_monitoring_max_runtime_seconds == 7200


def test_flow_observes_and_lands_two_tenants_in_one_run(settings, warehouse):
    with warehouse.connect() as conn:
        add_tenant(conn, "acme", "Acme", "stripe")
        add_tenant(conn, "globex", "Globex", "stripe,github")
        add_tenant(conn, "gone", "Gone", "stripe")
        remove_tenant(conn, "gone")
        write_raw(
            conn,
            "acme",
            "stripe__charges",
            [{"id": "ch_1", "amount": 500, "updated": 1_761_955_200}],
            sync_time(1),
        )
        write_raw(
            conn,
            "globex",
            "stripe__charges",
            [{"id": "ch_1", "amount": 700, "updated": 1_761_955_200, "application_fee_amount": 3}],
            sync_time(1),
        )
        write_raw(conn, "globex", "github__pull_requests", [{"id": 11, "number": 1}], sync_time(1))
    instance = memory_instance()
    with warehouse.connect() as conn:
        sync_tenant_partitions(instance, [t.tenant_id for t in list_tenants(conn)])
    assert run_job(settings, instance, "observe_raw_job").success
    assert land(settings, instance).success
    assert set(instance.get_dynamic_partitions("tenants")) == {"acme", "globex"}
    charges = dg.AssetKey(["landing", "stripe__charges"])
    [landing] = instance.fetch_materializations(charges, limit=5).records
    metadata = landing.asset_materialization.metadata
    assert (metadata["tenants"].value, metadata["rows_landed"].value) == (2, 2)
    [observed] = instance.fetch_observations(
        dg.AssetKey(["raw", "stripe", "charges"]), limit=10
    ).records
    assert observed.asset_observation.metadata["tenants_with_table"].value == 2
    version = observed.asset_observation.tags["dagster/data_version"]

    # A new sync of one tenant is a new data version of the stream.
    with warehouse.connect() as conn:
        write_raw(
            conn,
            "acme",
            "stripe__charges",
            [{"id": "ch_2", "amount": 900, "updated": 1_761_955_201}],
            sync_time(2),
            sync_id=2,
        )
    assert run_job(settings, instance, "observe_raw_job").success
    newest = instance.fetch_observations(dg.AssetKey(["raw", "stripe", "charges"]), limit=1)
    assert newest.records[0].asset_observation.tags["dagster/data_version"] != version
    drift = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(charges, "no_schema_drift")]
    )[dg.AssetCheckKey(charges, "no_schema_drift")]
    evaluation = drift.event.dagster_event.event_specific_data
    assert evaluation.passed is False and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.metadata["extra_columns_by_tenant"].value == {
        "globex": ["application_fee_amount"]
    }
    with warehouse.connect() as conn:
        assert conn.fetch_all(
            "select tenant_id, id, amount from landing.stripe__charges order by 1"
        ) == [("acme", "ch_1", 500), ("globex", "ch_1", 700)]
        assert conn.fetch_all("select tenant_id, id from landing.github__pull_requests") == [
            ("globex", 11)
        ]


def test_a_tenant_whose_raw_table_breaks_the_contract_is_named_and_the_flow_goes_on(
    settings, warehouse
):
    with warehouse.connect() as conn:
        add_tenant(conn, "acme", "Acme", "stripe")
        add_tenant(conn, "broken", "Broken", "stripe")
        write_raw(
            conn,
            "acme",
            "stripe__refunds",
            [{"id": "re_1", "amount": 5, "updated": 1_761_955_200}],
            sync_time(1),
        )
        write_raw_rows(
            conn,
            "broken",
            "stripe_refunds",
            "amount bigint, _airbyte_raw_id varchar, _airbyte_extracted_at timestamptz",
            [(5, "raw-1", sync_time(1))],
        )
        broken = raw_name(conn, "broken", "stripe_refunds")
    instance = memory_instance()
    result = land(settings, instance)
    assert result.success, step_errors(result)  # the others' flow goes on
    run = instance.get_run_by_id(result.run_id)
    assert run.tags[flow.LANDING_FAILED_TAG] == "broken/stripe__refunds"
    assert "NOT LANDED, the others went on: broken/stripe__refunds" in describe_run(run)
    [check] = [
        c
        for c in result.get_asset_check_evaluations()
        if c.asset_key == dg.AssetKey(["landing", "stripe__refunds"])
        and c.check_name == "tenants_landed"
    ]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["errors_by_tenant"].value == {
        "broken": f"{broken} has no column id: its primary key and "
        "Airbyte metadata are required to land it"
    }
    with warehouse.connect() as conn:  # the good tenant is landed all the same
        assert conn.fetch_all("select tenant_id, id from landing.stripe__refunds") == [
            ("acme", "re_1")
        ]
    # And the playbook file's run_failure alert goes out, once.
    sensor = build_definitions(settings).get_sensor_def("landing_failed_alert_sensor")
    for _ in range(2):
        context = dg.build_sensor_context(instance=instance, cursor=None)
        sensor.evaluate_tick(context)
    with warehouse.connect() as conn:
        alerts = conn.fetch_all(
            "select playbook, action, status, payload from ops.action_log "
            "where playbook = 'landing_failed'"
        )
    [(playbook, action, status, payload)] = alerts
    assert (action, status) == ("notify_data_team", "done")
    assert "could not land: broken/stripe__refunds" in payload


def test_a_land_run_where_no_tenant_could_be_landed_fails_naming_them(settings, warehouse):
    with warehouse.connect() as conn:
        add_tenant(conn, "broken", "Broken", "stripe")
        write_raw_rows(
            conn,
            "broken",
            "stripe_refunds",
            "amount bigint, _airbyte_raw_id varchar, _airbyte_extracted_at timestamptz",
            [(5, "raw-1", sync_time(1))],
        )
        broken = raw_name(conn, "broken", "stripe_refunds")
    result = land(settings, memory_instance())
    assert not result.success
    assert (
        f"1 tenant stream(s) could not be landed: broken/stripe__refunds: {broken} has no column id"
    ) in step_errors(result)


def test_simulated_tenants_land_one_row_per_key_across_two_syncs(settings, warehouse):
    from tenantpulse.simulator.run import assign_profile, run_simulation
    from tenantpulse.sources.contracts import STREAMS
    from tenantpulse.tenants.registry import list_tenants
    from tenantpulse.warehouse import qualified, quote_ident

    with warehouse.connect() as conn:
        add_tenant(conn, "acme", "Acme", "stripe,github,shopify,google_analytics")
        add_tenant(conn, "globex", "Globex", "stripe,shopify")
        assign_profile(conn, "globex", "churning")
        tenants = list_tenants(conn)
    instance = memory_instance()
    for _ in range(2):
        run_simulation(warehouse, tenants, settings.simulator, show_progress=False)
        assert land(settings, instance).success

    with warehouse.connect() as conn:
        for tenant in tenants:
            for stream in STREAMS:
                if stream.source not in tenant.sources:
                    continue
                key = ", ".join(quote_ident(c) for c in stream.primary_key)
                raw_keys = conn.fetch_value(
                    f"select count(*) from (select distinct {key} "
                    f"from {raw_relation(conn, tenant.tenant_id, stream.raw_table)}) as k"
                )
                landed = conn.fetch_value(
                    f"select count(*) from {qualified('landing', stream.name)} where tenant_id = %s",
                    (tenant.tenant_id,),
                )
                assert landed == raw_keys, (tenant.tenant_id, stream.name)
        # The raw tables hold duplicate versions; landing holds the newest of each.
        assert conn.fetch_value(
            f"select count(*) from {raw_relation(conn, 'acme', 'stripe_subscriptions')}"
        ) > conn.fetch_value(
            "select count(*) from landing.stripe__subscriptions where tenant_id = 'acme'"
        )


def test_landing_a_selection_of_tenants_leaves_the_others_for_the_next_run(settings, warehouse):
    with warehouse.connect() as conn:
        for tenant, amount in (("acme", 500), ("globex", 700)):
            add_tenant(conn, tenant, tenant.title(), "stripe")
            write_raw(
                conn,
                tenant,
                "stripe__charges",
                [{"id": "ch_1", "amount": amount, "updated": 1_761_955_200}],
                sync_time(1),
            )
    instance = memory_instance()
    query = "select tenant_id, amount from landing.stripe__charges order by 1"

    assert land(settings, instance, ["globex"]).success
    with warehouse.connect() as conn:
        assert conn.fetch_all(query) == [("globex", 700)]

    assert land(settings, instance).success
    with warehouse.connect() as conn:
        assert conn.fetch_all(query) == [("acme", 500), ("globex", 700)]


def test_one_landing_asset_can_be_materialized_alone(settings, warehouse):
    from tenantpulse.defs.landing import land
    from tenantpulse.defs.resources import WarehouseResource

    with warehouse.connect() as conn:
        add_tenant(conn, "acme", "Acme", "stripe")
        write_raw(
            conn,
            "acme",
            "stripe__charges",
            [{"id": "ch_1", "updated": 1_761_955_200}],
            sync_time(1),
        )
        write_raw(
            conn,
            "acme",
            "stripe__refunds",
            [{"id": "re_1", "updated": 1_761_955_200}],
            sync_time(1),
        )
    charges = dg.AssetKey(["landing", "stripe__charges"])
    result = dg.materialize(
        [land],
        selection=[charges],
        resources={"warehouse": WarehouseResource(url=settings.warehouse.url)},
    )
    assert result.success
    assert [m.asset_key for m in result.get_asset_materialization_events()] == [charges]
    with warehouse.connect() as conn:
        assert conn.fetch_all("select tenant_id, id from landing.stripe__charges") == [
            ("acme", "ch_1")
        ]
        assert not conn.table_exists("landing", "stripe__refunds")


DAYS = dg.DailyPartitionsDefinition(start_date="2026-10-01", end_date="2026-11-04")
DAILY_MART = dg.AssetKey(["analytics", "revenue_daily"])
RECOMMENDATIONS = dg.AssetKey(["analysis", "recommendations"])


def _finished(job: str, run_config: dict | None = None, **tags) -> dg.DagsterRun:
    base = {flow.FLOW_TAG: "f1", flow.TRIGGER_TAG: "cli", flow.LOOKBACK_TAG: "3"}
    return dg.DagsterRun(
        job_name=job, run_id=f"run-{job}", tags=base | tags, run_config=run_config or {}
    )


def _next(instance, run):
    from tenantpulse.defs.flow import next_request

    return next_request(instance, run, [DAILY_MART], DAYS, RECOMMENDATIONS)


def test_the_next_stage_covers_every_day_on_the_first_build_then_the_days_around_the_newest_sync():
    with dg.instance_for_test() as instance:
        landed = _finished("land_job", **{flow.NEWEST_LANDED_TAG: "2026-11-02"})
        first = _next(instance, landed)
        assert first.job_name == "dbt_job" and first.run_config == {}  # tests: every row
        assert (first.tags[flow.PARTITION_RANGE_START], first.tags[flow.PARTITION_RANGE_END]) == (
            "2026-10-01",
            "2026-11-03",
        )
        assert first.tags[flow.FLOW_TAG] == "f1" and first.run_key == "f1:run-land_job:dbt_job"
        instance.report_runless_asset_event(
            dg.AssetMaterialization(DAILY_MART, partition="2026-10-05")
        )
        later = _next(instance, landed)
        assert (later.tags[flow.PARTITION_RANGE_START], later.tags[flow.PARTITION_RANGE_END]) == (
            "2026-10-30",
            "2026-11-03",
        )
        assert later.run_config == {}  # after a land of every tenant: every tenant rebuilt
        analyse = _next(instance, _finished("dbt_job", **{flow.NEWEST_LANDED_TAG: "2026-11-02"}))
        assert analyse.job_name == "analyse_job"
        assert analyse.tags[flow.PARTITION_RANGE_START] == "2026-10-30"


def test_after_a_land_of_some_tenants_only_the_tenants_that_changed_are_rebuilt():
    from tenantpulse.defs.dbt import dbt_run_config_of
    from tenantpulse.defs.landing import landing_run_config

    batch = landing_run_config(["acme", "globex"])
    with dg.instance_for_test() as instance:
        landed = _finished("land_job", batch, **{flow.NEWEST_LANDED_TAG: "2026-11-02"})
        first = _next(instance, landed)  # the first build: every tenant, every day
        assert not dbt_run_config_of(first.run_config).changed_tenants_only
        instance.report_runless_asset_event(
            dg.AssetMaterialization(DAILY_MART, partition="2026-10-05")
        )
        assert dbt_run_config_of(_next(instance, landed).run_config).changed_tenants_only


def test_the_staging_tests_check_the_syncs_landed_since_the_last_passing_dbt_run():
    """The first sync day the dbt run's staging tests check is the oldest of those whose rows
    the land runs merged since the latest finished dbt_job run started, when it succeeded: a sync
    landed late by another land run, or by one that ended as the dbt run went, is inside; rows
    of a land run that ended before it started are not (its tests saw them)."""
    from tenantpulse.defs.dbt import dbt_run_config_of

    t0 = time.time() - 1000

    def ran(job: str, start: float, end: float | None, passed=True, assets=None, **tags) -> None:
        run = _finished(job, **tags)._replace(run_id=f"{job}-{start}", asset_selection=assets)
        instance.add_run(run)
        events = [(start, "PIPELINE_START")]
        if end is not None:
            events.append((end, "PIPELINE_SUCCESS" if passed else "PIPELINE_FAILURE"))
        for moment, event in events:
            instance.report_dagster_event(
                dg.DagsterEvent(event_type_value=event, job_name=job),
                run.run_id,
                timestamp=t0 + moment,
            )

    def tested_since() -> str:
        landed = _finished("land_job", **{flow.NEWEST_LANDED_TAG: "2026-11-02"})
        return dbt_run_config_of(_next(instance, landed).run_config).test_rows_synced_since

    oldest = flow.OLDEST_SYNC_LANDED_TAG
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(DAILY_MART, partition="2026-10-05")
        )
        ran("land_job", 0, 10, **{oldest: "2026-10-20"})
        assert tested_since() == ""  # no dbt run yet: every row
        ran("land_job", 11, 15, **{oldest: "2026-10-25"})  # ended before the dbt run started
        ran("dbt_job", 20, 60)
        ran("land_job", 30, 70, **{oldest: "2026-11-01"})  # ended as the dbt run went
        ran("land_job", 80, 90, **{oldest: "2026-11-02"})
        ran("land_job", 91, 92, **{oldest: ""})  # merged nothing
        assert tested_since() == "2026-11-01"
        ran("land_job", 95, 100, passed=False)  # stopped before it said what it merged
        assert tested_since() == ""
        ran("dbt_job", 110, 150)
        assert tested_since() == "2026-11-02"  # nothing landed since: the newest day
        ran("dbt_job", 155, None)  # another flow's, still going: its tests have not passed
        assert tested_since() == "2026-11-02"
        ran("land_job", 160, 170, **{oldest: "2026-10-31"})  # a late sync
        assert tested_since() == "2026-10-31"
        # A landing asset materialized from the UI: a run of Dagster's own asset job.
        picked = {dg.AssetKey(["landing", "stripe__charges"])}
        ran("__ASSET_JOB", 171, 172, assets=picked, **{oldest: "2026-10-29"})
        ran("__ASSET_JOB", 173, 174, assets={DAILY_MART})  # not a landing
        assert tested_since() == "2026-10-29"
        ran("dbt_job", 180, 200, passed=False)
        assert tested_since() == ""  # the last run of the tests failed: every row


def test_the_flow_acts_on_the_newest_analysed_day_with_data_and_ends_after_acting():
    with dg.instance_for_test() as instance:
        analysed = _finished("analyse_job", **{flow.NEWEST_LANDED_TAG: "2026-11-02"})
        assert _next(instance, analysed) == "no analysed day to act on"
        for day in ("2026-11-01", "2026-11-02", "2026-11-03"):
            instance.report_runless_asset_event(
                dg.AssetMaterialization(RECOMMENDATIONS, partition=day)
            )
        act = _next(instance, analysed)
        assert act.job_name == "act_job" and act.partition_key == "2026-11-02"
        assert _next(instance, _finished("act_job")) == "the flow is complete"


def test_a_flow_stops_where_asked_and_after_a_sync_that_landed_nothing():
    with dg.instance_for_test() as instance:
        assert _next(instance, _finished("land_job", **{flow.UNTIL_TAG: "land"})) == (
            "stopped after land as asked"
        )
        quiet = {flow.TRIGGER_TAG: "new_syncs", flow.ROWS_LANDED_TAG: "0"}
        assert _next(instance, _finished("land_job", **quiet)) == "nothing new was landed"
        # Asked for by a person (or the daily schedule): the flow goes on without new rows.
        assert _next(instance, _finished("land_job", **{flow.ROWS_LANDED_TAG: "0"})).job_name == (
            "dbt_job"
        )


def test_new_syncs_are_landed_once_whoever_landed_them(settings, warehouse):
    import datetime as dt

    from tenantpulse.definitions import build_definitions
    from tenantpulse.sources.sync_history import SyncRecord, record_sync

    def sync(tenant, job_id):
        now = dt.datetime.now(dt.UTC)
        record = SyncRecord(
            tenant, f"sim:{tenant}:stripe", "stripe", job_id, now, now, 3, "succeeded"
        )
        with warehouse.connect() as conn:
            record_sync(conn, record)

    with warehouse.connect() as conn:
        add_tenant(conn, "acme", "Acme", "stripe")
        add_tenant(conn, "globex", "Globex", "stripe")
    sync("acme", "1")
    sync("globex", "1")
    defs = build_definitions(settings)
    sensor = defs.resolve_sensor_def("new_syncs_sensor")
    with dg.instance_for_test() as instance:

        def tick(cursor=None):
            return sensor(
                dg.build_sensor_context(instance=instance, definitions=defs, cursor=cursor)
            )

        first = tick()
        [request] = first.run_requests
        assert request.job_name == "land_job"
        assert request.run_config == {"ops": {"land": {"config": {"tenants": ["acme", "globex"]}}}}
        # Landed by the run the sensor asked for: the next tick finds nothing to do.
        assert land(settings, instance, ["acme", "globex"]).success
        second = tick(first.cursor)
        assert not second.run_requests and "no new syncs" in second.skip_reason.skip_message
        sync("globex", "2")
        [request] = tick(second.cursor).run_requests
        assert request.run_config["ops"]["land"]["config"]["tenants"] == ["globex"]
        assert flow.UNTIL_TAG not in request.tags  # by default the whole flow follows


def test_with_a_daily_flow_new_syncs_are_only_landed(tmp_path, warehouse_url):
    import datetime as dt

    from tenantpulse.sources.sync_history import SyncRecord, record_sync

    settings = make_settings(tmp_path, warehouse_url, TENANTPULSE_FLOW_AFTER_SYNCS="daily")
    with open_warehouse(settings.warehouse).connect() as conn:
        add_tenant(conn, "acme", "Acme", "stripe")
        now = dt.datetime.now(dt.UTC)
        record_sync(
            conn, SyncRecord("acme", "sim:acme:stripe", "stripe", "1", now, now, 3, "succeeded")
        )
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, definitions=defs)
        [request] = defs.resolve_sensor_def("new_syncs_sensor")(context).run_requests
        assert request.tags[flow.UNTIL_TAG] == "land"
        landed = _finished("land_job", **request.tags, **{flow.ROWS_LANDED_TAG: "3"})
        assert _next(instance, landed) == "stopped after land as asked"
        # The daily schedule's flow goes on past land.
        schedule = defs.resolve_schedule_def("daily_flow_schedule")
        tick = schedule.evaluate_tick(
            dg.build_schedule_context(
                instance=instance, scheduled_execution_time=dt.datetime(2026, 11, 2, 0, 30)
            )
        )
        [daily] = tick.run_requests
        assert flow.UNTIL_TAG not in daily.tags


@pytest.mark.parametrize("warehouse_url", ["duckdb"], indirect=True)
def test_a_daemon_the_cli_started_is_not_taken_for_a_running_one_after_it_stops(settings):
    from tenantpulse.flow_runs import daemon_is_running, running_daemon

    instance = dagster_instance(settings)
    with running_daemon(settings, instance, echo=lambda _: None):
        deadline = time.monotonic() + 180
        while not daemon_is_running(instance) and time.monotonic() < deadline:
            time.sleep(1)
        assert daemon_is_running(instance)
    assert not daemon_is_running(instance)  # the next command starts its own


def test_stopping_the_daemon_waits_for_every_process_of_its_group(tmp_path):
    """A daemon that exits at once on SIGTERM while its child (the code server) takes a second
    to shut down: stopping returns only once the child is gone too."""
    child_pid = tmp_path / "child.pid"
    child = (  # writes its pid once its SIGTERM handler is set
        "import os, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: (time.sleep(1.0), sys.exit(0)))\n"
        f"open({str(child_pid)!r} + '.tmp', 'w').write(str(os.getpid()))\n"
        f"os.rename({str(child_pid)!r} + '.tmp', {str(child_pid)!r})\n"
        "time.sleep(60)\n"
    )
    # Like dagster-daemon, which sets its own handler, the stand-in ends on SIGTERM whatever it
    # inherited: dagster's capture_interrupts maps SIGTERM to SIGINT's disposition when it
    # restores it, so a test process started with SIGINT ignored (in the background) ignores
    # SIGTERM after an in-process run, and an ignored signal is inherited through exec.
    parent = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_DFL)\n"
        f"subprocess.Popen([sys.executable, '-c', {child!r}])\n"
        "time.sleep(60)\n"
    )
    daemon = subprocess.Popen([sys.executable, "-c", parent], start_new_session=True)
    deadline = time.monotonic() + 30
    while not child_pid.exists():
        assert time.monotonic() < deadline, "the child never started"
        time.sleep(0.05)
    pid = int(child_pid.read_text())

    _stop(daemon)

    assert daemon.returncode is not None
    try:  # gone, or a zombie its new parent has not reaped
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        state = "gone"
    assert state in ("gone", "Z")

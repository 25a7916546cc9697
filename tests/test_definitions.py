"""The asset graph as a snapshot: a change to keys, dependencies or jobs shows up here in review."""

import dagster as dg

from tenantpulse.definitions import build_definitions
from tenantpulse.defs.resources import WarehouseResource
from tenantpulse.defs.tenants import tenant_partitions_sensor
from tenantpulse.sources.contracts import STREAMS
from tenantpulse.tenants.registry import add_tenant, remove_tenant


def test_graph_reads_raw_then_landing_then_staging_per_stream(settings):
    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert len(STREAMS) == 17
    assert {k for k in keys if k.split("/")[0] in ("raw", "landing", "staging")} == (
        {f"raw/{s.source}/{s.stream}" for s in STREAMS}
        | {f"landing/{s.name}" for s in STREAMS}
        | {f"staging/stg_{s.name}" for s in STREAMS}
    )
    for stream in STREAMS:
        landing = graph.get(dg.AssetKey(["landing", stream.name]))
        assert landing.parent_keys == {dg.AssetKey(["raw", stream.source, stream.stream])}
        # Not tenant-partitioned: Dagster's per-partition events cost more than landing itself.
        assert landing.partitions_def is None
        assert {c.name for c in landing.check_keys} == {
            "no_schema_drift",
            "no_quarantined_rows",
            "tenants_landed",
        }
        raw = graph.get(dg.AssetKey(["raw", stream.source, stream.stream]))
        assert raw.is_observable and raw.partitions_def is None
        staging = graph.get(dg.AssetKey(["staging", f"stg_{stream.name}"]))
        assert staging.parent_keys == {landing.key} and staging.group_name == "staging"
    assert [job.name for job in defs.jobs] == [
        "observe_raw_job",
        "land_job",
        "dbt_job",
        "analyse_job",
        "act_job",
        "churn_model_job",  # the churn model, trained on its weekly schedule
    ]
    assert defs.resolve_job_def("land_job").partitions_def is None
    daily = defs.resolve_job_def("dbt_job").partitions_def
    assert isinstance(daily, dg.DailyPartitionsDefinition)
    assert daily.start.date().isoformat() == "2026-09-01"
    # TENANTPULSE_DAILY_PARTITIONS_END=2026-11-03 (conftest): the last partition is that day.
    assert daily.get_partition_keys()[-1] == "2026-11-03"
    analysis = defs.resolve_job_def("analyse_job")
    assert analysis.partitions_def == daily
    assert {k.to_user_string() for k in analysis.asset_layer.selected_asset_keys} == {
        f"analysis/{name}"
        for name in (
            "tenant_features",
            "patterns",
            "health_scores",
            "churn_risk",
            "recommendations",
            "insights",
        )
    }
    assert graph.get(dg.AssetKey(["analysis", "tenant_features"])).parent_keys == {
        dg.AssetKey(["analytics", "tenant_daily_metrics"])
    }
    assert graph.get(dg.AssetKey(["analysis", "churn_risk"])).backfill_policy == (
        dg.BackfillPolicy.single_run()
    )
    insights = graph.get(dg.AssetKey(["analysis", "insights"]))
    assert insights.partitions_def == daily and insights.group_name == "insights"
    assert insights.parent_keys == {
        dg.AssetKey(["analysis", n])
        for n in ("patterns", "health_scores", "churn_risk", "recommendations")
    }
    # No key, no LLM: the deterministic writer needs no openai resource.
    assert "openai" not in defs.resources


def test_every_job_runs_its_steps_in_the_runs_own_process_on_both_warehouses(settings):
    defs = build_definitions(settings)
    jobs = [job.name for job in defs.resolve_all_job_defs()]
    assert {"land_job", "dbt_job", "analyse_job", "act_job"} <= set(jobs)
    assert {defs.resolve_job_def(job).executor_def.name for job in jobs} == {"in_process"}


def test_tenant_partitions_sensor_adds_and_deletes(settings, warehouse):
    assert tenant_partitions_sensor.default_status == dg.DefaultSensorStatus.RUNNING
    with warehouse.connect() as conn:
        add_tenant(conn, "acme", "Acme", "stripe")
        add_tenant(conn, "globex", "Globex", "github")
        add_tenant(conn, "gone", "Gone", "github")
        remove_tenant(conn, "gone")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("tenants", ["globex", "gone"])
        context = dg.build_sensor_context(
            instance=instance,
            resources={"warehouse": WarehouseResource(url=settings.warehouse.url)},
        )
        result = tenant_partitions_sensor(context)
        requests = {
            type(r).__name__: list(r.partition_keys) for r in result.dynamic_partitions_requests
        }
        assert requests == {
            "AddDynamicPartitionsRequest": ["acme"],
            "DeleteDynamicPartitionsRequest": ["gone"],
        }

        instance.add_dynamic_partitions("tenants", ["acme"])
        instance.delete_dynamic_partition("tenants", "gone")
        again = tenant_partitions_sensor(
            dg.build_sensor_context(
                instance=instance,
                resources={"warehouse": WarehouseResource(url=settings.warehouse.url)},
            )
        )
        assert isinstance(again, dg.SkipReason) and "up to date" in again.skip_message


def test_workspace_code_location_loads_as_dagster_dev_loads_it(tmp_path):
    """`make dev` loads workspace.yaml; this is the same load, through Dagster's own CLI."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    dagster = Path(sys.executable).with_name("dagster")
    (tmp_path / "dagster_home").mkdir()
    env = {
        **os.environ,
        "TENANTPULSE_HOME": str(tmp_path),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
    }
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Validation successful for code location tenantpulse" in done.stdout + done.stderr


def test_the_code_location_imports_openai_only_when_the_llm_writes(tmp_path):
    """Every process that loads the code location (the code server, each run) would spend about
    0.5 s importing the openai package; without OPENAI_API_KEY nothing calls it."""
    import os
    import subprocess
    import sys

    show_openai = (
        "import sys, tenantpulse.definitions as d; d.defs(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('openai', 'dagster_openai')))"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env |= {
        "TENANTPULSE_HOME": str(tmp_path),
        "TENANTPULSE_WAREHOUSE_URL": f"duckdb:///{tmp_path / 'warehouse.duckdb'}",
    }
    done = subprocess.run(
        [sys.executable, "-c", show_openai], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_every_dbt_model_is_in_the_dbt_job_and_daily_marts_read_no_mart_table(settings):
    """One run builds the views, then the daily marts over its days, then the mart tables: the
    daily marts may read views and each other only, never a mart table built after them."""
    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    models = {
        k
        for k in graph.get_all_asset_keys()
        if k.path[0] in ("staging", "intermediate", "analytics")
    }
    assert defs.resolve_job_def("dbt_job").asset_layer.selected_asset_keys == models
    daily = {k for k in models if graph.get(k).partitions_def is not None}
    views = {k for k in models if k.path[0] in ("staging", "intermediate")}
    assert {"revenue_daily", "tenant_daily_metrics"} <= {k.path[1] for k in daily}
    for key in daily:
        assert graph.get(key).parent_keys <= views | daily, key

"""What the Dagster UI tells a new user about the platform's own assets, jobs and sensors: a
description of each, kinds, column schemas, checks; and a landing that merged nothing leaves what
reads it in sync (not "Unsynced")."""

import dagster as dg
import pytest
from dagster._core.definitions.data_version import StaleStatus
from dagster._utils.test.data_versions import get_stale_status_resolver

from conftest import make_settings
from rawdata import sync_time, write_raw
from tenantpulse.analysis.checks import CHECKS
from tenantpulse.analysis.tables import ANALYSIS_COLUMNS
from tenantpulse.definitions import build_definitions
from tenantpulse.defs.analysis import ANALYSIS_ASSETS
from tenantpulse.defs.landing import land
from tenantpulse.defs.resources import WarehouseResource
from tenantpulse.defs.schemas import COLUMN_SCHEMA, DATA_VERSION_TAG
from tenantpulse.insights.store import INSIGHTS_COLUMNS
from tenantpulse.sources.contracts import STREAMS
from tenantpulse.tenants.registry import add_tenant

OWN_GROUPS = ("raw", "landing", "analysis", "insights", "actions")


def _spec(graph, key: dg.AssetKey) -> dg.AssetSpec:
    return graph.get(key).assets_def.specs_by_key[key]


def test_every_asset_of_ours_has_a_description_kinds_and_its_columns(settings):
    graph = build_definitions(settings).resolve_asset_graph()
    ours = [k for k in graph.get_all_asset_keys() if graph.get(k).group_name in OWN_GROUPS]
    assert len(ours) == 17 + 17 + 6 + 1 + 1  # analysis: its five assets and the churn model
    for key in ours:
        spec = _spec(graph, key)
        assert len(spec.description or "") > 120, key  # a paragraph, not a table name
        # The warehouse the tables are in, like dagster-dbt's assets, and what computes them.
        assert settings.warehouse.dialect in spec.kinds and len(spec.kinds) >= 2, key
    for stream in STREAMS:
        landing = _spec(graph, dg.AssetKey(["landing", stream.name]))
        columns = [c.name for c in landing.metadata[COLUMN_SCHEMA].columns]
        assert columns == ["tenant_id", *(c.name for c in stream.all_columns)]
        assert landing.metadata[COLUMN_SCHEMA].constraints.other == [
            f"primary key ({', '.join(('tenant_id', *stream.primary_key))})"
        ]
        raw = _spec(graph, dg.AssetKey(["raw", stream.source, stream.stream]))
        assert [c.name for c in raw.metadata[COLUMN_SCHEMA].columns] == list(
            c.name for c in stream.all_columns
        )
    for name, (tables, _) in ANALYSIS_ASSETS.items():
        key = dg.AssetKey(["analysis", name])
        schema = _spec(graph, key).metadata[COLUMN_SCHEMA]
        prefix = (lambda t: f"{t}.") if len(tables) > 1 else (lambda t: "")
        assert [c.name for c in schema.columns] == [
            f"{prefix(t)}{c.name}" for t in tables for c in ANALYSIS_COLUMNS[t]
        ]
        assert all(c.description for c in schema.columns)
        assert {c.name for c in graph.get(key).check_keys} == {n for n, _ in CHECKS[name]}
    assert "scikitlearn" in _spec(graph, dg.AssetKey(["analysis", "churn_risk"])).kinds
    insights = _spec(graph, dg.AssetKey(["analysis", "insights"])).metadata[COLUMN_SCHEMA]
    assert [c.name for c in insights.columns] == [c.name for c in INSIGHTS_COLUMNS]


@pytest.mark.parametrize("airbyte", [False, True], ids=["local", "airbyte"])
def test_every_job_sensor_and_schedule_says_what_it_does(tmp_path, airbyte):
    extra = {
        "TENANTPULSE_AIRBYTE_URL": "http://127.0.0.1:9",
        "TENANTPULSE_AIRBYTE_WORKSPACE_ID": "w",
    }
    settings = make_settings(
        tmp_path, f"duckdb:///{tmp_path / 'w.duckdb'}", **(extra if airbyte else {})
    )
    defs = build_definitions(settings)
    described = {
        d.name: d.description
        for d in [*defs.jobs, *defs.sensors, *defs.schedules]
        if not d.name.startswith("__")
    }
    assert {"land_job", "dbt_job", "analyse_job", "act_job", "flow_sensor"} <= set(described)
    if airbyte:
        assert {"airbyte_sync_job", "airbyte_jobs_sensor"} <= set(described)
    assert {name for name, text in described.items() if len(text or "") < 40} == set()


def _land(settings, instance, *selection):
    return dg.materialize(
        [land, *selection],
        instance=instance,
        resources={"warehouse": WarehouseResource(url=settings.warehouse.url)},
    )


def test_a_landing_that_merged_nothing_leaves_what_reads_it_in_sync(settings, warehouse):
    charges = dg.AssetKey(["landing", "stripe__charges"])

    # Stands in for dbt's staging view of the table: what matters is the landing's data version.
    @dg.asset(key=["staging", "stg_stripe__charges"], deps=[charges])
    def staging_view():
        pass

    with warehouse.connect() as conn:
        add_tenant(conn, "acme", "Acme", "stripe")
        write_raw(
            conn,
            "acme",
            "stripe__charges",
            [{"id": "ch_1", "updated": 1_761_955_200}],
            sync_time(1),
        )
    with dg.instance_for_test() as instance:

        def status() -> StaleStatus:
            resolver = get_stale_status_resolver(instance, [land, staging_view])
            return resolver.get_status(staging_view.key)

        def version() -> str:
            event = instance.get_latest_materialization_event(charges)
            return event.asset_materialization.tags[DATA_VERSION_TAG]

        assert _land(settings, instance, staging_view).success
        first = version()
        assert status() == StaleStatus.FRESH
        assert _land(settings, instance).success  # no new raw rows: nothing merged
        assert version() == first
        assert status() == StaleStatus.FRESH
        with warehouse.connect() as conn:  # the next sync: new rows to merge
            write_raw(
                conn,
                "acme",
                "stripe__charges",
                [{"id": "ch_2", "updated": 1_761_955_201}],
                sync_time(2),
            )
        assert _land(settings, instance).success
        assert version() != first
        assert status() == StaleStatus.STALE  # the UI's "Unsynced"

"""The flow in-process through Dagster: raw observed and landed for several tenants in one run."""

import dagster as dg
import pytest

from rawdata import sync_time, write_raw
from tenantpulse.pipeline import dagster_instance, partition_ranges, run_flow
from tenantpulse.tenants.registry import add_tenant, remove_tenant


def test_partition_ranges_cover_the_selection_with_fewest_runs():
    keys = ["a", "b", "c", "d", "e"]
    assert partition_ranges(keys, keys) == [("a", "e")]
    assert partition_ranges(keys, ["b", "c", "e"]) == [("b", "c"), ("e", "e")]
    with pytest.raises(ValueError, match="register the tenants first"):
        partition_ranges(keys, ["zzz"])


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
            [{"id": "ch_1", "amount": 500, "updated": 1}],
            sync_time(1),
        )
        write_raw(
            conn,
            "globex",
            "stripe__charges",
            [{"id": "ch_1", "amount": 700, "updated": 1, "application_fee_amount": 3}],
            sync_time(1),
        )
        write_raw(conn, "globex", "github__pull_requests", [{"id": 11, "number": 1}], sync_time(1))
    instance = dagster_instance(settings)
    stages = run_flow(settings, instance, echo=lambda _: None, until="land")

    assert [(s.stage, s.success, len(s.run_ids)) for s in stages] == [
        ("observe", True, 1),
        ("land", True, 1),
    ]
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
            [{"id": "ch_2", "amount": 900, "updated": 2}],
            sync_time(2),
            sync_id=2,
        )
    run_flow(settings, instance, echo=lambda _: None, until="observe")
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


def test_a_tenant_whose_raw_table_breaks_the_contract_fails_the_run_by_name(settings, warehouse):
    with warehouse.connect() as conn:
        add_tenant(conn, "acme", "Acme", "stripe")
        add_tenant(conn, "broken", "Broken", "stripe")
        write_raw(
            conn,
            "acme",
            "stripe__refunds",
            [{"id": "re_1", "amount": 5, "updated": 1}],
            sync_time(1),
        )
        conn.ensure_schema("user_broken")
        conn.execute(
            "create table user_broken.stripe_refunds (amount bigint, _airbyte_raw_id varchar, "
            "_airbyte_extracted_at timestamptz)"
        )
    stages = run_flow(settings, dagster_instance(settings), echo=lambda _: None, until="land")
    assert not stages[-1].success
    assert (
        "1 tenant stream(s) could not be landed: broken/stripe__refunds: "
        "raw table user_broken.stripe_refunds has no column id"
    ) in stages[-1].error
    with warehouse.connect() as conn:  # the good tenant is landed all the same
        assert conn.fetch_all("select tenant_id, id from landing.stripe__refunds") == [
            ("acme", "re_1")
        ]


def test_simulated_tenants_land_one_row_per_key_across_two_syncs(settings, warehouse):
    from tenantpulse.simulator.run import assign_profile, run_simulation
    from tenantpulse.sources.contracts import STREAMS, raw_schema
    from tenantpulse.tenants.registry import list_tenants
    from tenantpulse.warehouse import qualified, quote_ident

    with warehouse.connect() as conn:
        add_tenant(conn, "acme", "Acme", "stripe,github,shopify,google_analytics")
        add_tenant(conn, "globex", "Globex", "stripe,shopify")
        assign_profile(conn, "globex", "churning")
        tenants = list_tenants(conn)
    instance = dagster_instance(settings)
    for _ in range(2):
        run_simulation(warehouse, tenants, settings.simulator, show_progress=False)
        assert all(
            s.success for s in run_flow(settings, instance, echo=lambda _: None, until="land")
        )

    with warehouse.connect() as conn:
        for tenant in tenants:
            for stream in STREAMS:
                if stream.source not in tenant.sources:
                    continue
                key = ", ".join(quote_ident(c) for c in stream.primary_key)
                raw_keys = conn.fetch_value(
                    f"select count(*) from (select distinct {key} "
                    f"from {qualified(raw_schema(tenant.tenant_id), stream.raw_table)}) as k"
                )
                landed = conn.fetch_value(
                    f"select count(*) from {qualified('landing', stream.name)} where tenant_id = %s",
                    (tenant.tenant_id,),
                )
                assert landed == raw_keys, (tenant.tenant_id, stream.name)
        # The raw tables hold duplicate versions; landing holds the newest of each.
        assert conn.fetch_value(
            "select count(*) from user_acme.stripe_subscriptions"
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
                [{"id": "ch_1", "amount": amount, "updated": 1}],
                sync_time(1),
            )
    instance = dagster_instance(settings)
    query = "select tenant_id, amount from landing.stripe__charges order by 1"

    stages = run_flow(settings, instance, ["globex"], echo=lambda _: None, until="land")
    assert stages[-1].partitions == "tenants: 1" and stages[-1].success
    with warehouse.connect() as conn:
        assert conn.fetch_all(query) == [("globex", 700)]

    run_flow(settings, instance, echo=lambda _: None, until="land")
    with warehouse.connect() as conn:
        assert conn.fetch_all(query) == [("acme", 500), ("globex", 700)]


def test_one_landing_asset_can_be_materialized_alone(settings, warehouse):
    from tenantpulse.defs.landing import land
    from tenantpulse.defs.resources import WarehouseResource

    with warehouse.connect() as conn:
        add_tenant(conn, "acme", "Acme", "stripe")
        write_raw(conn, "acme", "stripe__charges", [{"id": "ch_1", "updated": 1}], sync_time(1))
        write_raw(conn, "acme", "stripe__refunds", [{"id": "re_1", "updated": 1}], sync_time(1))
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

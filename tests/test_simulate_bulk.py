"""The simulator's bulk mode: tenants sharing a few template worlds, each written under its own id
with its own names, a first sync and a next day (simulator/bulk.py, simulator/templates.py)."""

import datetime as dt

import pandas as pd
import pytest

from rawdata import has_raw, raw_columns, raw_relation
from tenantpulse.simulator import run as simulator_run
from tenantpulse.simulator.bulk import (
    assign_templates,
    register_bulk_tenants,
    run_bulk_simulation,
    template_world_id,
)
from tenantpulse.simulator.demo_tenants import DEMO_TENANTS
from tenantpulse.simulator.generator import SyncWindow, generate_sync
from tenantpulse.simulator.github import org_name
from tenantpulse.simulator.google_analytics import property_id
from tenantpulse.simulator.shopify import shop_url, vendor_name
from tenantpulse.simulator.world import stable_hash
from tenantpulse.sources.contracts import STREAMS_BY_NAME, streams_for
from tenantpulse.sources.raw_table_ddl import write_raw_frame

FIRST_SYNC = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)  # conftest's TENANTPULSE_SIM_END_DATE
TEMPLATES = 2


@pytest.fixture
def settings(tmp_path, warehouse_url):
    """The shortest history the settings allow, at a tenth of the volume: small, hand-checkable."""
    from conftest import make_settings

    return make_settings(
        tmp_path, warehouse_url, TENANTPULSE_SIM_HISTORY_DAYS="28", TENANTPULSE_SIM_VOLUME="0.1"
    )


def seven_bulk_tenants(warehouse):
    """bulk_00000..bulk_00006: the demo's six (profile, sources) pairs, then the first again."""
    with warehouse.connect() as conn:
        tenants = register_bulk_tenants(conn, 7)
        conn.commit()
    return tenants


def world_frames(world_id, profile, source, window, settings):
    sim = settings.simulator
    return generate_sync(
        world_id,
        profile,
        [source],
        window,
        seed=sim.seed,
        history_start=sim.end_date - dt.timedelta(days=sim.history_days),
        volume=sim.volume,
    )


def as_tenant(frame, world_id, tenant_id):
    """The template's frame with the template's names replaced by the tenant's, by hand."""
    pairs = [
        (org_name(world_id), org_name(tenant_id)),
        (vendor_name(world_id), vendor_name(tenant_id)),
    ]
    out = frame.copy()
    for column in out.columns:
        if column == "property_id":
            prop = property_id(stable_hash(tenant_id))
            out[column] = pd.Series([prop] * len(out), index=out.index, dtype=object)
        elif out[column].dtype == object:
            values = []
            for value in out[column]:
                for old, new in pairs:
                    value = value.replace(old, new) if isinstance(value, str) else value
                values.append(value)
            out[column] = pd.Series(values, index=out.index, dtype=object)
    return out


def raw_rows(conn, tenant_id, stream, extracted_at):
    """(the tenant's raw rows of `stream` synced at `extracted_at` in _airbyte_raw_id order, their
    column types), read back from its tables or files; None when there are none."""
    table = STREAMS_BY_NAME[stream].raw_table
    if not has_raw(conn, tenant_id, table):
        return None
    frame = conn.read_frame(
        f"select * from {raw_relation(conn, tenant_id, table)} "
        "where _airbyte_extracted_at = %s order by _airbyte_raw_id",
        (extracted_at,),
    )
    assert frame["_airbyte_raw_id"].is_unique
    return None if frame.empty else (frame, raw_columns(conn, tenant_id, table))


def written_syncs(warehouse, tenants, extracted_at):
    """(tenant_id, stream) -> its rows synced at `extracted_at`, read back as raw_rows."""
    with warehouse.connect() as conn:
        return {
            (t.tenant_id, contract.name): raw_rows(conn, t.tenant_id, contract.name, extracted_at)
            for t in tenants
            for source in t.sources
            for contract in streams_for(source)
        }


def assert_written_as(warehouse, tenant_id, stream, expected, extracted_at, written):
    """The tenant's raw rows of `stream` are exactly what the raw layer's normal writer
    (write_raw_frame) makes of the `expected` frame: same columns and types, same values."""
    reference = f"ref_{tenant_id}"
    with warehouse.connect() as conn:
        write_raw_frame(conn, reference, STREAMS_BY_NAME[stream], expected)
        conn.commit()
        want = raw_rows(conn, reference, stream, extracted_at)
    got = written[(tenant_id, stream)]
    if want is None or got is None:  # DuckDB: a sync without rows writes no file
        assert got is None and want is None and expected.empty, (tenant_id, stream)
        return
    assert got[1] == want[1], (tenant_id, stream)
    pd.testing.assert_frame_equal(got[0], want[0])


def test_a_bulk_first_sync_gives_each_tenant_its_template_world_under_its_own_id(
    settings, warehouse
):
    tenants = seven_bulk_tenants(warehouse)
    syncs = run_bulk_simulation(
        warehouse, tenants, settings.simulator, templates_per_profile=TEMPLATES, show_progress=False
    )
    expected_syncs = sum(len(d.sources) for d in DEMO_TENANTS) + len(DEMO_TENANTS[0].sources)
    assert len(syncs) == expected_syncs == 22
    assert all(s.error is None and s.sync_number == 1 for s in syncs)
    assert {s.extracted_at for s in syncs} == {FIRST_SYNC}
    with warehouse.connect() as conn:
        worlds = dict(conn.fetch_all("select tenant_id, world_id from ops.simulator_templates"))
        history = conn.fetch_all(
            "select tenant_id, source, job_id, status, records from ops.airbyte_sync_history"
        )
        state = conn.fetch_all("select tenant_id, source, sync_number from ops.simulator_state")
    assert len(worlds) == 7
    for i, tenant in enumerate(tenants):
        demo = DEMO_TENANTS[i % 6]
        index = stable_hash(tenant.tenant_id) % TEMPLATES
        assert worlds[tenant.tenant_id] == template_world_id(demo.profile, index)
        assert tenant.tenant_id == f"bulk_{i:05d}" and set(tenant.sources) == set(demo.sources)
    by_sync = {(s.tenant_id, s.source): s for s in syncs}
    assert sorted((t, s, j, st, n) for t, s, j, st, n in history) == sorted(
        (t, s, "sim-1", "succeeded", sync.records) for (t, s), sync in by_sync.items()
    )
    assert sorted(state) == sorted((t, s, 1) for t, s in by_sync)

    written = written_syncs(warehouse, tenants, FIRST_SYNC)
    window = SyncWindow(1, FIRST_SYNC, None)
    for i, tenant in enumerate(tenants):
        demo = DEMO_TENANTS[i % 6]
        world_id = worlds[tenant.tenant_id]
        for source in tenant.sources:
            # The normal simulator's frames of a tenant of this profile: same columns and types.
            normal = world_frames(tenant.tenant_id, demo.profile, source, window, settings)
            template = world_frames(world_id, demo.profile, source, window, settings)
            rows = 0
            for contract in streams_for(source):
                expected = as_tenant(template[contract.name], world_id, tenant.tenant_id)
                reference = normal[contract.name]
                assert list(expected.columns) == list(reference.columns), contract.name
                assert list(expected.dtypes) == list(reference.dtypes), contract.name
                assert_written_as(
                    warehouse, tenant.tenant_id, contract.name, expected, FIRST_SYNC, written
                )
                rows += len(expected)
                if written[(tenant.tenant_id, contract.name)] is not None:
                    frame = written[(tenant.tenant_id, contract.name)][0]
                    text = frame.astype(str)
                    assert not text.apply(lambda c: c.str.contains("template")).any().any()
            assert by_sync[(tenant.tenant_id, source)].records == rows
        if "github" in tenant.sources:
            repos = written[(tenant.tenant_id, "github__repositories")][0]
            assert repos["full_name"].str.startswith(org_name(tenant.tenant_id) + "/").all()
        if "shopify" in tenant.sources:
            orders = written[(tenant.tenant_id, "shopify__orders")][0]
            assert set(orders["shop_url"]) == {shop_url(tenant.tenant_id)}
        if "google_analytics" in tenant.sources:
            overview = written[(tenant.tenant_id, "google_analytics__website_overview")][0]
            assert set(overview["property_id"]) == {property_id(stable_hash(tenant.tenant_id))}
    # bulk_00000 and bulk_00006 share a profile: the same template when their ids hash alike.
    same = worlds["bulk_00000"] == worlds["bulk_00006"]
    charges = [written[(t, "stripe__charges")][0] for t in ("bulk_00000", "bulk_00006")]
    assert charges[0].equals(charges[1]) == same


def test_the_next_day_after_a_bulk_first_sync_adds_one_day_for_every_tenant(settings, warehouse):
    tenants = seven_bulk_tenants(warehouse)
    run_bulk_simulation(
        warehouse, tenants, settings.simulator, templates_per_profile=TEMPLATES, show_progress=False
    )
    first = {
        key: 0 if rows is None else len(rows[0])
        for key, rows in written_syncs(warehouse, tenants, FIRST_SYNC).items()
    }
    # The next day, as `tenantpulse simulate` runs it.
    syncs = simulator_run.run_simulation(
        warehouse, tenants, settings.simulator, show_progress=False
    )
    next_day = FIRST_SYNC + dt.timedelta(days=1)
    assert len(syncs) == 22
    assert all(s.error is None and s.sync_number == 2 and s.extracted_at == next_day for s in syncs)
    with warehouse.connect() as conn:
        worlds = dict(conn.fetch_all("select tenant_id, world_id from ops.simulator_templates"))
        jobs = conn.fetch_all(
            "select job_id, count(*) from ops.airbyte_sync_history group by job_id order by 1"
        )
    assert jobs == [("sim-1", 22), ("sim-2", 22)]
    written = written_syncs(warehouse, tenants, next_day)
    window = SyncWindow(2, next_day, FIRST_SYNC)
    profiles = {t.tenant_id: DEMO_TENANTS[i % 6].profile for i, t in enumerate(tenants)}
    per_tenant, per_sync = {}, {}
    for (tenant_id, stream), rows in written.items():
        # Only the new day's rows: one day of the template's world, under the tenant's names.
        source = stream.split("__")[0]
        world_id = worlds[tenant_id]
        template = world_frames(world_id, profiles[tenant_id], source, window, settings)[stream]
        expected = as_tenant(template, world_id, tenant_id)
        assert_written_as(warehouse, tenant_id, stream, expected, next_day, written)
        per_tenant[tenant_id] = per_tenant.get(tenant_id, 0) + len(expected)
        per_sync[(tenant_id, source)] = per_sync.get((tenant_id, source), 0) + len(expected)
        assert len(expected) < first[(tenant_id, stream)] or first[(tenant_id, stream)] < 10
        if source == "stripe" and rows is not None:  # cursors: epoch seconds, changed that day
            updated = rows[0]["updated"].astype("int64")
            assert (updated > FIRST_SYNC.timestamp()).all() and (
                updated <= next_day.timestamp()
            ).all()
    assert per_sync == {(s.tenant_id, s.source): s.records for s in syncs}
    assert set(per_tenant) == {t.tenant_id for t in tenants}
    assert all(0 < rows < 1_000 for rows in per_tenant.values()), per_tenant


def test_a_tenant_already_simulated_keeps_its_own_world(settings, warehouse):
    with warehouse.connect() as conn:
        [tenant] = register_bulk_tenants(conn, 1)
        conn.commit()
    simulator_run.run_simulation(warehouse, [tenant], settings.simulator, show_progress=False)
    with warehouse.connect() as conn:
        assert assign_templates(conn, [tenant]) == 0
        assert conn.fetch_all("select * from ops.simulator_templates") == []
        with pytest.raises(ValueError, match="templates_per_profile must be 1-100"):
            assign_templates(conn, [tenant], 0)


def test_a_failing_sync_among_its_templates_tenants_fails_alone(settings, warehouse):
    # One template a profile: bulk_00000, 00005, 00006, 00011 and 00012 share steady_growth's
    # Stripe sync (one generation, one batch); bulk_00006's charges cannot be written.
    with warehouse.connect() as conn:
        tenants = register_bulk_tenants(conn, 13)
        if conn.dialect == "postgres":  # its table exists with an id column of the wrong type
            conn.ensure_schema("user_bulk_00006")
            conn.execute(
                "create table user_bulk_00006.stripe_charges (id bigint, _airbyte_raw_id varchar)"
            )
        else:  # a file stands where its folder of files goes
            (conn.raw_path / "user_bulk_00006").mkdir(parents=True)
            (conn.raw_path / "user_bulk_00006" / "stripe_charges").write_text("not a folder")
    syncs = run_bulk_simulation(
        warehouse, tenants, settings.simulator, templates_per_profile=1, show_progress=False
    )
    failed = [(s.tenant_id, s.source) for s in syncs if s.error]
    assert failed == [("bulk_00006", "stripe")]
    sharing = ["bulk_00000", "bulk_00005", "bulk_00011", "bulk_00012"]
    stripe = {s.tenant_id: s for s in syncs if s.source == "stripe"}
    assert len({stripe[t].records for t in sharing}) == 1 and stripe["bulk_00000"].records > 0
    with warehouse.connect() as conn:
        history = conn.fetch_all(
            "select tenant_id, source, job_id, status from ops.airbyte_sync_history "
            "where status = 'failed'"
        )
        assert history == [("bulk_00006", "stripe", "sim-1-failed", "failed")]
        assert conn.fetch_value("select count(*) from ops.airbyte_sync_history") == len(syncs)
        state = {
            tuple(r) for r in conn.fetch_all("select tenant_id, source from ops.simulator_state")
        }
        assert state == {(s.tenant_id, s.source) for s in syncs} - {("bulk_00006", "stripe")}
        # The failed sync was rolled back whole; the others of its batch were written again.
        assert not has_raw(conn, "bulk_00006", "stripe_customers")
        assert has_raw(conn, "bulk_00006", "github_repositories")
        for tenant_id in sharing:
            charges = raw_relation(conn, tenant_id, "stripe_charges")
            written = conn.fetch_value(f"select count(*) from {charges}")
            assert written == stripe[tenant_id].rows_by_stream["stripe__charges"] > 0


@pytest.mark.postgres
def test_bulk_workers_on_postgres_write_every_sync_once(tmp_path, postgres_url):
    from conftest import make_settings
    from tenantpulse.warehouse import open_warehouse

    settings = make_settings(
        tmp_path, postgres_url, TENANTPULSE_SIM_HISTORY_DAYS="28", TENANTPULSE_SIM_VOLUME="0.1"
    )
    warehouse = open_warehouse(settings.warehouse)
    tenants = seven_bulk_tenants(warehouse)
    syncs = run_bulk_simulation(
        warehouse, tenants, settings.simulator, workers=2, show_progress=False
    )
    assert len(syncs) == 22 and not [s for s in syncs if s.error]
    with warehouse.connect() as conn:
        for sync in syncs:
            stored = sum(
                conn.fetch_value(f"select count(*) from user_{sync.tenant_id}.{c.raw_table}")
                if conn.table_exists(f"user_{sync.tenant_id}", c.raw_table)
                else 0
                for c in streams_for(sync.source)
            )
            assert stored == sync.records > 0, sync
        assert conn.fetch_value("select count(*) from ops.airbyte_sync_history") == 22
        assert conn.fetch_value("select count(*) from ops.simulator_state") == 22


def test_the_cli_registers_bulk_tenants_and_simulates_them_then_their_next_day(
    tmp_path, monkeypatch
):
    from click.testing import CliRunner

    from tenantpulse.cli import main
    from tenantpulse.warehouse.duckdb_warehouse import DuckDBWarehouse

    for name, value in {
        "TENANTPULSE_HOME": str(tmp_path / "home"),
        "TENANTPULSE_WAREHOUSE_URL": f"duckdb:///{tmp_path / 'cli.duckdb'}",
        "TENANTPULSE_SIM_END_DATE": "2026-11-01",
        "TENANTPULSE_SIM_HISTORY_DAYS": "28",
        "TENANTPULSE_SIM_VOLUME": "0.1",
    }.items():
        monkeypatch.setenv(name, value)
    first = CliRunner().invoke(
        main, ["simulate", "--add-bulk-tenants", "3", "--templates", "1"], catch_exceptions=False
    )
    assert first.exit_code == 0, first.output
    assert "3 bulk tenants registered" in first.output
    assert "3 tenants given a template world" in first.output
    assert "[simulate] 12 syncs" in first.output  # three tenants with all four sources
    second = CliRunner().invoke(main, ["simulate"], catch_exceptions=False)
    assert second.exit_code == 0 and "[simulate] 12 syncs" in second.output, second.output
    with DuckDBWarehouse(tmp_path / "cli.duckdb").connect() as conn:
        assert conn.fetch_all(
            "select tenant_id, world_id from ops.simulator_templates order by 1"
        ) == [
            ("bulk_00000", "template_steady_growth_00"),
            ("bulk_00001", "template_churning_00"),
            ("bulk_00002", "template_seasonal_00"),
        ]
        assert conn.fetch_all(
            "select sync_number, count(*) from ops.simulator_state group by 1 order by 1"
        ) == [(2, 12)]

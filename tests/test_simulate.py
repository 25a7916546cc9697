"""The simulator runner: raw tables in Airbyte's shape, sync windows, sync history, failures."""

import datetime as dt
import json

from rawdata import has_raw, raw_columns, raw_relation
from tenantpulse.simulator.run import assign_profile, run_simulation
from tenantpulse.sources.contracts import STREAMS, streams_for
from tenantpulse.tenants.registry import add_tenant, list_tenants

# Type names per logical type, on each dialect (information_schema's; DuckDB's in Parquet files)
EXPECTED_TYPES = {
    "duckdb": {
        "bigint": "bigint",
        "decimal": "decimal(38,9)",
        "varchar": "varchar",
        "timestamptz": "timestamp with time zone",
        "date": "date",
        "boolean": "boolean",
        "json": "json",
    },
    "postgres": {
        "bigint": "bigint",
        "decimal": "numeric",
        "varchar": "character varying",
        "timestamptz": "timestamp with time zone",
        "date": "date",
        "boolean": "boolean",
        "json": "jsonb",
    },
}


def register(warehouse, *tenants):
    with warehouse.connect() as conn:
        for tenant_id, sources, profile in tenants:
            add_tenant(conn, tenant_id, tenant_id.title(), sources)
            assign_profile(conn, tenant_id, profile)
        return list_tenants(conn)


def test_first_sync_creates_every_raw_table_in_the_contract_shape(settings, warehouse):
    tenants = register(
        warehouse, ("acme", "stripe,github,shopify,google_analytics", "steady_growth")
    )
    [*syncs] = run_simulation(warehouse, tenants, settings.simulator, show_progress=False)
    assert {s.source for s in syncs} == {"stripe", "github", "shopify", "google_analytics"}
    assert all(s.error is None and s.sync_number == 1 for s in syncs)
    expected_types = EXPECTED_TYPES[warehouse.dialect]
    with warehouse.connect() as conn:
        for contract in STREAMS:
            columns = raw_columns(conn, "acme", contract.raw_table)
            assert list(columns) == [c.name for c in contract.all_columns], contract.name
            for column in contract.all_columns:
                assert columns[column.name] == expected_types[column.type], (contract.name, column)
        history = conn.fetch_all(
            "select source, job_id, status, records, error from ops.airbyte_sync_history order by source"
        )
        counts = {
            source: sum(
                conn.fetch_value(f"select count(*) from {raw_relation(conn, 'acme', c.raw_table)}")
                for c in streams_for(source)
            )
            for source in ("github", "google_analytics", "shopify", "stripe")
        }
    assert [(h[0], h[1], h[2], h[4]) for h in history] == [
        (source, "sim-1", "succeeded", None)
        for source in ("github", "google_analytics", "shopify", "stripe")
    ]
    assert {h[0]: h[3] for h in history} == counts
    assert all(count > 0 for count in counts.values())


def test_each_run_is_the_next_day_with_new_and_updated_records(settings, warehouse):
    tenants = register(warehouse, ("acme", "stripe", "steady_growth"))
    run_simulation(warehouse, tenants, settings.simulator, show_progress=False)
    [second] = run_simulation(warehouse, tenants, settings.simulator, show_progress=False)
    first_sync = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    assert second.sync_number == 2 and second.extracted_at == first_sync + dt.timedelta(days=1)
    with warehouse.connect() as conn:
        per_sync = conn.fetch_all(
            "select _airbyte_extracted_at, count(*) "
            f"from {raw_relation(conn, 'acme', 'stripe_charges')} group by 1 order by 1"
        )
        assert [row[0] for row in per_sync] == [first_sync, first_sync + dt.timedelta(days=1)]
        assert per_sync[1][1] == second.rows_by_stream["stripe__charges"] > 0
        metas = {
            json.loads(m)["sync_id"]
            for (m,) in conn.fetch_all(
                "select distinct cast(_airbyte_meta as varchar) "
                f"from {raw_relation(conn, 'acme', 'stripe_subscriptions')}"
            )
        }
        assert metas == {1, 2}
        # Updated records come again: some subscription ids appear in both syncs.
        repeated = conn.fetch_value(
            "select count(*) from (select id "
            f"from {raw_relation(conn, 'acme', 'stripe_subscriptions')} group by id "
            "having count(*) > 1) as repeated_ids"
        )
        assert repeated > 0
        state = conn.fetch_one("select sync_number, extracted_at from ops.simulator_state")
        assert state == (2, first_sync + dt.timedelta(days=1))
        # Recorded in simulated time, as Airbyte records a job: finished when its data was extracted
        # (the wall clock would claim days the data does not cover, zeros in the day spine).
        recorded = conn.fetch_all(
            "select started_at, finished_at from ops.airbyte_sync_history order by finished_at"
        )
    assert [finished for _, finished in recorded] == [
        first_sync,
        first_sync + dt.timedelta(days=1),
    ]
    assert all(started <= finished for started, finished in recorded)


def test_same_seed_gives_the_same_raw_data(tmp_path, settings, warehouse):
    from conftest import make_settings
    from tenantpulse.warehouse import open_warehouse

    other_settings = make_settings(tmp_path / "other", f"duckdb:///{tmp_path / 'other.duckdb'}")
    frames = []
    for wh, st in (
        (warehouse, settings),
        (open_warehouse(other_settings.warehouse), other_settings),
    ):
        tenants = register(wh, ("acme", "stripe", "churning"))
        run_simulation(wh, tenants, st.simulator, show_progress=False)
        with wh.connect() as conn:
            frames.append(
                conn.fetch_all(
                    "select id, amount, status, updated, _airbyte_raw_id "
                    f"from {raw_relation(conn, 'acme', 'stripe_charges')} order by id"
                )
            )
    assert frames[0] == frames[1] and len(frames[0]) > 0


def test_a_failed_sync_is_recorded_and_the_others_go_on(settings, warehouse):
    # globex's sync fails between two that succeed, all on one connection.
    tenants = register(
        warehouse,
        ("acme", "stripe", "steady_growth"),
        ("globex", "stripe", "churning"),
        ("initech", "stripe", "seasonal"),
    )
    with warehouse.connect() as conn:
        # globex's charges cannot be written: its table exists with an id column of the wrong
        # type (Postgres), a file stands where its folder of files goes (DuckDB).
        if conn.dialect == "postgres":
            conn.ensure_schema("user_globex")
            conn.execute(
                "create table user_globex.stripe_charges (id bigint, _airbyte_raw_id varchar)"
            )
        else:
            (conn.raw_path / "user_globex").mkdir(parents=True)
            (conn.raw_path / "user_globex" / "stripe_charges").write_text("not a folder")
    syncs = {
        s.tenant_id: s
        for s in run_simulation(warehouse, tenants, settings.simulator, show_progress=False)
    }
    assert syncs["globex"].error and syncs["acme"].error is None and syncs["initech"].error is None
    with warehouse.connect() as conn:
        history = dict(conn.fetch_all("select tenant_id, status from ops.airbyte_sync_history"))
        assert history == {"acme": "succeeded", "globex": "failed", "initech": "succeeded"}
        error = conn.fetch_value(
            "select error from ops.airbyte_sync_history where tenant_id = 'globex'"
        )
        assert error.startswith(syncs["globex"].error[:20])
        # The failed sync was rolled back whole: no other globex stream was written, no state
        # kept; the syncs before and after it were committed.
        state = dict(conn.fetch_all("select tenant_id, sync_number from ops.simulator_state"))
        assert state == {"acme": 1, "initech": 1}
        assert not has_raw(conn, "globex", "stripe_customers")
        for tenant in ("acme", "initech"):
            charges = raw_relation(conn, tenant, "stripe_charges")
            written = conn.fetch_value(f"select count(*) from {charges}")
            assert written == syncs[tenant].rows_by_stream["stripe__charges"] > 0


def test_contracts_use_known_types_and_their_keys_and_cursors_are_columns():
    from tenantpulse.sources.contracts import LOGICAL_TYPES

    for contract in STREAMS:
        names = contract.column_names
        assert all(c.type in LOGICAL_TYPES for c in contract.columns), contract.name
        assert set(contract.primary_key) <= set(names) and contract.cursor in names, contract.name
        assert len(set(names)) == len(names), contract.name


def test_syncs_that_reach_today_stop_at_now_so_none_lands_as_a_future_sync(tmp_path, warehouse_url):
    from conftest import make_settings
    from tenantpulse.landing.run import land_streams
    from tenantpulse.sources.contracts import STREAMS_BY_NAME
    from tenantpulse.warehouse import open_warehouse

    today = dt.datetime.now(dt.UTC).date()
    settings = make_settings(tmp_path, warehouse_url, TENANTPULSE_SIM_END_DATE=today.isoformat())
    warehouse = open_warehouse(settings.warehouse)
    tenants = register(warehouse, ("acme", "stripe", "steady_growth"))
    syncs = []
    for _ in range(3):  # `make demo` three times on one day
        before = dt.datetime.now(dt.UTC)
        [sync] = run_simulation(warehouse, tenants, settings.simulator, show_progress=False)
        syncs.append((sync.extracted_at, before, dt.datetime.now(dt.UTC)))
    assert syncs[0][0] == dt.datetime.combine(today, dt.time(), tzinfo=dt.UTC)
    for (previous, _, _), (extracted_at, before, after) in zip(syncs, syncs[1:], strict=False):
        assert previous < extracted_at and before <= extracted_at <= after
    with warehouse.connect() as conn:
        [charges] = list(land_streams(conn, [STREAMS_BY_NAME["stripe__charges"]]))
        quarantined = conn.fetch_all("select reason from landing.quarantine")
    assert charges.failures == {} and charges.rows_changed > 0
    assert not [r for (r,) in quarantined if "future" in r or "after its sync" in r], quarantined

"""Landing reads only the raw tables whose Postgres write counters moved since they were landed
(landing/changed_units.py); on DuckDB every table is read."""

import datetime as dt

import psycopg
import pytest

from conftest import make_settings
from rawdata import sync_time, write_raw
from tenantpulse.landing import run
from tenantpulse.landing.changed_units import (
    COUNTERS_OFF,
    NO_DETECTION,
    READ_ALL_ASKED,
    find_changed_units,
    save_landed_units,
)
from tenantpulse.landing.merge import FAILED, MERGED, UP_TO_DATE, land_stream
from tenantpulse.sources.contracts import STREAMS_BY_NAME
from tenantpulse.sources.sync_history import SUCCEEDED, SyncRecord, record_sync
from tenantpulse.tenants.registry import add_tenant
from tenantpulse.warehouse import open_warehouse

CHARGES = STREAMS_BY_NAME["stripe__charges"]
REFUNDS = STREAMS_BY_NAME["stripe__refunds"]
T0 = 1_761_955_200


def charge(charge_id, updated=100):
    return {"id": charge_id, "amount": 1000, "currency": "usd", "status": "succeeded",
            "created": T0, "updated": T0 + updated, "paid": True}  # fmt: skip


@pytest.fixture
def postgres(tmp_path, postgres_url):
    return open_warehouse(make_settings(tmp_path, postgres_url).warehouse)


def flush_counters(conn) -> None:
    """Commit, with this backend's write counts published at once (else within about a second)."""
    if conn.dialect == "postgres":
        conn.execute("select pg_stat_force_next_flush()")
    conn.commit()


def sync(conn, tenant_id, charge_ids, day, flush=True) -> None:
    write_raw(conn, tenant_id, "stripe__charges", [charge(c, day) for c in charge_ids],
              sync_time(day), sync_id=day)  # fmt: skip
    if flush:
        flush_counters(conn)


@pytest.fixture
def reads(monkeypatch):
    """The tenants land_streams asks land_stream to read, one list per stream landed."""
    asked = []

    def recording(conn, contract, tenant_ids):
        asked.append(sorted(tenant_ids))
        return land_stream(conn, contract, tenant_ids)

    monkeypatch.setattr(run, "land_stream", recording)
    return asked


def land(conn, contracts=(CHARGES,), **kwargs):
    """{stream: {tenant: (status, rows landed)}} of one land run."""
    return {
        s.contract.name: {o.tenant_id: (o.status, o.rows_landed) for o in s.outcomes}
        for s in run.land_streams(conn, list(contracts), **kwargs)
    }


def three_tenants(conn) -> None:
    for tenant_id in ("acme", "globex", "initech"):
        add_tenant(conn, tenant_id, tenant_id.title(), "stripe")
        sync(conn, tenant_id, [f"{tenant_id}_1"], 1)


def landed_ids(conn, tenant_id):
    rows = conn.fetch_all(
        "select id from landing.stripe__charges where tenant_id = %s order by id", (tenant_id,)
    )
    return [r[0] for r in rows]


@pytest.mark.postgres
def test_only_tables_with_new_writes_are_read_and_the_others_are_up_to_date(postgres, reads):
    with postgres.connect() as conn:
        three_tenants(conn)
        first = land(conn)  # no snapshot yet: every table is read
        assert first == {"stripe__charges": {t: (MERGED, 1) for t in ("acme", "globex", "initech")}}
        assert land(conn) == {
            "stripe__charges": {t: (UP_TO_DATE, 0) for t in first["stripe__charges"]}
        }
        sync(conn, "globex", ["globex_2"], 2)
        assert land(conn) == {
            "stripe__charges": {
                "acme": (UP_TO_DATE, 0),
                "globex": (MERGED, 1),
                "initech": (UP_TO_DATE, 0),
            }
        }
        assert landed_ids(conn, "globex") == ["globex_1", "globex_2"]
        # A forced full read opens every table again, and finds nothing new.
        forced = land(conn, read_all=True)
        assert forced == {"stripe__charges": {t: (UP_TO_DATE, 0) for t in first["stripe__charges"]}}
    assert reads == [["acme", "globex", "initech"], [], ["globex"], ["acme", "globex", "initech"]]


@pytest.mark.postgres
def test_named_tenants_are_read_only_where_they_changed_and_a_missing_table_is_reported(
    postgres, reads
):
    with postgres.connect() as conn:
        three_tenants(conn)
        write_raw(conn, "acme", "stripe__refunds", [{"id": "re_1", "updated": T0}], sync_time(1))
        flush_counters(conn)
        land(conn, (CHARGES, REFUNDS))
        sync(conn, "acme", ["acme_2"], 2)
        landed = land(conn, (CHARGES, REFUNDS), tenant_ids=["acme", "globex"])
    assert landed == {
        "stripe__charges": {"acme": (MERGED, 1), "globex": (UP_TO_DATE, 0)},
        # globex has no refunds table: it has no counters, so it is always handed to landing.
        "stripe__refunds": {"acme": (UP_TO_DATE, 0), "globex": ("no_raw_table", 0)},
    }
    assert reads[2:] == [["acme"], ["globex"]]


@pytest.mark.postgres
def test_a_table_swapped_for_one_with_the_same_counters_is_read(postgres, reads):
    """An Airbyte overwrite writes a new table and renames it over the old: same name, same row
    count, new oid."""
    with postgres.connect() as conn:
        three_tenants(conn)
        land(conn)
        conn.execute("create table user_acme.stripe_charges_tmp (like user_acme.stripe_charges)")
        conn.execute(
            "insert into user_acme.stripe_charges_tmp (id, amount, _airbyte_raw_id, "
            "_airbyte_extracted_at) values ('acme_swapped', 5, 'raw_swapped', %s)",
            (sync_time(2),),
        )
        conn.execute("drop table user_acme.stripe_charges")
        conn.execute("alter table user_acme.stripe_charges_tmp rename to stripe_charges")
        flush_counters(conn)
        inserted = conn.fetch_one(
            "select s.inserted, pg_stat_get_tuples_inserted('user_acme.stripe_charges'::regclass) "
            "from landing.raw_table_stats s where table_schema = 'user_acme'"
        )
        assert inserted == (1, 1)  # the counters alone would say nothing changed
        assert land(conn)["stripe__charges"]["acme"] == (MERGED, 1)
        # acme_1 stays landed: an overwrite's missing records are not deletions.
        assert landed_ids(conn, "acme") == ["acme_1", "acme_swapped"]
    assert reads[1] == ["acme"]


@pytest.mark.postgres
def test_after_a_stats_reset_or_a_restart_every_table_is_read(postgres, reads):
    with postgres.connect() as conn:
        three_tenants(conn)
        land(conn)
        # A restart (or crash recovery) changes the epoch the counters count from.
        conn.execute("update landing.raw_table_stats set stats_epoch = 'before the restart'")
        conn.commit()
        land(conn)
        land(conn)
        # A real reset: acme's counters go back to 0 and its next sync counts 1 again.
        conn.execute(
            "select pg_stat_reset_single_table_counters('user_acme.stripe_charges'::regclass)"
        )
        conn.commit()
        sync(conn, "acme", ["acme_2"], 2)
        assert land(conn)["stripe__charges"]["acme"] == (MERGED, 1)
    everyone = ["acme", "globex", "initech"]
    assert reads == [everyone, everyone, [], everyone]


@pytest.mark.postgres
def test_uncommitted_and_aborted_writes(postgres, postgres_url, reads):
    with postgres.connect() as conn, psycopg.connect(postgres_url) as other:
        three_tenants(conn)
        land(conn)
        insert = (
            "insert into user_globex.stripe_charges (id, amount, _airbyte_raw_id, "
            "_airbyte_extracted_at) values (%s, 5, %s, %s)"
        )
        # A write still in its transaction is neither counted nor visible: nothing to read yet.
        other.execute(insert, ("globex_open", "raw_open", sync_time(3)))
        assert land(conn)["stripe__charges"]["globex"] == (UP_TO_DATE, 0)
        other.execute("select pg_stat_force_next_flush()")
        other.commit()
        assert land(conn)["stripe__charges"]["globex"] == (MERGED, 1)
        # An aborted write is counted: the table is read once, for nothing.
        other.execute(insert, ("globex_aborted", "raw_aborted", sync_time(4)))
        other.execute("select pg_stat_force_next_flush()")
        other.rollback()
        assert land(conn)["stripe__charges"]["globex"] == (UP_TO_DATE, 0)
        land(conn)
        assert landed_ids(conn, "globex") == ["globex_1", "globex_open"]
    assert reads[1:] == [[], ["globex"], ["globex"], []]


@pytest.mark.postgres
def test_a_write_after_the_counters_were_read_is_landed_by_a_later_run(postgres):
    """The counters saved are the ones read before the rows: a write they do not count makes the
    next run read the table, whether it was landed already or not."""
    with postgres.connect() as conn:
        three_tenants(conn)
        candidates = {CHARGES.name: ["acme", "globex", "initech"]}
        found = find_changed_units(conn, [CHARGES], candidates)
        sync(conn, "acme", ["acme_2"], 2)  # between the counters and the read: landed now
        save_landed_units(
            conn, found, CHARGES, land_stream(conn, CHARGES, found.to_read[CHARGES.name])
        )
        found = find_changed_units(conn, [CHARGES], candidates)
        assert found.to_read[CHARGES.name] == ["acme"]  # read again, for nothing new
        outcomes = land_stream(conn, CHARGES, found.to_read[CHARGES.name])
        sync(conn, "globex", ["globex_2"], 2)  # after the read, before the snapshot is saved
        save_landed_units(conn, found, CHARGES, outcomes)
        found = find_changed_units(conn, [CHARGES], candidates)
        assert found.to_read[CHARGES.name] == ["globex"]
        [outcome] = land_stream(conn, CHARGES, found.to_read[CHARGES.name])
        assert (outcome.status, outcome.rows_landed) == (MERGED, 1)
        assert landed_ids(conn, "acme") == ["acme_1", "acme_2"]


@pytest.mark.postgres
def test_failed_or_quarantining_tenants_are_read_again(postgres, reads):
    with postgres.connect() as conn:
        three_tenants(conn)
        conn.execute("alter table user_globex.stripe_charges rename column id to charge_id")
        write_raw(conn, "initech", "stripe__charges", [{**charge("initech_2"), "created": T0 * 1000}],
                  sync_time(2))  # fmt: skip
        flush_counters(conn)
        first = land(conn)["stripe__charges"]
        assert first["globex"][0] == FAILED
        again = land(conn)["stripe__charges"]
        assert again["globex"][0] == FAILED
        conn.execute("alter table user_globex.stripe_charges rename column charge_id to id")
        conn.commit()
        assert land(conn)["stripe__charges"]["globex"] == (MERGED, 1)
        land(conn)
    # initech's quarantined row: read once more (nothing new), then left alone.
    assert reads == [["acme", "globex", "initech"], ["globex", "initech"], ["globex"], []]


@pytest.mark.postgres
def test_a_sync_recorded_within_the_flush_margin_is_read_whatever_the_counters(postgres):
    with postgres.connect() as conn:
        three_tenants(conn)
        land(conn)
        now = dt.datetime.now(dt.UTC)
        record_sync(
            conn, SyncRecord("initech", "sim:initech:stripe", "stripe", "2", now, now, 0, SUCCEEDED)
        )
        conn.commit()
        found = find_changed_units(conn, [CHARGES], {CHARGES.name: ["acme", "globex", "initech"]})
        assert found.to_read == {CHARGES.name: ["initech"]}
        assert found.unchanged == {CHARGES.name: ["acme", "globex"]}


@pytest.mark.postgres
def test_without_track_counts_or_when_asked_every_table_is_read(postgres):
    with postgres.connect() as conn:
        three_tenants(conn)
        land(conn)
        candidates = {CHARGES.name: ["acme", "globex"]}
        forced = find_changed_units(conn, [CHARGES], candidates, read_all=True)
        assert (forced.to_read, forced.full_read_reason) == (candidates, READ_ALL_ASKED)
        conn.execute("set track_counts = off")
        off = find_changed_units(conn, [CHARGES], candidates)
        assert (off.to_read, off.full_read_reason) == (candidates, COUNTERS_OFF)


def test_duckdb_reads_every_table_every_run(tmp_path, reads):
    warehouse = open_warehouse(
        make_settings(tmp_path, f"duckdb:///{tmp_path / 'w.duckdb'}").warehouse
    )
    with warehouse.connect() as conn:
        three_tenants(conn)
        assert land(conn)["stripe__charges"] == {
            t: (MERGED, 1) for t in ("acme", "globex", "initech")
        }
        sync(conn, "globex", ["globex_2"], 2, flush=False)
        assert land(conn)["stripe__charges"]["globex"] == (MERGED, 1)
        found = find_changed_units(conn, [CHARGES], {CHARGES.name: ["acme"]})
        assert (found.to_read, found.full_read_reason) == ({CHARGES.name: ["acme"]}, NO_DETECTION)
        assert not conn.table_exists("landing", "raw_table_stats")
    assert reads == [["acme", "globex", "initech"]] * 2

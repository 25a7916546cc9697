import datetime as dt
import json

import pandas as pd
import pyarrow as pa
import pytest

from conftest import make_settings
from rawdata import raw_name, sync_time, write_raw, write_raw_rows
from tenantpulse.landing.merge import (
    FAILED,
    MERGED,
    NO_RAW_TABLE,
    UP_TO_DATE,
    land_stream,
    oldest_synced_day,
)
from tenantpulse.landing.raw_table_reads import raw_table_columns
from tenantpulse.sources.contracts import STREAMS_BY_NAME
from tenantpulse.warehouse import open_warehouse

CHARGES = STREAMS_BY_NAME["stripe__charges"]
CUSTOMERS = STREAMS_BY_NAME["stripe__customers"]
T0 = 1_761_955_200  # 2025-11-01 in Unix seconds, as Stripe writes times


def charge(charge_id, status, updated, amount=1000):
    """A charge updated `updated` seconds after T0."""
    return {
        "id": charge_id,
        "amount": amount,
        "currency": "usd",
        "status": status,
        "created": T0,
        "updated": T0 + updated,
        "paid": status == "succeeded",
    }


# A raw charges table whose `amount` arrived as text (a type change upstream).
TEXT_AMOUNT_CHARGES = (
    "id varchar, amount varchar, currency varchar, status varchar, updated bigint, "
    "_airbyte_raw_id varchar, _airbyte_extracted_at timestamptz, _airbyte_meta varchar, "
    "_airbyte_generation_id bigint"
)


def landed(conn, stream, columns):
    """Landed rows as plain Python lists, ordered by tenant and the second column."""
    rows = conn.fetch_all(f"select {columns} from landing.{stream} order by tenant_id, 2")
    return [[float(v) if type(v).__name__ == "Decimal" else v for v in row] for row in rows]


def test_landing_merge_keeps_latest_version(warehouse):
    with warehouse.connect() as conn:
        write_raw(
            conn,
            "acme",
            "stripe__charges",
            [charge("ch_1", "pending", 100), charge("ch_2", "succeeded", 100)],
            sync_time(1),
        )
        # The next sync brings ch_1 again, updated; both syncs land together.
        write_raw(
            conn,
            "acme",
            "stripe__charges",
            [charge("ch_1", "succeeded", 200)],
            sync_time(2),
            sync_id=2,
        )
        [outcome] = land_stream(conn, CHARGES, ["acme"])
        assert (outcome.status, outcome.rows_read, outcome.rows_landed) == (MERGED, 3, 2)
        rows = landed(conn, "stripe__charges", "tenant_id, id, status, updated")
        assert rows == [
            ["acme", "ch_1", "succeeded", T0 + 200],
            ["acme", "ch_2", "succeeded", T0 + 100],
        ]

        # A third sync refunds ch_2: an incremental merge replaces just that key.
        write_raw(
            conn,
            "acme",
            "stripe__charges",
            [{**charge("ch_2", "succeeded", 300), "refunded": True, "amount_refunded": 1000}],
            sync_time(3),
            sync_id=3,
        )
        [outcome] = land_stream(conn, CHARGES, ["acme"])
        assert (outcome.rows_read, outcome.rows_landed) == (1, 1)
        rows = landed(conn, "stripe__charges", "id, updated, refunded, amount_refunded")
        assert rows == [["ch_1", T0 + 200, None, None], ["ch_2", T0 + 300, True, 1000]]
        assert outcome.watermark == sync_time(3)


def test_the_latest_version_of_each_key_is_chosen_as_by_hand():
    """Random rows of few keys (repeats, equal sync times, NULL cursors) and rows of keys read
    once: each key's row with the latest sync time, then the latest cursor (NULL last), the first
    read of equal ones, all in the order read."""
    import numpy as np

    from tenantpulse.landing.merge import _latest_versions

    random = np.random.default_rng(7)
    n = 400
    rows = pd.DataFrame(
        {
            "tenant_id": random.choice(["t1", "t2"], n),
            "id": [f"ch_{i}" for i in random.integers(0, 60, n)],
            "updated": pd.array(random.integers(0, 4, n), dtype="Int64"),
            "_airbyte_extracted_at": pd.to_datetime(random.integers(0, 3, n), unit="D", utc=True),
            "amount": pd.array(range(n), dtype="Int64"),  # tells the rows apart
        }
    )
    rows.loc[random.random(n) < 0.1, "updated"] = pd.NA
    once = pd.DataFrame({**rows.iloc[:5].to_dict("list"), "id": [f"once_{i}" for i in range(5)]})
    rows = pd.concat([rows, once], ignore_index=True)
    rows = rows.reindex(columns=["tenant_id", *(c.name for c in CHARGES.all_columns)])
    best: dict[tuple, int] = {}
    for i, row in rows.iterrows():
        key = (row["tenant_id"], row["id"])
        rank = (row["_airbyte_extracted_at"], -1 if pd.isna(row["updated"]) else row["updated"])
        if key not in best or rank > best[key][0]:  # strictly later: ties keep the first read
            best[key] = (rank, i)
    expected = sorted(i for _, i in best.values())
    chosen = _latest_versions(CHARGES, rows)
    assert chosen["amount"].tolist() == rows["amount"].iloc[expected].tolist()
    assert len(chosen) < n and {f"once_{i}" for i in range(5)} <= set(chosen["id"])
    assert list(chosen.columns) == list(rows.columns)


def test_rerunning_a_partition_changes_nothing(warehouse):
    with warehouse.connect() as conn:
        write_raw(conn, "acme", "stripe__charges", [charge("ch_1", "succeeded", 100)], sync_time(1))
        land_stream(conn, CHARGES, ["acme"])
        before = conn.read_frame("select * from landing.stripe__charges")
        [again] = land_stream(conn, CHARGES, ["acme"])
        after = conn.read_frame("select * from landing.stripe__charges")
    assert again.status == UP_TO_DATE and again.rows_read == 0
    pd.testing.assert_frame_equal(before, after)


def test_same_ids_in_two_tenants_stay_apart_and_deleted_records_keep_their_flag(warehouse):
    with warehouse.connect() as conn:
        write_raw(
            conn,
            "acme",
            "stripe__customers",
            [{"id": "cus_1", "email": "a@acme.test", "updated": T0 + 1, "is_deleted": False}],
            sync_time(1),
        )
        write_raw(
            conn,
            "globex",
            "stripe__customers",
            [{"id": "cus_1", "email": "b@globex.test", "updated": T0 + 1}],
            sync_time(1),
        )
        write_raw(
            conn,
            "acme",
            "stripe__customers",
            [{"id": "cus_1", "email": "a@acme.test", "updated": T0 + 2, "is_deleted": True}],
            sync_time(2),
        )
        outcomes = land_stream(conn, CUSTOMERS, ["acme", "globex"])
        rows = landed(conn, "stripe__customers", "tenant_id, id, email, is_deleted")
    assert [o.rows_landed for o in outcomes] == [1, 1]
    assert rows == [
        ["acme", "cus_1", "a@acme.test", True],
        ["globex", "cus_1", "b@globex.test", None],
    ]


def test_schema_drift_is_reported_and_does_not_break_landing(warehouse):
    with warehouse.connect() as conn:
        write_raw(
            conn,
            "acme",
            "stripe__charges",
            [{**charge("ch_1", "succeeded", 100), "application_fee_amount": 30}],
            sync_time(1),
        )
        [outcome] = land_stream(conn, CHARGES, ["acme"])
        columns = conn.table_columns("landing", "stripe__charges")
    assert outcome.status == MERGED and outcome.rows_landed == 1
    assert outcome.extra_columns == ("application_fee_amount",)
    assert "application_fee_amount" not in columns


def test_rows_that_break_the_contract_are_quarantined_with_the_reason(warehouse):
    with warehouse.connect() as conn:
        # `amount` as text, and a row without its key.
        write_raw_rows(
            conn,
            "acme",
            "stripe_charges",
            TEXT_AMOUNT_CHARGES,
            [
                (charge_id, amount, "usd", "succeeded", T0, f"raw-{n}", sync_time(1), "{}", 0)
                for charge_id, amount, n in [("ch_ok", "1250", 1), ("ch_bad", "12.50 USD", 2)]
                + [(None, "100", 3)]
            ],
        )
        [outcome] = land_stream(conn, CHARGES, ["acme"])
        assert (outcome.rows_read, outcome.rows_landed, outcome.rows_quarantined) == (3, 1, 2)
        assert landed(conn, "stripe__charges", "id, amount") == [["ch_ok", 1250]]
        quarantine = conn.read_frame(
            "select _airbyte_raw_id, reason, record from landing.quarantine order by _airbyte_raw_id"
        )
        assert quarantine["_airbyte_raw_id"].tolist() == ["raw-2", "raw-3"]
        assert quarantine["reason"].tolist() == [
            "amount: '12.50 USD' is not a bigint",
            "id: missing (required)",
        ]
        assert json.loads(quarantine["record"][0])["amount"] == "12.50 USD"

        # Landing again (watermark and landed files reset) neither duplicates quarantined rows
        # nor landed ones.
        conn.execute("delete from landing.watermarks")
        conn.execute("delete from landing.landed_files")
        land_stream(conn, CHARGES, ["acme"])
        assert conn.fetch_value("select count(*) from landing.quarantine") == 2
        assert conn.fetch_value("select count(*) from landing.stripe__charges") == 1


def test_a_landing_says_the_oldest_sync_whose_rows_it_merged(warehouse):
    """What the staging tests of the next dbt run check from (flow.tests_since): the oldest
    sync of the rows merged, a late one included; not of a quarantined row, nor of what an
    earlier landing merged."""
    with warehouse.connect() as conn:
        write_raw(conn, "acme", "stripe__charges", [charge("ch_1", "succeeded", 100)], sync_time(5))
        [first] = land_stream(conn, CHARGES, ["acme"])
        assert (first.oldest_synced, oldest_synced_day([first])) == (
            sync_time(5),
            sync_time(5).date(),
        )
        write_raw(
            conn,
            "acme",
            "stripe__charges",
            [charge("ch_2", "succeeded", 200)],
            sync_time(7),
            sync_id=2,
        )
        # A sync older than another one landed with it.
        write_raw(
            conn,
            "acme",
            "stripe__charges",
            [charge("ch_3", "succeeded", 300)],
            sync_time(6),
            sync_id=3,
        )
        write_raw(
            conn, "globex", "stripe__charges", [charge("ch_1", "succeeded", 100)], sync_time(7)
        )
        write_raw_rows(
            conn,
            "initech",
            "stripe_charges",
            TEXT_AMOUNT_CHARGES,
            [
                ("ch_bad", "12.50 USD", "usd", "succeeded", T0, "raw-1", sync_time(2), "{}", 0),
                ("ch_ok", "1250", "usd", "succeeded", T0, "raw-2", sync_time(8), "{}", 0),
            ],
        )
        outcomes = land_stream(conn, CHARGES, ["acme", "globex", "initech"])
        oldest = {o.tenant_id: (o.rows_landed, o.oldest_synced) for o in outcomes}
        assert oldest == {
            "acme": (2, sync_time(6)),
            "globex": (1, sync_time(7)),
            "initech": (1, sync_time(8)),  # its row synced Nov 2 was quarantined
        }
        assert oldest_synced_day(outcomes) == sync_time(6).date()
        assert [o.oldest_synced for o in land_stream(conn, CHARGES, ["acme"])] == [None]
        assert oldest_synced_day([]) is None


def raw_table_without_its_key(conn, tenant_id: str, table: str) -> None:
    """A raw table (or file) of the tenant with no `id` column: it cannot be landed."""
    write_raw_rows(
        conn,
        tenant_id,
        table,
        "amount bigint, _airbyte_raw_id varchar, _airbyte_extracted_at timestamptz",
        [(5, "raw-1", sync_time(1))],
    )


def test_missing_raw_table_and_missing_key_column_are_reported_per_tenant(warehouse):
    with warehouse.connect() as conn:
        write_raw(conn, "acme", "stripe__charges", [charge("ch_1", "succeeded", 100)], sync_time(1))
        raw_table_without_its_key(conn, "broken", "stripe_charges")
        outcomes = {
            o.tenant_id: o for o in land_stream(conn, CHARGES, ["acme", "broken", "nosource"])
        }
        assert outcomes["acme"].status == MERGED and outcomes["acme"].rows_landed == 1
        assert outcomes["broken"].status == FAILED
        broken = raw_name(conn, "broken", "stripe_charges")
        assert f"{broken} has no column id" in outcomes["broken"].error
        assert outcomes["nosource"].status == NO_RAW_TABLE


def test_contract_columns_missing_from_the_raw_table_land_as_null_and_are_reported(warehouse):
    from tenantpulse.defs.landing import landing_summary_markdown

    with warehouse.connect() as conn:
        write_raw_rows(
            conn,
            "acme",
            "stripe_refunds",
            "id varchar, amount bigint, updated bigint, _airbyte_raw_id varchar, "
            "_airbyte_extracted_at timestamptz",
            [("re_1", 500, T0, "raw-1", sync_time(1))],
        )
        [outcome] = land_stream(conn, STREAMS_BY_NAME["stripe__refunds"], ["acme"])
        assert landed(conn, "stripe__refunds", "id, amount, currency") == [["re_1", 500, None]]
    assert "currency" in outcome.missing_columns and "_airbyte_meta" in outcome.missing_columns
    assert "| acme | merged | 1 | 1 | 0 | - | currency, status" in landing_summary_markdown(
        [outcome]
    )


def test_many_tenants_of_different_table_shapes_land_in_one_call_chunk_by_chunk(
    warehouse, monkeypatch
):
    from tenantpulse.landing import raw_table_reads

    monkeypatch.setattr(raw_table_reads, "TENANTS_PER_STATEMENT", 2)
    with warehouse.connect() as conn:
        for number, tenant in enumerate(["t1", "t2", "t3"], start=1):
            write_raw(
                conn,
                tenant,
                "stripe__charges",
                [charge("ch_1", "paid", 1, 100 * number)],
                sync_time(number),
            )
        # t4's amount is text (another connector version), t5's table has an extra column:
        # neither can share a UNION ALL with the others, and both still land.
        for tenant, amount_type, extra, row in (
            ("t4", "varchar", "", ("ch_1", "400", "raw-4", sync_time(4))),
            ("t5", "bigint", ", note varchar", ("ch_1", 500, "raw-5", sync_time(5), "x")),
        ):
            write_raw_rows(
                conn,
                tenant,
                "stripe_charges",
                f"id varchar, amount {amount_type}, _airbyte_raw_id varchar, "
                f"_airbyte_extracted_at timestamptz{extra}",
                [row],
            )
        tenants = ["t1", "t2", "t3", "t4", "t5"]
        outcomes = {o.tenant_id: o for o in land_stream(conn, CHARGES, tenants)}
        assert landed(conn, "stripe__charges", "tenant_id, amount") == [
            ["t1", 100],
            ["t2", 200],
            ["t3", 300],
            ["t4", 400],
            ["t5", 500],
        ]
        assert {t: (o.status, o.rows_read, o.watermark) for t, o in outcomes.items()} == {
            t: (MERGED, 1, sync_time(n)) for n, t in enumerate(tenants, start=1)
        }
        assert outcomes["t5"].extra_columns == ("note",) and outcomes["t1"].extra_columns == ()

        # Each tenant keeps its own watermark: only t2's new sync is read next time.
        write_raw(
            conn, "t2", "stripe__charges", [charge("ch_1", "paid", 2, 222)], sync_time(9), sync_id=2
        )
        again = {o.tenant_id: o for o in land_stream(conn, CHARGES, tenants)}
        assert {t for t, o in again.items() if o.status == MERGED} == {"t2"}
        assert again["t2"].rows_read == 1
        assert landed(conn, "stripe__charges", "tenant_id, amount")[1] == ["t2", 222]


def test_a_statement_reads_at_most_its_share_of_file_bytes_and_tenants(monkeypatch):
    """A chunk's rows are in memory at once: big first syncs are read a few tenants at a time,
    small files TENANTS_PER_STATEMENT tenants at a time, and a tenant larger than the budget
    alone."""
    from tenantpulse.landing import raw_table_reads
    from tenantpulse.landing.raw_table_reads import RawUnit, same_shape_chunks

    monkeypatch.setattr(raw_table_reads, "FILE_BYTES_PER_STATEMENT", 100)
    monkeypatch.setattr(raw_table_reads, "TENANTS_PER_STATEMENT", 3)
    shape = {"id": "varchar"}
    sizes = {"a": 40, "b": 40, "c": 40, "d": 500, "e": 1, "f": 1, "g": 1, "h": 1}
    units = [RawUnit(t, t, shape, file_bytes=size) for t, size in sizes.items()]
    chunks = [[u.tenant_id for u in chunk] for _, chunk in same_shape_chunks(units)]
    assert chunks == [["a", "b"], ["c"], ["d"], ["e", "f", "g"], ["h"]]


def test_a_merge_stores_its_rows_in_tenant_order_each_tenants_together(tmp_path):
    """DuckDB skips the storage blocks whose tenant ids are outside a range it reads (the tenant
    groups of unified_customers): a merge stores a tenant's rows together, tenants in id order,
    however the syncs' times interleave and in whatever order the tenants are named. Within a
    tenant the rows keep the order they were read in (sorting them by key made the first load's
    land slower: docs/decisions.md)."""
    warehouse = open_warehouse(
        make_settings(tmp_path, f"duckdb:///{tmp_path / 'w.duckdb'}").warehouse
    )
    with warehouse.connect() as conn:
        # The newest sync first in time order: t3's, then t1's, then t2's.
        for tenant, day in (("t1", 5), ("t2", 4), ("t3", 6)):
            records = [charge(f"ch_{n}", "paid", n) for n in (2, 1, 3)]
            write_raw(conn, tenant, "stripe__charges", records, sync_time(day))
        land_stream(conn, CHARGES, ["t3", "t1", "t2"])
        stored = conn.fetch_all("select tenant_id, id from landing.stripe__charges order by rowid")
    assert stored == [(t, f"ch_{n}") for t in ("t1", "t2", "t3") for n in (2, 1, 3)]


def test_duckdb_landing_tables_keep_their_key_unique_without_an_index(tmp_path):
    """On DuckDB a primary key's index cost most of a merge's insert (docs/decisions.md): the
    landing tables have none, and the merge alone keeps (tenant_id, id) unique."""
    warehouse = open_warehouse(
        make_settings(tmp_path, f"duckdb:///{tmp_path / 'w.duckdb'}").warehouse
    )
    with warehouse.connect() as conn:
        for day in (1, 2, 3):
            records = [charge(f"ch_{n}", "paid", day) for n in (1, 2)]
            write_raw(conn, "t1", "stripe__charges", records, sync_time(day), sync_id=day)
            land_stream(conn, CHARGES, ["t1"])
        constraints = conn.fetch_all(
            "select constraint_type from duckdb_constraints()"
            " where schema_name = 'landing' and table_name = 'stripe__charges'"
        )
        stored = conn.fetch_all("select id, updated from landing.stripe__charges order by id")
    assert "PRIMARY KEY" not in {kind for (kind,) in constraints}
    assert stored == [("ch_1", T0 + 3), ("ch_2", T0 + 3)]


def test_rejected_rows_are_quarantined_under_their_own_tenant(warehouse):
    with warehouse.connect() as conn:
        write_raw(conn, "t1", "stripe__charges", [charge("ch_1", "paid", 1)], sync_time(1))
        write_raw(conn, "t2", "stripe__charges", [charge(None, "paid", 1)], sync_time(1))
        outcomes = {o.tenant_id: o for o in land_stream(conn, CHARGES, ["t1", "t2"])}
        assert (outcomes["t1"].rows_quarantined, outcomes["t2"].rows_quarantined) == (0, 1)
        [(tenant, reason, record)] = conn.fetch_all(
            "select tenant_id, reason, record from landing.quarantine"
        )
        record = json.loads(record) if isinstance(record, str) else record
        assert (tenant, reason) == ("t2", "id: missing (required)")
        assert "tenant_id" not in record and record["status"] == "paid"


def test_typed_and_text_columns_land_the_same_values_and_bad_text_is_quarantined(warehouse):
    with warehouse.connect() as conn:
        json_type = conn.sql_type("json")
        for tenant, metadata_type, paid_type, rows in (
            ("typed", json_type, "boolean", [(True, '{"plan": "pro"}'), (None, None)]),
            ("text", "varchar", "varchar", [("yes", '{"plan": "pro"}'), ("f", "{oops")]),
        ):
            write_raw_rows(
                conn,
                tenant,
                "stripe_charges",
                f"id varchar, paid {paid_type}, metadata {metadata_type}, "
                "_airbyte_raw_id varchar, _airbyte_extracted_at timestamptz",
                [
                    (f"ch_{n}", paid, metadata, f"r{n}", sync_time(1))
                    for n, (paid, metadata) in enumerate(rows, start=1)
                ],
            )
        outcomes = {o.tenant_id: o for o in land_stream(conn, CHARGES, ["typed", "text"])}
        rows = landed(conn, "stripe__charges", "tenant_id, id, paid, metadata")
        rows = [[t, i, p, json.loads(m) if isinstance(m, str) else m] for t, i, p, m in rows]
        assert rows == [
            ["text", "ch_1", True, {"plan": "pro"}],
            ["typed", "ch_1", True, {"plan": "pro"}],
            ["typed", "ch_2", None, None],
        ]
        assert (outcomes["typed"].rows_quarantined, outcomes["text"].rows_quarantined) == (0, 1)
        reason = conn.fetch_value("select reason from landing.quarantine")
        assert reason == "metadata: '{oops' is not a json"


def test_each_merge_is_committed_so_a_later_failure_keeps_it(warehouse, monkeypatch):
    from tenantpulse.landing import merge, raw_table_reads

    monkeypatch.setattr(raw_table_reads, "TENANTS_PER_STATEMENT", 2)
    monkeypatch.setattr(merge, "ROWS_PER_MERGE", 2)  # a merge per chunk of two tenants' rows
    with warehouse.connect() as conn:
        for tenant in ("t1", "t2", "t3"):
            write_raw(conn, tenant, "stripe__charges", [charge("ch_1", "paid", 1)], sync_time(1))
    merge_batch = merge._merge_batch
    calls = []

    def fail_on_second_merge(*args):
        calls.append(args)
        if len(calls) == 2:
            raise RuntimeError("the warehouse went away")
        merge_batch(*args)

    def rollback_fails(conn):
        raise RuntimeError("the warehouse went away, so did the rollback")

    monkeypatch.setattr(merge, "_merge_batch", fail_on_second_merge)
    with pytest.raises(RuntimeError, match="went away"), warehouse.connect() as conn:
        # A failed merge is rolled back and retried per tenant; a rollback that fails too raises.
        monkeypatch.setattr(type(conn), "rollback", rollback_fails)
        land_stream(conn, CHARGES, ["t1", "t2", "t3"])
    with warehouse.connect() as conn:
        assert [r[0] for r in landed(conn, "stripe__charges", "tenant_id, id")] == ["t1", "t2"]
        assert conn.fetch_all("select tenant_id from landing.watermarks order by 1") == [
            ("t1",),
            ("t2",),
        ]


@pytest.mark.parametrize("failing", ["_replace_rows", "read_new_rows"])
def test_a_read_or_merge_failing_for_one_tenant_fails_it_by_name_and_the_others_land(
    warehouse, monkeypatch, failing
):
    """Whatever validation misses: the chunk is rolled back and retried tenant by tenant."""
    from tenantpulse.landing import merge

    real = getattr(merge, failing)

    def fails_for_t2(conn, *args):
        if "t2" in str(args):
            raise RuntimeError(f"{failing} broke\nsecond line")
        return real(conn, *args)

    monkeypatch.setattr(merge, failing, fails_for_t2)
    with warehouse.connect() as conn:
        for tenant in ("t1", "t2", "t3"):
            write_raw(conn, tenant, "stripe__charges", [charge("ch_1", "paid", 1)], sync_time(1))
        conn.commit()  # as Airbyte's are: a failed step's rollback must not take the raw rows
        outcomes = {o.tenant_id: o for o in land_stream(conn, CHARGES, ["t1", "t2", "t3"])}
        step = "merging the rows of" if failing == "_replace_rows" else "reading"
        assert {t: (o.status, o.rows_landed, o.error) for t, o in outcomes.items()} == {
            "t1": (MERGED, 1, None),
            "t2": (
                FAILED,
                0,
                f"{step} {raw_name(conn, 't2', 'stripe_charges')} failed: "
                f"RuntimeError: {failing} broke",
            ),
            "t3": (MERGED, 1, None),
        }
        assert [r[0] for r in landed(conn, "stripe__charges", "tenant_id, id")] == ["t1", "t3"]
        watermarks = conn.fetch_all("select tenant_id from landing.watermarks order by 1")
        assert watermarks == [("t1",), ("t3",)]  # t2's rows are read again next time


def test_each_stream_lands_for_the_active_tenants_with_its_source_or_the_chosen_ones():
    from tenantpulse.landing.run import InactiveTenantsError, tenants_by_stream

    active = {"acme": ("stripe", "github"), "globex": ("stripe",), "initech": ("github",)}
    streams = [CHARGES, STREAMS_BY_NAME["github__pull_requests"]]
    assert tenants_by_stream(active, streams) == {
        "stripe__charges": ["acme", "globex"],
        "github__pull_requests": ["acme", "initech"],
    }
    # Chosen tenants are landed for every stream: one without the source has no raw table.
    assert tenants_by_stream(active, streams, ["globex"]) == {
        "stripe__charges": ["globex"],
        "github__pull_requests": ["globex"],
    }
    with pytest.raises(InactiveTenantsError, match="not active tenants: gone, nobody"):
        tenants_by_stream(active, streams, ["acme", "nobody", "gone"])


def test_land_streams_reports_each_stream_and_names_the_tenants_that_failed(warehouse):
    from tenantpulse.landing.run import failure_summary, land_streams
    from tenantpulse.tenants.registry import add_tenant

    refunds = STREAMS_BY_NAME["stripe__refunds"]
    with warehouse.connect() as conn:
        add_tenant(conn, "acme", "Acme", "stripe")
        add_tenant(conn, "broken", "Broken", "stripe")
        add_tenant(conn, "hub", "Hub", "github")
        charges = [charge("ch_1", "pending", 100), charge("ch_2", "succeeded", 100)]
        write_raw(conn, "acme", "stripe__charges", charges, sync_time(1))
        write_raw(conn, "acme", "stripe__refunds", [{"id": "re_1", "updated": T0}], sync_time(1))
        raw_table_without_its_key(conn, "broken", "stripe_refunds")
        announced = []
        landed = list(
            land_streams(
                conn, [CHARGES, refunds], on_stream=lambda c, n: announced.append((c.name, n))
            )
        )
    assert announced == [("stripe__charges", 2), ("stripe__refunds", 2)]  # hub has no stripe
    assert [(s.contract.name, s.rows_read, s.rows_changed) for s in landed] == [
        ("stripe__charges", 2, 2),
        ("stripe__refunds", 1, 1),
    ]
    with warehouse.connect() as conn:
        broken = raw_name(conn, "broken", "stripe_refunds")
    error = (
        f"{broken} has no column id: its primary key and Airbyte metadata are required to land it"
    )
    assert landed[0].failures == {}
    assert landed[1].failures == {"broken/stripe__refunds": error}
    assert failure_summary(landed[1].failures) == (
        f"1 tenant stream(s) could not be landed: broken/stripe__refunds: {error}"
    )


# One tenant's bad values never stop landing for the others (issue 15, points 2 to 4).


def quarantine_reasons(conn, tenant_id: str) -> dict[str, str]:
    """_airbyte_raw_id -> reason of the tenant's quarantined rows."""
    return dict(
        conn.fetch_all(
            "select _airbyte_raw_id, reason from landing.quarantine where tenant_id = %s",
            (tenant_id,),
        )
    )


def test_a_text_airbyte_extracted_at_fails_that_tenant_by_name_every_run_and_others_land(
    warehouse,
):
    with warehouse.connect() as conn:
        write_raw(conn, "good", "stripe__charges", [charge("ch_1", "paid", 1)], sync_time(1))
        write_raw_rows(
            conn,
            "texty",
            "stripe_charges",
            "id varchar, amount bigint, _airbyte_raw_id varchar, _airbyte_extracted_at varchar",
            [("ch_1", 100, "r1", "2026-11-01T00:00:00Z")],
        )
        for day in (2, 3):  # the second run is incremental: the good tenant has a watermark
            write_raw(
                conn, "good", "stripe__charges", [charge(f"ch_{day}", "paid", day)], sync_time(day)
            )
            outcomes = {o.tenant_id: o for o in land_stream(conn, CHARGES, ["good", "texty"])}
            assert outcomes["good"].status == MERGED
            assert outcomes["texty"].status == FAILED
            text = "varchar" if conn.dialect == "duckdb" else "character varying"
            assert outcomes["texty"].error == (
                f"{raw_name(conn, 'texty', 'stripe_charges')}: its _airbyte_extracted_at is {text}, "
                "not a timestamp (Airbyte writes timestamp with time zone): landing reads each "
                "sync's new rows by it"
            )
        assert [r[1] for r in landed(conn, "stripe__charges", "tenant_id, id")] == [
            "ch_1",
            "ch_2",
            "ch_3",
        ]


def test_integers_beyond_64_bits_are_quarantined_and_the_largest_one_lands(warehouse):
    with warehouse.connect() as conn:
        rows = [
            ("ch_max", str(2**63 - 1), 1),
            ("ch_2_63", str(2**63), 2),
            ("ch_20_digits", "99999999999999999999", 3),
            ("ch_1e20", "1e20", 4),
            ("ch_min", str(-(2**63)), 5),
        ]
        write_raw_rows(
            conn,
            "huge",
            "stripe_charges",
            "id varchar, amount varchar, _airbyte_raw_id varchar, _airbyte_extracted_at timestamptz",
            [(i, a, f"r{n}", sync_time(1)) for i, a, n in rows],
        )
        write_raw_rows(
            conn,
            "floaty",
            "stripe_charges",
            "id varchar, amount double precision, _airbyte_raw_id varchar, _airbyte_extracted_at timestamptz",
            [("ch_1", 1e20, "f1", sync_time(1)), ("ch_2", 2.0**63, "f2", sync_time(1))],
        )
        write_raw(conn, "good", "stripe__charges", [charge("ch_1", "paid", 1)], sync_time(1))
        outcomes = {o.tenant_id: o for o in land_stream(conn, CHARGES, ["huge", "floaty", "good"])}
        assert {t: (o.status, o.rows_landed, o.rows_quarantined) for t, o in outcomes.items()} == {
            "huge": (MERGED, 2, 3),
            "floaty": (MERGED, 0, 2),
            "good": (MERGED, 1, 0),
        }
        assert landed(conn, "stripe__charges", "tenant_id, amount") == [
            ["good", 1000],
            ["huge", -(2**63)],
            ["huge", 2**63 - 1],
        ]
        assert quarantine_reasons(conn, "huge") == {
            "r2": "amount: '9223372036854775808' is not a bigint",
            "r3": "amount: '99999999999999999999' is not a bigint",
            "r4": "amount: '1e20' is not a bigint",
        }
        assert set(quarantine_reasons(conn, "floaty").values()) == {
            "amount: '1e+20' is not a bigint",
            "amount: '9.223372036854776e+18' is not a bigint",
        }


def test_integers_beside_nulls_keep_every_digit(tmp_path):
    """A tenant's files of two shapes, read together: the integer column one of them lacks is
    NULL in its rows, and the other rows keep every digit (float64 would round them)."""
    warehouse = open_warehouse(
        make_settings(tmp_path, f"duckdb:///{tmp_path / 'w.duckdb'}").warehouse
    )
    with warehouse.connect() as conn:
        write_raw_rows(
            conn,
            "big",
            "stripe_charges",
            "id varchar, amount bigint, _airbyte_raw_id varchar, _airbyte_extracted_at timestamptz",
            [("ch_1", 2**53 + 1, "r1", sync_time(1)), ("ch_2", 2**63 - 1, "r2", sync_time(1))],
        )
        write_raw_rows(
            conn,
            "big",
            "stripe_charges",
            "id varchar, _airbyte_raw_id varchar, _airbyte_extracted_at timestamptz",
            [("ch_3", "r3", sync_time(2))],
        )
        [outcome] = land_stream(conn, CHARGES, ["big"])
        assert landed(conn, "stripe__charges", "id, amount") == [
            ["ch_1", 2**53 + 1],
            ["ch_2", 2**63 - 1],
            ["ch_3", None],
        ]
    assert outcome.rows_landed == 3


def test_decimals_the_warehouse_cannot_hold_are_quarantined(warehouse):
    orders = STREAMS_BY_NAME["shopify__orders"]
    with warehouse.connect() as conn:
        prices = ["199.99", "inf", "-Infinity", "NaN", "1e30", "1" * 30, "1" * 29, "12,50"]
        write_raw_rows(
            conn,
            "odd",
            "shopify_orders",
            "id bigint, total_price varchar, _airbyte_raw_id varchar, "
            "_airbyte_extracted_at timestamptz",
            [(n, p, f"r{n}", sync_time(1)) for n, p in enumerate(prices)],
        )
        write_raw_rows(
            conn,
            "doubles",
            "shopify_orders",
            "id bigint, total_price double precision, _airbyte_raw_id varchar, "
            "_airbyte_extracted_at timestamptz",
            [(1, float("inf"), "d1", sync_time(1)), (2, 1e30, "d2", sync_time(1))]
            + [(3, None, "d3", sync_time(1))],
        )
        write_raw(conn, "good", "shopify__orders", [{"id": 1, "total_price": 5.5}], sync_time(1))
        outcomes = {o.tenant_id: o for o in land_stream(conn, orders, ["odd", "doubles", "good"])}
        assert {t: (o.status, o.rows_landed, o.rows_quarantined) for t, o in outcomes.items()} == {
            "odd": (MERGED, 2, 6),
            "doubles": (MERGED, 1, 2),
            "good": (MERGED, 1, 0),
        }
        assert landed(conn, "shopify__orders", "tenant_id, id, total_price") == [
            ["doubles", 3, None],
            ["good", 1, 5.5],
            ["odd", 0, 199.99],
            ["odd", 6, float("1" * 29)],
        ]
        assert quarantine_reasons(conn, "odd")["r4"] == "total_price: '1e30' is not a decimal"
        assert quarantine_reasons(conn, "odd")["r3"] == "total_price: 'NaN' is not a decimal"


def test_times_outside_their_sources_life_or_after_their_sync_are_quarantined(warehouse):
    # Synced 2026-11-01 00:00 UTC = 1793491200; a day later = 1793577600.
    with warehouse.connect() as conn:
        created = {
            "ch_ok": T0,
            "ch_day_after": 1793577600,
            "ch_second_later": 1793577601,
            "ch_ms": T0 * 1000,
            "ch_us": T0 * 1_000_000,
            "ch_zero": 0,
        }
        write_raw(
            conn,
            "acme",
            "stripe__charges",
            [{**charge(i, "paid", 1), "created": c} for i, c in created.items()],
            sync_time(1),
        )
        # Scheduled times (a period's end) may be up to 1095 days after the sync: 1888099200.
        ends = {"sub_ok": 1888099200, "sub_late": 1888099201}
        write_raw(
            conn,
            "acme",
            "stripe__subscriptions",
            [{"id": i, "updated": T0, "current_period_end": e} for i, e in ends.items()],
            sync_time(1),
        )
        stamps = {
            1: "2026-10-31 12:00:00+00",
            2: "2999-12-31 00:00:00+00",
            3: "0001-01-01 00:00:00+00",
            4: "9999-12-31 00:00:00+00",
            5: "infinity",
        }
        write_raw_rows(
            conn,
            "acme",
            "github_pull_requests",
            "id bigint, created_at timestamptz, _airbyte_raw_id varchar, "
            "_airbyte_extracted_at timestamptz",
            [(n, stamp, f"pr{n}", sync_time(1)) for n, stamp in stamps.items()],
        )
        outcomes = [
            land_stream(conn, STREAMS_BY_NAME[name], ["acme"])[0]
            for name in ("stripe__charges", "stripe__subscriptions", "github__pull_requests")
        ]
        assert [(o.rows_landed, o.rows_quarantined) for o in outcomes] == [(2, 4), (1, 1), (1, 4)]
        assert landed(conn, "stripe__charges", "id, created") == [
            ["ch_ok", T0],
            ["ch_day_after", 1793577600],
        ]
        reasons = conn.fetch_all("select reason from landing.quarantine order by reason")
        assert [r for (r,) in reasons] == [
            "created: 0 (year 1970) is before 2010-01-01, when stripe began",
            "created: 1761955200000 (year 57804) is more than 1 day after its sync",
            "created: 1761955200000000 (year 55836107) is more than 1 day after its sync",
            "created: 1793577601 (year 2026) is more than 1 day after its sync",
            "created_at: '0001-01-01 00:00:00+00' is before 2007-10-01, when github began",
            "created_at: '2999-12-31 00:00:00+00' is more than 1 day after its sync",
            "created_at: '9999-12-31 00:00:00+00' is more than 1 day after its sync",
            "created_at: 'infinity' is not a timestamptz",
            "current_period_end: 1888099201 (year 2029) is more than 1095 days after its sync",
        ]


def test_a_sync_time_in_the_future_is_quarantined_and_does_not_move_the_watermark(
    warehouse, monkeypatch
):
    from functools import partial

    from tenantpulse.landing import merge

    with warehouse.connect() as conn:
        write_raw(conn, "acme", "stripe__charges", [charge("ch_1", "paid", 1)], sync_time(1))
        future = dt.datetime(2999, 1, 1, tzinfo=dt.UTC)
        write_raw(conn, "acme", "stripe__charges", [charge("ch_2", "paid", 2)], future)
        [first] = land_stream(conn, CHARGES, ["acme"])
        assert (first.rows_landed, first.rows_quarantined, first.watermark) == (1, 1, sync_time(1))
        assert conn.fetch_value("select reason from landing.quarantine") == (
            "_airbyte_extracted_at: '2999-01-01 00:00:00+00' is in the future"
        )
        # The next real sync still lands; the future row is read, and quarantined, again.
        write_raw(conn, "acme", "stripe__charges", [charge("ch_3", "paid", 3)], sync_time(2))
        [second] = land_stream(conn, CHARGES, ["acme"])
        assert (second.rows_landed, second.rows_quarantined) == (1, 1)
        assert second.watermark == sync_time(2)
        assert landed(conn, "stripe__charges", "id, amount") == [["ch_1", 1000], ["ch_3", 1000]]
        assert conn.fetch_value("select count(*) from landing.quarantine") == 1
        # Once the clock has reached it, it lands.
        monkeypatch.setattr(merge, "validate_rows", partial(merge.validate_rows, landed_at=future))
        [third] = land_stream(conn, CHARGES, ["acme"])
        # Raw files (DuckDB) are landed in order: ch_3's file, after the future one, is read
        # again with it (and lands the same row again).
        again = 2 if conn.dialect == "duckdb" else 1
        assert (third.rows_landed, third.rows_quarantined, third.watermark) == (again, 0, future)
        assert landed(conn, "stripe__charges", "id, updated") == [
            ["ch_1", T0 + 1],
            ["ch_2", T0 + 2],
            ["ch_3", T0 + 3],
        ]


def test_text_read_through_arrow_is_typed_and_quarantined_as_python_text_is():
    """Raw files' text comes as pandas' Arrow-backed strings, Postgres's as Python objects: the
    same values give the same typed rows and the same reasons either way."""
    from tenantpulse.landing.validate import validate_rows

    contract = STREAMS_BY_NAME["github__pull_requests"]
    synced = "2026-11-01 06:00:00+00"
    times = [
        "2026-10-30 12:00:00.5+00",
        "2026-10-31T08:15:00Z",
        None,
        "infinity",  # Postgres's, as text: not a time pandas holds
        "294276-01-01 00:00:00+00",  # beyond pandas' range
        "",
        "2026-11-09 00:00:00+00",  # days after its sync
        "2001-01-01 00:00:00+00",  # before GitHub began
    ]
    raw = pd.DataFrame(
        {
            "id": range(1, len(times) + 1),
            "title": ["fix", "", None, "naïve ünïcode", "x" * 300, " padded ", "NaN", "None"],
            "state": ["open"] * len(times),
            "created_at": times,
            "_airbyte_raw_id": [f"r{i}" for i in range(len(times))],
            "_airbyte_extracted_at": [synced] * (len(times) - 1) + [None],
        }
    )
    as_objects = raw.astype({c: object for c in raw.columns if c != "id"})
    as_arrow = raw.astype({c: "str" for c in raw.columns if c != "id"})
    assert isinstance(as_arrow["title"].dtype, pd.StringDtype)
    landed_at = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
    from_objects = validate_rows(contract, as_objects, landed_at=landed_at)
    from_arrow = validate_rows(contract, as_arrow, landed_at=landed_at)

    def plain(frame):
        return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")

    assert plain(from_arrow.valid) == plain(from_objects.valid)
    assert from_arrow.reasons.to_dict() == from_objects.reasons.to_dict()
    assert [r["title"] for r in plain(from_arrow.valid)] == ["fix", "", None]
    assert from_arrow.reasons.to_dict() == {
        3: "created_at: 'infinity' is not a timestamptz",
        4: "created_at: '294276-01-01 00:00:00+00' is not a timestamptz",
        5: "created_at: '' is not a timestamptz",
        6: "created_at: '2026-11-09 00:00:00+00' is more than 1 day after its sync",
        7: "created_at: '2001-01-01 00:00:00+00' is before 2007-10-01, when github began; "
        "_airbyte_extracted_at: missing (required)",
    }


@pytest.mark.parametrize(
    ("column", "values"),
    [
        (
            "total_price",
            ["62.310000000", "-0", "+1", "1.", ".5", "-.5e-3", "1E+05", "1e400", "1e-400", "inf",
             "-Infinity", "NaN", "12345678901234567890.123456789", "9007199254740993", "4.9e-324",
             "  .5", "1 ", "\t1", "0x10", "1_000", "1,5", "１２", "", " "],
        ),
        (
            "created_at",
            ["2026-10-30 12:00:00+00", "2026-10-30 12:00:00.5+00", "2026-10-31T08:15:00Z",
             "2026-10-31T08:15Z", "2026-10-31T09:15:00+01", "2026-10-31T09:15:00+0100",
             "2026-10-31T09:45:00+01:30", "2026-10-31T08:15:00.123456789Z", "2026-10-31T08:15:00",
             "2026-10-31", "20261031", "2026-10-31T24:00:00Z", "2026-02-30T00:00:00Z",
             "2026-10-31t08:15:00z", " 2026-10-31T08:15:00Z", "2026-1-31T08:15:00Z",
             "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "294276-01-01 00:00:00+00",
             "infinity", ""],
        ),
    ],
)  # fmt: skip
def test_text_that_arrow_parses_is_typed_as_pandas_types_it(column, values):
    """Arrow parses a raw file's text numbers and times when it parses every value of a column
    (validate._parsed_by_arrow), pandas otherwise: a column of each value alone, and of all of
    them, gives the same typed rows (types included) and reasons as pandas' parse of the same
    text held as Python objects."""
    from tenantpulse.landing.validate import _parsed_by_arrow, validate_rows

    contract = STREAMS_BY_NAME["shopify__orders"]

    def validated(texts: list, kind):
        raw = pd.DataFrame(
            {
                "id": range(1, len(texts) + 1),
                "updated_at": "2026-10-31 00:00:00+00",
                column: texts,
                "_airbyte_raw_id": [f"r{i}" for i in range(len(texts))],
                "_airbyte_extracted_at": "2026-11-01 06:00:00+00",
            },
            index=range(10, 10 + len(texts)),  # a chunk's rows of one tenant, as merges retry them
        )
        return validate_rows(contract, raw.astype({c: kind for c in raw.columns if c != "id"}))

    for texts in [[v] for v in values] + [[v, None] for v in values] + [values]:
        from_arrow, from_objects = validated(texts, "str"), validated(texts, object)
        pd.testing.assert_frame_equal(from_arrow.valid, from_objects.valid)
        assert from_arrow.reasons.to_dict() == from_objects.reasons.to_dict(), texts
    # The first three parse, by Arrow: as written (times in UTC); with the rest, by pandas.
    arrow_type = pa.float64() if column == "total_price" else pa.timestamp("us", "UTC")
    assert _parsed_by_arrow(pd.Series(values[:3], dtype="str"), arrow_type) is not None
    assert _parsed_by_arrow(pd.Series(values, dtype="str"), arrow_type) is None
    typed = validated(values[:3], "str").valid[column]
    expected = {
        "total_price": [62.31, 0.0, 1.0],
        "created_at": [
            pd.Timestamp("2026-10-30 12:00:00", tz="UTC"),
            pd.Timestamp("2026-10-30 12:00:00.5", tz="UTC"),
            pd.Timestamp("2026-10-31 08:15:00", tz="UTC"),
        ],
    }
    assert typed.tolist() == expected[column]
    assert column == "total_price" or typed.dt.tz is dt.UTC  # as pandas' parse gives it


def test_values_staging_casts_are_checked_at_landing(warehouse):
    """What would fail a staging view for every tenant is quarantined for the one that sent it."""
    with warehouse.connect() as conn:
        dates = ["20261101", "20261102", "2024-01-31", "20261103", "(other)", "20240230"]
        dates.append("00010101")
        write_raw(
            conn,
            "acme",
            "google_analytics__website_overview",
            [{"property_id": "p1", "date": d, "sessions": 1} for d in dates],
            sync_time(1),
        )

        def items(unit_amount, quantity=1):
            price = {"unit_amount": unit_amount, "recurring": {"interval_count": "1"}}
            return json.dumps({"data": [{"price": price, "quantity": quantity}]})

        write_raw(
            conn,
            "acme",
            "stripe__subscriptions",
            [
                {"id": "sub_ok", "updated": T0, "items": items(2900, 3)},
                {"id": "sub_text", "updated": T0, "items": items("29 USD")},
                {"id": "sub_float_quantity", "updated": T0, "items": items(2900, 3.0)},
                {"id": "sub_seats", "updated": T0, "quantity": 10**12},
            ],
            sync_time(1),
        )
        write_raw(
            conn,
            "acme",
            "shopify__orders",
            [
                {
                    "id": 1,
                    "customer": '{"id": 7}',
                    "refunds": '[{"transactions": [{"amount": "9.5"}]}]',
                },
                {"id": 2, "customer": '{"id": "guest"}'},
                {"id": 3, "refunds": '[{"transactions": [{"amount": 1}, {"amount": "NaN"}]}]'},
            ],
            sync_time(1),
        )
        url = "https://api.github.com/repos/acme/api/pulls/"
        write_raw(
            conn,
            "acme",
            "github__reviews",
            [
                {"id": 1, "pull_request_url": url + "42"},
                {"id": 2, "pull_request_url": url + "9" * 25},
            ],
            sync_time(1),
        )
        names = [
            "google_analytics__website_overview",
            "stripe__subscriptions",
            "shopify__orders",
            "github__reviews",
        ]
        outcomes = [land_stream(conn, STREAMS_BY_NAME[n], ["acme"])[0] for n in names]
        assert [(o.rows_landed, o.rows_quarantined) for o in outcomes] == [
            (3, 4),
            (1, 3),
            (1, 2),
            (1, 1),
        ]
        reasons = conn.fetch_all("select reason from landing.quarantine order by reason")
        assert [r for (r,) in reasons] == [
            "customer.id: 'guest' is not an integer that staging can cast",
            "date: '(other)' is not a YYYYMMDD date",
            "date: '00010101' is before 2005-01-01, when google_analytics began",
            "date: '20240230' is not a YYYYMMDD date",
            "date: '20261103' is more than 1 day after its sync",
            "items.data[0].price.unit_amount: '29 USD' is not a number below 10^12",
            "items.data[0].quantity: 3.0 is not an integer below 10^12",
            "pull_request_url: '9999999999999999999999999' is not an integer that staging can cast",
            "quantity: 1000000000000 is not an integer below 10^12",
            "refunds[*].transactions[*].amount: 'NaN' is not a number that staging can cast",
        ]


@pytest.mark.parametrize("warehouse_url", ["duckdb"], indirect=True)
def test_an_unreadable_raw_file_fails_its_tenant_by_name_and_lands_once_replaced(warehouse):
    from tenantpulse.sources.raw_files import file_name, list_files, stream_folder

    with warehouse.connect() as conn:
        for tenant in ("t1", "t2"):
            write_raw(conn, tenant, "stripe__charges", [charge("ch_1", "paid", 1)], sync_time(1))
        conn.commit()
        folder = stream_folder(conn.raw_path, "t2", "stripe_charges")
        [good] = list_files(folder)
        broken = folder / file_name(good.epoch_ms + 1)
        broken.write_bytes(b"not parquet")  # a truncated upload, say
        outcomes = {o.tenant_id: o for o in land_stream(conn, CHARGES, ["t1", "t2"])}
        assert outcomes["t1"].status == MERGED
        assert outcomes["t2"].status == FAILED
        assert outcomes["t2"].error.startswith("reading raw files user_t2/stripe_charges failed:")
        assert [r[0] for r in landed(conn, "stripe__charges", "tenant_id, id")] == ["t1"]
        # Neither of t2's files was landed: once the broken one is replaced, both are read.
        broken.unlink()
        write_raw(conn, "t2", "stripe__charges", [charge("ch_2", "paid", 2)], sync_time(2))
        again = {o.tenant_id: o for o in land_stream(conn, CHARGES, ["t1", "t2"])}
        assert (again["t1"].status, again["t2"].status) == (UP_TO_DATE, MERGED)
        assert again["t2"].rows_read == 2
        assert landed(conn, "stripe__charges", "tenant_id, id") == [
            ["t1", "ch_1"],
            ["t2", "ch_1"],
            ["t2", "ch_2"],
        ]


@pytest.mark.parametrize("warehouse_url", ["duckdb"], indirect=True)
def test_a_file_gone_between_listing_and_reading_fails_its_tenant_and_spares_the_chunk(
    warehouse, monkeypatch
):
    """The read of a chunk of tenants fails; each of them is read again alone."""
    from tenantpulse.landing import merge

    listed = merge.file_units

    def listed_then_removed(conn, contract, scans):
        units, unreadable = listed(conn, contract, scans)
        for path in units["t2"].files:  # after its footer was read, before its rows are
            path.unlink()
        return units, unreadable

    monkeypatch.setattr(merge, "file_units", listed_then_removed)
    with warehouse.connect() as conn:
        for tenant in ("t1", "t2", "t3"):
            write_raw(conn, tenant, "stripe__charges", [charge("ch_1", "paid", 1)], sync_time(1))
        conn.commit()
        outcomes = {o.tenant_id: o for o in land_stream(conn, CHARGES, ["t1", "t2", "t3"])}
        assert [outcomes[t].status for t in ("t1", "t2", "t3")] == [MERGED, FAILED, MERGED]
        assert outcomes["t2"].error.startswith("reading raw files user_t2/stripe_charges failed:")
        assert landed(conn, "stripe__charges", "tenant_id, id") == [["t1", "ch_1"], ["t3", "ch_1"]]


@pytest.mark.parametrize("warehouse_url", ["duckdb"], indirect=True)
def test_only_folders_changed_since_landing_are_listed_and_new_files_found(warehouse):
    from tenantpulse.landing.raw_file_reads import tenants_with_new_files

    with warehouse.connect() as conn:
        for tenant in ("t1", "t2", "t3"):
            write_raw(conn, tenant, "stripe__charges", [charge("ch_1", "paid", 1)], sync_time(1))
        conn.commit()
        tenants = ["t1", "t2", "t3", "nosource"]
        assert tenants_with_new_files(conn, CHARGES, tenants) == ["t1", "t2", "t3"]
        land_stream(conn, CHARGES, tenants)
        assert tenants_with_new_files(conn, CHARGES, tenants) == []
        write_raw(conn, "t2", "stripe__charges", [charge("ch_1", "paid", 2)], sync_time(2))
        assert tenants_with_new_files(conn, CHARGES, tenants) == []  # not committed yet
        conn.commit()
        assert tenants_with_new_files(conn, CHARGES, tenants) == ["t2"]
        [t2] = [o for o in land_stream(conn, CHARGES, tenants) if o.status == MERGED]
        assert (t2.tenant_id, t2.rows_read) == ("t2", 1)
        assert tenants_with_new_files(conn, CHARGES, tenants) == []


@pytest.mark.postgres
def test_raw_table_columns_are_the_types_information_schema_names(tmp_path, postgres_url):
    """The raw tables' columns come from pg_catalog, only for the tenants asked: with the data
    types information_schema.columns gives (a domain's base type, ARRAY, USER-DEFINED, no
    length or precision), in column order, without dropped columns."""
    warehouse = open_warehouse(make_settings(tmp_path, postgres_url).warehouse)
    with warehouse.connect() as conn:
        for schema in ("user_acme", "user_other"):
            conn.execute(f"create schema {schema}")
        conn.execute("create domain user_acme.synced as timestamptz")
        conn.execute("create type user_acme.mood as enum ('happy')")
        conn.execute(
            "create table user_acme.stripe_charges (id varchar(20), gone int, amount numeric(10, 2),"
            " tags text[], mood user_acme.mood, paid boolean, _airbyte_extracted_at user_acme.synced)"
        )
        conn.execute("alter table user_acme.stripe_charges drop column gone")
        conn.execute("create table user_other.stripe_charges (id bigint)")  # not asked for
        columns = raw_table_columns(conn, CHARGES, ["acme", "nosource"])
        assert columns == {
            "acme": {
                "id": "character varying",
                "amount": "numeric",
                "tags": "array",
                "mood": "user-defined",
                "paid": "boolean",
                "_airbyte_extracted_at": "timestamp with time zone",
            }
        }
        listed = conn.fetch_all(
            "select column_name, lower(data_type) from information_schema.columns "
            "where table_schema = 'user_acme' and table_name = 'stripe_charges' "
            "order by ordinal_position"
        )
        assert list(columns["acme"].items()) == listed
        assert raw_table_columns(conn, CHARGES, []) == {}

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest

from tenantpulse.warehouse.base import to_qmark


def test_placeholders_are_rewritten_for_duckdb():
    assert to_qmark("select %s, '100%%' where a = %s") == "select ?, '100%' where a = ?"


def test_write_frame_round_trips_every_type_and_keeps_null_apart_from_empty(warehouse):
    frame = pd.DataFrame(
        {
            "i": pd.array([1, None, 3], dtype="Int64"),
            "d": [1.5, None, 199.99],
            "s": ['a,"quoted"', "", None],
            "t": pd.to_datetime(["2026-01-01T10:00:00Z", None, "2026-01-03T00:00:00Z"], utc=True),
            "day": [dt.date(2026, 1, 1), None, dt.date(2026, 1, 3)],
            "b": pd.array([True, None, False], dtype="boolean"),
            "j": [json.dumps({"a": 'x,\n"y"'}), None, "[]"],
        }
    )
    types = {
        "i": "bigint",
        "d": "decimal",
        "s": "varchar",
        "t": "timestamptz",
        "day": "date",
        "b": "boolean",
        "j": "json",
    }
    with warehouse.connect() as conn:
        conn.ensure_schema("scratch")
        columns = ", ".join(f"{k} {conn.sql_type(v)}" for k, v in types.items())
        conn.execute(f"create table scratch.t ({columns})")
        assert conn.write_frame("scratch", "t", frame) == 3
    with warehouse.connect() as conn:
        rows = conn.fetch_all("select i, d, s, t, day, b, j from scratch.t order by i nulls first")
    assert rows[0][:3] == (None, None, "")
    assert rows[1][0] == 1 and float(rows[1][1]) == 1.5 and rows[1][2] == 'a,"quoted"'
    assert rows[1][3] == dt.datetime(2026, 1, 1, 10, tzinfo=dt.UTC)
    assert rows[1][4] == dt.date(2026, 1, 1) and rows[1][5] is True
    assert json.loads(rows[1][6]) == {"a": 'x,\n"y"'}
    assert rows[2][2] is None and rows[2][5] is False


def test_values_are_bound_parameters_not_sql_text(warehouse):
    hostile = "x'); drop schema ops cascade; --"
    with warehouse.connect() as conn:
        conn.ensure_schema("ops")
        conn.execute("create table ops.notes (note varchar)")
        conn.execute("insert into ops.notes values (%s)", (hostile,))
        assert conn.fetch_value("select note from ops.notes where note = %s", (hostile,)) == hostile


def test_a_failed_block_rolls_back(warehouse):
    with warehouse.connect() as conn:
        conn.ensure_schema("scratch")
        conn.execute("create table scratch.n (v bigint)")
    try:
        with warehouse.connect() as conn:
            conn.execute("insert into scratch.n values (%s)", (1,))
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    with warehouse.connect() as conn:
        assert conn.fetch_value("select count(*) from scratch.n") == 0


def test_work_committed_mid_block_survives_a_later_failure(warehouse):
    with warehouse.connect() as conn:
        conn.ensure_schema("scratch")
        conn.execute("create table scratch.n (v bigint)")
    with pytest.raises(RuntimeError), warehouse.connect() as conn:
        conn.execute("insert into scratch.n values (%s)", (1,))
        conn.commit()
        conn.execute("insert into scratch.n values (%s)", (2,))
        raise RuntimeError("boom")
    with warehouse.connect() as conn:
        assert conn.fetch_all("select v from scratch.n") == [(1,)]


def test_table_columns_and_added_columns(warehouse):
    with warehouse.connect() as conn:
        conn.ensure_schema("scratch")
        conn.execute('create table scratch.c (id bigint, "totalUsers" bigint)')
        assert list(conn.table_columns("scratch", "c")) == ["id", "totalUsers"]
        assert conn.add_missing_columns("scratch", "c", {"id": "bigint", "extra": "varchar"}) == [
            "extra"
        ]
        assert list(conn.table_columns("scratch", "c")) == ["id", "totalUsers", "extra"]
        assert conn.table_columns("scratch", "missing") == {}


def test_duckdb_held_by_another_process_gives_a_clear_busy_error(tmp_path):
    import subprocess
    import sys

    import pytest

    from tenantpulse.warehouse import WarehouseBusyError
    from tenantpulse.warehouse.duckdb_warehouse import DuckDBWarehouse

    path = tmp_path / "held.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, sys, time; c = duckdb.connect({str(path)!r}); print('held', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(WarehouseBusyError, match="open in another process"):
            with DuckDBWarehouse(path, lock_wait_seconds=0.3).connect():
                pass
    finally:
        holder.kill()
        holder.wait()
    with DuckDBWarehouse(path).connect() as conn:  # free again once the holder is gone
        assert conn.fetch_value("select 1") == 1


def test_duckdb_connections_keep_to_the_memory_limit_of_dbts_profile(tmp_path):
    """DuckDB's default limit is 80% of the machine's memory; the platform's connections keep to
    the 4 GB of dbt's DuckDB target (a 10,000-tenant first load's land run grew past 8 GB)."""
    from tenantpulse.warehouse.duckdb_warehouse import DuckDBWarehouse

    profile = (Path(__file__).parents[1] / "dbt_project" / "profiles.yml").read_text()
    assert 'memory_limit: "4GB"' in profile
    with DuckDBWarehouse(tmp_path / "w.duckdb").connect() as conn:
        assert conn.fetch_value("select current_setting('memory_limit')") == "3.7 GiB"


def test_a_failed_write_names_the_table_and_its_cause(warehouse):
    from tenantpulse.warehouse import WarehouseError

    with warehouse.connect() as conn:
        conn.ensure_schema("scratch")
        conn.execute(f"create table scratch.amounts (amount {conn.sql_type('decimal')})")
        conn.commit()
        with pytest.raises(WarehouseError) as failed:
            conn.write_frame("scratch", "amounts", pd.DataFrame({"amount": [1.5, float("inf")]}))
        # The warehouse's own error, not DuckDB's "Current transaction is aborted" from cleaning up.
        assert str(failed.value).startswith("cannot write 2 rows into scratch.amounts: ")
        assert "aborted" not in str(failed.value)
        conn.rollback()
        assert conn.write_frame("scratch", "amounts", pd.DataFrame({"amount": [1.5]})) == 1
        assert conn.fetch_value("select count(*) from scratch.amounts") == 1


def test_integers_read_exactly_beside_nulls(warehouse):
    """Both warehouses give a nullable Int64 column, not floats that round 2**63 - 1 up."""
    with warehouse.connect() as conn:
        conn.ensure_schema("scratch")
        conn.execute("create table scratch.big (n bigint)")
        for value in (2**63 - 1, None, 2**53 + 1):
            conn.execute("insert into scratch.big values (%s)", (value,))
        frame = conn.read_frame("select n from scratch.big")
    assert str(frame["n"].dtype) == "Int64"
    assert frame["n"].tolist() == [2**63 - 1, pd.NA, 2**53 + 1]

"""Embedded mode: a real Airbyte connector (airbyte-source-faker, offline) run by PyAirbyte in its
own environment, its records written to `user_<tenant>.faker_<stream>` on DuckDB and Postgres.

Needs the PyAirbyte environment (`make pyairbyte`, which `make test` builds) and PyPI (PyAirbyte
installs the connector on first use). Without the environment the test skips, except under CI=true.
"""

import json
import os
import time
from pathlib import Path

import pytest

from rawdata import has_raw, raw_columns, raw_relation
from tenantpulse.airbyte.embedded import (
    EmbeddedSyncError,
    logical_type,
    run_embedded_sync,
)
from tenantpulse.tenants.registry import add_tenant

REPO = Path(__file__).resolve().parents[1]
PYAIRBYTE_PYTHON = Path(
    os.environ.get("TENANTPULSE_TEST_PYAIRBYTE_PYTHON") or REPO / ".venv-pyairbyte/bin/python"
)
FAKER = "airbyte-source-faker==7.2.1"


@pytest.fixture(scope="session")
def pyairbyte_python():
    if not PYAIRBYTE_PYTHON.exists():
        message = f"no PyAirbyte environment at {PYAIRBYTE_PYTHON}: run `make pyairbyte`"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return PYAIRBYTE_PYTHON


@pytest.fixture(scope="session")
def connectors_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("connectors")


def test_json_schema_types_map_like_airbytes_postgres_destination():
    assert logical_type({"type": ["null", "integer"]}) == "bigint"
    assert logical_type({"type": "number"}) == "decimal"
    assert logical_type({"type": "string", "format": "date-time"}) == "timestamptz"
    assert logical_type({"type": "string", "format": "date"}) == "date"
    assert logical_type({"type": "object", "properties": {}}) == "json"
    assert logical_type({"type": ["string", "integer"]}) == "json"  # a union
    assert logical_type({"type": "boolean"}) == "boolean"
    assert logical_type({"type": "string"}) == "varchar"


@pytest.mark.slow
def test_faker_connector_writes_the_tenants_raw_tables_with_airbyte_columns(
    warehouse, pyairbyte_python, connectors_dir
):
    with warehouse.connect() as conn:
        add_tenant(conn, "acme", "Acme", "stripe")
    # source-faker's own pool can hang forever after its fork (a lock held by another of its
    # threads): a sync that has not ended in 5 minutes is killed, recorded as failed, and tried
    # once more with that record gone.
    for attempt in (1, 2):
        try:
            sync = run_embedded_sync(
                warehouse,
                "acme",
                "faker",
                "source-faker",
                {"count": 25, "seed": 7, "parallelism": 1},
                python=pyairbyte_python,
                install_root=connectors_dir,
                streams=["users", "products"],
                pip_url=FAKER,
                timeout_seconds=300,
            )
            break
        except EmbeddedSyncError as error:
            if attempt == 2 or "no end after" not in str(error):
                raise
            with warehouse.connect() as conn:
                conn.execute("delete from ops.airbyte_sync_history")

    assert sync.rows_by_stream["users"] == 25 and sync.rows_by_stream["products"] > 0
    with warehouse.connect() as conn:
        columns = raw_columns(conn, "acme", "faker_users")
        users = raw_relation(conn, "acme", "faker_users")
        assert {
            "_airbyte_raw_id",
            "_airbyte_extracted_at",
            "_airbyte_meta",
            "_airbyte_generation_id",
        } <= set(columns)
        assert columns["id"] == "bigint"
        assert "timestamp with time zone" in columns["created_at"]
        assert conn.fetch_all(
            "select count(*), count(distinct id), min(id), max(id), count(distinct _airbyte_raw_id) "
            f"from {users}"
        ) == [(25, 25, 1, 25, 25)]
        meta = conn.fetch_value(f"select cast(_airbyte_meta as varchar) from {users} limit 1")
        assert json.loads(meta) == {"sync_id": 1, "changes": []}
        address = conn.fetch_value(f"select cast(address as varchar) from {users} where id = 1")
        assert set(json.loads(address)) >= {"city", "country_code"}
        assert (
            conn.fetch_value(f"select count(*) from {raw_relation(conn, 'acme', 'faker_products')}")
            == (sync.rows_by_stream["products"])
        )
        assert conn.fetch_all(
            "select tenant_id, source, status, records from ops.airbyte_sync_history"
        ) == [("acme", "faker", "succeeded", 25 + sync.rows_by_stream["products"])]


@pytest.mark.slow
def test_a_connector_that_cannot_start_is_recorded_as_a_failed_sync(
    tmp_path, warehouse, pyairbyte_python, connectors_dir
):
    with pytest.raises(EmbeddedSyncError, match="source-faker exited 1") as error:
        run_embedded_sync(
            warehouse,
            "acme",
            "faker",
            "source-faker",
            {"count": "not a number"},
            python=pyairbyte_python,
            install_root=connectors_dir,
            streams=["users"],
            pip_url=FAKER,
        )
    with warehouse.connect() as conn:
        rows = conn.fetch_all("select source, status, records, error from ops.airbyte_sync_history")
        assert not has_raw(conn, "acme", "faker_users")
    assert [(s, st, r) for s, st, r, _ in rows] == [("faker", "failed", 0)]
    assert rows[0][3] == str(error.value)


def _running(pid: int) -> bool:
    """Is `pid` a live process (not gone, not a zombie waiting to be reaped)?"""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_a_connector_that_never_ends_is_killed_with_its_children_and_recorded(tmp_path, warehouse):
    # A stand-in for the PyAirbyte environment's python: it starts a child (as PyAirbyte starts
    # the connector) and neither ever ends, as source-faker's pool can after a fork.
    child_pid = tmp_path / "child.pid"
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nsleep 300 &\necho $! > "{child_pid}"\nsleep 300\n')
    python.chmod(0o755)
    with pytest.raises(EmbeddedSyncError, match="no end after 5 s; its processes were killed"):
        run_embedded_sync(
            warehouse,
            "acme",
            "faker",
            "source-faker",
            {},
            python=python,
            install_root=tmp_path,
            timeout_seconds=5,
        )
    pid = int(child_pid.read_text())
    deadline = time.monotonic() + 10
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(pid), "the connector's child outlived the timeout"
    with warehouse.connect() as conn:
        rows = conn.fetch_all("select source, status, records from ops.airbyte_sync_history")
    assert rows == [("faker", "failed", 0)]

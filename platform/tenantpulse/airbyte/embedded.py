"""Embedded mode for small deployments: a real Airbyte connector run by PyAirbyte on this machine,
its records written to `user_<tenant>.<source>_<stream>` like Airbyte's Postgres destination
(docs/airbyte.md, "Embedded: PyAirbyte"). No Airbyte server.

PyAirbyte cannot share the project's environment (it pins pandas<3 and duckdb 1.4), so it runs in
its own environment (`make pyairbyte`) as a subprocess: `pyairbyte_runner.py` reads the records,
this module types them from the stream's JSON schema and writes them through the warehouse seam,
so both DuckDB and Postgres work.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tenantpulse.sources.contracts import (
    BIGINT,
    BOOLEAN,
    DATE,
    DECIMAL,
    JSON,
    TIMESTAMPTZ,
    VARCHAR,
    Column,
    StreamContract,
)
from tenantpulse.sources.raw_table_ddl import write_raw_frame
from tenantpulse.sources.sync_history import (
    FAILED,
    SUCCEEDED,
    SyncRecord,
    ensure_sync_history,
    record_sync,
)
from tenantpulse.tenants.ids import validate_tenant_id
from tenantpulse.warehouse import Warehouse

RUNNER = Path(__file__).with_name("pyairbyte_runner.py")
AIRBYTE_FIELDS = ("_airbyte_raw_id", "_airbyte_extracted_at", "_airbyte_meta")
ERROR_TAIL_CHARS = 1500  # of a failed connector's output, kept in the error and the sync history


class EmbeddedSyncError(RuntimeError):
    """The connector run failed; the message has the end of its output."""


@dataclass(frozen=True)
class EmbeddedSync:
    tenant_id: str
    source: str
    job_id: str
    rows_by_stream: dict[str, int] = field(default_factory=dict)
    error: str | None = None


def logical_type(json_schema: Mapping[str, Any]) -> str:
    """A JSON-schema property's column type, as Airbyte's Postgres destination types it."""
    kinds = json_schema.get("type", "string")
    kinds = [kinds] if isinstance(kinds, str) else [k for k in kinds if k != "null"]
    if len(kinds) != 1 or kinds[0] in ("object", "array"):
        return JSON  # unions and nested data stay JSON, never split into tables
    kind = kinds[0]
    if kind == "integer":
        return BIGINT
    if kind == "number":
        return BIGINT if json_schema.get("airbyte_type") == "integer" else DECIMAL
    if kind == "boolean":
        return BOOLEAN
    if json_schema.get("format") == "date-time":
        return TIMESTAMPTZ
    if json_schema.get("format") == "date":
        return DATE
    return VARCHAR


def stream_contract(source: str, stream: str, schema: Mapping[str, Any]) -> StreamContract:
    properties = schema["json_schema"].get("properties", {})
    return StreamContract(
        source=source,
        stream=stream,
        primary_key=tuple(schema.get("primary_key") or ()),
        cursor="",
        columns=tuple(Column(name, logical_type(p)) for name, p in properties.items()),
    )


def records_frame(contract: StreamContract, records: list[dict], sync_number: int) -> pd.DataFrame:
    """The records as the raw table's rows: typed columns plus Airbyte's metadata columns."""
    data: dict[str, pd.Series] = {}
    for column in contract.columns:
        values = [r.get(column.name) for r in records]
        data[column.name] = _typed(values, column.type)
    data["_airbyte_raw_id"] = pd.Series([r["_airbyte_raw_id"] for r in records], dtype=object)
    data["_airbyte_extracted_at"] = pd.to_datetime(
        [r["_airbyte_extracted_at"] for r in records], utc=True, format="ISO8601"
    )
    data["_airbyte_meta"] = pd.Series(
        [
            json.dumps(
                {
                    "sync_id": sync_number,
                    "changes": (r.get("_airbyte_meta") or {}).get("changes", []),
                }
            )
            for r in records
        ],
        dtype=object,
    )
    data["_airbyte_generation_id"] = pd.array([0] * len(records), dtype="Int64")
    return pd.DataFrame(data)


def run_embedded_sync(
    warehouse: Warehouse,
    tenant_id: str,
    source: str,
    connector: str,
    config: Mapping[str, Any],
    *,
    python: Path,
    install_root: Path,
    streams: list[str] | None = None,
    pip_url: str | None = None,
    timeout_seconds: float = 900,
) -> EmbeddedSync:
    """Read `streams` (default: all) of `connector` (e.g. "source-faker") with PyAirbyte for one
    tenant and append them to `user_<tenant>.<source>_<stream>`; record the sync in
    `ops.airbyte_sync_history` whether it succeeds or fails (then raise EmbeddedSyncError)."""
    tenant_id = validate_tenant_id(tenant_id)
    started = dt.datetime.now(dt.UTC)
    job_id = f"pyairbyte-{started.strftime('%Y%m%dT%H%M%S%f')}"
    connection_id = f"pyairbyte:{tenant_id}:{source}:{connector}"
    with tempfile.TemporaryDirectory(prefix="tenantpulse-pyairbyte-") as out_dir:
        request = {
            "connector": connector,
            "config": dict(config),
            "streams": streams,
            "pip_url": pip_url,
            "install_root": str(install_root),
            "out_dir": out_dir,
        }
        try:
            _run_connector(python, request, timeout_seconds)
            rows = _write_streams(warehouse, tenant_id, source, connection_id, Path(out_dir))
        except EmbeddedSyncError as error:
            _record(warehouse, connection_id, tenant_id, source, job_id, started, {}, str(error))
            raise
    _record(warehouse, connection_id, tenant_id, source, job_id, started, rows, None)
    return EmbeddedSync(tenant_id, source, job_id, rows)


def _run_connector(python: Path, request: dict, timeout_seconds: float) -> None:
    env = {
        **os.environ,
        # PyAirbyte installs connectors with the uv of its own environment.
        "PATH": f"{Path(python).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        # The connector registry is on the internet: work from PyPI package names only.
        "AIRBYTE_OFFLINE_MODE": "1",
        "DO_NOT_TRACK": "1",
    }
    try:
        # A session of its own: on a timeout the whole group goes, the connector PyAirbyte started
        # and its workers too (source-faker's pool can hang forever after a fork), not only the
        # runner.
        runner = subprocess.Popen(
            [str(python), str(RUNNER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
    except OSError as error:
        raise EmbeddedSyncError(f"{request['connector']}: {error}") from error
    try:
        stdout, stderr = runner.communicate(json.dumps(request), timeout=timeout_seconds)
    except subprocess.TimeoutExpired as error:
        os.killpg(runner.pid, signal.SIGKILL)
        runner.communicate()
        raise EmbeddedSyncError(
            f"{request['connector']}: no end after {timeout_seconds:g} s; its processes were killed"
        ) from error
    if runner.returncode != 0:
        tail = "\n".join((stderr or stdout).strip().splitlines()[-15:])
        if len(tail) > ERROR_TAIL_CHARS:  # a traceback line can be thousands of characters
            tail = "…" + tail[-ERROR_TAIL_CHARS:]
        raise EmbeddedSyncError(f"{request['connector']} exited {runner.returncode}:\n{tail}")


def _write_streams(
    warehouse: Warehouse, tenant_id: str, source: str, connection_id: str, out_dir: Path
) -> dict[str, int]:
    rows = {}
    with warehouse.connect() as conn:
        ensure_sync_history(conn)
        sync_number = 1 + conn.fetch_value(  # `_airbyte_meta.sync_id`: this connection's n-th sync
            "select count(*) from ops.airbyte_sync_history where connection_id = %s",
            (connection_id,),
        )
        for schema_file in sorted(out_dir.glob("*.schema.json")):
            stream = schema_file.name.removesuffix(".schema.json")
            contract = stream_contract(source, stream, json.loads(schema_file.read_text()))
            with (out_dir / f"{stream}.jsonl").open() as lines:
                records = [json.loads(line) for line in lines]
            frame = records_frame(contract, records, sync_number)
            rows[stream] = write_raw_frame(conn, tenant_id, contract, frame)
    return rows


def _record(warehouse, connection_id, tenant_id, source, job_id, started, rows, error) -> None:
    with warehouse.connect() as conn:
        record_sync(
            conn,
            SyncRecord(
                tenant_id=tenant_id,
                connection_id=connection_id,
                source=source,
                job_id=job_id,
                started_at=started,
                finished_at=dt.datetime.now(dt.UTC),
                records=sum(rows.values()),
                status=FAILED if error else SUCCEEDED,
                error=error,
            ),
        )


def _typed(values: list, kind: str) -> pd.Series:
    if kind == BIGINT:
        return pd.Series(pd.array([None if v is None else int(v) for v in values], dtype="Int64"))
    if kind == DECIMAL:
        return pd.Series([None if v is None else float(v) for v in values], dtype="float64")
    if kind == BOOLEAN:
        return pd.Series(pd.array(values, dtype="boolean"))
    if kind == TIMESTAMPTZ:
        return pd.Series(pd.to_datetime(values, utc=True, format="ISO8601", errors="coerce"))
    if kind == DATE:
        return pd.Series(
            [None if v is None else dt.date.fromisoformat(str(v)[:10]) for v in values],
            dtype=object,
        )
    if kind == JSON:
        return pd.Series([None if v is None else json.dumps(v) for v in values], dtype=object)
    return pd.Series([None if v is None else str(v) for v in values], dtype=object)

"""`ops.airbyte_sync_history`: one row per sync of a tenant's connection, simulated or real."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from tenantpulse.warehouse import Connection

SUCCEEDED = "succeeded"
FAILED = "failed"
SIMULATED_CONNECTIONS = "sim:%"  # a like pattern: the simulator's connection ids


@dataclass(frozen=True)
class SyncRecord:
    tenant_id: str
    connection_id: str  # the Airbyte connection id; the simulator uses "sim:<tenant>:<source>"
    source: str
    job_id: str
    started_at: dt.datetime
    finished_at: dt.datetime
    records: int
    status: str  # succeeded | failed
    error: str | None = None


def ensure_sync_history(conn: Connection) -> None:
    conn.ensure_schema("ops")
    conn.execute(
        "create table if not exists ops.airbyte_sync_history ("
        " tenant_id varchar not null,"
        " connection_id varchar not null,"
        " source varchar not null,"
        " job_id varchar not null,"
        " started_at timestamptz not null,"
        " finished_at timestamptz,"
        " records bigint not null,"
        " status varchar not null,"
        " error varchar,"
        " recorded_at timestamptz,"
        " primary key (connection_id, job_id))"
    )
    # Tables made before the column existed; their rows count as recorded long ago.
    conn.execute(
        "alter table ops.airbyte_sync_history add column if not exists recorded_at timestamptz"
    )


def record_sync(conn: Connection, record: SyncRecord) -> None:
    record_syncs(conn, [record])


def record_syncs(conn: Connection, records: list[SyncRecord]) -> None:
    """Record many syncs in one statement (the simulator's bulk mode writes thousands)."""
    if not records:
        return
    ensure_sync_history(conn)
    recorded_at = dt.datetime.now(dt.UTC)
    conn.execute(
        "insert into ops.airbyte_sync_history (tenant_id, connection_id, source, job_id, "
        "started_at, finished_at, records, status, error, recorded_at) values "
        + ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"] * len(records)),
        [
            value
            for record in records
            for value in (
                record.tenant_id,
                record.connection_id,
                record.source,
                record.job_id,
                record.started_at,
                record.finished_at,
                record.records,
                record.status,
                record.error,
                recorded_at,
            )
        ],
    )


@dataclass(frozen=True)
class RecordedSync:
    tenant_id: str
    connection_id: str
    job_id: str
    recorded_at: dt.datetime


def syncs_recorded_since(conn: Connection, since: dt.datetime) -> list[RecordedSync]:
    """Successful syncs recorded (by wall clock, whatever the sync's own times) after `since`,
    oldest first: what the new-syncs sensor lands."""
    if not conn.table_exists("ops", "airbyte_sync_history"):
        return []
    rows = conn.fetch_all(
        "select tenant_id, connection_id, job_id, recorded_at from ops.airbyte_sync_history "
        "where status = %s and recorded_at > %s order by recorded_at, connection_id, job_id",
        (SUCCEEDED, since),
    )
    return [RecordedSync(*row) for row in rows]

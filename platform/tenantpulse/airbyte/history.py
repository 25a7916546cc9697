"""Record finished Airbyte jobs in `ops.airbyte_sync_history`, once per (connection, job): the sync
step and the jobs sensor may both see the same job."""

from __future__ import annotations

from tenantpulse.sources.sync_history import SyncRecord, ensure_sync_history, record_sync
from tenantpulse.warehouse import Connection


def record_airbyte_job(conn: Connection, record: SyncRecord) -> None:
    """Insert the job's row, replacing an earlier row of the same job (its newest state wins)."""
    ensure_sync_history(conn)
    conn.execute(
        "delete from ops.airbyte_sync_history where connection_id = %s and job_id = %s",
        (record.connection_id, record.job_id),
    )
    record_sync(conn, record)

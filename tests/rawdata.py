"""Small hand-made raw rows in Airbyte's shape, for landing tests."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pandas as pd

from tenantpulse.sources.contracts import STREAMS_BY_NAME
from tenantpulse.sources.raw_table_ddl import write_raw_frame


def sync_time(day: int) -> dt.datetime:
    return dt.datetime(2026, 11, day, tzinfo=dt.UTC)


def raw_frame(stream: str, records: list[dict], extracted_at: dt.datetime, sync_id: int = 1):
    """Rows with every contract column (unset ones NULL) plus Airbyte's metadata columns."""
    contract = STREAMS_BY_NAME[stream]
    rows = []
    for record in records:
        row = {name: record.get(name) for name in contract.column_names}
        row.update({k: v for k, v in record.items() if k not in row})  # drifted columns
        row["_airbyte_raw_id"] = str(uuid.uuid4())
        row["_airbyte_extracted_at"] = extracted_at
        row["_airbyte_meta"] = json.dumps({"changes": [], "sync_id": sync_id})
        row["_airbyte_generation_id"] = 0
        rows.append(row)
    frame = pd.DataFrame(rows)
    for column in contract.all_columns:  # keep integers integers when some rows leave them NULL
        if (
            column.type == "bigint"
            and column.name in frame
            and frame[column.name].dtype.kind in "fiO"
        ):
            frame[column.name] = pd.array(frame[column.name].tolist(), dtype="Int64")
    return frame


def write_raw(conn, tenant_id: str, stream: str, records: list[dict], extracted_at, sync_id=1):
    frame = raw_frame(stream, records, extracted_at, sync_id)
    write_raw_frame(conn, tenant_id, STREAMS_BY_NAME[stream], frame)

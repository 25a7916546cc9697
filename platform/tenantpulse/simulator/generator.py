"""The simulator's generator: a pure, deterministic stand-in for Airbyte that returns, per sync,
the frames Airbyte would write for a tenant's streams (shape: sources/contracts.py, model:
docs/simulator.md).

No database and no Dagster here: the caller decides each sync's window and writes the frames.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import pandas as pd

from tenantpulse.simulator import github, google_analytics, shopify, stripe
from tenantpulse.simulator.profiles import get_profile
from tenantpulse.simulator.world import (
    SECONDS_PER_DAY,
    Rows,
    World,
    day_start_epoch,
    dumps,
    epoch,
    raw_ids,
    stable_hash,
)
from tenantpulse.sources.contracts import (
    BIGINT,
    BOOLEAN,
    DATE,
    DECIMAL,
    JSON,
    SOURCES,
    TIMESTAMPTZ,
    VARCHAR,
    Column,
    StreamContract,
    streams_for,
)


@dataclass(frozen=True)
class SyncWindow:
    sync_number: int  # 1-based per (tenant, source); 1 = the first, historical sync
    extracted_at: datetime  # tz-aware UTC: this sync's clock
    previous_extracted_at: datetime | None  # None on the first sync: emit everything that exists


_BUILDERS: dict[str, Callable[[World, float | None], dict[str, Rows]]] = {
    "stripe": stripe.sync,
    "github": github.sync,
    "shopify": shopify.sync,
    "google_analytics": google_analytics.sync,
}


def generate_sync(
    tenant_id: str,
    profile: str,
    sources: Sequence[str],
    window: SyncWindow,
    *,
    seed: int,
    history_start: date,
    volume: float = 1.0,
) -> dict[str, pd.DataFrame]:
    """What one Airbyte sync of `sources` writes for the tenant: a frame per stream, keyed by
    `StreamContract.name`, with the contract's columns (plus any planted drift column)."""
    chosen = get_profile(profile)
    for source in sources:
        if source not in SOURCES:
            raise ValueError(f"unknown source {source!r}; known sources: {', '.join(SOURCES)}")
    if volume <= 0:
        raise ValueError(f"volume must be positive, got {volume!r}")
    if window.sync_number < 1:
        raise ValueError(f"sync_number is 1-based, got {window.sync_number!r}")
    now_t = epoch(window.extracted_at)
    after_t = None
    if window.previous_extracted_at is not None:
        after_t = epoch(window.previous_extracted_at)
        if after_t >= now_t:
            raise ValueError(
                f"previous_extracted_at {window.previous_extracted_at} is not before "
                f"extracted_at {window.extracted_at}"
            )
    start_t = day_start_epoch(history_start)
    if now_t < start_t:
        raise ValueError(
            f"extracted_at {window.extracted_at} is before history_start {history_start}"
        )
    world = World(
        tenant_id=tenant_id,
        profile=chosen,
        seed=int(seed),
        tenant_key=stable_hash(tenant_id),
        history_start=history_start,
        start_t=start_t,
        last_day=int((now_t - start_t) // SECONDS_PER_DAY),
        now_t=now_t,
        volume=float(volume),
    )
    frames: dict[str, pd.DataFrame] = {}
    for source in dict.fromkeys(sources):
        rows = _BUILDERS[source](world, after_t)
        for contract in streams_for(source):
            frames[contract.name] = _typed_frame(contract, rows[contract.name], world, window)
    return frames


def _typed_frame(
    contract: StreamContract, rows: Rows, world: World, window: SyncWindow
) -> pd.DataFrame:
    """The rows as a frame with the contract's columns, in order, typed by logical type."""
    n = len(rows.keys)
    meta = dumps({"changes": [], "sync_id": window.sync_number})
    airbyte = {
        "_airbyte_raw_id": raw_ids(
            world, stable_hash(contract.name), rows.keys, window.sync_number
        ),
        "_airbyte_meta": np.full(n, meta, dtype=object),
        "_airbyte_generation_id": np.zeros(n, dtype=np.int64),
    }
    # The sync's clock exactly, not through epoch seconds.
    stamp = pd.Timestamp(window.extracted_at).tz_convert("UTC")
    data = {}
    for column in contract.all_columns + rows.extra_columns:
        if column.name == "_airbyte_extracted_at":
            data[column.name] = pd.Series([stamp] * n, dtype="datetime64[ns, UTC]")
            continue
        values = airbyte[column.name] if column.name in airbyte else rows.columns[column.name]
        data[column.name] = _typed(values, column, n)
    missing = set(rows.columns) - {c.name for c in contract.all_columns + rows.extra_columns}
    if missing:
        raise AssertionError(f"{contract.name}: columns outside the contract: {sorted(missing)}")
    return pd.DataFrame(data)


def _typed(values: object, column: Column, n: int) -> pd.Series:
    kind = column.type
    if kind == BIGINT:
        array = pd.array(_as_list_or_array(values), dtype="Int64")
    elif kind == DECIMAL:
        array = np.asarray(_nullable_floats(values), dtype=np.float64)
    elif kind in (VARCHAR, JSON, DATE):
        array = np.asarray(values, dtype=object)
        missing = pd.isna(array)
        if missing.any():
            array = array.copy()
            array[missing] = None
    elif kind == TIMESTAMPTZ:
        seconds = np.asarray(_nullable_floats(values), dtype=np.float64)
        array = pd.to_datetime(seconds, unit="s", utc=True).astype("datetime64[ns, UTC]")
    elif kind == BOOLEAN:
        array = pd.array(_as_list_or_array(values), dtype="boolean")
    else:
        raise ValueError(f"column {column.name} has unknown logical type {kind!r}")
    if len(array) != n:
        raise AssertionError(f"column {column.name} has {len(array)} values for {n} rows")
    dtype = object if kind in (VARCHAR, JSON, DATE) else None
    return pd.Series(array, dtype=dtype, copy=False)


def _as_list_or_array(values: object) -> object:
    if isinstance(values, np.ndarray) and values.dtype != object:
        return values
    return [None if v is None or (isinstance(v, float) and np.isnan(v)) else v for v in values]


def _nullable_floats(values: object) -> object:
    if isinstance(values, np.ndarray) and values.dtype != object:
        return values
    return [np.nan if v is None else v for v in values]

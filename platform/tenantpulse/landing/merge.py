"""Merge each tenant's new raw rows into `landing.<source>__<stream>`.

Per stream and a set of tenants, in chunks of tenants (`raw_table_reads`): read each tenant's raw
rows newer than its watermark (on DuckDB: its raw files after the newest landed one,
`raw_file_reads`), type them against the contract (rows that do not fit go to `landing.quarantine`
with the reason), keep the latest version of each (tenant_id, primary key), and replace those keys
in the landing table with one delete and one insert per chunk. Re-running changes nothing: the
watermark (and the newest landed file) has moved past the rows, and quarantined rows are keyed by a
hash of their content. A read or merge that fails is undone and done again tenant by tenant, so that
only the tenant it fails for is failed, by name, and the others land.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd

from tenantpulse.landing.raw_file_reads import (
    FolderScan,
    ensure_landed_files,
    landed_marks,
    scan_folders,
)
from tenantpulse.landing.raw_table_reads import (
    RAW_FILE,
    RawUnit,
    file_units,
    raw_label,
    read_new_rows,
    same_shape_chunks,
    table_units,
)
from tenantpulse.landing.validate import validate_rows
from tenantpulse.sources.contracts import AIRBYTE_COLUMN_NAMES, StreamContract
from tenantpulse.warehouse import Connection, qualified, quote_ident

LANDING_SCHEMA = "landing"
# New rows per merge: each merge's delete joins the whole landing table, so fewer is cheaper.
ROWS_PER_MERGE = 500_000
MERGED, UP_TO_DATE, NO_RAW_TABLE, FAILED = "merged", "up_to_date", "no_raw_table", "failed"


@dataclass
class TenantLanding:
    """What landing did for one tenant and stream."""

    tenant_id: str
    status: str = UP_TO_DATE
    rows_read: int = 0
    rows_landed: int = 0  # distinct (tenant_id, primary key) written
    rows_quarantined: int = 0
    extra_columns: tuple[str, ...] = ()  # in the raw table, not in the contract (schema drift)
    missing_columns: tuple[str, ...] = ()  # in the contract, not in the raw table (landed as NULL)
    watermark: dt.datetime | None = None  # newest _airbyte_extracted_at landed so far
    oldest_synced: dt.datetime | None = None  # oldest _airbyte_extracted_at this landing merged
    error: str | None = None


def ensure_landing_tables(conn: Connection, contract: StreamContract) -> None:
    conn.ensure_schema(LANDING_SCHEMA)
    columns = {"tenant_id": "varchar", **{c.name: c.type for c in contract.all_columns}}
    if conn.table_exists(LANDING_SCHEMA, contract.name):
        conn.add_missing_columns(LANDING_SCHEMA, contract.name, columns)
    else:
        definitions = ", ".join(
            f"{quote_ident(name)} {conn.sql_type(kind)}" for name, kind in columns.items()
        )
        key = ", ".join(quote_ident(c) for c in ("tenant_id", *contract.primary_key))
        # DuckDB checks and grows an ART index on every insert: with it, most of a merge's time
        # (docs/decisions.md). The merge keeps the key unique; Postgres' index serves its delete.
        constraint = "" if conn.dialect == "duckdb" else f", primary key ({key})"
        conn.execute(
            f"create table {qualified(LANDING_SCHEMA, contract.name)} ({definitions}{constraint})"
        )
    conn.execute(
        "create table if not exists landing.quarantine ("
        " tenant_id varchar not null, stream varchar not null, record_hash varchar not null,"
        " _airbyte_raw_id varchar, _airbyte_extracted_at varchar, reason varchar not null,"
        f" record {conn.sql_type('json')} not null, quarantined_at timestamptz not null,"
        " primary key (tenant_id, stream, record_hash))"
    )
    ensure_landed_files(conn)
    conn.execute(
        "create table if not exists landing.watermarks ("
        " tenant_id varchar not null, stream varchar not null,"
        " watermark timestamptz not null, updated_at timestamptz not null,"
        " primary key (tenant_id, stream))"
    )


def land_stream(
    conn: Connection, contract: StreamContract, tenant_ids: list[str]
) -> list[TenantLanding]:
    """Land the new raw rows of `contract` for every tenant in `tenant_ids` (validated ids).

    Raw tables or files are read a chunk of tenants at a time (`raw_table_reads`); their rows are
    merged once ROWS_PER_MERGE have been read (an incremental day: once per stream; a first load:
    in batches that bound memory), each merge committed: what is merged stays merged if a later
    batch fails. On DuckDB each merge also records the tenants' newest files as landed."""
    ensure_landing_tables(conn, contract)
    conn.commit()  # a failed read or merge rolls back to here (_isolating)
    if not tenant_ids:  # no tenant to read: no catalog lookup, no watermark
        return []
    watermarks = _watermarks(conn, contract, tenant_ids)
    outcomes = {t: TenantLanding(t, watermark=watermarks.get(t)) for t in tenant_ids}
    scans: dict[str, FolderScan] = {}
    if conn.dialect == "duckdb":
        scans = scan_folders(conn, contract, tenant_ids)
        units, unreadable = file_units(conn, contract, list(scans.values()))
        for tenant_id, error in unreadable.items():
            _fail(
                outcomes[tenant_id],
                f"reading {raw_label(conn, tenant_id, contract)} failed: {error}",
            )
        present = {t for t, scan in scans.items() if scan.exists}
    else:
        units = table_units(conn, contract, tenant_ids)
        present = set(units)
    # In tenant id order: the rows are stored as they are read (_replace_rows).
    readable = [
        u
        for _, u in sorted(units.items())
        if _check_raw_columns(contract, outcomes[u.tenant_id], u)
    ]
    expected = contract.column_names + AIRBYTE_COLUMN_NAMES
    batch: list[pd.DataFrame] = []
    batch_tenants: list[str] = []
    batch_columns: dict[str, str] = {}

    def merge_batch() -> None:
        rows = pd.concat(batch, ignore_index=True) if batch else pd.DataFrame()
        tenants = list(batch_tenants)
        batch.clear()
        batch_tenants.clear()
        _isolating(
            conn,
            contract,
            outcomes,
            tenants,
            "merging the rows of",
            lambda some: _merge_batch(
                conn,
                contract,
                rows[rows["tenant_id"].isin(some)] if len(rows) and some != tenants else rows,
                batch_columns,
                outcomes,
                [scans[t] for t in some if t in scans],
            ),
        )

    def read(columns: dict[str, str], chunk: dict[str, RawUnit], tenants: list[str]) -> None:
        raw = read_new_rows(conn, contract, [chunk[t] for t in tenants], columns, watermarks)
        conn.commit()  # releases the chunk's table locks (see raw_table_reads)
        batch_tenants.extend(tenants)
        if not raw.empty:
            batch.append(raw)

    for columns, chunk in same_shape_chunks(readable):
        if batch_tenants and columns != batch_columns:
            merge_batch()
        batch_columns = columns
        wanted = {c: columns[c] for c in expected if c in columns}
        by_tenant = {u.tenant_id: u for u in chunk}
        _isolating(
            conn, contract, outcomes, list(by_tenant), "reading", partial(read, wanted, by_tenant)
        )
        if sum(map(len, batch)) >= ROWS_PER_MERGE:
            merge_batch()
    if batch_tenants:
        merge_batch()
    _record_listed_folders(conn, contract, scans, outcomes, units)
    for outcome in outcomes.values():
        if outcome.tenant_id not in present and outcome.status == UP_TO_DATE:
            outcome.status = NO_RAW_TABLE
    return list(outcomes.values())


def _record_listed_folders(
    conn: Connection,
    contract: StreamContract,
    scans: dict[str, FolderScan],
    outcomes: dict[str, TenantLanding],
    units: dict[str, RawUnit],
) -> None:
    """Save the time of the folders listed with nothing new in them, so the next run does not
    list them again (those with new files were saved with their merge)."""
    listed = [
        s
        for s in scans.values()
        if s.listed and s.tenant_id not in units and outcomes[s.tenant_id].status != FAILED
    ]
    if listed:
        _save_landed_files(conn, contract, landed_marks(listed, {}))
        conn.commit()


def _fail(outcome: TenantLanding, error: str) -> None:
    outcome.status = FAILED
    outcome.error = error


def _isolating(
    conn: Connection,
    contract: StreamContract,
    outcomes: dict[str, TenantLanding],
    tenant_ids: list[str],
    what: str,
    step: Callable[[list[str]], None],
) -> None:
    """Run `step(tenant_ids)`; if it raises, roll it back and run it tenant by tenant, failing by
    name each tenant it still raises for. A rollback that fails (the warehouse is gone) raises."""
    try:
        step(tenant_ids)
    except Exception as error:
        conn.rollback()
        if len(tenant_ids) > 1:
            for tenant_id in tenant_ids:
                _isolating(conn, contract, outcomes, [tenant_id], what, step)
            return
        tenant_id = tenant_ids[0]
        cause = (str(error).splitlines() or [""])[0]
        _fail(
            outcomes[tenant_id],
            f"{what} {raw_label(conn, tenant_id, contract)} failed: "
            f"{type(error).__name__}: {cause}",
        )


def _check_raw_columns(contract: StreamContract, outcome: TenantLanding, unit: RawUnit) -> bool:
    """Record drift on `outcome`; False (and the tenant failed) if the table or a file lacks a
    key column, or its `_airbyte_extracted_at` is not a timestamp."""
    expected = contract.column_names + AIRBYTE_COLUMN_NAMES
    outcome.extra_columns = tuple(c for c in unit.columns if c not in expected)
    outcome.missing_columns = tuple(c for c in expected if c not in unit.columns)
    lacking_keys = [c for c in contract.required_columns if c not in unit.columns]
    synced_type = unit.columns.get("_airbyte_extracted_at", "timestamp")
    if lacking_keys:
        outcome.error = (
            f"{unit.label} has no column {', '.join(lacking_keys)}: its primary key and "
            "Airbyte metadata are required to land it"
        )
    elif unit.file_problems:
        name, lacking = next(iter(unit.file_problems.items()))
        outcome.error = (
            f"{unit.label}: its file {name} has no column {', '.join(lacking)}: its primary key "
            "and Airbyte metadata are required to land it"
        )
    elif not synced_type.startswith("timestamp"):
        outcome.error = (
            f"{unit.label}: its _airbyte_extracted_at is {synced_type}, not a timestamp "
            "(Airbyte writes timestamp with time zone): landing reads each sync's new rows by it"
        )
    if outcome.error:
        outcome.status = FAILED
    return outcome.error is None


def _merge_batch(
    conn: Connection,
    contract: StreamContract,
    raw: pd.DataFrame,
    raw_columns: dict[str, str],
    outcomes: dict[str, TenantLanding],
    scans: list[FolderScan],
) -> None:
    """Type, dedupe and merge new raw rows of some tenants (`raw` has `tenant_id`), record the
    files of `scans` as landed (DuckDB), and commit."""
    if raw.empty:  # files without rows: only their landing is recorded
        _save_landed_files(conn, contract, landed_marks(scans, {}))
        conn.commit()
        return
    json_typed = {c for c, data_type in raw_columns.items() if data_type in ("json", "jsonb")}
    tenants = raw["tenant_id"]
    files = raw[RAW_FILE] if RAW_FILE in raw.columns else pd.Series(dtype=object)
    checked = validate_rows(
        contract, raw.drop(columns=["tenant_id", RAW_FILE], errors="ignore"), json_typed
    )
    in_future = files[checked.in_future.reindex(files.index, fill_value=False)]
    in_future_files = in_future.groupby(tenants[in_future.index]).agg(list).to_dict()
    valid = checked.valid.assign(tenant_id=tenants.drop(index=checked.rejected.index).array)
    # Per tenant, as dicts: Series lookups, 4 a tenant, took 1 s of a 417-tenant batch (profiled).
    newest = checked.synced.groupby(tenants).max().dropna().to_dict()
    merged_synced = checked.synced.drop(index=checked.rejected.index, errors="ignore")
    oldest = merged_synced.groupby(tenants[merged_synced.index]).min().dropna().to_dict()
    read = tenants.value_counts()
    quarantined = tenants[checked.rejected.index].value_counts().to_dict()
    landed: dict[str, int] = {}
    if not valid.empty:
        latest = _latest_versions(contract, valid)
        _replace_rows(conn, contract.name, latest, ("tenant_id", *contract.primary_key))
        landed = latest["tenant_id"].value_counts().to_dict()
    if not checked.rejected.empty:
        _insert_quarantine(conn, _quarantine_frame(contract, tenants, checked))
    watermarks = {t: newest[t].to_pydatetime() for t in read.index if t in newest}
    _save_watermarks(conn, contract, watermarks)
    _save_landed_files(conn, contract, landed_marks(scans, in_future_files))
    conn.commit()
    for tenant_id, rows in read.items():
        outcome = outcomes[tenant_id]
        outcome.status = MERGED
        outcome.rows_read = int(rows)
        outcome.rows_landed = int(landed.get(tenant_id, 0))
        outcome.rows_quarantined = int(quarantined.get(tenant_id, 0))
        outcome.watermark = watermarks.get(tenant_id, outcome.watermark)
        if tenant_id in oldest:
            synced = oldest[tenant_id].to_pydatetime()
            outcome.oldest_synced = min(outcome.oldest_synced or synced, synced)


def _latest_versions(contract: StreamContract, rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (tenant_id, primary key): latest _airbyte_extracted_at, then latest cursor
    (the first read of equal ones), in the order the rows were read. Only the rows of a key read
    more than once are ranked (a first load has almost none), by their ranking and key columns
    alone; the chosen rows are taken once."""
    key = ["tenant_id", *contract.primary_key]
    ranking = list(dict.fromkeys(["_airbyte_extracted_at", contract.cursor]))
    columns = ["tenant_id", *(c.name for c in contract.all_columns)]
    repeated = rows.duplicated(key, keep=False).to_numpy()
    if not repeated.any():
        return rows[columns]
    positions = np.flatnonzero(repeated)
    ranked = rows[list(dict.fromkeys(ranking + key))].iloc[positions].reset_index(drop=True)
    ranked = ranked.sort_values(ranking, ascending=False, na_position="last", kind="stable")
    latest = positions[ranked.index[~ranked.duplicated(key, keep="first")].to_numpy()]
    chosen = np.sort(np.concatenate([np.flatnonzero(~repeated), latest]))
    return rows[columns].iloc[chosen]


def through_stage(
    conn: Connection, table: str, rows: pd.DataFrame, statements: Callable[[str], list[str]]
) -> None:
    """Run `statements(stage)` over `rows` in a temporary table shaped like `landing.<table>`
    (`stage`: its qualified name), then drop it. Three round trips (make, fill, run and drop): on a
    loaded machine a round trip costs more than these statements."""
    stage_name = f"stage_{table}"
    stage = qualified(conn.temp_schema, stage_name)
    conn.execute(
        f"drop table if exists {stage}; create temp table {quote_ident(stage_name)} as "
        f"select * from {qualified(LANDING_SCHEMA, table)} where 1 = 0"
    )
    conn.write_frame(conn.temp_schema, stage_name, rows)
    conn.execute("; ".join([*statements(stage), f"drop table {stage}"]))


def _replace_rows(conn: Connection, table: str, rows: pd.DataFrame, key: tuple[str, ...]) -> None:
    """Replace the rows of `landing.<table>` whose `key` columns match `rows`, in two statements.
    The new rows are stored in the order of `rows`: landing reads tenants in id order, a tenant's
    rows together, so DuckDB skips the blocks of other tenants when a model reads a range of
    tenants (unified_customers' tenant groups) without sorting what it stores."""
    target = qualified(LANDING_SCHEMA, table)
    matches = " and ".join(f"t.{quote_ident(c)} = s.{quote_ident(c)}" for c in key)
    columns = ", ".join(quote_ident(c) for c in rows.columns)
    through_stage(
        conn,
        table,
        rows,
        lambda stage: [
            f"delete from {target} as t using {stage} as s where {matches}",
            f"insert into {target} ({columns}) select {columns} from {stage}",
        ],
    )


def _quarantine_frame(contract: StreamContract, tenants: pd.Series, checked) -> pd.DataFrame:
    records = [
        json.dumps({k: _plain(v) for k, v in row.items()}, sort_keys=True, allow_nan=False)
        for row in checked.rejected.to_dict(orient="records")
    ]
    return pd.DataFrame(
        {
            "tenant_id": tenants[checked.rejected.index].to_numpy(),
            "stream": contract.name,
            "record_hash": [hashlib.sha256(r.encode()).hexdigest() for r in records],
            "_airbyte_raw_id": _as_text(checked.rejected["_airbyte_raw_id"]),
            "_airbyte_extracted_at": _as_text(checked.rejected["_airbyte_extracted_at"]),
            "reason": checked.reasons.tolist(),
            "record": records,
            "quarantined_at": dt.datetime.now(dt.UTC),
        }
    )


def _insert_quarantine(conn: Connection, rows: pd.DataFrame) -> None:
    """Add rows not quarantined before (keyed by the hash of their content)."""
    rows = rows.drop_duplicates(["tenant_id", "stream", "record_hash"])
    through_stage(
        conn,
        "quarantine",
        rows,
        lambda stage: [
            f"insert into landing.quarantine select * from {stage} on conflict do nothing"
        ],
    )


def _save_landed_files(
    conn: Connection, contract: StreamContract, marks: list[tuple[str, str | None, int | None]]
) -> None:
    """Record (tenant, newest file landed, folder time) marks, in the open transaction (through a
    stage: a statement with a parameter per value took 2 s of the 1,000-tenant worst day's land)."""
    rows = [m for m in marks if m[1] is not None]
    if not rows:
        return
    tenants, newest, mtimes = zip(*rows, strict=True)
    marked = pd.DataFrame(
        {
            "tenant_id": tenants,
            "stream": contract.name,
            "newest_file": newest,
            "folder_mtime_ns": pd.array(mtimes, dtype="Int64"),
            "updated_at": dt.datetime.now(dt.UTC),
        }
    )
    _replace_rows(conn, "landed_files", marked, ("tenant_id", "stream"))


def _watermarks(
    conn: Connection, contract: StreamContract, tenant_ids: list[str]
) -> dict[str, dt.datetime]:
    rows = conn.fetch_all(
        "select tenant_id, watermark from landing.watermarks "
        "where stream = %s and tenant_id = any(%s)",
        (contract.name, list(tenant_ids)),
    )
    return dict(rows)


def _save_watermarks(
    conn: Connection, contract: StreamContract, watermarks: dict[str, dt.datetime]
) -> None:
    if not watermarks:
        return
    rows = pd.DataFrame(
        {
            "tenant_id": list(watermarks),
            "stream": contract.name,
            "watermark": pd.to_datetime(list(watermarks.values()), utc=True),
            "updated_at": dt.datetime.now(dt.UTC),
        }
    )
    _replace_rows(conn, "watermarks", rows, ("tenant_id", "stream"))


def _as_text(values: pd.Series) -> list[str | None]:
    return [None if pd.isna(v) else str(v) for v in values.astype(object)]


def _plain(value):
    """A raw value as JSON can hold it (the record is kept as read, for whoever fixes it)."""
    if value is None or (not isinstance(value, (str, dict, list)) and pd.isna(value)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no inf
    if isinstance(value, (dict, list, str, bool, int, float)):
        return value
    return str(value)


def landed_rows_by_tenant(
    conn: Connection, contracts: tuple[StreamContract, ...]
) -> dict[str, int]:
    """Tenant id -> rows across the given streams' landing tables (for summaries)."""
    counts: dict[str, int] = {}
    for contract in contracts:
        if not conn.table_exists(LANDING_SCHEMA, contract.name):
            continue
        for tenant_id, rows in conn.fetch_all(
            f"select tenant_id, count(*) from {qualified(LANDING_SCHEMA, contract.name)} "
            "group by tenant_id"
        ):
            counts[tenant_id] = counts.get(tenant_id, 0) + int(rows)
    return counts


def oldest_synced_day(outcomes: Iterable[TenantLanding]) -> dt.date | None:
    """The UTC day of the oldest sync whose rows these landings merged (None: they merged none)."""
    synced = [o.oldest_synced for o in outcomes if o.oldest_synced is not None]
    return min(synced).astimezone(dt.UTC).date() if synced else None


def newest_landed_day(conn: Connection) -> dt.date | None:
    """The day of the newest data landed (None before anything is landed)."""
    if not conn.table_exists("landing", "watermarks"):
        return None
    newest = conn.fetch_value("select max(watermark) from landing.watermarks")
    return None if newest is None else newest.date()

"""Read the raw files (DuckDB's raw layer, sources.raw_files) that have not been landed yet.

`landing.landed_files` keeps, per tenant and stream, the newest file landed and the folder's
modification time when it was listed. A folder whose modification time is still that one has
nothing new (adding or renaming a file changes it), so finding what changed costs one `stat` per
tenant and stream, and a listing only of the folders that changed; only files after the newest
landed one are opened. A folder modified within the last MTIME_SETTLE_NS is listed again next
time: a file renamed into it within the clock's granularity could leave its time unchanged.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from tenantpulse.sources.contracts import StreamContract
from tenantpulse.sources.raw_files import (
    RawFile,
    file_columns,
    file_key,
    file_reader,
    list_files,
    stream_folder,
)
from tenantpulse.warehouse import Connection

LANDED_FILES = "landing.landed_files"
MTIME_SETTLE_NS = 2_000_000_000


@dataclass(frozen=True)
class FolderScan:
    """A tenant's stream folder as landing found it."""

    tenant_id: str
    exists: bool
    mtime_ns: int | None  # to save once its new files are landed (None: list it next time)
    listed: bool = False  # changed since it was last landed, so listed
    new_files: tuple[RawFile, ...] = ()
    newest_landed: str | None = None


def ensure_landed_files(conn: Connection) -> None:
    conn.ensure_schema("landing")
    conn.execute(
        f"create table if not exists {LANDED_FILES} ("
        " tenant_id varchar not null, stream varchar not null, newest_file varchar not null,"
        " folder_mtime_ns bigint, updated_at timestamptz not null,"
        " primary key (tenant_id, stream))"
    )


def scan_folders(
    conn: Connection, contract: StreamContract, tenant_ids: list[str]
) -> dict[str, FolderScan]:
    """Tenant -> its stream folder's state and files not landed yet: a `stat` per tenant, a
    listing only where the folder changed since it was last landed."""
    landed = {
        tenant: (newest, mtime)
        for tenant, newest, mtime in conn.fetch_all(
            f"select tenant_id, newest_file, folder_mtime_ns from {LANDED_FILES} where stream = %s",
            (contract.name,),
        )
    }
    settled_before = time.time_ns() - MTIME_SETTLE_NS
    scans = {}
    for tenant_id in tenant_ids:
        folder = stream_folder(conn.raw_path, tenant_id, contract.raw_table)
        newest, saved_mtime = landed.get(tenant_id, (None, None))
        try:
            mtime = os.stat(folder).st_mtime_ns
        except (FileNotFoundError, NotADirectoryError):
            scans[tenant_id] = FolderScan(tenant_id, False, None, newest_landed=newest)
            continue
        settled = mtime if mtime < settled_before else None
        if saved_mtime is not None and mtime == saved_mtime:
            scans[tenant_id] = FolderScan(tenant_id, True, settled, newest_landed=newest)
            continue
        after = file_key(newest) if newest else None
        new = tuple(list_files(folder, after))
        scans[tenant_id] = FolderScan(tenant_id, True, settled, True, new, newest)
    return scans


def tenants_with_new_files(
    conn: Connection, contract: StreamContract, tenant_ids: list[str]
) -> list[str]:
    """Of `tenant_ids`, those with files of the stream not landed yet (DuckDB): what a land run
    needs to be given, found without opening a file."""
    ensure_landed_files(conn)
    scans = scan_folders(conn, contract, tenant_ids)
    return [t for t in tenant_ids if scans[t].new_files]


def new_file_columns(
    conn: Connection, scans: list[FolderScan]
) -> tuple[dict[Path, dict[str, str]], dict[str, str]]:
    """(file -> its columns and types, tenant -> error) for the new files of `scans`: one read of
    every footer, or, if one cannot be read, a read per tenant to name the tenants it fails."""
    files = [f.path for scan in scans for f in scan.new_files]
    if not files:
        return {}, {}
    with file_reader(conn) as reader:
        try:
            return file_columns(reader, files), {}
        except Exception:  # noqa: BLE001 - found again tenant by tenant below
            pass
        columns: dict[Path, dict[str, str]] = {}
        failures = {}
        for scan in scans:
            try:
                columns |= file_columns(reader, [f.path for f in scan.new_files])
            except Exception as error:  # noqa: BLE001 - the tenant fails by name
                failures[scan.tenant_id] = (str(error).splitlines() or [""])[0]
        return columns, failures


def landed_marks(
    scans: list[FolderScan], in_future_files: dict[str, list[str]]
) -> list[tuple[str, str | None, int | None]]:
    """(tenant, newest file landed, folder time) to record for `scans` once their new files are
    merged. A file with a row synced in the future (quarantined until its time comes) is not
    landed, nor any after it: they are read again next time."""
    marks = []
    for scan in scans:
        held = min(map(file_key, in_future_files.get(scan.tenant_id, [])), default=None)
        landed = [f for f in scan.new_files if held is None or f.key < held]
        newest = landed[-1].name if landed else scan.newest_landed
        marks.append((scan.tenant_id, newest, scan.mtime_ns if held is None else None))
    return marks

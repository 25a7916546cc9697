"""The landing fuzz (issue 15): raw tables generated from every stream's contract (tests/fuzz_raw.py)
for two clean and two broken tenants, landed twice (the second run incremental) on each warehouse.

Per stream and tenant, every raw row is landed, quarantined (exactly the rows the generator broke)
or an older version of a landed key; the clean tenants' landed rows are the same with and without
the broken tenants; a table that cannot be landed fails by its tenant's name, and nothing else does.
The counts are printed (`-s`) and written to tests/artifacts/fuzz_landing_<warehouse>.json.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from functools import cache
from pathlib import Path

import pandas as pd

from fuzz_raw import FAILING_TABLES, TENANTS, raw_tables, write_raw_tables
from rawdata import drop_raw, raw_name, raw_relation
from tenantpulse.landing.merge import FAILED
from tenantpulse.landing.run import land_streams
from tenantpulse.sources.contracts import SOURCES, STREAMS, STREAMS_BY_NAME
from tenantpulse.tenants.registry import add_tenant
from tenantpulse.warehouse import quote_ident

CLEAN = [t for t in TENANTS if not t.broken]
ARTIFACTS = Path(__file__).parent / "artifacts"


@cache
def generated(tenant) -> tuple[dict, ...]:
    """The tenant's raw tables of syncs 1 and 2, generated once."""
    return tuple(raw_tables(tenant, sync) for sync in (1, 2))


def land_twice(warehouse, tenants) -> list:
    """Register the tenants, then twice: write their next sync's raw tables and land every stream.
    Returns each run's StreamLanding list."""
    with warehouse.connect() as conn:
        for tenant in tenants:
            add_tenant(conn, tenant.tenant_id, tenant.tenant_id, ",".join(SOURCES))
    runs = []
    for sync in (1, 2):
        with warehouse.connect() as conn:
            for tenant in tenants:
                write_raw_tables(conn, tenant.tenant_id, generated(tenant)[sync - 1])
        with warehouse.connect() as conn:
            runs.append(list(land_streams(conn, list(STREAMS))))
    return runs


def landed_rows(conn, tenants) -> dict[str, pd.DataFrame]:
    """Stream -> the tenants' landed rows, every column, in key order."""
    ids = [t.tenant_id for t in tenants]
    marks = ", ".join(["%s"] * len(ids))
    frames = {}
    for contract in STREAMS:
        order = ", ".join(quote_ident(c) for c in ("tenant_id", *contract.primary_key))
        frames[contract.name] = conn.read_frame(
            f"select * from landing.{quote_ident(contract.name)} "
            f"where tenant_id in ({marks}) order by {order}",
            ids,
        )
    return frames


def expected_outcome(tenant, stream: str) -> tuple[set, set, int, int]:
    """What landing must make of the tenant's raw rows of the stream: (raw ids it keeps, raw ids it
    quarantines, raw rows, older versions of kept keys). Of each key it keeps the newest version
    that is not broken."""
    tables = [syncs[stream] for syncs in generated(tenant)]
    newest, broken, rows, valid = {}, set(), 0, 0
    for table in tables:
        broken |= set(table.broken)
        for row, key in zip(table.rows, table.keys, strict=True):
            rows += 1
            if row["_airbyte_raw_id"] not in table.broken:
                newest[key] = row["_airbyte_raw_id"]
                valid += 1
    return set(newest.values()), broken, rows, valid - len(newest)


def reason_kinds(reasons: list[str]) -> Counter:
    """Quarantine reasons counted by what was wrong, the column and value left out."""
    kinds = Counter()
    for reason in reasons:
        for part in reason.split("; "):
            found = re.fullmatch(r"\S+: (?:.* )?((?:is|missing) .*)", part)
            kinds[found.group(1) if found else part] += 1
    return kinds


def test_fuzzed_raw_tables_land_per_tenant_and_clean_tenants_are_untouched(warehouse):
    # The clean tenants alone first, then, from scratch, with the broken ones.
    land_twice(warehouse, CLEAN)
    with warehouse.connect() as conn:
        clean_alone = landed_rows(conn, CLEAN)
        conn.execute("drop schema landing cascade")
        for tenant in CLEAN:
            drop_raw(conn, tenant.tenant_id)
    runs = land_twice(warehouse, TENANTS)

    # Only the tables that cannot be landed failed, each naming its tenant's raw table (files).
    failed = {
        (o.tenant_id, s.contract.name): o.error
        for run in runs
        for s in run
        for o in s.outcomes
        if o.status == FAILED
    }
    assert set(failed) == set(FAILING_TABLES)
    with warehouse.connect() as conn:
        for (tenant_id, stream), error in failed.items():
            raw_table = STREAMS_BY_NAME[stream].raw_table
            assert error.startswith(raw_name(conn, tenant_id, raw_table)), error

        with_broken = landed_rows(conn, CLEAN)
        for stream, frame in clean_alone.items():
            pd.testing.assert_frame_equal(frame, with_broken[stream], obj=stream)

        generated = landed = unlandable = 0
        for tenant in TENANTS:
            for stream in STREAMS_BY_NAME:
                keep, broken, rows, older = expected_outcome(tenant, stream)
                table = raw_relation(conn, tenant.tenant_id, STREAMS_BY_NAME[stream].raw_table)
                assert conn.fetch_value(f"select count(*) from {table}") == rows
                kept = {
                    r
                    for (r,) in conn.fetch_all(
                        f"select _airbyte_raw_id from landing.{quote_ident(stream)} "
                        "where tenant_id = %s",
                        (tenant.tenant_id,),
                    )
                }
                quarantined = {
                    r
                    for (r,) in conn.fetch_all(
                        "select _airbyte_raw_id from landing.quarantine "
                        "where tenant_id = %s and stream = %s",
                        (tenant.tenant_id, stream),
                    )
                }
                generated += rows
                if (tenant.tenant_id, stream) in FAILING_TABLES:
                    assert (kept, quarantined) == (set(), set()), (tenant, stream)
                    unlandable += rows
                    continue
                assert quarantined == broken, (tenant.tenant_id, stream)
                assert kept == keep, (tenant.tenant_id, stream)
                assert rows == len(kept) + len(quarantined) + older  # raw = landed + quarantined
                landed += len(kept)
        reasons = [r for (r,) in conn.fetch_all("select reason from landing.quarantine")]

    counts = {
        "warehouse": warehouse.dialect,
        "tenants": [t.tenant_id for t in TENANTS],
        "raw_rows_generated": generated,
        "rows_landed": landed,
        "rows_quarantined": len(reasons),
        "superseded_versions": generated - landed - len(reasons) - unlandable,
        "rows_in_failed_tables": unlandable,
        "tables_failed": sorted(f"{t}/{s}" for t, s in failed),
        "quarantine_reasons": dict(reason_kinds(reasons).most_common()),
    }
    print(json.dumps(counts, indent=2))
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"fuzz_landing_{warehouse.dialect}.json").write_text(json.dumps(counts, indent=2))

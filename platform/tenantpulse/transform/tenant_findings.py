"""The tenants a failed dbt test names. A test about one tenant's data
(dbt_project/macros/tenant_findings.sql) warns and stores its failing rows, one per tenant with
the count of offending rows and an example, in a table of its own; this reads that table."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tenantpulse.warehouse import Connection, qualified

SHOWN_TENANTS = 10  # in a message; the check's metadata lists every tenant
EXAMPLE_CHARS = 100  # a value is the tenant's own: it may be as long as the source sends


@dataclass(frozen=True)
class TenantFinding:
    tenant_id: str
    offending_rows: int
    example: str | None  # one offending value as text; None when there is nothing to show


def failures_table(manifest: Mapping[str, Any], test_id: str) -> tuple[str, str] | None:
    """(schema, table) where the dbt test `test_id` stores its failing rows; None when it
    stores none (a platform test, whose failure fails the run)."""
    node = manifest["nodes"][test_id]
    if not node["config"].get("store_failures"):
        return None
    return node["schema"], node["alias"]


def read_findings(conn: Connection, schema: str, table: str) -> list[TenantFinding]:
    return [
        TenantFinding(tenant_id, int(rows), None if example is None else example[:EXAMPLE_CHARS])
        for tenant_id, rows, example in conn.fetch_all(
            f"select tenant_id, offending_rows, example from {qualified(schema, table)}"
            " order by tenant_id"
        )
    ]


def describe(findings: list[TenantFinding]) -> str:
    """`brokenco: 1 row (e.g. 'brokenco/ghost'); other: 3 rows`, the first SHOWN_TENANTS."""
    parts = [
        f"{f.tenant_id}: {f.offending_rows} row{'' if f.offending_rows == 1 else 's'}"
        + ("" if f.example is None else f" (e.g. {f.example!r})")
        for f in findings[:SHOWN_TENANTS]
    ]
    if len(findings) > SHOWN_TENANTS:
        parts.append(f"and {len(findings) - SHOWN_TENANTS} more tenants")
    return "; ".join(parts)

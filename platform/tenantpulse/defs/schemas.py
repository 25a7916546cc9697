"""What the Dagster UI shows of the platform's own tables: their column schemas (made from the data
that defines each table: the stream contracts, analysis.tables, insights.store), the warehouse
they live in as a kind, and data versions that change only when a table's data does."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import dagster as dg

from tenantpulse.analysis.tables import OutputColumn
from tenantpulse.sources.contracts import AIRBYTE_COLUMN_NAMES, StreamContract

COLUMN_SCHEMA = "dagster/column_schema"
DATA_VERSION_TAG = "dagster/data_version"


def table_schema(
    columns: Iterable[OutputColumn], primary_key: Sequence[str] = (), prefix: str = ""
) -> dg.TableSchema:
    """A TableSchema of `columns`; `primary_key` columns are marked not null and named in the
    constraints; `prefix` goes before each name (several tables in one schema)."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=f"{prefix}{c.name}",
                type=c.type,
                description=c.description or None,
                constraints=dg.TableColumnConstraints(nullable=c.name not in primary_key),
            )
            for c in columns
        ],
        constraints=dg.TableConstraints(
            other=[f"primary key ({', '.join(primary_key)})"] if primary_key else []
        ),
    )


def contract_schema(contract: StreamContract, landing: bool) -> dg.TableSchema:
    """The columns of a stream's raw table (each tenant's) or, `landing`, of its landing table:
    tenant_id first, the same columns, primary key (tenant_id, <stream key>)."""
    key = (("tenant_id",) if landing else ()) + contract.primary_key
    columns = [
        OutputColumn(c.name, c.type, _column_description(contract, c.name))
        for c in contract.all_columns
    ]
    if landing:
        columns.insert(0, OutputColumn("tenant_id", "varchar", "The tenant the row came from."))
    return table_schema(columns, key)


def _column_description(contract: StreamContract, name: str) -> str:
    if name in contract.primary_key:
        return "Primary key (within the tenant)."
    if name == contract.cursor:
        return "Cursor: the newest version of a record wins."
    if name in AIRBYTE_COLUMN_NAMES:
        return "Airbyte's metadata column."
    return ""


def column_schema(schema: dg.TableSchema) -> dict:
    """The asset metadata that makes the UI show `schema` as the asset's columns."""
    return {COLUMN_SCHEMA: schema}


def with_warehouse_kind(assets: Iterable[dg.AssetsDefinition], dialect: str) -> list:
    """`assets` with the warehouse their tables are in (duckdb, postgres) added to their kinds."""
    return [a.map_asset_specs(lambda spec: spec.merge_attributes(kinds={dialect})) for a in assets]


def previous_data_version(instance: dg.DagsterInstance, key: dg.AssetKey) -> str | None:
    """The data version of the asset's latest materialization, if any."""
    event = instance.get_latest_materialization_event(key)
    if event is None or event.asset_materialization is None:
        return None
    return (event.asset_materialization.tags or {}).get(DATA_VERSION_TAG)


def chained_data_version(previous: str | None, changes: Sequence[str]) -> dg.DataVersion:
    """The previous data version while there are no `changes`; else a digest of it and them: a
    materialization that changed nothing leaves what reads the asset up to date."""
    if previous is not None and not changes:
        return dg.DataVersion(previous)
    text = "\n".join([previous or "", *sorted(changes)])
    return dg.DataVersion(hashlib.sha256(text.encode()).hexdigest()[:16])

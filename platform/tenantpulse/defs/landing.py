"""The landing layer: one asset per stream, partitioned by tenant, many tenants per run."""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    BackfillPolicy,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from tenantpulse.defs.partitions import tenant_partitions
from tenantpulse.defs.raw import raw_asset_key
from tenantpulse.defs.resources import WarehouseResource
from tenantpulse.landing.merge import FAILED, LANDING_SCHEMA, TenantLanding, land_stream
from tenantpulse.sources.contracts import STREAMS, StreamContract
from tenantpulse.tenants.ids import validate_tenant_id

SCHEMA_DRIFT_CHECK = "no_schema_drift"
QUARANTINE_CHECK = "no_quarantined_rows"


def landing_asset_key(contract: StreamContract) -> AssetKey:
    return AssetKey(["landing", contract.name])


def landing_summary_markdown(outcomes: list[TenantLanding]) -> str:
    lines = [
        "| tenant | status | read | landed | quarantined | extra columns | missing columns |",
        "|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        extra = ", ".join(o.extra_columns) or "-"
        missing = ", ".join(o.missing_columns) or "-"
        lines.append(
            f"| {o.tenant_id} | {o.status} | {o.rows_read} | {o.rows_landed} | "
            f"{o.rows_quarantined} | {extra} | {missing} |"
        )
    return "\n".join(lines)


def build_landing_asset(contract: StreamContract):
    key = landing_asset_key(contract)

    @asset(
        key=key,
        deps=[raw_asset_key(contract)],
        partitions_def=tenant_partitions,
        backfill_policy=BackfillPolicy.single_run(),
        group_name="landing",
        description=f"`{LANDING_SCHEMA}.{contract.name}`: every tenant's latest version of each "
        f"{contract.stream} record, keyed by (tenant_id, {', '.join(contract.primary_key)}).",
        check_specs=[
            AssetCheckSpec(
                SCHEMA_DRIFT_CHECK,
                asset=key,
                description="Raw table has no columns beyond the contract.",
            ),
            AssetCheckSpec(QUARANTINE_CHECK, asset=key, description="No raw row was quarantined."),
        ],
        metadata={"table": f"{LANDING_SCHEMA}.{contract.name}"},
    )
    def _land(context: AssetExecutionContext, warehouse: WarehouseResource):
        tenant_ids = [validate_tenant_id(k) for k in context.partition_keys]
        context.log.info(f"landing {contract.name} for {len(tenant_ids)} tenants")
        with warehouse.open().connect() as conn:
            outcomes = land_stream(conn, contract, tenant_ids)
        failed = [o for o in outcomes if o.status == FAILED]
        drifted = {o.tenant_id: list(o.extra_columns) for o in outcomes if o.extra_columns}
        quarantined = {o.tenant_id: o.rows_quarantined for o in outcomes if o.rows_quarantined}
        yield MaterializeResult(
            metadata={
                "tenants": len(tenant_ids),
                "rows_read": sum(o.rows_read for o in outcomes),
                "rows_landed": sum(o.rows_landed for o in outcomes),
                "rows_quarantined": sum(quarantined.values()),
                "tenants_failed": len(failed),
                "summary": MetadataValue.md(landing_summary_markdown(outcomes)),
            }
        )
        yield AssetCheckResult(
            check_name=SCHEMA_DRIFT_CHECK,
            passed=not drifted,
            severity=AssetCheckSeverity.WARN,
            metadata={"extra_columns_by_tenant": MetadataValue.json(drifted)},
        )
        yield AssetCheckResult(
            check_name=QUARANTINE_CHECK,
            passed=not quarantined,
            severity=AssetCheckSeverity.WARN,
            metadata={"quarantined_rows_by_tenant": MetadataValue.json(quarantined)},
        )
        if failed:
            # The other tenants are committed; this names the ones to fix and re-run.
            raise Failure(
                description=f"{len(failed)} tenant(s) could not be landed for {contract.name}",
                metadata={o.tenant_id: o.error or "" for o in failed},
            )

    return _land


landing_assets = [build_landing_asset(contract) for contract in STREAMS]

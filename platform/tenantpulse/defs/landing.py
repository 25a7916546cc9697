"""The landing layer: one asset per stream, each run landing every active tenant's new rows
(or the tenants its config names: retries, onboarding).

Not partitioned by tenant: Dagster writes events per (asset, partition) in a run, 17 per tenant
here, which at thousands of tenants took longer than the landing itself (docs/decisions.md). What
happened per tenant is in each materialization's metadata and the checks.
"""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from tenantpulse.defs.raw import raw_asset_key
from tenantpulse.defs.resources import WarehouseResource
from tenantpulse.landing.merge import (
    FAILED,
    LANDING_SCHEMA,
    MERGED,
    UP_TO_DATE,
    TenantLanding,
    land_stream,
)
from tenantpulse.sources.contracts import STREAMS, StreamContract
from tenantpulse.tenants.ids import validate_tenant_id
from tenantpulse.tenants.registry import list_tenants

SCHEMA_DRIFT_CHECK = "no_schema_drift"
QUARANTINE_CHECK = "no_quarantined_rows"
SUMMARY_ROWS = 100  # tenants listed in the metadata's summary table; the counts cover all


class LandingConfig(Config):
    tenants: list[str] = Field(
        default=[], description="Tenant ids to land; empty: every active tenant with the source."
    )


def landing_asset_key(contract: StreamContract) -> AssetKey:
    return AssetKey(["landing", contract.name])


def landing_run_config(tenant_ids: list[str] | None) -> dict:
    """Run config of the `ingest` job landing only `tenant_ids` (None: every active tenant)."""
    if tenant_ids is None:
        return {}
    return {
        "ops": {
            landing_asset_key(c).to_python_identifier(): {"config": {"tenants": tenant_ids}}
            for c in STREAMS
        }
    }


def landing_summary_markdown(outcomes: list[TenantLanding]) -> str:
    """The tenants with something to look at (failed, quarantined rows, schema drift), then
    the ones merged, up to SUMMARY_ROWS."""
    lines = [
        "| tenant | status | read | landed | quarantined | extra columns | missing columns |",
        "|---|---|---|---|---|---|---|",
    ]
    notable = [
        o
        for o in outcomes
        if o.status not in (MERGED, UP_TO_DATE)
        or o.rows_quarantined
        or o.extra_columns
        or o.missing_columns
    ]
    merged = [o for o in outcomes if o.status == MERGED and o not in notable]
    shown = (notable + merged)[:SUMMARY_ROWS]
    for o in shown:
        extra = ", ".join(o.extra_columns) or "-"
        missing = ", ".join(o.missing_columns) or "-"
        lines.append(
            f"| {o.tenant_id} | {o.status} | {o.rows_read} | {o.rows_landed} | "
            f"{o.rows_quarantined} | {extra} | {missing} |"
        )
    if len(outcomes) > len(shown):
        lines.append(f"\n{len(outcomes) - len(shown)} more tenants not listed.")
    return "\n".join(lines)


def build_landing_asset(contract: StreamContract):
    key = landing_asset_key(contract)

    @asset(
        key=key,
        deps=[raw_asset_key(contract)],
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
    def _land(context: AssetExecutionContext, config: LandingConfig, warehouse: WarehouseResource):
        with warehouse.open().connect() as conn:
            active = {t.tenant_id: t.sources for t in list_tenants(conn)}
            tenant_ids = [validate_tenant_id(t) for t in config.tenants] or [
                t for t, sources in active.items() if contract.source in sources
            ]
            inactive = sorted(set(tenant_ids) - set(active))
            if inactive:
                raise Failure(f"not active tenants: {', '.join(inactive)}")
            context.log.info(f"landing {contract.name} for {len(tenant_ids)} tenants")
            outcomes = land_stream(conn, contract, tenant_ids)
        failed = [o for o in outcomes if o.status == FAILED]
        drifted = {o.tenant_id: list(o.extra_columns) for o in outcomes if o.extra_columns}
        quarantined = {o.tenant_id: o.rows_quarantined for o in outcomes if o.rows_quarantined}
        yield MaterializeResult(
            metadata={
                "tenants": len(tenant_ids),
                "tenants_merged": sum(o.status == MERGED for o in outcomes),
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

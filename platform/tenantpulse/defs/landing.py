"""The landing layer: one asset per stream, all landed by one op (`land`, one warehouse
connection), each run landing every active tenant's new rows (or the tenants its config names:
retries, onboarding).

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
    AssetSpec,
    Config,
    DagsterInstance,
    Failure,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)
from pydantic import Field

from tenantpulse.defs.raw import raw_asset_key
from tenantpulse.defs.resources import WarehouseResource
from tenantpulse.defs.schemas import (
    chained_data_version,
    column_schema,
    contract_schema,
    previous_data_version,
)
from tenantpulse.flow import (
    HISTORY_TENANTS_TAG,
    LANDING_FAILED_TAG,
    NEWEST_LANDED_TAG,
    OLDEST_SYNC_LANDED_TAG,
    ROWS_LANDED_TAG,
    failed_tag,
    history_tag,
    lookback_days,
    recent_start,
)
from tenantpulse.landing.history import (
    landed_generations,
    last_synced,
    tenants_back_after_a_gap,
    tenants_with_new_history,
)
from tenantpulse.landing.merge import (
    FAILED,
    LANDING_SCHEMA,
    MERGED,
    UP_TO_DATE,
    TenantLanding,
    newest_landed_day,
    oldest_synced_day,
)
from tenantpulse.landing.run import InactiveTenantsError, failure_summary, land_streams
from tenantpulse.sources.contracts import STREAMS, StreamContract
from tenantpulse.transform.windows import mark_for_build

SCHEMA_DRIFT_CHECK = "no_schema_drift"
QUARANTINE_CHECK = "no_quarantined_rows"
LANDED_CHECK = "tenants_landed"
LAND_OP = "land"
SUMMARY_ROWS = 100  # tenants listed in the metadata's summary table; the counts cover all


class LandingConfig(Config):
    tenants: list[str] = Field(
        default=[], description="Tenant ids to land; empty: every active tenant with the source."
    )
    full_read: bool = Field(
        default=False,
        description="Read every tenant's raw tables, not only those whose write counters moved "
        "since they were landed (docs/landing.md, 'Which raw tables are read').",
    )


def landing_asset_key(contract: StreamContract) -> AssetKey:
    return AssetKey(["landing", contract.name])


def landing_run_config(tenant_ids: list[str] | None) -> dict:
    """Run config of `land_job` landing only `tenant_ids` (None: every active tenant)."""
    return {} if tenant_ids is None else {"ops": {LAND_OP: {"config": {"tenants": tenant_ids}}}}


def landing_run_tenants(run_config: dict) -> list[str]:
    """The tenants a land run's config names (empty: every active tenant)."""
    return run_config.get("ops", {}).get(LAND_OP, {}).get("config", {}).get("tenants") or []


def landing_summary_markdown(outcomes: list[TenantLanding]) -> str:
    """The tenants with something to look at (failed, quarantined rows, schema drift), then
    the ones merged, up to SUMMARY_ROWS."""
    lines = [
        "| tenant | status | read | landed | quarantined | extra columns | missing columns |",
        "|---|---|---|---|---|---|---|",
    ]

    def notable(o: TenantLanding) -> bool:
        return bool(
            o.status not in (MERGED, UP_TO_DATE)
            or o.rows_quarantined
            or o.extra_columns
            or o.missing_columns
        )

    shown = sorted(
        (o for o in outcomes if o.status != UP_TO_DATE or notable(o)), key=lambda o: not notable(o)
    )[:SUMMARY_ROWS]
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


def _landing_spec(contract: StreamContract) -> AssetSpec:
    return AssetSpec(
        landing_asset_key(contract),
        deps=[raw_asset_key(contract)],
        group_name="landing",
        description=f"`{LANDING_SCHEMA}.{contract.name}`: every tenant's latest version of each "
        f"{contract.stream} record, keyed by (tenant_id, {', '.join(contract.primary_key)}). "
        f"A run merges each tenant's rows of `user_<tenant>.{contract.raw_table}` newer than its "
        "watermark (landing.watermarks), deduplicated on the key (newest sync, then newest "
        f"`{contract.cursor}`); rows that break the contract go to landing.quarantine with the "
        "reason. The data version changes only when rows were merged.",
        # The warehouse's kind (duckdb, postgres) is added by definitions.py.
        kinds={"python", "sql"},
        metadata={"table": f"{LANDING_SCHEMA}.{contract.name}"}
        | column_schema(contract_schema(contract, landing=True)),
    )


def _check_specs(contract: StreamContract) -> list[AssetCheckSpec]:
    key = landing_asset_key(contract)
    return [
        AssetCheckSpec(
            SCHEMA_DRIFT_CHECK,
            asset=key,
            description="Raw table has no columns beyond the contract.",
        ),
        AssetCheckSpec(
            LANDED_CHECK,
            asset=key,
            description="Every tenant's raw table of the stream was landed (a failed one is "
            "named with its error; the other tenants land and their flow goes on).",
        ),
        AssetCheckSpec(QUARANTINE_CHECK, asset=key, description="No raw row was quarantined."),
    ]


def landing_changes(outcomes: list[TenantLanding]) -> list[str]:
    """What a landing changed in its table: each tenant with rows merged, its new watermark and
    row count (quarantined rows change only landing.quarantine)."""
    return [
        f"{o.tenant_id} {o.watermark.isoformat() if o.watermark else '-'} {o.rows_landed}"
        for o in outcomes
        if o.rows_landed
    ]


def _results(contract: StreamContract, outcomes: list[TenantLanding], instance: DagsterInstance):
    key = landing_asset_key(contract)
    drifted = {o.tenant_id: list(o.extra_columns) for o in outcomes if o.extra_columns}
    quarantined = {o.tenant_id: o.rows_quarantined for o in outcomes if o.rows_quarantined}
    previous = previous_data_version(instance, key)
    yield MaterializeResult(
        asset_key=key,
        # Unchanged when nothing was merged: a no-op landing leaves the staging views in sync.
        data_version=chained_data_version(previous, landing_changes(outcomes)),
        metadata={
            "tenants": len(outcomes),
            "tenants_merged": sum(o.status == MERGED for o in outcomes),
            "rows_read": sum(o.rows_read for o in outcomes),
            "rows_landed": sum(o.rows_landed for o in outcomes),
            "rows_quarantined": sum(quarantined.values()),
            "tenants_failed": sum(o.status == FAILED for o in outcomes),
            "summary": MetadataValue.md(landing_summary_markdown(outcomes)),
        },
    )
    yield AssetCheckResult(
        asset_key=key,
        check_name=SCHEMA_DRIFT_CHECK,
        passed=not drifted,
        severity=AssetCheckSeverity.WARN,
        metadata={"extra_columns_by_tenant": MetadataValue.json(drifted)},
    )
    failed = {o.tenant_id: o.error for o in outcomes if o.status == FAILED}
    yield AssetCheckResult(
        asset_key=key,
        check_name=LANDED_CHECK,
        passed=not failed,
        severity=AssetCheckSeverity.ERROR,
        description=f"Could not be landed: {', '.join(sorted(failed))}" if failed else None,
        metadata={"errors_by_tenant": MetadataValue.json(failed)},
    )
    yield AssetCheckResult(
        asset_key=key,
        check_name=QUARANTINE_CHECK,
        passed=not quarantined,
        severity=AssetCheckSeverity.WARN,
        metadata={"quarantined_rows_by_tenant": MetadataValue.json(quarantined)},
    )


@multi_asset(
    name=LAND_OP,
    specs=[_landing_spec(c) for c in STREAMS],
    check_specs=[spec for c in STREAMS for spec in _check_specs(c)],
    can_subset=True,
)
def land(context: AssetExecutionContext, config: LandingConfig, warehouse: WarehouseResource):
    """One op for every selected stream: one warehouse connection (on DuckDB, opening the file
    reads a catalog that grows with every tenant's tables); land_stream commits as it goes."""
    streams = [c for c in STREAMS if landing_asset_key(c) in context.selected_asset_keys]
    landed, generations_before, history, merged_sources = [], {}, set(), set()
    named = config.tenants or None  # a batch of syncs: only its tenants' generations are read

    def starting(contract: StreamContract, tenants: int) -> None:
        context.log.info(f"landing {contract.name} for {tenants} tenants")
        generations_before[contract.name] = landed_generations(conn, contract, named)

    with warehouse.open().connect() as conn:
        # Marked before (a run that stops half-way leaves its tenants marked) and after (a dbt
        # run that took the marks while this one landed does not clear the need to rebuild).
        mark_for_build(conn, named)
        conn.commit()
        synced_before = last_synced(conn, named)
        try:
            for stream in land_streams(
                conn, streams, config.tenants, on_stream=starting, read_all=config.full_read
            ):
                yield from _results(stream.contract, stream.outcomes, context.instance)
                landed.append(stream)
                merged = {o.tenant_id for o in stream.outcomes if o.rows_landed}
                if merged:
                    history |= tenants_with_new_history(
                        generations_before[stream.contract.name],
                        landed_generations(conn, stream.contract, named),
                        merged,
                    )
                    merged_sources |= {(t, stream.contract.source) for t in merged}
        except InactiveTenantsError as inactive:
            raise Failure(str(inactive)) from None
        newest = newest_landed_day(conn)
        mark_for_build(conn, named)
    if newest:
        recent = recent_start(newest, lookback_days(context.run.tags))
        history |= tenants_back_after_a_gap(synced_before, merged_sources, recent)
    if history:
        context.log.info(f"new history, every day rebuilt: {', '.join(sorted(history))}")
    oldest = oldest_synced_day(o for s in landed for o in s.outcomes)
    # What the flow sensor needs to choose the next stage's window, without opening the warehouse.
    context.instance.add_run_tags(
        context.run.run_id,
        {
            ROWS_LANDED_TAG: str(sum(s.rows_changed for s in landed)),
            NEWEST_LANDED_TAG: newest.isoformat() if newest else "",
            OLDEST_SYNC_LANDED_TAG: oldest.isoformat() if oldest else "",
            HISTORY_TENANTS_TAG: history_tag(history),
        },
    )
    failed = {name: error for s in landed for name, error in s.failures.items()}
    if failed and not any(o.status in (MERGED, UP_TO_DATE) for s in landed for o in s.outcomes):
        raise Failure(description=failure_summary(failed), metadata=failed)
    if failed:
        # The others are committed and their flow goes on; each stream's tenants_landed check
        # names the tenants to fix, and the CLI prints them (describe_run).
        context.log.warning(failure_summary(failed))
        context.instance.add_run_tags(
            context.run.run_id, {LANDING_FAILED_TAG: failed_tag(sorted(failed))}
        )

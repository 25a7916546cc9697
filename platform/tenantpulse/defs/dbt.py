"""The dbt project as Dagster assets in three steps, run in this order: the staging and
intermediate views, the daily incremental marts (partitioned by day, many days per run), and the
mart tables (which may read the daily marts; the daily marts read only views and each other).

dbt sources are the landing tables, so the lineage reads raw -> landing -> staging -> marts; dbt tests
become asset checks through `dbt build`. A failed test about one tenant's data (a WARN,
docs/orchestration.md) names the tenants in its check's description and metadata and in the log.
"""

import datetime as dt

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    BackfillPolicy,
    Config,
    DailyPartitionsDefinition,
    MetadataValue,
)
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)

from tenantpulse.config import export_environment, parse_warehouse_url
from tenantpulse.defs.resources import WarehouseResource
from tenantpulse.flow import parse_day
from tenantpulse.tenants.ids import validate_tenant_id
from tenantpulse.transform.dbt_args import (
    INCREMENTAL,
    MARTS,
    VIEWS,
    daily_args,
    tables_args,
    views_args,
)
from tenantpulse.transform.dbt_cli import dbt_env
from tenantpulse.transform.tenant_findings import (
    TenantFinding,
    describe,
    failures_table,
    read_findings,
)


class TenantpulseDbtTranslator(DagsterDbtTranslator):
    """Sources are the landing assets (`landing/<source>__<stream>`); a model's key and group are
    its schema (staging, intermediate, analytics) and its name."""

    def get_asset_key(self, dbt_resource_props) -> AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return AssetKey([dbt_resource_props["source_name"], dbt_resource_props["name"]])
        return AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props) -> str:
        return dbt_resource_props["schema"]


class ViewsConfig(Config):
    # A day (YYYY-MM-DD): the staging tests check only the rows synced on or after it
    # (flow_sensor sets it once a run of them has passed); empty: every row.
    test_rows_synced_since: str = ""


class DailyConfig(Config):
    # Tenants whose rows are rebuilt over the run's whole range of days (their history was just
    # landed); every other tenant's from `recent_from` (YYYY-MM-DD) on. Empty: every tenant over
    # the whole range.
    history_tenants: list[str] = []
    recent_from: str = ""


def dbt_run_config(
    tests_since: dt.date | None, history_tenants: tuple[str, ...], recent_from: str | None
) -> dict:
    """Run config of `dbt_job`: the staging tests check only the rows synced on or after
    `tests_since` when it is given; the daily marts rebuild `history_tenants` over the whole
    range and the others from `recent_from` on."""
    ops: dict = {}
    if tests_since:
        ops["dbt_views"] = {"config": {"test_rows_synced_since": tests_since.isoformat()}}
    if history_tenants:
        ops["dbt_daily"] = {
            "config": {"history_tenants": list(history_tenants), "recent_from": recent_from}
        }
    return {"ops": ops} if ops else {}


def _failures_table(event, manifest: dict) -> tuple[str, str] | None:
    """Where a failed test about one tenant's data stored its rows; None for any other event
    (a test that could not run, status `error`, stored nothing)."""
    if not isinstance(event, AssetCheckResult):
        return None
    if event.metadata["status"].value not in ("warn", "fail"):
        return None
    return failures_table(manifest, event.metadata["unique_id"].value)


def _naming_tenants(
    context: AssetExecutionContext, result: AssetCheckResult, findings: list[TenantFinding]
) -> AssetCheckResult:
    """The check result with the tenants and their offending rows, also logged."""
    described = describe(findings)
    context.log.warning(f"{result.check_name} on {result.asset_key.to_user_string()}: {described}")
    return AssetCheckResult(
        asset_key=result.asset_key,
        check_name=result.check_name,
        passed=result.passed,
        severity=result.severity,
        description=described,
        metadata={
            **result.metadata,
            "offending_rows_by_tenant": MetadataValue.json(
                {f.tenant_id: f.offending_rows for f in findings}
            ),
            "example_by_tenant": MetadataValue.json(
                {f.tenant_id: f.example for f in findings if f.example is not None}
            ),
        },
    )


def _use_warehouse(warehouse: WarehouseResource) -> None:
    # dagster-dbt runs dbt as a subprocess with this process's environment; profiles.yml reads
    # these variables.
    export_environment(dbt_env(parse_warehouse_url(warehouse.url)))


def build_dbt_assets(project: DbtProject, daily_partitions: DailyPartitionsDefinition) -> list:
    translator = TenantpulseDbtTranslator(
        settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)
    )

    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        select=VIEWS,
        name="dbt_views",
        dagster_dbt_translator=translator,
    )
    def dbt_views(
        context: AssetExecutionContext,
        dbt: DbtCliResource,
        warehouse: WarehouseResource,
        config: ViewsConfig,
    ):
        _use_warehouse(warehouse)
        since = parse_day(config.test_rows_synced_since)  # rejects anything but a day
        invocation = dbt.cli(views_args(since), context=context, raise_on_error=False)
        # Failed tests about one tenant's data, named once dbt has exited (on DuckDB the
        # warehouse cannot be opened while it runs).
        findings: list[tuple[AssetCheckResult, tuple[str, str]]] = []
        for event in invocation.stream():
            table = _failures_table(event, invocation.manifest)
            if table:
                findings.append((event, table))
            else:
                yield event
        if findings:
            with warehouse.open().connect() as conn:
                for result, table in findings:
                    yield _naming_tenants(context, result, read_findings(conn, *table))
        if not invocation.is_successful():
            raise invocation.get_error()

    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        select=INCREMENTAL,
        name="dbt_daily",
        partitions_def=daily_partitions,
        backfill_policy=BackfillPolicy.single_run(),
        dagster_dbt_translator=translator,
    )
    def dbt_daily(
        context: AssetExecutionContext,
        dbt: DbtCliResource,
        warehouse: WarehouseResource,
        config: DailyConfig,
    ):
        _use_warehouse(warehouse)
        window = context.partition_time_window
        newest = daily_partitions.get_last_partition_key()
        reaches_newest = context.partition_key_range.end == newest
        history = [validate_tenant_id(t) for t in config.history_tenants]
        args = daily_args(
            window.start, window.end, reaches_newest, history, parse_day(config.recent_from)
        )
        yield from dbt.cli(args, context=context).stream()

    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        select=MARTS,
        exclude=INCREMENTAL,
        name="dbt_tables",
        dagster_dbt_translator=translator,
    )
    def dbt_tables(
        context: AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
    ):
        _use_warehouse(warehouse)
        yield from dbt.cli(tables_args(), context=context).stream()

    return [dbt_views, dbt_daily, dbt_tables]

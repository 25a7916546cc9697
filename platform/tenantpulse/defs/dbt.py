"""The dbt project as Dagster assets, built by one `dbt build` per run: the staging views, the
intermediate tables, the daily incremental marts (partitioned by day, many days per run), and the
mart tables, in dbt's dependency order. One invocation, not one per kind of model: each costs dbt's
start (2.4-2.7 s) and its manifest (issue 19). The window of days is written to the warehouse
(transform/windows.py) for the models to read, not passed as `--vars`, so dbt reuses its parse.

dbt sources are the landing tables, so the lineage reads raw -> landing -> staging -> marts; dbt tests
become asset checks through `dbt build`. A failed test about one tenant's data (a WARN,
docs/orchestration.md) names the tenants in its check's description and metadata and in the log.
"""

import datetime as dt
import importlib.metadata
import shutil
import uuid
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

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
from packaging import version

from tenantpulse.config import Settings, export_environment, parse_warehouse_url
from tenantpulse.defs.resources import WarehouseResource
from tenantpulse.flow import ALL_TENANTS, TENANTS_REBUILT_TAG, parse_day
from tenantpulse.tenants.ids import validate_tenant_id
from tenantpulse.transform.dbt_args import build_args
from tenantpulse.transform.dbt_cli import dbt_env, save_parse, seed_parse
from tenantpulse.transform.tenant_findings import (
    TenantFinding,
    describe,
    failures_table,
    read_findings,
)
from tenantpulse.transform.windows import (
    RUN_ID_ENV,
    RunWindow,
    daily_window,
    finish_run_window,
    run_tenants,
    write_run_window,
)

DBT_OP = "dbt_models"


class TenantpulseDbtCliResource(DbtCliResource):
    """dagster-dbt's resource without two things its `cli()` does before every dbt command and no
    step here uses, together about 4 s of every dbt run (docs/decisions.md, 2026-12-06): asking
    the dbt executable its version in a subprocess (`dbt --version`: 1.7 s), and building a dbt
    adapter in the step's process (2.3 s), which only `fetch_column_metadata` and
    `fetch_row_counts` use. The executable is the one of this environment (`dbt_executable()`),
    so its version is the installed dbt-core's. Both are private methods of the pinned
    dagster-dbt; tests/test_transform.py fails if an upgrade renames them."""

    @cached_property
    def _cli_version(self) -> version.Version:
        return version.parse(importlib.metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:
        return None


class TenantpulseDbtTranslator(DagsterDbtTranslator):
    """Sources are the landing assets (`landing/<source>__<stream>`); a model's key and group are
    its schema (staging, intermediate, analytics) and its name. The daily marts are partitioned
    by day; the views, the intermediate tables and the other marts are not."""

    def __init__(self, daily_partitions: DailyPartitionsDefinition):
        super().__init__(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))
        self.daily_partitions = daily_partitions

    def get_partitions_def(self, dbt_resource_props) -> DailyPartitionsDefinition | None:
        # The daily marts: incremental and keyed by day (developer_activity_monthly is
        # incremental too, keyed by month, and rebuilds the months of the run's window).
        config = dbt_resource_props["config"]
        daily = config.get("materialized") == "incremental" and "date" in (
            config.get("unique_key") or []
        )
        return self.daily_partitions if daily else None

    def get_asset_key(self, dbt_resource_props) -> AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return AssetKey([dbt_resource_props["source_name"], dbt_resource_props["name"]])
        return AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props) -> str:
        return dbt_resource_props["schema"]


class DbtConfig(Config):
    # A day (YYYY-MM-DD): the staging tests check only the rows synced on or after it
    # (flow_sensor sets it once a run of them has passed); empty: every row.
    test_rows_synced_since: str = ""
    # Tenants whose daily mart rows are rebuilt over the run's whole range of days (their history
    # was just landed); every other tenant's from `recent_from` (YYYY-MM-DD) on. Empty: every
    # tenant over the whole range.
    history_tenants: list[str] = []
    recent_from: str = ""
    # Rebuild only the tenants landed since their marts were last built (ops.dbt_pending_tenants,
    # transform/windows.py); false: every tenant.
    changed_tenants_only: bool = False


def dbt_run_config(
    tests_since: dt.date | None,
    history_tenants: tuple[str, ...],
    recent_from: str | None,
    changed_tenants_only: bool = False,
) -> dict:
    """Run config of `dbt_job`: the staging tests check only the rows synced on or after
    `tests_since` when it is given; the daily marts rebuild `history_tenants` over the whole
    range and the others from `recent_from` on; with `changed_tenants_only`, only the tenants
    landed since their last build are rebuilt."""
    config: dict = {}
    if tests_since:
        config["test_rows_synced_since"] = tests_since.isoformat()
    if history_tenants:
        config |= {"history_tenants": list(history_tenants), "recent_from": recent_from}
    if changed_tenants_only:
        config["changed_tenants_only"] = True
    return {"ops": {DBT_OP: {"config": config}}} if config else {}


def dbt_run_config_of(run_config: dict) -> DbtConfig:
    """The DbtConfig a run of `dbt_job` was launched with (what the CLI describes)."""
    return DbtConfig(**run_config.get("ops", {}).get(DBT_OP, {}).get("config", {}))


def daily_dbt_asset_keys(dbt_assets: list) -> list[AssetKey]:
    """The keys of the dbt assets partitioned by day (the incremental marts)."""
    return [
        spec.key
        for assets in dbt_assets
        for spec in assets.specs
        if spec.partitions_def is not None
    ]


def run_window(
    context: AssetExecutionContext, daily_partitions: DailyPartitionsDefinition, config: DbtConfig
) -> RunWindow:
    """What this run rebuilds and tests: its range of daily partitions (none when it selects no
    daily mart: every date), with the config's history tenants, first day of tests and choice
    of tenants."""
    since = parse_day(config.test_rows_synced_since)  # rejects anything but a day
    if not context.has_partition_key_range:
        return RunWindow(tests_since=since)
    window = context.partition_time_window
    reaches_newest = context.partition_key_range.end == daily_partitions.get_last_partition_key()
    history = [validate_tenant_id(t) for t in config.history_tenants]
    return daily_window(
        window.start,
        window.end,
        reaches_newest,
        history,
        parse_day(config.recent_from),
        since,
        config.changed_tenants_only,
    )


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


def _use_warehouse(warehouse: WarehouseResource, run_id: str) -> None:
    # dagster-dbt runs dbt as a subprocess with this process's environment; profiles.yml reads
    # these variables, and macros/run_window.sql the run's id.
    export_environment({**dbt_env(parse_warehouse_url(warehouse.url)), RUN_ID_ENV: run_id})


def remove_run_folder(folder: Path) -> None:
    """Remove a successful run's own target folder (dagster-dbt's, beside the shared manifest:
    compiled SQL, run results, dbt.log; several MB), read no more once the run has its events:
    one a day added up to gigabytes a year. A failed run's is kept for whoever looks into it."""
    shutil.rmtree(folder, ignore_errors=True)


def build_dbt_assets(
    project: DbtProject, daily_partitions: DailyPartitionsDefinition, settings: Settings
) -> list:
    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        name=DBT_OP,
        backfill_policy=BackfillPolicy.single_run(),
        dagster_dbt_translator=TenantpulseDbtTranslator(daily_partitions),
    )
    def dbt_models(
        context: AssetExecutionContext,
        dbt: DbtCliResource,
        warehouse: WarehouseResource,
        config: DbtConfig,
    ):
        window = run_window(context, daily_partitions, config)
        with warehouse.open().connect() as conn:
            write_run_window(conn, context.run.run_id, window)
        _use_warehouse(warehouse, context.run.run_id)
        # The run's own folder, as dagster-dbt names it, started from this warehouse's parse.
        run_folder = Path(project.project_dir, project.target_path) / (
            f"{DBT_OP}-{context.run.run_id[:7]}-{uuid.uuid4().hex[:7]}"
        )
        seed_parse(settings, run_folder)
        invocation = dbt.cli(
            build_args(), context=context, raise_on_error=False, target_path=run_folder
        )
        # Failed tests about one tenant's data, named once dbt has exited (on DuckDB the
        # warehouse cannot be opened while it runs).
        findings: list[tuple[AssetCheckResult, tuple[str, str]]] = []
        for event in invocation.stream():
            table = _failures_table(event, invocation.manifest)
            if table:
                findings.append((event, table))
            else:
                yield event
        save_parse(settings, run_folder)
        if findings:
            with warehouse.open().connect() as conn:
                for result, table in findings:
                    yield _naming_tenants(context, result, read_findings(conn, *table))
        if not invocation.is_successful():
            context.log.error(
                f"dbt's files of this run (compiled SQL, logs): {invocation.target_path}"
            )
            raise invocation.get_error()
        remove_run_folder(invocation.target_path)
        with warehouse.open().connect() as conn:
            rebuilt = run_tenants(conn, context.run.run_id)
            # A run of some of the models has not rebuilt the marked tenants' other models.
            if context.selected_asset_keys == context.assets_def.keys:
                finish_run_window(conn, context.run.run_id)
        context.log.info(
            "rebuilt every tenant"
            if rebuilt is None
            else f"rebuilt the {len(rebuilt)} tenants changed since their last build"
        )
        context.instance.add_run_tags(
            context.run.run_id,
            {TENANTS_REBUILT_TAG: ALL_TENANTS if rebuilt is None else str(len(rebuilt))},
        )

    return [dbt_models]

"""The flow as one pipeline of stages, run in-process against the Dagster instance the UI reads.

`run_flow` launches each stage's job for the given tenants, many tenants per run (landing: one run
whose config names them; Airbyte syncs: ranges of the `tenants` partitions); later stages of the
product join `STAGES`. `tenantpulse demo` and `tenantpulse run` both come here, so the demo
exercises the same path as production.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import time
from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg

from tenantpulse.actions.execute import day_to_act_on
from tenantpulse.config import Settings
from tenantpulse.definitions import build_definitions
from tenantpulse.defs.dbt import views_run_config
from tenantpulse.defs.landing import landing_run_config
from tenantpulse.defs.partitions import partition_ranges, tenant_partitions
from tenantpulse.defs.tenants import sync_tenant_partitions
from tenantpulse.landing.merge import newest_landed_day
from tenantpulse.tenants.ids import validate_tenant_id
from tenantpulse.tenants.registry import list_tenants
from tenantpulse.warehouse import open_warehouse

DAGSTER_YAML = """\
# Written by tenantpulse on first use; edit freely, it is not overwritten.
# One run at a time: the local DuckDB warehouse allows one writing process per file.
concurrency:
  runs:
    max_concurrent_runs: 1
telemetry:
  enabled: false
"""


TENANTS, DAYS, RECENT_DAYS = "tenants", "days", "recent days"
SELECTED_TENANTS = "selected tenants"  # unpartitioned; the run's config names the tenants
NEWEST_DAY = "newest day"  # the newest analysed day with data (actions are for the present)
RECENT_ROWS = "recent rows"  # unpartitioned; after a passing run its tests check recent rows
# (stage, job, partitioned by): the flow in order; each later stage of the product joins here.
STAGES = [
    ("observe", "observe_raw", None),
    ("land", "ingest", SELECTED_TENANTS),
    ("dbt views", "transform_views", RECENT_ROWS),
    ("dbt daily marts", "transform_daily", DAYS),
    ("dbt mart tables", "transform_tables", None),
    ("analyse", "analyse", RECENT_DAYS),
    ("insights", "write_insights", RECENT_DAYS),
    ("act", "act", NEWEST_DAY),
]


SYNC_STAGE = "sync"


def flow_stages(settings: Settings) -> list[tuple[str, str, str | None]]:
    """STAGES, preceded in Airbyte mode by the Airbyte syncs of the selected tenants."""
    if settings.airbyte is None:
        return STAGES
    return [(SYNC_STAGE, "airbyte_sync", TENANTS), *STAGES]


@dataclass(frozen=True)
class StageRun:
    stage: str
    run_ids: tuple[str, ...]
    success: bool
    error: str | None = None
    seconds: float = 0.0  # wall clock of the stage's runs
    partitions: str = ""  # the partition ranges run ("first..last, ..."), or "unpartitioned"


def dagster_instance(settings: Settings) -> dg.DagsterInstance:
    """The persistent instance under DAGSTER_HOME (created with a local dagster.yaml if new)."""
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    config = settings.dagster_home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    return dg.DagsterInstance.from_config(str(settings.dagster_home))


def run_flow(
    settings: Settings,
    instance: dg.DagsterInstance,
    tenant_ids: list[str] | None = None,
    echo: Callable[[str], None] = print,
    lookback_days: int = 3,
    until: str | None = None,
    on_stage: Callable[[StageRun], None] | None = None,
) -> list[StageRun]:
    """Observe raw data, land it for `tenant_ids` (default: every active tenant), then build the
    dbt models (the daily marts over the days `daily_window` picks); stop at the first stage that
    fails, or after the stage named `until`; `on_stage` is called with each stage's result as it
    ends. The `tenants` partitions are first made equal to the registry."""
    with open_warehouse(settings.warehouse).connect() as conn:
        registered = [t.tenant_id for t in list_tenants(conn)]
    sync_tenant_partitions(instance, registered)
    selected = tenant_ids
    if tenant_ids is None:
        tenant_ids = registered
    unknown = sorted(set(map(validate_tenant_id, tenant_ids)) - set(registered))
    if unknown:
        raise ValueError(
            f"not active tenants: {', '.join(unknown)} (see `tenantpulse tenants list`)"
        )
    defs = build_definitions(settings)
    stages = flow_stages(settings)
    if until is not None:
        names = [stage for stage, _, _ in stages]
        if until not in names:
            raise ValueError(f"unknown stage {until!r}; stages: {', '.join(names)}")
        stages = stages[: names.index(until) + 1]
    results = []
    for stage, job_name, partitioned_by in stages:
        job = defs.resolve_job_def(job_name)
        run_config, unpartitioned = {}, "unpartitioned"
        if partitioned_by == SELECTED_TENANTS:
            run_config = landing_run_config(selected)
            ranges, unpartitioned = [None], f"tenants: {len(tenant_ids)}"
        elif partitioned_by == TENANTS:
            ordered = list(instance.get_dynamic_partitions(tenant_partitions.name))
            ranges = partition_ranges(ordered, tenant_ids)
        elif partitioned_by == RECENT_ROWS:
            ranges, unpartitioned = [None], "tests: every row"
            with open_warehouse(settings.warehouse).connect() as conn:  # after landing, not before
                newest_sync = newest_landed_day(conn)
            since = tests_since(_last_success_day(instance, job_name), newest_sync, lookback_days)
            if since is not None:
                run_config = views_run_config(since)
                unpartitioned = f"tests: rows synced since {since}"
        elif partitioned_by in (DAYS, RECENT_DAYS):
            # The daily marts are built whole the first time; the analysis only needs the
            # recent days (each day reads the whole history up to it).
            first_build = partitioned_by == DAYS and not any(
                instance.get_materialized_partitions(key)
                for key in job.asset_layer.selected_asset_keys
            )
            day_keys = job.partitions_def.get_partition_keys()
            with open_warehouse(settings.warehouse).connect() as conn:  # after landing, not before
                newest_sync = newest_landed_day(conn)
            ranges = [daily_window(day_keys, first_build, newest_sync, lookback_days)]
        elif partitioned_by == NEWEST_DAY:
            with open_warehouse(settings.warehouse).connect() as conn:
                day = day_to_act_on(
                    job.partitions_def.get_partition_keys(), newest_landed_day(conn)
                )
            ranges = [(day.isoformat(), day.isoformat())] if day else []
        else:
            ranges = [None]
        described = ", ".join(f"{r[0]}..{r[1]}" for r in ranges if r) or unpartitioned
        started = time.monotonic()
        run_ids, success, error = _run_job(job, instance, ranges, run_config)
        seconds = time.monotonic() - started
        results.append(StageRun(stage, run_ids, success, error, seconds, described))
        echo(f"[{stage}] job {job_name} ({described}): {seconds:.1f}s")
        if on_stage is not None:
            on_stage(results[-1])
        if not results[-1].success:
            echo(f"[{stage}] failed: {results[-1].error}")
            if stage != SYNC_STAGE:  # a failed sync fails its tenants; the others still land
                break
    return results


def _last_success_day(instance: dg.DagsterInstance, job_name: str) -> dt.date | None:
    """The UTC day the job's latest run was created, if that run succeeded; else None."""
    records = instance.get_run_records(dg.RunsFilter(job_name=job_name), limit=1)
    if not records or records[0].dagster_run.status != dg.DagsterRunStatus.SUCCESS:
        return None
    return records[0].create_timestamp.astimezone(dt.UTC).date()


def tests_since(
    last_success: dt.date | None, newest_sync: dt.date | None, lookback_days: int
) -> dt.date | None:
    """The first sync day whose rows the staging tests check: None (every row) until a run of
    them has passed, or while its last run failed; then `lookback_days` before the earlier of
    that run's day and the newest sync, so rows landed after it, or late, are still checked."""
    if last_success is None or newest_sync is None:
        return None
    return min(last_success, newest_sync) - dt.timedelta(days=lookback_days)


def daily_window(
    day_keys: list[str], first_build: bool, newest_sync: dt.date | None, lookback_days: int
) -> tuple[str, str]:
    """The daily partitions to rebuild: all of them on the first build; else from `lookback_days`
    before the newest sync's day (late updates: refunds, Google Analytics' revised days) to the
    newest partition, whose run also covers any later-dated rows."""
    if first_build or newest_sync is None:
        return day_keys[0], day_keys[-1]
    start = (newest_sync - dt.timedelta(days=lookback_days)).isoformat()
    first = next((key for key in day_keys if key >= start), day_keys[-1])
    return first, day_keys[-1]


# The console shows warnings and errors only; every event is still in the run's log in the UI.
_QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _run_job(job, instance, ranges, run_config) -> tuple[tuple[str, ...], bool, str | None]:
    """One run per range (None: an unpartitioned run)."""
    run_ids, errors = [], []
    for partition_range in ranges:
        tags = {}
        if partition_range:
            tags = {
                "dagster/asset_partition_range_start": partition_range[0],
                "dagster/asset_partition_range_end": partition_range[1],
            }
        # dbt writes its own log to stdout; keep it for a failure, not for every run.
        step_output = io.StringIO()
        with contextlib.redirect_stdout(step_output):
            result = job.execute_in_process(
                run_config={**_QUIET, **run_config},
                instance=instance,
                raise_on_error=False,
                tags=tags,
            )
        run_ids.append(result.run_id)
        if not result.success:
            tail = "\n".join(step_output.getvalue().splitlines()[-30:])
            errors.append(_failure_text(result) + (f"\n{tail}" if tail else ""))
    return tuple(run_ids), not errors, "; ".join(errors) or None


def _failure_text(result) -> str:
    failures = [e for e in result.all_events if e.is_step_failure]
    return (
        "; ".join(
            f"{e.step_key}: {e.step_failure_data.error.message.strip() if e.step_failure_data.error else ''}"
            for e in failures
        )
        or f"run {result.run_id} failed"
    )

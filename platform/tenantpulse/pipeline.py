"""The flow as one pipeline of stages, run in-process against the Dagster instance the UI reads.

`run_flow` launches each stage's job for the given tenants (many tenants per run, as Dagster
partition ranges); later stages join the list in `run_flow`. `tenantpulse demo` and `tenantpulse
run` both come here, so the demo exercises the same path as production.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg

from tenantpulse.config import Settings
from tenantpulse.definitions import build_definitions
from tenantpulse.defs.partitions import tenant_partitions
from tenantpulse.defs.tenants import sync_tenant_partitions
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


@dataclass(frozen=True)
class StageRun:
    stage: str
    run_ids: tuple[str, ...]
    success: bool
    error: str | None = None


def dagster_instance(settings: Settings) -> dg.DagsterInstance:
    """The persistent instance under DAGSTER_HOME (created with a local dagster.yaml if new)."""
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    config = settings.dagster_home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    return dg.DagsterInstance.from_config(str(settings.dagster_home))


def partition_ranges(ordered_keys: list[str], selected: list[str]) -> list[tuple[str, str]]:
    """Cover `selected` keys with as few contiguous (first, last) ranges of `ordered_keys` as
    possible: one run per range, so all tenants go in one run when all are selected."""
    chosen = set(selected)
    missing = chosen - set(ordered_keys)
    if missing:
        raise ValueError(f"no tenants partition for {sorted(missing)}: register the tenants first")
    ranges, start, previous = [], None, None
    for key in ordered_keys:
        if key in chosen:
            start = start or key
            previous = key
        elif start is not None:
            ranges.append((start, previous))
            start = None
    if start is not None:
        ranges.append((start, previous))
    return ranges


def run_flow(
    settings: Settings,
    instance: dg.DagsterInstance,
    tenant_ids: list[str] | None = None,
    echo: Callable[[str], None] = print,
) -> list[StageRun]:
    """Observe raw data, then land it, for `tenant_ids` (default: every active tenant); stop at
    the first stage that fails. The `tenants` partitions are first made equal to the registry."""
    with open_warehouse(settings.warehouse).connect() as conn:
        registered = [t.tenant_id for t in list_tenants(conn)]
    sync_tenant_partitions(instance, registered)
    if tenant_ids is None:
        tenant_ids = registered
    unknown = sorted(set(map(validate_tenant_id, tenant_ids)) - set(registered))
    if unknown:
        raise ValueError(
            f"not active tenants: {', '.join(unknown)} (see `tenantpulse tenants list`)"
        )
    defs = build_definitions(settings)
    stages = [
        ("observe raw", "observe_raw", False),
        ("land", "ingest", True),
    ]
    results = []
    for stage, job_name, partitioned in stages:
        echo(f"[{stage}] running job {job_name}")
        result = _run_job(defs, instance, job_name, tenant_ids if partitioned else None)
        results.append(StageRun(stage, *result))
        if not results[-1].success:
            echo(f"[{stage}] failed: {results[-1].error}")
            break
    return results


# The console shows warnings and errors only; every event is still in the run's log in the UI.
_QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _run_job(defs, instance, job_name, tenant_ids) -> tuple[tuple[str, ...], bool, str | None]:
    job = defs.resolve_job_def(job_name)
    if tenant_ids is None:
        result = job.execute_in_process(run_config=_QUIET, instance=instance, raise_on_error=False)
        return (result.run_id,), result.success, _failure_text(result)
    ordered = list(instance.get_dynamic_partitions(tenant_partitions.name))
    run_ids, errors = [], []
    for first, last in partition_ranges(ordered, tenant_ids):
        result = job.execute_in_process(
            run_config=_QUIET,
            instance=instance,
            raise_on_error=False,
            tags={
                "dagster/asset_partition_range_start": first,
                "dagster/asset_partition_range_end": last,
            },
        )
        run_ids.append(result.run_id)
        if not result.success:
            errors.append(_failure_text(result) or "failed")
    return tuple(run_ids), not errors, "; ".join(errors) or None


def _failure_text(result) -> str | None:
    if result.success:
        return None
    failures = [e for e in result.all_events if e.is_step_failure]
    return (
        "; ".join(
            f"{e.step_key}: {e.step_failure_data.error.message.strip() if e.step_failure_data.error else ''}"
            for e in failures
        )
        or f"run {result.run_id} failed"
    )

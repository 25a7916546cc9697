"""Running one of the flow's jobs in the test's process, for tests about what a stage does rather
than how the instance chains the stages (tests/test_flow.py follows real flows through a daemon)."""

from __future__ import annotations

import dagster as dg

from tenantpulse.definitions import build_definitions


def run_job(
    settings,
    instance: dg.DagsterInstance,
    job_name: str,
    run_config: dict | None = None,
    tags: dict | None = None,
    partition_key: str | None = None,
) -> dg.ExecuteInProcessResult:
    job = build_definitions(settings).resolve_job_def(job_name)
    return job.execute_in_process(
        instance=instance,
        run_config=run_config or {},
        tags=tags,
        partition_key=partition_key,
        raise_on_error=False,
    )


def land(settings, instance, tenant_ids: list[str] | None = None) -> dg.ExecuteInProcessResult:
    from tenantpulse.defs.landing import landing_run_config

    return run_job(settings, instance, "land_job", landing_run_config(tenant_ids))


def step_errors(result: dg.ExecuteInProcessResult) -> str:
    return "; ".join(
        f"{e.step_key}: {e.step_failure_data.error.message}"
        for e in result.all_events
        if e.is_step_failure and e.step_failure_data.error
    )

"""The two days issue 19 sets targets for, through the product's own paths (`run_flow`, what
`tenantpulse run` runs; the runs go through the Dagster instance and its daemon).

- **normal day**: syncs spread over the day as Airbyte schedules them. The tenants are split into
  BATCHES_PER_DAY batches; each batch's next sync is simulated, and the daemon's
  `new_syncs_sensor` lands it (under `TENANTPULSE_FLOW_AFTER_SYNCS=daily` its runs stop after
  land). After the last batch, the day's flow over every tenant (what `daily_flow_schedule`
  starts): land (what is left), dbt, analyse, act.
- **worst day**: every tenant's next sync finishes at once, then the whole flow over every tenant.

Every record has the peak resident memory of the bench's process tree (the daemon, its runs and
their dbt) while it ran (`bench.memory.TreePeak`).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

import dagster as dg

from bench import flow as bench_flow
from bench.memory import TreePeak
from tenantpulse import flow
from tenantpulse.config import Settings
from tenantpulse.defs.landing import landing_run_tenants
from tenantpulse.flow_runs import TERMINAL, StageRun, dagster_instance, run_failure, running_daemon

BATCHES_PER_DAY = 24
NORMAL_DAY, WORST_DAY = "normal day", "worst day"
DAY_FLOW = "normal day, flow after the last sync"


def batches(tenant_ids: list[str], count: int = BATCHES_PER_DAY) -> list[list[str]]:
    """`tenant_ids` in `count` batches of (nearly) equal size, in order."""
    size, extra = divmod(len(tenant_ids), count)
    out, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        if end > start:
            out.append(tenant_ids[start:end])
        start = end
    return out


def _measured(record_stages: Callable[[], list[dict]]) -> list[dict]:
    with TreePeak() as peak:
        records = record_stages()
    return [record | peak.record() for record in records]


def time_normal_day(
    settings: Settings,
    tenant_ids: list[str],
    simulate: Callable[[list[str]], dict],
    keep: Callable[[dict], None],
) -> None:
    """Each batch's syncs simulated (`simulate(batch)` returns its record), then landed by the
    land runs `new_syncs_sensor` starts for them (the bench's settings have
    TENANTPULSE_FLOW_AFTER_SYNCS=daily, so they stop after land), then the day's flow;
    `keep(record)` gets every record as it is measured. One daemon serves the whole day."""
    instance = dagster_instance(settings)
    with running_daemon(settings, instance, echo=lambda line: None):
        for number, batch in enumerate(batches(tenant_ids), start=1):
            stage = f"batch {number} of {BATCHES_PER_DAY}"
            synced_after = time.time()
            keep({"phase": NORMAL_DAY, **simulate(batch), "stage": f"simulate {stage}"})
            with TreePeak() as peak:
                landed = _sensor_land_runs(instance, batch, synced_after)
            record = bench_flow.stage_record(settings, instance, NORMAL_DAY, landed)
            keep(record | peak.record() | {"stage": f"land {stage}", "tenants": len(batch)})
        for record in _measured(
            lambda: bench_flow.follow_flow(
                settings, DAY_FLOW, lambda record: None, lookback_days=bench_flow.LOOKBACK_DAYS
            )
        ):
            keep(record)


def _sensor_land_runs(
    instance: dg.DagsterInstance, batch: list[str], created_after: float
) -> StageRun:
    """The land runs new_syncs_sensor started after `created_after` for the batch's tenants,
    once every tenant of the batch is in one and they have all ended (a batch whose syncs two
    sensor ticks saw is landed by two runs); their seconds are the runs' own, added up."""
    deadline = time.monotonic() + bench_flow.STAGE_TIMEOUT_SECONDS
    wanted = set(batch)
    while time.monotonic() < deadline:
        records = instance.get_run_records(
            dg.RunsFilter(
                job_name=flow.LAND.job,
                tags={flow.TRIGGER_TAG: "new_syncs"},
                created_after=dt.datetime.fromtimestamp(created_after, dt.UTC),
            )
        )
        covered = {t for r in records for t in landing_run_tenants(r.dagster_run.run_config)}
        ended = all(r.dagster_run.status in TERMINAL for r in records)
        if records and wanted <= covered and ended:
            failed = [r for r in records if r.dagster_run.status != dg.DagsterRunStatus.SUCCESS]
            return StageRun(
                flow.LAND.name,
                tuple(r.dagster_run.run_id for r in records),
                not failed,
                "; ".join(run_failure(instance, r.dagster_run.run_id) for r in failed) or None,
                sum((r.end_time or 0.0) - (r.start_time or 0.0) for r in records),
                f"tenants: {len(covered)}",
            )
        time.sleep(1.0)
    raise TimeoutError(f"new_syncs_sensor did not land {len(batch)} tenants' syncs in time")


def time_worst_day(
    settings: Settings,
    tenant_ids: list[str],
    simulate: Callable[[list[str]], dict],
    keep: Callable[[dict], None],
) -> None:
    """Every tenant's next sync at once, then the whole flow over every tenant."""
    keep({"phase": WORST_DAY, **simulate(tenant_ids), "stage": "simulate"})
    started = time.perf_counter()
    records = _measured(
        lambda: bench_flow.follow_flow(
            settings, WORST_DAY, lambda record: None, lookback_days=bench_flow.LOOKBACK_DAYS
        )
    )
    for record in records:
        keep(record)
    keep(
        {
            "phase": WORST_DAY,
            "stage": "whole day (wall clock, queue and daemon start included)",
            "seconds": round(time.perf_counter() - started, 3),
            "success": all(r["success"] for r in records),
        }
    )

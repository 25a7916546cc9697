"""The two days issue 19 sets targets for, through the product's own paths (`run_flow`, what
`tenantpulse run` runs; the runs go through the Dagster instance and its daemon).

- **normal day**: syncs spread over the day as Airbyte schedules them. The tenants are split into
  BATCHES_PER_DAY batches; each batch's next sync is simulated, and the daemon carries it as a
  deployment does with `TENANTPULSE_FLOW_AFTER_SYNCS=each`: `new_syncs_sensor` lands the batch,
  and its flow rebuilds the tenants landed since their last build (dbt), analyses and acts. The
  last batch's dbt, analyse and act are the day's flow after the last sync.
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
from bench.report import DAY_FLOW, DAY_FLOW_WALL_CLOCK
from tenantpulse import flow
from tenantpulse.config import FLOW_AFTER_EACH_SYNC, Settings, load_settings
from tenantpulse.defs.landing import landing_run_tenants
from tenantpulse.flow_runs import StageRun, dagster_instance, follow_flow, running_daemon

BATCHES_PER_DAY = 24
NORMAL_DAY, WORST_DAY = "normal day", "worst day"


def batches(tenant_ids: list[str], count: int = BATCHES_PER_DAY) -> list[list[str]]:
    """`tenant_ids` in `count` batches of (nearly) equal size, each taking every `count`-th
    tenant: Airbyte's schedules do not follow tenant ids, and a batch of neighbouring ids would
    let DuckDB skip most of a table by its min/max (the range filter of `in_tenant_group`)."""
    return [batch for batch in (tenant_ids[index::count] for index in range(count)) if batch]


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
    """Each batch's syncs simulated (`simulate(batch)` returns its record), then the flows
    `new_syncs_sensor` starts for them, to their end (`TENANTPULSE_FLOW_AFTER_SYNCS=each`);
    `keep(record)` gets every record as it is measured. One daemon serves the whole day."""
    each = load_settings(
        dict(settings.source_variables) | {"TENANTPULSE_FLOW_AFTER_SYNCS": FLOW_AFTER_EACH_SYNC}
    )
    instance = dagster_instance(each)
    groups = batches(tenant_ids)
    with running_daemon(each, instance, echo=lambda line: None):
        for number, batch in enumerate(groups, start=1):
            stage = f"batch {number} of {len(groups)}"
            synced_after = time.time()
            keep({"phase": NORMAL_DAY, **simulate(batch), "stage": f"simulate {stage}"})
            with TreePeak() as peak:
                runs = _sensor_flows(instance, batch, synced_after)
            for name in (s.name for s in flow.STAGES):
                of_stage = [run for run in runs if run.stage == name]
                if not of_stage:
                    continue
                record = bench_flow.stage_record(
                    each, instance, NORMAL_DAY, _together(name, of_stage)
                )
                if number == len(groups) and name != flow.LAND.name:
                    record |= {"phase": DAY_FLOW}
                else:
                    record |= {"stage": f"{name} {stage}"}
                keep(record | peak.record() | {"tenants": len(batch)})
        # The last batch's runs: its flow after the land as a user waits for it.
        if any(run.stage == flow.ACT.name for run in runs):
            keep(_day_flow_wall_clock(instance, runs))


def _day_flow_wall_clock(instance: dg.DagsterInstance, runs: list[StageRun]) -> dict:
    """The last batch's flow after its land, as a user waits for it: from the end of its last
    land run to the end of its last act run, the sensor's ticks and each run's launch included
    (the stage records add up the runs' own times only)."""
    ends = {
        stage: max(
            instance.get_run_record_by_id(run_id).end_time
            for run in runs
            if run.stage == stage
            for run_id in run.run_ids
        )
        for stage in (flow.LAND.name, flow.ACT.name)
    }
    return {
        "phase": DAY_FLOW,
        "stage": DAY_FLOW_WALL_CLOCK,
        "seconds": round(ends[flow.ACT.name] - ends[flow.LAND.name], 3),
        "success": all(run.success for run in runs),
    }


def _together(name: str, runs: list[StageRun]) -> StageRun:
    """The runs of one stage of a batch's flows as one stage: their seconds added up."""
    return StageRun(
        name,
        tuple(run_id for run in runs for run_id in run.run_ids),
        all(run.success for run in runs),
        "; ".join(run.error for run in runs if run.error) or None,
        sum(run.seconds for run in runs),
        runs[0].partitions,
    )


def _sensor_flows(
    instance: dg.DagsterInstance, batch: list[str], created_after: float
) -> list[StageRun]:
    """The runs of the flows new_syncs_sensor started after `created_after` for the batch's
    tenants (a batch whose syncs two sensor ticks saw has two), once every tenant of the batch
    is in one of their land runs and each flow has ended."""
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
        if records and wanted <= covered:
            flow_ids = sorted({r.dagster_run.tags[flow.FLOW_TAG] for r in records})
            return [
                run
                for flow_id in flow_ids
                for run in follow_flow(instance, flow_id, bench_flow.STAGE_TIMEOUT_SECONDS)
            ]
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

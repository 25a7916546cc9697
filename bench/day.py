"""The two days issue 19 sets targets for, through the product's own paths (`run_flow`, what
`tenantpulse run` runs; the runs go through the Dagster instance and its daemon).

- **normal day**: syncs spread over the day as Airbyte schedules them. The tenants are split into
  BATCHES_PER_DAY batches; each batch's next sync is simulated, then landed by a land run for its
  tenants that stops after land (what `new_syncs_sensor` starts under
  `TENANTPULSE_FLOW_AFTER_SYNCS=daily`). After the last batch, the day's flow over every tenant
  (what `daily_flow_schedule` starts): land (what is left), dbt, analyse, act.
- **worst day**: every tenant's next sync finishes at once, then the whole flow over every tenant.

Every record has the peak resident memory of the bench's process tree (the daemon, its runs and
their dbt) while it ran (`bench.memory.TreePeak`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bench import flow as bench_flow
from bench.memory import TreePeak
from tenantpulse import flow
from tenantpulse.config import Settings
from tenantpulse.flow_runs import dagster_instance, running_daemon

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
    """Each batch's syncs simulated (`simulate(batch)` returns its record) and landed, then the
    day's flow; `keep(record)` gets every record as it is measured. One daemon serves the whole
    day, as in a deployment (the bench's settings have TENANTPULSE_FLOW_AFTER_SYNCS=daily, so a
    land run the sensor starts for a batch stops after land too)."""
    with running_daemon(settings, dagster_instance(settings), echo=lambda line: None):
        _batches_then_flow(settings, tenant_ids, simulate, keep)


def _batches_then_flow(settings, tenant_ids, simulate, keep) -> None:
    for number, batch in enumerate(batches(tenant_ids), start=1):
        stage = f"batch {number} of {BATCHES_PER_DAY}"
        keep({"phase": NORMAL_DAY, **simulate(batch), "stage": f"simulate {stage}"})
        for record in _measured(
            lambda batch=batch: bench_flow.follow_flow(
                settings,
                NORMAL_DAY,
                lambda record: None,
                tenant_ids=batch,
                until=flow.LAND.name,
                lookback_days=bench_flow.LOOKBACK_DAYS,
            )
        ):
            keep(record | {"stage": f"land {stage}", "tenants": len(batch)})
    for record in _measured(
        lambda: bench_flow.follow_flow(
            settings, DAY_FLOW, lambda record: None, lookback_days=bench_flow.LOOKBACK_DAYS
        )
    ):
        keep(record)


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

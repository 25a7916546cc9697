"""The flow's stages without Dagster: the functions the assets' bodies call (landing.run,
transform.dbt_args through run_dbt, analysis.daily, insights.daily, actions.execute), over every
tenant at once, with the windows the flow sensor chooses (tenantpulse.flow), so the data work can
be told apart from Dagster's bookkeeping (a run's fixed cost, its events in the event log)."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable

from bench.flow import LOOKBACK_DAYS, peak_memory, stage_rows
from tenantpulse import flow
from tenantpulse.actions.execute import act_on_day, day_to_act_on
from tenantpulse.actions.handlers import build_handlers
from tenantpulse.actions.playbooks import load_playbooks
from tenantpulse.analysis.daily import analyse_days
from tenantpulse.config import Settings
from tenantpulse.definitions import daily_partitions
from tenantpulse.insights.daily import write_days
from tenantpulse.landing.merge import newest_landed_day, oldest_synced_day
from tenantpulse.landing.run import failure_summary, land_streams
from tenantpulse.sources.contracts import STREAMS
from tenantpulse.transform.dbt_args import build_args
from tenantpulse.transform.dbt_cli import run_dbt
from tenantpulse.transform.windows import daily_window, write_run_window
from tenantpulse.warehouse import open_warehouse

# What a stage's work returns: the counts its asset would put in its metadata, what it covered,
# and the seconds of its parts.
StageWork = Callable[[], tuple[list[dict], str, dict[str, float]]]


def time_direct(
    settings: Settings,
    phase: str,
    first_build: bool,
    on_stage: Callable[[dict], None],
    until: str | None = None,
) -> None:
    """Land every tenant's new rows, build dbt (views, the daily marts over the flow's window,
    tables), analyse the window's days and write their insights, act on the day the flow would;
    one record per stage, as `run_flow`'s, up to the stage `until` names (default: all).
    `first_build`: the daily marts over every day and the staging tests over every row (else as
    after a dbt run that passed today)."""
    warehouse = open_warehouse(settings.warehouse)
    day_keys = daily_partitions(settings).get_partition_keys()
    # What one stage found that a later one needs (the flow sensor reads it from run tags).
    state: dict = {"newest": None, "window_start": None, "analysed": []}

    def timed(stage: str, work: StageWork) -> None:
        started = time.perf_counter()
        error, metadata, partitions, parts = None, [], "", {}
        try:
            metadata, partitions, parts = work()
        except Exception as failure:  # noqa: BLE001 - recorded as the stage's result
            error = f"{type(failure).__name__}: {failure}"[:2000]
        seconds = time.perf_counter() - started
        with warehouse.connect() as conn:
            rows, unit = stage_rows(conn, stage, metadata, state["window_start"])
        on_stage(
            {
                "phase": phase,
                "stage": stage,
                "path": "direct",
                "seconds": round(seconds, 3),
                "parts_seconds": parts,
                "partitions": partitions,
                "rows": rows,
                "unit": unit,
                "rows_per_second": round(rows / seconds) if rows and seconds else None,
                "success": error is None,
                "error": error,
                **peak_memory(),
            }
        )
        if error:
            raise RuntimeError(f"{stage}: {error}")

    def land():
        with warehouse.connect() as conn:
            landed = list(land_streams(conn, STREAMS))
            state["newest"] = newest_landed_day(conn)
        oldest = oldest_synced_day(o for s in landed for o in s.outcomes)
        state["oldest_synced"] = oldest.isoformat() if oldest else ""
        failures = {name: error for s in landed for name, error in s.failures.items()}
        if failures:
            raise RuntimeError(failure_summary(failures))
        return [{"rows_read": sum(s.rows_read for s in landed)}], "all tenants", {}

    def dbt():
        newest = state["newest"]
        window = flow.daily_window(day_keys, first_build, newest, LOOKBACK_DAYS)
        first, last = window.first, window.last
        state["window_start"] = first
        # The previous phase's dbt passed (else the bench stopped), and this land came after it.
        since = None if first_build else flow.tests_since([state["oldest_synced"]], newest)
        end = dt.date.fromisoformat(last) + dt.timedelta(days=1)
        run_id = f"bench-{uuid.uuid4().hex}"
        with warehouse.connect() as conn:
            write_run_window(
                conn,
                run_id,
                daily_window(
                    dt.date.fromisoformat(first), end, last == day_keys[-1], tests_since=since
                ),
            )
        args = build_args()
        started = time.perf_counter()
        done = run_dbt(settings, args, capture=True, run_id=run_id)
        if done.returncode != 0:
            raise RuntimeError(f"dbt {' '.join(args)} failed:\n{done.stdout[-1500:]}")
        parts = {"build": round(time.perf_counter() - started, 3)}
        tests = f"rows synced since {since}" if since else "every row"
        return [], f"{first}..{last}; tests: {tests}", parts

    def analyse():
        window = flow.daily_window(day_keys, False, state["newest"], LOOKBACK_DAYS)
        first, last = window.first, window.last
        days = [dt.date.fromisoformat(k) for k in day_keys if first <= k <= last]
        started = time.perf_counter()
        analysed = analyse_days(warehouse, days)
        between = time.perf_counter()
        written = write_days(warehouse, days, settings.llm)
        state["analysed"] = [d.isoformat() for d in days]
        parts = {
            "analysis": round(between - started, 3),
            "insights": round(time.perf_counter() - between, 3),
        }
        metadata = {"tenant_days": len(written.frame), "history_rows_read": analysed.history_rows}
        return [metadata], f"{first}..{last}", parts

    def act():
        day = day_to_act_on(state["analysed"], state["newest"])
        if day is None:
            return [], "no analysed day to act on", {}
        playbook_file = load_playbooks(settings.actions.playbooks_path)
        handlers = build_handlers(settings.actions, playbook_file.handlers_used())
        report = act_on_day(warehouse, playbook_file, handlers, day, None, settings.actions.dry_run)
        if report.failed:
            raise RuntimeError(f"{len(report.failed)} action(s) could not be delivered")
        return [{"tenants_evaluated": report.tenants_evaluated}], day.isoformat(), {}

    for stage, work in (
        (flow.LAND.name, land),
        (flow.DBT.name, dbt),
        (flow.ANALYSE.name, analyse),
        (flow.ACT.name, act),
    ):
        timed(stage, work)
        if stage == until:
            return

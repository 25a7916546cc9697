"""The same stages without Dagster: the functions each asset's body calls, over every tenant at
once, so the data work can be told apart from Dagster's bookkeeping (a run's fixed cost, and
events per asset and partition committed to the instance's event log)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

import pandas as pd

from bench.flow import DAILY_MARTS, MART_TABLES, count_rows, landing_rows, peak_memory
from tenantpulse.actions.execute import act_on_day
from tenantpulse.actions.handlers import build_handlers
from tenantpulse.actions.playbooks import load_playbooks
from tenantpulse.analysis.daily import analyse_day, normalise_history, train_churn_model
from tenantpulse.analysis.tables import ANALYSIS_SCHEMA, replace_days
from tenantpulse.config import Settings
from tenantpulse.defs.dbt import INCREMENTAL, VIEWS
from tenantpulse.insights.compose import DeterministicWriter, request_for, write_insights
from tenantpulse.insights.store import INSIGHTS_TABLE, facts_of_day, insights_frame
from tenantpulse.landing.merge import land_stream
from tenantpulse.sources.contracts import STREAMS
from tenantpulse.tenants.registry import list_tenants
from tenantpulse.transform.dbt_cli import run_dbt
from tenantpulse.transform.windows import window_vars
from tenantpulse.warehouse import open_warehouse


def time_direct(
    settings: Settings, phase: str, days: list[dt.date], full_build: bool, on_stage: Callable
) -> None:
    """Land every tenant's new rows, build dbt (views, the daily marts over `days` or every day,
    tables), analyse `days`, write their insights and act on the last one; one record per stage."""
    warehouse = open_warehouse(settings.warehouse)
    with warehouse.connect() as conn:
        tenant_ids = [t.tenant_id for t in list_tenants(conn)]

    def timed(stage: str, work: Callable[[], tuple[int, str]], partitions: str = "") -> None:
        started = time.perf_counter()
        error = None
        try:
            rows, unit = work()
        except Exception as failure:  # noqa: BLE001 - recorded as the stage's result
            rows, unit, error = 0, "", f"{type(failure).__name__}: {failure}"[:2000]
        seconds = time.perf_counter() - started
        on_stage(
            {
                "phase": phase,
                "stage": stage,
                "path": "direct",
                "seconds": round(seconds, 3),
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

    def land() -> tuple[int, str]:
        rows = 0
        for contract in STREAMS:
            with warehouse.connect() as conn:
                rows += sum(o.rows_read for o in land_stream(conn, contract, tenant_ids))
        return rows, "raw rows read"

    def dbt(args: list[str]) -> None:
        done = run_dbt(settings, args, capture=True)
        if done.returncode != 0:
            raise RuntimeError(f"dbt {' '.join(args)} failed:\n{done.stdout[-1500:]}")

    def views() -> tuple[int, str]:
        dbt(["build", "--select", VIEWS])
        with warehouse.connect() as conn:
            return landing_rows(conn), "landing rows under the views (tests scan them)"

    def daily() -> tuple[int, str]:
        args = ["build", "--select", INCREMENTAL]
        if not full_build:
            args += ["--vars", window_vars(days[0], days[-1] + dt.timedelta(days=1), True)]
        dbt(args)
        where = "true" if full_build else f"date >= cast('{days[0]}' as date)"
        with warehouse.connect() as conn:
            return sum(count_rows(conn, "analytics", m, where) for m in DAILY_MARTS), (
                "mart rows rebuilt"
            )

    def tables() -> tuple[int, str]:
        dbt(["build", "--select", "fqn:marts", "--exclude", INCREMENTAL])
        with warehouse.connect() as conn:
            return sum(count_rows(conn, "analytics", m) for m in MART_TABLES), "mart rows built"

    def analyse() -> tuple[int, str]:
        with warehouse.connect() as conn:
            history = normalise_history(
                conn.read_frame("select * from analytics.tenant_daily_metrics")
            )
        model = train_churn_model(history, known_until=days[0])
        results = [analyse_day(history, day, model) for day in days]
        with warehouse.connect() as conn:
            for table in results[0].tables():
                frame = _concat([r.tables()[table] for r in results])
                replace_days(conn, ANALYSIS_SCHEMA, table, frame, days)
            replace_days(
                conn, "ops", "ai_workflow_analysis", _concat([r.workflow for r in results]), days
            )
        return len(history), "daily metric rows read"

    def insights() -> tuple[int, str]:
        with warehouse.connect() as conn:
            requests = [request_for(f) for day in days for f in facts_of_day(conn, day)]
        frame = insights_frame(write_insights(requests, DeterministicWriter(), 1, lambda _: None))
        with warehouse.connect() as conn:
            if not frame.empty:
                replace_days(conn, ANALYSIS_SCHEMA, INSIGHTS_TABLE, frame, days)
        return len(frame), "tenant-days written"

    def act() -> tuple[int, str]:
        playbook_file = load_playbooks(settings.actions.playbooks_path)
        handlers = build_handlers(settings.actions, playbook_file.handlers_used())
        report = act_on_day(warehouse, playbook_file, handlers, days[-1])
        return report.tenants_evaluated, "tenant documents evaluated"

    window = f"{days[0]}..{days[-1]}"
    timed("land", land, f"{len(tenant_ids)} tenants")
    timed("dbt views", views)
    timed("dbt daily marts", daily, "every day" if full_build else window)
    timed("dbt mart tables", tables)
    timed("analyse", analyse, window)
    timed("insights", insights, window)
    timed("act", act, str(days[-1]))


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    non_empty = [f for f in frames if not f.empty]
    return pd.concat(non_empty, ignore_index=True) if non_empty else frames[0]
